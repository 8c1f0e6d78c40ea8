"""`run_speed` end to end on tiny models: the report's shape, and identity to both greedy baselines."""

import json

from ragspec.bench.speed import BenchModels, run_speed
from ragspec.models.loader import wrap
from ragspec.retrieval.embedder import HashEmbedder
from tiny import tiny_hf, tiny_tokenizer

DOC = " ".join(f"Fact {i}: the code word of room {i} is w{i * 7 % 13}." for i in range(40))


def _models() -> BenchModels:
    tok = tiny_tokenizer()
    target_hf = tiny_hf(vocab=len(tok), max_pos=4096)
    drafter_hf = tiny_hf(vocab=len(tok), seed=3, max_pos=4096)
    target = wrap(target_hf, tok, "tiny-target", "fast")
    drafter = wrap(drafter_hf, tok, "tiny-drafter", "fast")
    return BenchModels(target_hf, target, drafter_hf, drafter, None, None, HashEmbedder(64))


def test_speed_report_rows_and_identity():
    seen = []
    result = run_speed(_models(), "qa", ["hf-greedy", "greedy", "pld", "draft", "pld+draft"], limit=3,
                       max_new_tokens=24, on_prompt=lambda i, pid, outs, ids: seen.append((i, pid, outs)))
    assert [i for i, _, _ in seen] == [0, 1, 2] and result["num_prompts"] == 3
    assert result["set"] == "qa" and result["model"] == "tiny-target" and result["drafter"] == "tiny-drafter"
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == ["hf-greedy", "greedy", "pld", "draft", "pld+draft"]
    for name, row in rows.items():
        assert row["identical_to_hf_greedy"] == 1.0, name  # every lossless method emits transformers' greedy tokens
        assert row["identical_to_greedy"] == 1.0, name
        assert row["tokens_per_s"] > 0 and row["new_tokens"] > 0
    assert rows["hf-greedy"]["speedup_vs_hf_greedy"] == 1.0 and rows["hf-greedy"]["mean_acceptance_length"] is None
    assert rows["draft"]["acceptance_rate"] is not None and rows["draft"]["by_source"]
    assert result["best"] in {"pld", "draft", "pld+draft"}
    outputs = [outs for _, _, outs in seen]
    assert all(o["greedy"] == o["hf-greedy"] for o in outputs)


def test_skip_takes_the_prompts_after_an_earlier_sample():
    models, ids = _models(), []
    first = run_speed(models, "qa", ["greedy"], limit=3, max_new_tokens=4, on_prompt=lambda i, pid, o, x: ids.append(pid))
    later = run_speed(models, "qa", ["greedy"], limit=2, max_new_tokens=4, skip=1,
                      on_prompt=lambda i, pid, o, x: ids.append(pid))
    assert ids[3:] == ids[1:3] and (first["skip"], later["skip"], later["num_prompts"]) == (0, 1, 2)


def test_ignore_eos_times_every_method_on_the_whole_budget():
    """With `ignore_eos` transformers and ragspec both go on past EOS: every method emits the full budget,
    the same tokens, where without it the EOS ends the answer early."""
    from dataclasses import replace

    models, seen = _models(), []
    methods = ["hf-greedy", "hf-pld", "greedy", "pld", "draft"]
    keep = lambda i, pid, outs, ids: seen.append(outs)  # noqa: E731
    run_speed(models, "qa", ["greedy"], limit=2, max_new_tokens=20, on_prompt=keep, ignore_eos=True)
    full = [outs["greedy"] for outs in seen]
    eos = full[0][4]  # a token greedy emits early on the first prompt: made the EOS
    models.target.info = replace(models.target.info, eos_token_ids=(eos,))
    seen.clear()
    cut = run_speed(models, "qa", methods, limit=2, max_new_tokens=20, on_prompt=keep)
    assert seen[0]["hf-greedy"] == seen[0]["greedy"] == full[0][: full[0].index(eos)] and not cut["ignore_eos"]
    seen.clear()
    result = run_speed(models, "qa", methods, limit=2, max_new_tokens=20, on_prompt=keep, ignore_eos=True)
    assert result["ignore_eos"] and [outs["hf-greedy"] for outs in seen] == full
    for row in result["rows"]:
        assert row["new_tokens"] == 40 and row["identical_to_hf_greedy"] == 1.0, row["method"]


