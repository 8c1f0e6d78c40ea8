"""The fast and stock backends agree, and the cache verbs (crop, keep, tree forwards) are exact."""

import pytest
import torch

from ragspec.models.base import causal_tree_mask
from tiny import tiny_hf, tiny_lm
from ragspec.models import fast as fast_mod
from ragspec.models.loader import wrap

ARCHS = ["llama", "qwen2"]


def _pair(arch):
    hf = tiny_hf(arch)
    return wrap(hf, backend="fast"), wrap(hf, backend="stock")


@pytest.mark.parametrize("arch", ARCHS)
def test_fast_matches_stock_prefill_and_decode(arch):
    fast, stock = _pair(arch)
    ids = torch.randint(2, 96, (37,), generator=torch.Generator().manual_seed(1))
    cf, cs = fast.new_cache(8), stock.new_cache()  # capacity 8 forces the slab to grow
    # Prefill in two chunks, then decode token by token.
    for chunk in (ids[:20], ids[20:30]):
        torch.testing.assert_close(fast.forward(cf, chunk), stock.forward(cs, chunk), atol=2e-4, rtol=1e-4)
    for t in ids[30:]:
        lf, ls = fast.forward(cf, t[None]), stock.forward(cs, t[None])
        torch.testing.assert_close(lf, ls, atol=2e-4, rtol=1e-4)
    assert cf.length == cs.length == 37


@pytest.mark.parametrize("backend", ["fast", "stock"])
@pytest.mark.parametrize("arch", ARCHS)
def test_tree_forward_equals_separate_path_forwards(arch, backend):
    """One forward over a tree gives, at every node, the logits of a plain forward of its root path."""
    lm = tiny_lm(arch, backend=backend)
    prefix = torch.tensor([5, 9, 17, 3, 44, 8])
    # Tree: root r=7; children a=11, b=12; a has child c=13; b has child d=14; c has child e=15.
    tokens = torch.tensor([7, 11, 12, 13, 14, 15])
    parents = [-1, 0, 0, 1, 2, 3]
    depth = [0, 1, 1, 2, 2, 3]
    mask = torch.zeros(6, 6, dtype=torch.bool)
    for i in range(6):
        j = i
        while j >= 0:
            mask[i, j] = True
            j = parents[j]
    cache = lm.new_cache()
    lm.forward(cache, prefix)
    n = cache.length
    tree_logits = lm.forward(cache, tokens, positions=n + torch.tensor(depth), tree_mask=mask)
    for i in range(6):
        path, j = [], i
        while j >= 0:
            path.insert(0, int(tokens[j]))
            j = parents[j]
        ref_cache = lm.new_cache()
        ref = lm.forward(ref_cache, torch.cat([prefix, torch.tensor(path)]))[-1]
        torch.testing.assert_close(tree_logits[i], ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["fast", "stock"])
def test_keep_commits_path_like_sequential_decoding(backend):
    lm = tiny_lm("qwen2", backend=backend)
    prefix = torch.tensor([5, 9, 17, 3])
    tokens = torch.tensor([7, 11, 12, 13])  # root 7; 11 and 12 children of root; 13 child of 12
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)
    cache = lm.new_cache()
    lm.forward(cache, prefix)
    lm.forward(cache, tokens, positions=4 + torch.tensor([0, 1, 1, 2]), tree_mask=mask)
    cache.keep(4, torch.tensor([0, 2, 3]))  # accept root -> 12 -> 13
    assert cache.length == 7
    nxt = lm.forward(cache, torch.tensor([21]))
    ref_cache = lm.new_cache()
    ref = lm.forward(ref_cache, torch.tensor([5, 9, 17, 3, 7, 12, 13, 21]))[-1]
    torch.testing.assert_close(nxt[0], ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["fast", "stock"])
def test_crop_then_continue(backend):
    lm = tiny_lm("llama", backend=backend)
    cache = lm.new_cache()
    lm.forward(cache, torch.tensor([5, 9, 17, 3, 8, 8, 8]))
    cache.crop(4)
    out = lm.forward(cache, torch.tensor([30, 31]), tree_mask=causal_tree_mask(2))
    ref = lm.forward(lm.new_cache(), torch.tensor([5, 9, 17, 3, 30, 31]))[-2:]
    torch.testing.assert_close(out, ref, atol=2e-4, rtol=1e-4)


def test_context_overflow_is_a_clear_error():
    lm = tiny_lm("llama", max_pos=16)
    cache = lm.new_cache()
    with pytest.raises(ValueError, match="context too long"):
        lm.forward(cache, torch.arange(2, 20))


