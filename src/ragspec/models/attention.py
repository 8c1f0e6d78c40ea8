"""Attention of a forward's few new rows over the K/V cache, reading the cache once (`attention.cpp`).

Why: past a few thousand tokens of context a decode step on 2 cores spends most of its time reading the
float32 K/V cache (SmolLM2 at 8K: 377 MB per step against 100 MB of grid weights), and torch's CPU
flash attention reads it at about half the speed the memory allows, slower still when verification
brings 8-32 query rows. The kernel processes the query heads that share a KV head together, so every
cached key and value is read once per forward, in parallel chunks merged by their log-sum-exps; the new
rows join as keys under the forward's tree mask. Chunks start at fixed positions and masked keys add
exactly zero, so a token's attention is bit for bit the same decoded alone or verified in a tree.

The result is attention in float32 with another summation order and an exp2 polynomial (relative error
about 1e-7) instead of torch's exp: the same model to rounding, as every fast-backend kernel is
(docs/design.md); lossless methods stay token-identical to greedy, which the tests and benchmarks check.
"""

from __future__ import annotations

import torch

from ragspec.models import kernels

HEAD_DIMS = (16, 32, 64, 128)  # attention.cpp's instances
MAX_ROWS = 256  # query rows per KV head (attention.cpp)


def kernel():
    """The compiled extension, or None where it cannot be built or RAGSPEC_ATTENTION=0."""
    return kernels.load("attention")


def usable(head_dim: int, dtype: torch.dtype) -> bool:
    return head_dim in HEAD_DIMS and dtype == torch.float32 and kernel() is not None


def attend(qg: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, n: int, mask: torch.Tensor,
           scale: float) -> torch.Tensor:
    """Attention of qg [Hkv, G * q, D] (row g * q + t: query head g of the group, new token t) over rows
    0..n-1 of keys, values [Hkv, >= n + q, D] (rows contiguous) and over rows n..n+q-1 where mask [q, q]
    (bool; mask[t, j]: token t sees new token j) allows. Returns [Hkv, G * q, D]."""
    return kernel().attention(qg, keys, values, n, mask, scale)[0]
