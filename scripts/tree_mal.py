"""How long could a step's accepted draft get if the drafter's chain grew into a top-k tree, alone or fused
with retrieval? A replay of greedy's own tokens, for issue 4's question: can fusion reach 1.25x the mean
acceptance length of the best single source?

    python scripts/tree_mal.py --data summarization --model qwen2.5-coder-1.5b \
        --drafter qwen2.5-coder-0.5b --limit 5 --max-new-tokens 64 [--ignore-eos] [--json OUT]

Greedy decoding's tokens are what every lossless method emits, and along the accepted path every prefix
is the true one. So one teacher-forced drafter forward over prompt + greedy output gives, at every
position, the rank of the true token in the drafter's distribution given the true prefix, and that is all
it takes to know how far any top-k tree would be accepted: a tree that expands the top w_d tokens at
depth d is accepted as long as the true token's rank stays below w_d (its other nodes never matter). The
retrieval sources (PLD, REST) are asked at every position of the output as the engine would ask them
(at their longest draft length, 8), and a source's accepted length is its best candidate's matched prefix. A step emits the accepted length
plus one (the bonus token), and fusion (a trie of several sources' paths) accepts the longest of its
sources' accepted paths. Two lengths are reported: tokens per step over all steps, and vLLM's mean
acceptance length (1 + accepted / drafting steps), which leaves out the steps where a source proposed
nothing (PLD without a match) and so flatters a source that often stays silent; a drafter always drafts. Verification costs of the step sizes come from the same run (`bench verify`'s
curve at the mean context); drafting is counted free, so the speed column is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from ragspec.bench.ceiling import monotone
from ragspec.bench.speed import load_models, run_speed
from ragspec.bench.verify import verify_curve
from ragspec.decoding.sampling import SamplingParams
from ragspec.drafting.base import DraftContext
from ragspec.drafting.composite import own_acceptance
from ragspec.drafting.registry import make_proposer

DEPTH = 6  # the drafter chain's default longest draft (DraftLMConfig.max_len)
SHAPES = {  # name -> top-w at each depth (a chain is all ones)
    "chain": [1] * DEPTH,
    "chain10": [1] * 10,
    "w2@1": [2] + [1] * (DEPTH - 1),
    "w3@1": [3] + [1] * (DEPTH - 1),
    "w2@1-2": [2, 2] + [1] * (DEPTH - 2),
    "w2@1-3": [2, 2, 2] + [1] * (DEPTH - 3),
    "w2@all": [2] * DEPTH,
}


def nodes(widths: list[int]) -> int:
    """Tree nodes when every node of depth d has widths[d] children."""
    return sum(math.prod(widths[: d + 1]) for d in range(len(widths)))


def tree_accepted(ranks: np.ndarray, t: int, widths: list[int]) -> int:
    """Drafted tokens accepted from position t by a tree with the top widths[d] tokens at depth d."""
    j = 0
    while j < len(widths) and t + j < len(ranks) and ranks[t + j] < widths[j]:
        j += 1
    return j


def sibling_accepted(ranks: np.ndarray, t: int, depth: int = DEPTH) -> int:
    """The drafter's chain with its second choice as a leaf at every depth (`rasd:tree=2`)."""
    j = tree_accepted(ranks, t, [1] * depth)
    return j + 1 if j < depth and t + j < len(ranks) and ranks[t + j] == 1 else j


def drafter_ranks(drafter, ids: list[int], out: list[int]) -> np.ndarray:
    """Rank of out[j] in the drafter's distribution after ids + out[:j] (0 = its greedy choice)."""
    cache = drafter.new_cache(len(ids) + len(out) + 8)
    for s in range(0, len(ids) - 1, 512):
        drafter.forward(cache, torch.tensor(ids[s : min(s + 512, len(ids) - 1)]), num_logits=1)
    logits = drafter.forward(cache, torch.tensor([ids[-1]] + out[:-1]), num_logits=len(out)).float()  # [n, V]
    true = logits.gather(1, torch.tensor(out)[:, None])  # [n, 1]
    return (logits > true).sum(1).numpy()


