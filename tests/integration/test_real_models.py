"""End to end on the real models pulled by `make models` (smollm2-135m, minilm-l6): CLI and exactness."""

import json

import pytest
import torch
from typer.testing import CliRunner

from ragspec.cli import app
from ragspec.models.registry import is_pulled

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (is_pulled("smollm2-135m") and is_pulled("minilm-l6")),
                                 reason="run `make models` first")]
runner = CliRunner()


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("demo") / "store"
    result = runner.invoke(app, ["ingest", "data/demo/corpus.jsonl", "--store", str(store), "-q"])
    assert result.exit_code == 0, result.output
    return store


def test_ask_json_has_answer_sources_and_timings(demo_store):
    result = runner.invoke(app, ["ask", "When did the Normans conquer England?", "--store", str(demo_store),
                                 "--json", "--max-new-tokens", "24"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["answer"] and out["new_tokens"] > 0 and out["ttft_s"] > 0 and out["tokens_per_s"] > 0
    assert out["sources"][0]["title"] == "Normans" and {"id", "title", "score"} <= set(out["sources"][0])
    assert "mean_acceptance_length" in out["stats"] and "by_source" in out["stats"]


def test_ask_drafts_from_a_named_datastore_and_rejects_bad_ones(demo_store, tmp_path):
    doc = tmp_path / "normans.txt"
    doc.write_text(json.loads(open("data/demo/corpus.jsonl").readline())["text"], encoding="utf-8")
    args = ["ask", "Who were the Normans?", "--context", str(doc), "--method", "lc", "--json",
            "--max-new-tokens", "24", "--spec", "rest"]
    result = runner.invoke(app, [*args, "--datastore", str(demo_store)])  # no --store: REST has only this corpus
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["stats"]["by_source"]["rest"]["drafted"] > 0
    missing = runner.invoke(app, [*args, "--datastore", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no store here" in missing.output and missing.output.count("\n") <= 2
    unused = runner.invoke(app, [*args[:-1], "pld", "--datastore", str(demo_store)])
    assert unused.exit_code == 2 and "--datastore feeds REST drafts" in unused.output


def test_question_longer_than_the_context_is_a_one_line_error(demo_store):
    result = runner.invoke(app, ["ask", "why " * 9000, "--store", str(demo_store)])
    assert result.exit_code == 2
    assert "question needs" in result.output and result.output.count("\n") <= 2


def test_fast_stock_and_transformers_greedy_agree_and_speculation_is_lossless():
    from ragspec.bench.sets import load_set
    from ragspec.decoding.text import chat_ids
    from ragspec.drafting.registry import make_proposer
    from ragspec.engine import Engine
    from ragspec.models.loader import load_hf, wrap

    hf, tok, name = load_hf("smollm2-135m")
    fast, stock = wrap(hf, tok, name, "fast"), wrap(hf, tok, name, "stock")
    prompt = chat_ids(tok, list(load_set("summarization", 1)[0].messages))
    want = hf.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False, min_new_tokens=32,
                       eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    assert Engine(fast).generate(prompt, 32).token_ids[:32] == want
    assert Engine(stock).generate(prompt, 32).token_ids[:32] == want
    for spec in ("pld", "recycle", "rasd"):
        gen = Engine(fast, make_proposer(spec, vocab_size=fast.info.vocab_size)).generate(prompt, 32)
        assert gen.token_ids == Engine(fast).generate(prompt, 32).token_ids, spec


def test_models_list():
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "smollm2-135m" in result.stdout


def test_ask_rapid_at_eta_zero_answers_like_lc(tmp_path):
    doc = tmp_path / "normans.txt"
    doc.write_text(json.loads(open("data/demo/corpus.jsonl").readline())["text"], encoding="utf-8")
    args = ["ask", "Who were the Normans?", "--context", str(doc), "--json", "--max-new-tokens", "16"]
    lc = runner.invoke(app, [*args, "--method", "lc"])
    rapid = runner.invoke(app, [*args, "--method", "rapid", "--eta", "0"])
    assert lc.exit_code == 0 and rapid.exit_code == 0, (lc.output, rapid.output)
    lc_out, rapid_out = (json.loads(r.stdout[r.stdout.index("{"):]) for r in (lc, rapid))
    assert rapid_out["answer"] == lc_out["answer"] and rapid_out["new_tokens"] == lc_out["new_tokens"]
    assert rapid_out["stats"]["num_drafts"] > 0
    missing = runner.invoke(app, ["ask", "Who?", "--method", "rapid"])
    assert missing.exit_code == 2 and "--context" in missing.output


def test_eval_long_document_set_writes_rows_as_it_goes(tmp_path):
    sets = tmp_path / "ld"
    built = runner.invoke(app, ["data", "longdoc", "--out", str(sets), "--tokens", "1500", "--limit", "2"])
    assert built.exit_code == 0, built.output
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", str(sets), "--method", "lc,rag,rapid", "--eta", "0,10", "--limit", "2",
                                 "--max-new-tokens", "8", "--confidence", "0", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["methods"]) == {"lc", "rag", "rapid@eta=0", "rapid@eta=10"} and report["summary"]["questions"] == 2
    assert report["summary"]["confidence"] == 0.0
    rows = [json.loads(line) for line in out.with_suffix(".rows.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in report["rows"]]
    for row in rows:  # eta 0 is the long-context target's own greedy answer
        assert row["results"]["rapid@eta=0"]["prediction"] == row["results"]["lc"]["prediction"]
