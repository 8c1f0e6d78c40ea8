"""Paired bootstrap of F1 differences against a baseline method, from a long-document `ragspec eval --json` file.

    python scripts/paired_bootstrap.py bench-out/rapid-eval-smollm2-200.json [--base lc] [--resamples 2000]
    python scripts/paired_bootstrap.py docs/results/rapid-eval-qwen-200.rows.jsonl   # a run's rows log

Prints, per method, the mean F1 difference to the baseline over the same questions and its 95% interval
(resampling questions with replacement, seed 0), in F1 points.
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
    args = ap.parse_args()
    with open(args.file, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f] if args.file.endswith(".jsonl") else json.load(f)["rows"]
    rng = random.Random(0)
    for method in rows[0]["results"]:
        if method == args.base:
            continue
        diffs = [r["results"][method]["f1"] - r["results"][args.base]["f1"] for r in rows]
        means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(args.resamples))
        lo, hi = means[int(0.025 * args.resamples)], means[int(0.975 * args.resamples)]
        print(f"{method}: {100 * statistics.fmean(diffs):+.1f} ({100 * lo:+.1f}, {100 * hi:+.1f}) over {len(rows)}")


if __name__ == "__main__":
    main()
