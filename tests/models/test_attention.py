"""The attention kernel (models/attention.cpp) against attention computed in float64, and the fast backend
with it against the fast backend on torch's flash attention."""

from __future__ import annotations

import pytest
import torch

from ragspec.models import attention
from ragspec.models.fast import FastLM
from tests.tiny import tiny_hf

pytestmark = pytest.mark.skipif(attention.kernel() is None, reason="the attention kernel could not be built here")


def _reference(qg: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, n: int, mask: torch.Tensor,
               scale: float) -> torch.Tensor:
    q = mask.shape[0]
    heads, rows, _ = qg.shape
    scores = (qg.double() @ keys[:, : n + q].double().transpose(1, 2)) * scale  # [H, R, n + q]
    seen = torch.cat((torch.ones(q, n, dtype=torch.bool), mask), 1).repeat(rows // q, 1)  # row g * q + t
    scores = scores.masked_fill(~seen, float("-inf"))
    return torch.softmax(scores, -1) @ values[:, : n + q].double()


def _case(heads: int, group: int, q: int, n: int, dim: int, seed: int):
    """Queries as a strided view, a slab with NaN past the n + q rows in use (they must not be read)."""
    g = torch.Generator().manual_seed(seed)
    qg = torch.randn(group * q, heads, dim, generator=g).transpose(0, 1)  # [H, R, D], not contiguous
    keys = torch.full((heads, n + q + 9, dim), float("nan"))
    values = torch.full_like(keys, float("nan"))
    keys[:, : n + q] = 3 * torch.randn(heads, n + q, dim, generator=g)  # peaked: the running maximum moves
    values[:, : n + q] = torch.randn(heads, n + q, dim, generator=g)
    return qg, keys, values


@pytest.mark.parametrize("dim", attention.HEAD_DIMS)
@pytest.mark.parametrize("heads,group,q,n", [(3, 3, 1, 0), (2, 1, 1, 7), (3, 5, 4, 33), (2, 13, 1, 300),
                                             (3, 3, 8, 1000), (1, 17, 1, 4097), (2, 8, 32, 70), (2, 2, 5, 255)])
def test_kernel_matches_float64_attention(dim, heads, group, q, n):
    """Short and long prefixes (one chunk, ragged blocks, many parallel chunks), odd and padded row counts,
    and the new rows under a random tree mask (each token sees itself and some of the others)."""
    qg, keys, values = _case(heads, group, q, n, dim, seed=dim + q + n)
    mask = torch.rand(q, q, generator=torch.Generator().manual_seed(n)) < 0.5
    mask |= torch.eye(q, dtype=torch.bool)
    out = attention.attend(qg, keys, values, n, mask, dim**-0.5)
    assert out.shape == (heads, group * q, dim)
    assert torch.allclose(out.double(), _reference(qg, keys, values, n, mask, dim**-0.5), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("n,parents", [(700, [-1, 0, 1, 2, 3, 4]), (674, [-1, 0, 0, 1, 2, 4])])
def test_a_token_gets_the_same_bits_decoded_alone_or_verified_at_once(n, parents):
    """A token decoded alone after its ancestors gets bit for bit what it gets in one forward with other
    new rows masked from it: in a chain (here across a block boundary: rows 700-705), and in a tree whose
    rows share a block (masked keys add exactly 0 and leave the maximum alone; only block and chunk
    boundaries, at fixed positions, order the sums)."""
    heads, group, dim = 3, 3, 64
    q = len(parents)
    mask = torch.zeros(q, q, dtype=torch.bool)
    for t, p in enumerate(parents):
        mask[t, t] = True
        if p >= 0:
            mask[t] |= mask[p]
    qg, keys, values = _case(heads, group, q, n, dim, seed=5)
    together = attention.attend(qg, keys, values, n, mask, 0.125).reshape(heads, group, q, dim)
    one = torch.ones(1, 1, dtype=torch.bool)
    for t in range(q):
        path = mask[t].nonzero()[:, 0]  # the token's ancestors and itself, in order
        k_alone = torch.cat((keys[:, :n], keys[:, n + path]), 1).contiguous()
        v_alone = torch.cat((values[:, :n], values[:, n + path]), 1).contiguous()
        q_alone = qg.reshape(heads, group, q, dim)[:, :, t]
        alone = attention.attend(q_alone, k_alone, v_alone, n + len(path) - 1, one, 0.125)
        assert torch.equal(alone, together[:, :, t])


def test_bad_arguments_are_refused():
    q, kv, one = torch.randn(2, 3, 64), torch.randn(2, 10, 64), torch.ones(1, 1, dtype=torch.bool)
    with pytest.raises(RuntimeError, match="head dimension"):
        attention.attend(torch.randn(2, 3, 48), torch.randn(2, 10, 48), torch.randn(2, 10, 48), 5, one, 0.1)
    with pytest.raises(RuntimeError, match="within the cache"):
        attention.attend(q, kv, kv, 10, one, 0.1)
    with pytest.raises(RuntimeError, match="too many query rows"):
        attention.attend(torch.randn(2, attention.MAX_ROWS + 1, 64), kv, kv, 5, one, 0.1)
    with pytest.raises(RuntimeError, match="whole groups"):
        attention.attend(q, kv, kv, 5, torch.ones(2, 2, dtype=torch.bool), 0.1)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_fast_backend_with_the_kernel_gives_flash_attentions_logits(arch):
    """Prefill, decode steps, a tree verification and a chain, with and without the kernel: the same
    logits to float32 rounding and the same greedy tokens."""
    hf = tiny_hf(arch, max_pos=2048)
    with_kernel, without = FastLM(hf), FastLM(hf)
    without.attention = None
    assert with_kernel.attention is not None
    prompt = torch.randint(2, 96, (700,), generator=torch.Generator().manual_seed(1))
    caches = [with_kernel.new_cache(), without.new_cache()]
    tree = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)
    steps = [(prompt[:40], None), (prompt[40:], None), (prompt[:1], None), (prompt[5:9], tree),
             (prompt[9:10], None), (prompt[10:16], None)]
    for tokens, mask in steps:
        a, b = (lm.forward(c, tokens, tree_mask=mask) for lm, c in zip((with_kernel, without), caches))
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
        assert torch.equal(a.argmax(-1), b.argmax(-1))
