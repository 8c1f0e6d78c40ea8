"""Paired bootstrap of F1 differences against a baseline method, from a long-document `ragspec eval --json` file.

    python scripts/paired_bootstrap.py bench-out/rapid-eval-smollm2-200.json [--base lc] [--resamples 2000]
    python scripts/paired_bootstrap.py docs/results/rapid-eval-qwen-200.rows.jsonl   # a run's rows log
    python scripts/paired_bootstrap.py FILE.rows.jsonl --rows 124:200               # questions 125-200 only

Prints, per method, the mean F1 difference to the baseline over the same questions and its 95% interval
(resampling questions with replacement, seed 0), in F1 points. `--table` prints a markdown table instead,
with EM, F1, the interval, mean acceptance length (1 + accepted / drafts), acceptance rate, and how many
answers equal the baseline's word for word.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--base", default="lc")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--table", action="store_true", help="a markdown table of every method")
    ap.add_argument("--rows", default=":", help="a slice of the rows, START:END (a run made in parts)")
    args = ap.parse_args()
    with open(args.file, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f] if args.file.endswith(".jsonl") else json.load(f)["rows"]
    start, _, end = args.rows.partition(":")
    rows = rows[int(start or 0) : int(end) if end else None]
    rng = random.Random(0)
    if args.table:
        print("| method | n | EM | F1 | F1 - LC (95% bootstrap CI) | same answer as LC | MAL | acceptance |")
        print("|---|---|---|---|---|---|---|---|")
    for method in rows[0]["results"]:
        results = [r["results"][method] for r in rows]
        base = [r["results"][args.base] for r in rows]
        diffs = [a["f1"] - b["f1"] for a, b in zip(results, base)]
        means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(args.resamples))
        lo, hi = means[int(0.025 * args.resamples)], means[int(0.975 * args.resamples)]
        ci = f"{100 * statistics.fmean(diffs):+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f})"
        if not args.table:
            if method != args.base:
                print(f"{method}: {ci} over {len(rows)}")
            continue
        total = lambda key: sum(r.get(key, 0) for r in results)  # noqa: E731
        drafts, drafted, accepted = total("num_drafts"), total("num_draft_tokens"), total("num_accepted_tokens")
        same = sum(a["prediction"] == b["prediction"] for a, b in zip(results, base))
        print(f"| {method} | {len(rows)} | {100 * statistics.fmean(r['em'] for r in results):.1f} "
              f"| {100 * statistics.fmean(r['f1'] for r in results):.1f} | {'-' if method == args.base else ci} "
              f"| {same} | {1 + accepted / drafts if drafts else 1:.2f} | {accepted / drafted if drafted else 0:.2f} |")


if __name__ == "__main__":
    main()