def retrieval_accepted(proposer, ids: list[int], out: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """At every output position, the longest prefix of the coming tokens a candidate of `proposer` matches
    (-1 where it proposed nothing), and the nodes of its tree."""
    proposer.begin(ids)
    proposer.length.mean_accepted = float(proposer.config.max_len)  # draft its longest (8) at every step
    got = np.full(len(out), -1, dtype=np.int64)
    sizes = np.zeros(len(out), dtype=np.int64)
    for t in range(len(out)):
        ctx = DraftContext(tokens=ids + out[:t], num_prompt_tokens=len(ids), max_nodes=32,
                           max_depth=len(out) - t, sampling=SamplingParams())
        tree = proposer.propose(ctx)
        sizes[t] = len(tree)  # the longest path that follows the coming tokens (the trie walk RASD's observe uses)
        got[t] = len(own_acceptance(tree, out[t:], -1).accepted) if len(tree) else -1
    return got, sizes


def run(args) -> dict:
    models = load_models(args.model, args.drafter, args.data, "auto", "auto", False)
    runs: list[tuple[list[int], list[int]]] = []
    measured = run_speed(models, args.data, ["greedy", "pld", "draft", "rasd:skip=0,idle=0"], args.limit,
                         args.max_new_tokens, ignore_eos=args.ignore_eos,
                         on_prompt=lambda i, pid, outs, ids: runs.append((ids, outs["greedy"])))
    sources = {"pld": make_proposer("pld"), "rest": make_proposer("rest", datastore=models.datastore)}
    per_prompt = []
    for ids, out in runs:
        if len(out) < 2:
            continue
        per_prompt.append((out, drafter_ranks(models.drafter, ids, out),
                           {n: retrieval_accepted(p, ids, out) for n, p in sources.items()}))
    configs = {name: ("tree", w) for name, w in SHAPES.items()}
    configs["siblings"] = ("siblings", None)
    configs.update({src: (src, None) for src in sources})
    configs["pld+rest"] = ("retrieval", None)
    configs.update({f"{name}+pld+rest": ("fused", w) for name, w in SHAPES.items()})
    configs["siblings+pld+rest"] = ("fused-siblings", None)
    context = round(float(np.mean([len(ids) for ids, _ in runs])) + args.max_new_tokens / 2)
    grid = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 144]  # forward sizes measured; others interpolated
    curve = verify_curve(models.target, [context], grid, reps=5)
    cost_at = [max(1.0, c) for c in monotone([r["ratio_to_decode"] for r in curve])]  # as bench ceiling does

    def cost(size: int) -> float:
        return float(np.interp(size, grid, cost_at))

    rows = {}
    for name, (kind, widths) in configs.items():
        steps = tokens = drafts = accepted = 0
        spent = 0.0  # verification cost in decode steps
        for out, ranks, ret in per_prompt:
            t = 0
            while t < len(out):
                size = nodes(widths) if widths is not None else 2 * DEPTH if "siblings" in kind else 0
                size += {"pld": ret["pld"][1][t], "rest": ret["rest"][1][t], "tree": 0, "siblings": 0}.get(
                    kind, min(16, ret["pld"][1][t] + ret["rest"][1][t]))  # RASD's retrieval node budget
                drafter = (tree_accepted(ranks, t, widths) if widths is not None
                           else sibling_accepted(ranks, t) if "siblings" in kind else -1)
                pld, rest = int(ret["pld"][0][t]), int(ret["rest"][0][t])  # -1: proposed nothing
                a = {"pld": pld, "rest": rest, "retrieval": max(pld, rest)}.get(kind, max(drafter, pld, rest))
                if kind in ("tree", "siblings"):
                    a = drafter
                a = min(a, len(out) - 1 - t)
                drafts, accepted = drafts + (a >= 0), accepted + max(a, 0)
                a = max(a, 0)
                steps, tokens, t, spent = steps + 1, tokens + a + 1, t + a + 1, spent + cost(1 + size)
        rows[name] = {"tokens_per_step": round(tokens / steps, 3), "mal": round(1 + accepted / max(1, drafts), 3),
                      "steps": steps, "drafts": drafts, "tokens": tokens,
                      "max_nodes": nodes(widths) if widths is not None else 2 * DEPTH if "siblings" in kind else 0,
                      # drafting free, every tree at its full size: an upper bound on the speed over greedy
                      "speedup_vs_greedy_bound": round(tokens / spent, 3)}
    measured_rows = {r["method"]: {k: r.get(k) for k in ("tokens_per_s", "mean_acceptance_length",
                                                         "identical_to_greedy")} for r in measured["rows"]}
    return {"set": args.data, "model": args.model, "drafter": args.drafter, "prompts": len(per_prompt),
            "context": context, "verify_cost": dict(zip(grid, cost_at)), "replay": rows, "measured": measured_rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--drafter", required=True)
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    result = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    best = max(("chain", "pld", "rest"), key=lambda n: result["replay"][n]["mal"])  # the single sources
    print(f"{args.data}: {result['prompts']} prompts, context {result['context']}, best single source {best}")
    top = result["replay"][best]
    print("| config | tokens/step | x best single | MAL (vLLM) | x best single | nodes | speed bound x greedy |\n"
          "|---|---|---|---|---|---|---|")
    for name, r in result["replay"].items():
        print(f"| {name} | {r['tokens_per_step']:.2f} | {r['tokens_per_step'] / top['tokens_per_step']:.2f}x "
              f"| {r['mal']:.2f} | {r['mal'] / top['mal']:.2f}x | {r['max_nodes']} | {r['speedup_vs_greedy_bound']:.2f} |")
    print("measured:", json.dumps(result["measured"]))


if __name__ == "__main__":
    main()
