"""Grid weights: float32 weights on 4- or 8-bit block grids, read through their codes, are the same weights."""

import pytest
import torch
import torch.nn.functional as F

from ragspec.models import fast, grid
from ragspec.models.loader import wrap
from tiny import tiny_hf

needs_kernel = pytest.mark.skipif(grid.kernel() is None, reason="the grid kernel could not be built here")


def q4_1(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """GGUF Q4_1: per 32 inputs, w = d * q + m with d, m float16 and q in 0..15 (both ends used)."""
    g = torch.Generator().manual_seed(seed)
    d = (torch.rand(n, k // 32, 1, generator=g) * 0.02 + 1e-3).half().float()
    m = (-8 * d + torch.randn(n, k // 32, 1, generator=g) * 1e-3).half().float()
    q = torch.randint(0, 16, (n, k // 32, 32), generator=g).float()
    q[..., 0], q[..., 1] = 0, 15
    return (d * q + m).reshape(n, k)


def q4_k(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """GGUF Q4_K: per 32 inputs, w = d * sc * q - dmin * m (d, dmin float16; sc, m 6-bit); the codes
    of a block need not reach 0 or 15."""
    g = torch.Generator().manual_seed(seed)
    d = (torch.rand(n, k // 256, 1, 1, generator=g) * 1e-3 + 1e-4).half().float()
    dmin = (torch.rand(n, k // 256, 1, 1, generator=g) * 1e-3 + 1e-4).half().float()
    sc = torch.randint(1, 64, (n, k // 256, 8, 1), generator=g).float()
    mins = torch.randint(0, 64, (n, k // 256, 8, 1), generator=g).float()
    q = torch.randint(2, 14, (n, k // 256, 8, 32), generator=g).float()
    return (d * sc * q - dmin * mins).reshape(n, k)


def q8_0(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """GGUF Q8_0: per 32 inputs, w = d * q with d float16 and q in -127..127 (max |q| = 127)."""
    g = torch.Generator().manual_seed(seed)
    d = (torch.rand(n, k // 32, 1, generator=g) * 0.01 + 1e-4).half().float()
    q = torch.randint(-127, 128, (n, k // 32, 32), generator=g).float()
    q[..., 0] = 127
    return (d * q).reshape(n, k)


def q5_0(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """GGUF Q5_0: per 32 inputs, w = d * (q - 16) with d float16 and q in 0..31; the value of largest
    magnitude takes q = 0, and the other end is often unused."""
    g = torch.Generator().manual_seed(seed)
    d = (torch.rand(n, k // 32, 1, generator=g) * 0.01 + 1e-4).half().float()
    q = torch.randint(3, 28, (n, k // 32, 32), generator=g).float()
    q[..., 0] = 0
    return (d * (q - 16)).reshape(n, k)


def q6_k(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """GGUF Q6_K: per 16 inputs, w = (d * sc) * (q - 32) (d float16 per 256, sc 8-bit, q 6-bit), the
    product rounded once in float32 as gguf-py's dequantization does: two scales in every block of 32."""
    g = torch.Generator().manual_seed(seed)
    d = (torch.rand(n, k // 256, 1, 1, generator=g) * 1e-3 + 1e-4).half().float()
    sc = torch.randint(-128, 128, (n, k // 256, 16, 1), generator=g).float()
    q = torch.randint(0, 64, (n, k // 256, 16, 16), generator=g).float()
    q[..., 0] = torch.randint(0, 2, (n, k // 256, 16), generator=g).float() * 63  # the extreme, one end or the other
    return ((d * sc) * (q - 32)).reshape(n, k)


def q5_1(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """GGUF Q5_1: per 32 inputs, w = d * q + m with q in 0..31: an offset grid of 32 levels."""
    g = torch.Generator().manual_seed(seed)
    d = (torch.rand(n, k // 32, 1, generator=g) * 0.01 + 1e-4).half().float()
    m = (-16 * d + torch.randn(n, k // 32, 1, generator=g) * 1e-3).half().float()
    q = torch.randint(0, 32, (n, k // 32, 32), generator=g).float()
    return (d * q + m).reshape(n, k)


@needs_kernel
@pytest.mark.parametrize("make, bits", [(q4_1, 4), (q4_k, 4), (q8_0, 8), (q5_0, 8), (q6_k, 8)])
@pytest.mark.parametrize("n", [64, 70])  # 70: the last tile of 4 rows is padded
def test_grid_holds_the_exact_weights_and_multiplies_like_float32(make, bits, n):
    w = make(n, 256)
    g = grid.pack(w)
    assert g is not None and g.bits == bits
    assert g.nbytes < w.numel() * w.element_size() / (4.5 if bits == 4 else 3)
    assert torch.equal(g.dequantize(), w)  # bit for bit
    for rows in (1, 2, 3, 4, 5, 8, 13, 32):  # every group size of the kernel's row loop
        x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(rows))
        y = g(x)
        torch.testing.assert_close(y, F.linear(x, w), rtol=1e-5, atol=1e-5)
        # A row's product does not depend on the rows beside it: a token verified in a tree gets what it
        # gets decoded alone.
        assert all(torch.equal(y[i], g(x[i : i + 1])[0]) for i in range(rows))


@needs_kernel
def test_a_fused_weight_whose_parts_lie_on_different_grids_is_read_part_by_part():
    q, k, v = q4_k(64, 256, 1), q4_k(16, 256, 2), q6_k(16, 256, 3)  # Q4_K_M: some layers' v_proj in Q6_K
    w = torch.cat([q, k, v])
    assert grid.pack(w) is None  # no one grid holds both kinds of rows
    assert grid.pack(w, (64, 32)) is None  # nor a piece that mixes them
    g = grid.pack(w, (64, 16, 16))
    assert isinstance(g, grid.GridStack) and g.bits == (4, 4, 8) and g.shape == (96, 256)
    assert torch.equal(g.dequantize(), w)
    x = torch.randn(9, 256, generator=torch.Generator().manual_seed(0))
    y = g(x)
    torch.testing.assert_close(y, F.linear(x, w), rtol=1e-5, atol=1e-5)
    assert torch.equal(y[4], g(x[4:5])[0])
    assert isinstance(grid.pack(torch.cat([q, k])), grid.GridLinear)  # one grid: no stack
    with pytest.raises(ValueError, match="do not add up"):
        grid.pack(w, (64, 16))  # a caller's wrong row counts are an error, not a silent single grid


@needs_kernel
def test_a_block_of_few_values_fits_through_a_fraction_of_its_smallest_gap():
    w = q4_1(8, 64)
    d, m = torch.tensor(0.0123).half().float(), torch.tensor(-0.0456).half().float()
    w[0, :32] = d * torch.tensor([0.0, 2.0, 7.0]).repeat(11)[:32] + m  # gaps of 2 and 5 steps, none of 1
    g = grid.pack(w)
    assert g is not None and g.bits == 4 and torch.equal(g.dequantize(), w)


def test_weights_off_the_grids_are_not_packed():
    assert grid.pack(torch.randn(64, 256)) is None  # float32 values
    assert grid.pack(q5_1(64, 256)) is None  # 32 levels with an offset: neither grid (kept in float32)
    assert grid.pack(q4_1(64, 256).half()) is None  # not float32
    assert grid.pack(q4_1(64, 256)[:, :80]) is None  # rows not made of 32-input blocks


def _snap(model: torch.nn.Module, head: bool = False) -> None:
    """Put every decoder-layer weight on a Q4_1-style grid (as the GGUF checkpoints ragspec pulls are) and,
    with `head`, the output layer on a Q8_0 one (SmolLM2's and Qwen 0.5B's)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layers" in name and p.dim() == 2:
                b = p.reshape(p.shape[0], -1, 32)
                low, high = b.amin(-1, keepdim=True), b.amax(-1, keepdim=True)
                d = ((high - low) / 15).half().float()
                p.copy_((torch.round((b - low) / d).clamp(0, 15) * d + low.half().float()).reshape(p.shape))
        if head:
            _snap8(model.get_output_embeddings().weight)


def _snap8(p: torch.Tensor) -> None:
    """Put a weight on a Q8_0 grid in place: w = d * q per 32 inputs."""
    with torch.no_grad():
        b = p.reshape(p.shape[0], -1, 32)
        d = b.abs().amax(-1, keepdim=True) / 127  # codes from the unrounded scale, as llama.cpp's
        p.copy_((torch.round(b / d).nan_to_num_(0) * d.half().float()).reshape(p.shape))  # 0/0: zero rows


@needs_kernel
@pytest.mark.parametrize("arch, head", [("llama", False), ("qwen2", False), ("llama", True)])
def test_a_grid_model_gives_the_float32_kernels_logits_and_greedy_tokens(arch, head):
    hf = tiny_hf(arch, layers=3)
    _snap(hf, head)
    on, off, stock = fast.FastLM(hf), fast.FastLM(hf, grid=False), wrap(hf, backend="stock")
    assert on.grid_share == 1.0 and off.grid_share == 0.0
    assert (on.lm_head.grid is not None and on.lm_head.grid.bits == 8) == head
    ids = torch.randint(2, 96, (45,), generator=torch.Generator().manual_seed(2))
    caches = [lm.new_cache() for lm in (on, off, stock)]
    # 33 rows run on float32 weights (prefill), then decode steps and a 9-row forward on the grid.
    for chunk in (ids[:33], ids[33:34], ids[34:35], ids[35:36], ids[36:45]):
        outs = [lm.forward(c, chunk) for lm, c in zip((on, off, stock), caches)]
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(outs[0], outs[2], rtol=1e-4, atol=2e-4)
    # A greedy step's argmax-only head (the screen, or the grid output layer read whole) picks the same token.
    top = [int(lm.forward(c, ids[:1], argmax_only=True)[-1].argmax()) for lm, c in zip((on, off), caches[:2])]
    assert top[0] == top[1]
    greedy = [_greedy(lm, ids[:8], 24) for lm in (on, stock)]
    assert greedy[0] == greedy[1]


@needs_kernel
def test_a_layer_with_an_8_bit_v_proj_is_read_through_codes_too():
    hf = tiny_hf("qwen2", layers=2)
    _snap(hf)
    _snap8(hf.model.layers[1].self_attn.v_proj.weight)
    on, off = fast.FastLM(hf), fast.FastLM(hf, grid=False)
    assert on.grid_share == 1.0 and isinstance(on.layers[1].qkv.grid, grid.GridStack)
    assert isinstance(on.layers[0].qkv.grid, grid.GridLinear)
    ids = torch.randint(2, 96, (40,), generator=torch.Generator().manual_seed(3))
    caches = [lm.new_cache() for lm in (on, off)]
    for chunk in (ids[:33], ids[33:34], ids[34:40]):  # prefill on float32 weights, then through the codes
        outs = [lm.forward(c, chunk) for lm, c in zip((on, off), caches)]
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    assert _greedy(on, ids[:8], 16) == _greedy(off, ids[:8], 16)


def _greedy(lm, prompt: torch.Tensor, steps: int) -> list[int]:
    cache, out = lm.new_cache(), []
    logits = lm.forward(cache, prompt)[-1]
    for _ in range(steps):
        out.append(int(logits.argmax()))
        logits = lm.forward(cache, torch.tensor([out[-1]]))[-1]
    return out


def test_without_the_kernel_nothing_is_packed(monkeypatch):
    monkeypatch.setattr(grid, "kernel", lambda: None)
    assert grid.pack(q4_1(64, 256)) is None
    hf = tiny_hf("llama")
    _snap(hf)
    assert wrap(hf, backend="fast").grid_share == 0.0


@needs_kernel
def test_auto_drafters_run_in_float32_on_grid_weights_and_int8_otherwise():
    hf = tiny_hf("llama")
    assert wrap(hf, backend="fast", quantize="auto").quantized  # random float32 weights: an int8 copy
    _snap(hf)
    drafter = wrap(hf, backend="fast", quantize="auto")
    assert not drafter.quantized and drafter.grid_share == 1.0
