"""Markdown tables from `ragspec bench speed --json` / `ragspec eval --json` results (for docs/benchmarks.md).

    python scripts/tables.py bench-out/speed-*.json
"""

from __future__ import annotations

import json
import sys


def _f(v, nd=2) -> str:
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def speed(d: dict) -> str:
    head = (f"**{d['set']}**, {d['model']}" + (f" + drafter {d['drafter']}" if d.get("drafter") else "")
            + f": {d['num_prompts']} prompts, {d['prompt_tokens_mean']:.0f} prompt tokens on average, "
            f"{d['max_new_tokens']} new tokens, datastore {d.get('datastore')}\n\n")
    rows = ["| method | tok/s | vs hf-greedy | identical | MAL | acc. rate | draft s | verify s | fallback |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        rows.append(f"| {r['method']} | {_f(r['tokens_per_s'], 1)} | {_f(r['speedup_vs_hf_greedy'])}{'x' if r['speedup_vs_hf_greedy'] else ''} | "
                    f"{_identical(r)} | {_f(r.get('mean_acceptance_length'))} | "
                    f"{_f(r.get('acceptance_rate'))} | {_f(r.get('draft_s'), 1)} | {_f(r.get('verify_s'), 1)} | "
                    f"{_f(r.get('fallback_share'))} |")
    return head + "\n".join(rows) + "\n"


def _identical(r: dict) -> str:
    """Share identical to ragspec greedy's tokens; to transformers' greedy ("hf") in runs without `greedy`."""
    if r.get("identical_to_greedy") is None and r.get("identical_to_hf_greedy") is not None:
        return f"{r['identical_to_hf_greedy']:.2f} (hf)"
    return _f(r.get("identical_to_greedy"))


def verify(d: dict) -> str:
    """ms per forward (and x one decode step of the same backend) by context and tokens."""
    tokens = sorted({r["tokens"] for r in d["rows"]})
    rows = ["| backend | context | " + " | ".join(f"{t} tok" for t in tokens) + " |",
            "|---|---|" + "---|" * len(tokens)]
    keys = sorted({(r["backend"], r["context"]) for r in d["rows"]}, key=lambda k: (k[0] != "fast", k[1]))
    for backend, ctx in keys:
        cells = {r["tokens"]: f"{r['ms']:.1f} ({r['ratio_to_decode']:.2f}x)" for r in d["rows"]
                 if r["backend"] == backend and r["context"] == ctx}
        rows.append(f"| {backend} | {ctx} | " + " | ".join(cells.get(t, "-") for t in tokens) + " |")
    return "\n".join(rows) + "\n"


def evaluation(d: dict) -> str:
    methods = d.get("methods") or {d["summary"].get("method", "?"): d["summary"]}
    rows = ["| method | n | EM | F1 | recall@5 | latency s | tok/s | MAL |", "|---|---|---|---|---|---|---|---|"]
    for name, s in methods.items():
        rows.append(f"| {name} | {s.get('n')} | {_f(s.get('em'), 1)} | {_f(s.get('f1'), 1)} | "
                    f"{_f(s.get('retrieval_recall_at_5'))} | {_f(s.get('latency_s'))} | {_f(s.get('tokens_per_s'), 1)} | "
                    f"{_f(s.get('mean_acceptance_length'))} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    for path in sys.argv[1:]:
        d = json.load(open(path))
        print(f"<!-- {path} -->")
        if "rows" in d and "set" in d:
            print(speed(d))
        elif "rows" in d and d["rows"] and "ratio_to_decode" in d["rows"][0]:
            print(verify(d))
        else:
            print(evaluation(d))
