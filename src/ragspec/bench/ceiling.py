"""`ragspec bench ceiling`: the most that drafts copied from the prompt, the output so far or a datastore
could speed up a model on a set, on this machine.

Why: PLD, REST and RASD's retrieval tree only propose spans that already exist in those sources. Given the
tokens greedy decoding actually emits (lossless methods emit exactly these), an oracle that always
proposes the one right span, and never a wrong node, is the best any such proposer can do. Its speed
follows from two measurements of the same run: the plain step time of ragspec greedy, and the cost of a
verification forward over k tokens relative to one decode step (`bench.verify`, at the set's mean context).
Drafting is counted as free, so this is an upper bound; a measured method sits below it.

Three oracles; the sources are the prompt + the output so far + the datastore, unless named otherwise:
- `copy`: the longest prefix of the coming greedy tokens that occurs anywhere in the sources;
- `lookup`: the same, but the span must follow an occurrence of the pending token (the loosest key that
  an n-gram lookup such as PLD or REST uses: they key on 2-16 tokens);
- `lookup:context`: `lookup` over the prompt and the output only (the best any prompt lookup could do).
The gap between a measured method and its oracle is the choice among matches: the oracle always takes
the right one. For each, dynamic programming picks the draft length of every step that minimises the total time (a
longer draft is not always worth its forward), up to `depth` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ragspec.bench.verify import verify_curve
from ragspec.drafting.datastore import DEPTH

ORACLES = {"copy": (False, True), "lookup": (True, True), "lookup:context": (True, False)}  # (keyed, datastore)


def _text(ids) -> str:
    """Token ids as a string of one code point each, so `str.find` matches whole tokens only."""
    return "".join(map(chr, ids))


def copy_lengths(prompt_ids: list[int], output: list[int], depth: int, keyed: bool,
                 datastore=None) -> list[int]:
    """For each step t, the longest l <= depth such that output[t:t+l] is a span of the sources that step
    sees (prompt + output[:t], and the datastore); with `keyed`, the span must follow an occurrence of the
    pending token (output[t-1], or the prompt's last token at t = 0)."""
    lengths = []
    for t in range(len(output)):
        seen = _text(prompt_ids + output[:t])
        key = [prompt_ids[-1] if t == 0 else output[t - 1]] if keyed else []
        best = 0
        for l in range(1, min(depth, len(output) - t) + 1):
            pattern = key + output[t : t + l]
            if _text(pattern) in seen or _in_datastore(datastore, pattern):
                best = l
            else:
                break  # a longer span contains this one, so it cannot occur either
        lengths.append(best)
    return lengths


def _in_datastore(datastore, pattern: list[int]) -> bool:
    if datastore is None or len(pattern) > DEPTH:
        return False
    parts = getattr(datastore, "parts", [datastore])  # a DatastoreUnion or one TokenDatastore
    arr = np.asarray(pattern, dtype=np.int64)
    return any(lo < hi for lo, hi in (p.find(arr) for p in parts))


@dataclass(frozen=True)
class Schedule:
    steps: int  # verification forwards
    cost: float  # sum of their costs, in decode steps


def fastest_schedule(lengths: list[int], cost: list[float]) -> Schedule:
    """The draft lengths that emit all len(lengths) tokens in the least time.

    lengths[t]: the longest right draft available at step t (tokens after the pending one);
    cost[k]: a forward over k tokens (the pending token + k - 1 drafts), in decode steps (cost[1] = 1).
    A forward drafting l <= lengths[t] tokens emits l + 1 tokens (l accepted, one bonus)."""
    n = len(lengths)
    best = [0.0] * (n + 1)  # best[t]: least cost to emit tokens t..n-1
    steps = [0] * (n + 1)
    for t in range(n - 1, -1, -1):
        options = ((cost[l + 1] + best[t + l + 1], steps[t + l + 1] + 1)
                   for l in range(0, min(lengths[t], n - 1 - t, len(cost) - 2) + 1))
        best[t], steps[t] = min(options)
    return Schedule(steps[0], best[0])


def relative_costs(lm, context: int, depth: int, reps: int = 9) -> list[float]:
    """[0, 1, c2, ..., c_{depth+1}]: a forward over k tokens at `context` in units of a decode step.

    Timing noise can make a larger forward measure cheaper than a smaller one; each cost is lowered to the
    cheapest larger forward (a forward cannot really cost less with more tokens), which can only raise
    the ceiling, so it stays an upper bound; and none is below one decode step."""
    rows = verify_curve(lm, [context], list(range(1, depth + 2)), reps)
    return [0.0] + [max(1.0, c) for c in monotone([r["ratio_to_decode"] for r in rows])]


def monotone(costs: list[float]) -> list[float]:
    """Each cost lowered to the least cost at or after it: [1, 1.3, 1.2, 1.5] -> [1, 1.2, 1.2, 1.5]."""
    out, low = list(costs), float("inf")
    for i in range(len(out) - 1, -1, -1):
        low = min(low, out[i])
        out[i] = low
    return out


def ceilings(prompts: list[list[int]], outputs: list[list[int]], cost: list[float], depth: int,
             datastore=None) -> dict[str, dict]:
    """For each oracle: the speedup over plain decoding (same forward costs), steps and tokens per step."""
    result = {}
    tokens = sum(len(o) for o in outputs)
    for oracle, (keyed, use_store) in ORACLES.items():
        total_cost, total_steps = 0.0, 0
        for ids, out in zip(prompts, outputs):
            s = fastest_schedule(copy_lengths(ids, out, depth, keyed, datastore if use_store else None), cost)
            total_cost, total_steps = total_cost + s.cost, total_steps + s.steps
        result[oracle] = {"speedup_vs_greedy": round(tokens / total_cost, 3) if total_cost else None,
                          "steps": total_steps, "tokens_per_step": round(tokens / max(1, total_steps), 3)}
    return result


def run_ceiling(models, set_name: str, methods: list[str], limit: int, max_new_tokens: int, depth: int = 8,
                reps: int = 9, on_prompt=None) -> dict:
    """`bench speed` with `methods` (greedy always runs: its tokens are the oracles' target), then each
    oracle's ceiling in the same run's units: tokens/s, x ragspec greedy and x `hf-greedy`."""
    from ragspec.bench.speed import run_speed

    prompts, outputs = [], []

    def keep(i, pid, outs, ids):
        prompts.append(ids)
        outputs.append(outs["greedy"])
        if on_prompt is not None:
            on_prompt(i, pid, outs, ids)

    methods = ["greedy", *(m for m in methods if m != "greedy")]
    result = run_speed(models, set_name, methods, limit, max_new_tokens, on_prompt=keep)
    context = round(result["prompt_tokens_mean"] + max_new_tokens / 2)
    cost = relative_costs(models.target, context, depth, reps)
    rows = {r["method"]: r for r in result["rows"]}
    greedy_tps, hf = rows["greedy"]["tokens_per_s"], rows.get("hf-greedy")
    oracles = ceilings(prompts, outputs, cost, depth, models.datastore)
    for c in oracles.values():
        c["tokens_per_s"] = round(greedy_tps * c["speedup_vs_greedy"], 3) if c["speedup_vs_greedy"] else None
        c["speedup_vs_hf_greedy"] = (round(c["tokens_per_s"] / hf["tokens_per_s"], 3)
                                     if hf and hf["tokens_per_s"] and c["tokens_per_s"] else None)
    result["ceiling"] = {"depth": depth, "context": context, "cost": [round(c, 3) for c in cost], "oracles": oracles}
    return result