def test_long_prefix_uses_split_attention_exactly():
    """Prefixes beyond SPLIT_MIN_ROWS are attended in chunks merged by log-sum-exp."""
    from ragspec.models import fast as fast_mod

    hf = tiny_hf("llama", max_pos=4096)
    f, s = wrap(hf, backend="fast"), wrap(hf, backend="stock")
    ids = torch.randint(2, 96, (2500,), generator=torch.Generator().manual_seed(3))
    cf, cs = f.new_cache(), s.new_cache()
    f.forward(cf, ids[:-3]), s.forward(cs, ids[:-3])
    assert (cf.length // fast_mod.SPLIT_MIN_ROWS) >= 2
    torch.testing.assert_close(f.forward(cf, ids[-3:]), s.forward(cs, ids[-3:]), atol=2e-4, rtol=1e-4)


def test_int8_drafter_copy_is_close_and_leaves_the_target_exact():
    hf = tiny_hf("qwen2")
    target, drafter = wrap(hf, backend="fast"), wrap(hf, backend="fast", quantize="int8")
    ids = torch.randint(2, 96, (20,), generator=torch.Generator().manual_seed(5))
    ref = wrap(hf, backend="stock").forward(wrap(hf, backend="stock").new_cache(), ids)
    torch.testing.assert_close(target.forward(target.new_cache(), ids), ref, atol=2e-4, rtol=1e-4)
    approx = drafter.forward(drafter.new_cache(), ids)
    assert (approx - ref).abs().max() < 0.1 * ref.abs().max()  # close, not exact
    assert (approx.argmax(-1) == ref.argmax(-1)).float().mean() > 0.8


def test_int8_layer_does_not_saturate_on_full_range_activations():
    """The worst case for an int8 kernel without VNNI (AVX2 CPUs): every activation and weight at its
    largest level, where 16-bit pair sums overflow (`models/int8.saturates`). The layer must still compute
    x W^T, to int8 precision; before the probe it returned half of it on such a CPU."""
    w = torch.ones(32, 256)
    w[::2] = -1.0  # both signs, every weight at level +-127
    layer = fast_mod._Linear(w, None, pack=False, int8=True)
    x = torch.ones(1, 256)
    torch.testing.assert_close(layer(x), x @ w.T, rtol=0.02, atol=0.5)  # +-256; saturated: +-128


def test_int8_drafter_prefills_in_float32_on_the_targets_shared_weights():
    """A wide forward (prefill) of the int8 copy runs on the float32 weights it shares with the target:
    fbgemm's one activation scale per call would cost a 512-row chunk's small rows their precision. A
    few-row forward (a draft step) still runs in int8."""
    hf = tiny_hf("qwen2")
    target = wrap(hf, backend="fast")
    drafter = wrap(hf, backend="fast", quantize="int8")
    assert drafter.layers[0].qkv.weight.data_ptr() == target.layers[0].qkv.weight.data_ptr()  # no copy
    assert drafter.layers[0].gate_up.weight.data_ptr() == target.layers[0].gate_up.weight.data_ptr()
    ids = torch.randint(2, 96, (fast_mod.WIDE_MIN_ROWS + 8,), generator=torch.Generator().manual_seed(5))
    ct, cd = target.new_cache(), drafter.new_cache()
    target.forward(ct, ids, num_logits=1)
    drafter.forward(cd, ids, num_logits=1)
    n = ids.numel()
    torch.testing.assert_close(cd.keys[:, :, :n], ct.keys[:, :, :n], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cd.values[:, :, :n], ct.values[:, :, :n], atol=1e-5, rtol=1e-5)
    step = ids[:3]
    lt, ld = target.forward(ct, step), drafter.forward(cd, step)
    assert (lt - ld).abs().max() > 1e-4  # the draft step is the int8 one


def test_int4_linear_computes_with_its_dequantized_weight():
    """The packed int4 layer equals x @ w_hat^T, where w_hat rounds each group of 32 inputs onto 16 levels
    from the group's min to its max (checks the kernel's zero-point convention and the packing)."""
    weight = torch.randn(48, 96, generator=torch.Generator().manual_seed(2))
    x = torch.randn(3, 96, generator=torch.Generator().manual_seed(3))
    layer = fast_mod._Linear(weight, None, pack=False, int4=True)
    groups = weight.reshape(48, 3, 32)
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    step = (high - low) / 15
    w_hat = (low + torch.round((groups - low) / step) * step).reshape(48, 96)
    ref = x.to(torch.bfloat16).float() @ w_hat.t()
    torch.testing.assert_close(layer(x), ref, atol=0.05, rtol=0.02)  # bfloat16 activations and scales
    assert (layer(x) - x @ weight.t()).abs().max() > 0.05  # and it is the int4 weight, not the float32 one


def test_int4_drafter_reads_int4_then_int8_then_float32_by_rows():
    hf = tiny_hf("qwen2")
    target, int8 = wrap(hf, backend="fast"), wrap(hf, backend="fast", quantize="int8")
    int4 = wrap(hf, backend="fast", quantize="int4")
    assert int4.info.name.endswith("(int4)") and int4.layers[0].gate_up.int4 is not None
    ids = torch.randint(2, 96, (fast_mod.WIDE_MIN_ROWS + 8,), generator=torch.Generator().manual_seed(6))
    caches = [m.new_cache() for m in (target, int8, int4)]
    for m, c in zip((target, int8, int4), caches):
        m.forward(c, ids, num_logits=1)
    n = ids.numel()
    torch.testing.assert_close(caches[2].keys[:, :, :n], caches[0].keys[:, :, :n], atol=1e-5, rtol=1e-5)  # prefill: float32
    few = ids[:fast_mod.INT4_MAX_ROWS]
    base = caches[0].length
    logits = []
    for m, c in zip((target, int8, int4), caches):
        logits.append(m.forward(c, few))
        c.crop(base)
    torch.testing.assert_close(logits[2], logits[1])  # a few rows: the int8 copy, as the int8 drafter
    one = [m.forward(c, ids[:1]) for m, c in zip((target, int8, int4), caches)]
    assert (one[2] - one[1]).abs().max() > 1e-4  # one row: the int4 copy
    assert (one[2] - one[0]).abs().max() < 0.1 * one[0].abs().max()  # close to float32
