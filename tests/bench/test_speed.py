"""`run_speed` end to end on tiny models: the report's shape, and identity to both greedy baselines."""

from ragspec.bench.speed import BenchModels, run_speed
from ragspec.models.loader import wrap
from tiny import tiny_hf, tiny_tokenizer


def _models() -> BenchModels:
    tok = tiny_tokenizer()
    target_hf = tiny_hf(vocab=len(tok), max_pos=4096)
    drafter_hf = tiny_hf(vocab=len(tok), seed=3, max_pos=4096)
    target = wrap(target_hf, tok, "tiny-target", "fast")
    drafter = wrap(drafter_hf, tok, "tiny-drafter", "fast")
    return BenchModels(target_hf, target, drafter_hf, drafter, None, None)


def test_speed_report_rows_and_identity():
    seen = []
    result = run_speed(_models(), "qa", ["hf-greedy", "greedy", "pld", "draft", "pld+draft"], limit=3,
                       max_new_tokens=24, on_prompt=lambda i, pid, outs: seen.append((i, pid, outs)))
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
