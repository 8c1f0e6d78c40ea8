"""The corpus CLI: ingest summary and exit codes, search output, store-info, delete (fake embedder)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ragspec.corpus.cli import app

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ingest_search_info_delete(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rivers.txt").write_text("The Nile is the longest river in Africa.")
    (docs / "space.md").write_text("# Space\n\nThe Moon orbits the Earth.")
    store = str(tmp_path / "store")
    result = _invoke(
        "ingest",
        str(docs),
        "--store",
        store,
        "--embedder",
        "hash-bow-64",
        "--chunk-size",
        "50",
        "--chunk-overlap",
        "5",
    )
    assert result.exit_code == 0, result.output
    assert "2 added, 0 replaced, 0 unchanged, 0 failed" in result.output

    again = _invoke("ingest", str(docs), "--store", store, "--embedder", "hash-bow-64", "-q")
    assert "0 added, 0 replaced, 2 unchanged, 0 failed" in again.output

    found = _invoke("search", "longest river", "--store", store, "-k", "1", "--json")
    [hit] = json.loads(found.output)
    assert hit["title"] == "rivers" and hit["rank"] == 1 and hit["text"].startswith("The Nile")

    plain = _invoke("search", "Moon orbit", "--store", store, "--mode", "bm25")
    assert "1. Space" in plain.output

    info = json.loads(_invoke("store-info", "--store", store, "--json").output)
    assert (info["documents"], info["chunk_size"], info["embedder"]) == (2, 50, "hash-bow-64")

    assert "deleted 1 document(s)" in _invoke("delete", str(docs / "space.md"), "--store", store).output
    assert json.loads(_invoke("store-info", "--store", store, "--json").output)["documents"] == 1


def test_failed_files_exit_2_but_good_files_are_committed(tmp_path):
    (tmp_path / "good.txt").write_text("fine text")
    (tmp_path / "bad.txt").write_bytes(b"\xc3\x28 broken")
    store = str(tmp_path / "store")
    result = runner.invoke(
        app,
        [
            "ingest",
            str(tmp_path / "good.txt"),
            str(tmp_path / "bad.txt"),
            str(tmp_path / "nope"),
            "--store",
            store,
            "--embedder",
            "hash-bow-64",
        ],
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert len(lines) == 2
    assert any("bad.txt: not valid UTF-8 at byte 0" in line for line in lines)
    assert any("nope: no such file or directory" in line for line in lines)
    assert "1 added" in result.output
    assert json.loads(_invoke("store-info", "--store", store, "--json").output)["documents"] == 1


def test_user_errors_are_one_line_exit_1(tmp_path):
    missing = _invoke("search", "x", "--store", str(tmp_path / "none"))
    assert missing.exit_code == 1 and "no store here" in missing.output
    (tmp_path / "a.txt").write_text("some words")
    store = str(tmp_path / "store")
    _invoke("ingest", str(tmp_path / "a.txt"), "--store", store, "--embedder", "hash-bow-64", "-q")
    empty = _invoke("search", "  ", "--store", store)
    assert (
        empty.exit_code == 1 and "empty query" in empty.output and len(empty.output.strip().splitlines()) == 1
    )
    bad_mode = _invoke("search", "words", "--store", store, "--mode", "fuzzy")
    assert bad_mode.exit_code == 1 and "unknown retrieval mode 'fuzzy'" in bad_mode.output
    clash = _invoke(
        "ingest", str(tmp_path / "a.txt"), "--store", store, "--embedder", "hash-bow-64", "--chunk-size", "99"
    )
    assert clash.exit_code == 1 and "store uses chunk size 200, not 99" in clash.output
