"""The copy-draft ceiling: oracle span lengths, the optimal schedule, and the report on tiny models."""

import itertools
import random

from ragspec.bench.ceiling import copy_lengths, fastest_schedule, run_ceiling
from ragspec.drafting.datastore import TokenDatastore
from test_speed import _models


def test_copy_lengths_follow_the_sources_each_step_sees():
    prompt, out = [1, 2, 3, 4, 5], [3, 4, 9, 3, 4, 5]
    assert copy_lengths(prompt, out, depth=8, keyed=False) == [2, 1, 0, 3, 2, 1]
    # keyed: the span must follow an earlier occurrence of the pending token (5 at t = 0, then out[t - 1])
    assert copy_lengths(prompt, out, depth=8, keyed=True) == [0, 1, 0, 0, 2, 1]
    assert copy_lengths(prompt, out, depth=2, keyed=False) == [2, 1, 0, 2, 2, 1]
    store = TokenDatastore.build([[9, 3, 4, 5, 6]])
    assert copy_lengths(prompt, out, depth=8, keyed=False, datastore=store) == [2, 1, 4, 3, 2, 1]
    assert copy_lengths(prompt, out, depth=8, keyed=True, datastore=store) == [0, 1, 0, 3, 2, 1]


def _brute_force(lengths, cost):
    """Least cost over every sequence of draft lengths (each within its step's limit)."""
    n, best = len(lengths), float("inf")
    for choice in itertools.product(*[range(0, m + 1) for m in lengths]):
        t, total = 0, 0.0
        while t < n:
            l = min(choice[t], n - 1 - t, len(cost) - 2)
            total += cost[l + 1]
            t += l + 1
        best = min(best, total)
    return best


def test_fastest_schedule_is_the_least_cost_over_all_draft_lengths():
    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(0, 4) for _ in range(rng.randint(1, 7))]
        cost = [0.0, 1.0] + sorted(1.0 + rng.random() * k for k in range(1, 5))
        s = fastest_schedule(lengths, cost)
        assert abs(s.cost - _brute_force(lengths, cost)) < 1e-9
        assert 1 <= s.steps <= len(lengths)
    # drafting pays only where its forward is cheaper than the steps it saves
    assert fastest_schedule([3, 0, 0, 0], [0, 1.0, 1.2, 1.4, 1.6]).steps == 1
    assert fastest_schedule([3, 0, 0, 0], [0, 1.0, 2.5, 3.5, 4.5]).steps == 4


def test_ceiling_report_on_tiny_models():
    result = run_ceiling(_models(), "qa", ["hf-greedy"], limit=2, max_new_tokens=12, depth=4, reps=1)
    c = result["ceiling"]
    assert [r["method"] for r in result["rows"]] == ["greedy", "hf-greedy"]
    assert len(c["cost"]) == 6 and c["cost"][1] == 1.0
    copy, lookup, context = (c["oracles"][k] for k in ("copy", "lookup", "lookup:context"))
    # nested oracles: more sources or no key can only shorten the schedule
    assert copy["speedup_vs_greedy"] >= lookup["speedup_vs_greedy"] >= context["speedup_vs_greedy"] > 0
    assert context["tokens_per_step"] >= 1.0 and copy["speedup_vs_hf_greedy"] is not None


def test_costs_are_made_monotone_by_lowering_noisy_points():
    from ragspec.bench.ceiling import monotone

    assert monotone([1.0, 1.3, 1.2, 1.5]) == [1.0, 1.2, 1.2, 1.5]
    assert monotone([1.0, 0.96, 1.3]) == [0.96, 0.96, 1.3]