def test_speed_rapid_rows_on_a_long_document_set(tmp_path):
    (tmp_path / "documents.jsonl").write_text(json.dumps({"id": "d", "text": DOC}) + "\n")
    (tmp_path / "questions.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "question": f"Code word of room {i}?", "doc_id": "d"}) + "\n" for i in (3, 17)))
    methods = ["greedy", "rapid:eta=0,chunk_size=64,budget=300", "rapid:eta=50,gamma=4,chunk_size=64,budget=300"]
    result = run_speed(_models(), f"longdoc:{tmp_path}", methods, limit=2, max_new_tokens=16)
    rows = {r["method"]: r for r in result["rows"]}
    assert result["num_prompts"] == 2
    assert rows[methods[1]]["identical_to_greedy"] == 1.0  # eta 0 is lossless
    assert rows[methods[1]]["mean_acceptance_length"] >= 1.0 and rows[methods[2]]["acceptance_rate"] is not None
    assert result["best"] == methods[1]  # RAPID is lossless at eta 0 only: the eta 50 row never counts as "best"


def test_rapid_reads_the_prompt_every_method_reads(monkeypatch):
    """On a set with its own chat prompt over a document (squad-longdoc), RAPID's target reads that prompt,
    and its drafter the chunks retrieved from the document; a set without documents is a clear error."""
    import pytest

    from ragspec.bench import speed
    from ragspec.bench.sets import BenchPrompt, load_set
    from ragspec.decoding.text import chat_ids

    article = load_set("squad-longdoc", limit=1)[0]
    assert article.document in article.messages[0]["content"] and article.question in article.messages[0]["content"]
    asks = [f"What is the code word of room {i}?" for i in (5, 21)]
    chat = [BenchPrompt(f"p{i}", ({"role": "user", "content": f"Notes:\n{DOC}\n\n{ask}"},), question=ask, document=DOC)
            for i, ask in enumerate(asks)]
    monkeypatch.setattr(speed, "load_set", lambda name: chat)
    models, read = _models(), []
    methods = ["greedy", "rapid:eta=0,chunk_size=64,budget=300"]
    result = run_speed(models, "chat", methods, limit=2, max_new_tokens=12,
                       on_prompt=lambda i, pid, outs, ids: read.append(ids))
    assert read == [chat_ids(models.target.tokenizer, list(p.messages)) for p in chat]  # the set's own prompt
    rows = {r["method"]: r for r in result["rows"]}
    # at eta 0 RAPID's target can only match greedy token for token by reading the same prompt
    assert rows[methods[1]]["identical_to_greedy"] == 1.0 and result["best"] == methods[1]
    monkeypatch.setattr(speed, "load_set", lambda name: [BenchPrompt("q", ({"role": "user", "content": "Hi?"},))])
    with pytest.raises(ValueError, match="rapid needs a question and a document"):
        run_speed(_models(), "qa", methods, limit=1, max_new_tokens=4)


def test_bench_commands_fail_with_one_line(tmp_path):
    """Bad bench arguments are one red line and exit code 2, before any model is loaded."""
    from typer.testing import CliRunner

    from ragspec.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "verify", "--quantize", "int8"])
    assert bad.exit_code == 2 and "error: --quantize int8 runs on the fast backend only" in bad.output
    assert "Traceback" not in bad.output
    missing = runner.invoke(app, ["bench", "plot", str(tmp_path / "none.json"), "--out", str(tmp_path / "p.png")])
    assert missing.exit_code == 2 and missing.output.count("\n") == 1 and "error:" in missing.output


def test_hf_first_step_tokens_are_counted():
    """transformers' assisted generation can hand out a whole accepted draft with its first token; the
    decode rate must leave those tokens out with the first step's time, as it does for ragspec."""
    from ragspec.bench.hf import hf_generate

    hf = tiny_hf()
    prompt = list(range(10, 60))
    assert hf_generate("hf-greedy", hf, prompt, 12, (0,)).ttft_tokens == 1
    assisted = hf_generate("hf-assisted", hf, prompt, 12, (0,), assistant=hf)  # its own assistant: all accepted
    assert assisted.ttft_tokens > 1 and assisted.token_ids == hf_generate("hf-greedy", hf, prompt, 12, (0,)).token_ids


def test_load_models_reuses_the_target_when_it_drafts_for_itself(monkeypatch):
    """Self-drafting without quantization wraps the target once (no second copy of its weights); a named
    drafter or a quantized copy gets its own wrapper; `datastore="none"` runs without REST."""
    from ragspec.bench import speed
    from ragspec.models import loader

    tok = tiny_tokenizer()
    loaded = []

    def fake_load_hf(name):
        loaded.append(name)
        return tiny_hf(vocab=len(tok), seed=len(loaded)), tok, name

    monkeypatch.setattr(loader, "load_hf", fake_load_hf)
    same = speed.load_models("t", "t", "rag", "none", "fast", False, "none")
    assert same.drafter is same.target and same.drafter_hf is same.target_hf
    assert same.datastore is None and same.datastore_name is None and loaded == ["t"]
    other = speed.load_models("t", "d", "rag", "none", "fast", False, "none")
    assert other.drafter is not other.target and other.drafter.info.name == "d" and loaded[-2:] == ["t", "d"]
    copy = speed.load_models("t", "t", "rag", "none", "fast", False, "int8")
    assert copy.drafter is not copy.target and copy.drafter_hf is copy.target_hf
