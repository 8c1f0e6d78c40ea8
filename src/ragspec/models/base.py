"""The causal-LM interface every decoding path in ragspec runs on.

Speculative decoding needs more control over the KV cache than `model.generate` gives: a verifier writes
a whole draft tree into the cache in one forward, then keeps only the accepted path. So a backend exposes
three verbs on an explicit cache:

- `forward(cache, token_ids, positions=..., tree_mask=...)` appends `q` tokens at the end of the cache and
  returns their logits. Each new token attends to every committed row plus the new tokens allowed by
  `tree_mask` (causal when `tree_mask` is None).
- `cache.crop(n)` drops every row from position `n` on.
- `cache.keep(base, indices)` keeps rows `base + indices` (ascending) at positions `base, base+1, ...`
  and drops the rest: this commits an accepted tree path into contiguous positions.

Two backends implement it: `stock` (the Hugging Face model forward with its DynamicCache, any
architecture; the reference) and `fast` (a lean runner over the same weights for Llama-family models
with a preallocated cache and split-KV attention; the default where it applies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass(frozen=True)
class ModelInfo:
    """Static facts about a loaded causal LM."""

    name: str
    vocab_size: int  # rows of the output projection (logits width)
    max_context: int  # max_position_embeddings of the config
    eos_token_ids: tuple[int, ...] = field(default_factory=tuple)
    architecture: str = ""
    num_parameters: int = 0


class KVCache(Protocol):
    """A per-sequence KV cache (batch size 1)."""

    @property
    def length(self) -> int:
        """Number of committed rows (tokens) held."""
        ...

    def crop(self, length: int) -> None:
        """Drop every row at position >= `length`."""
        ...

    def keep(self, base: int, indices: torch.Tensor) -> None:
        """Keep rows `base + indices` (ascending, [k] long) at `base..base+k-1`; drop rows after."""
        ...

    def copy(self, extra: int = 0) -> "KVCache":
        """An independent copy of the committed rows (room for `extra` more), e.g. a shared prompt prefix."""
        ...


class CausalLM(Protocol):
    """A causal language model with an explicit KV cache (see module docstring)."""

    info: ModelInfo
    tokenizer: object | None
    backend: str  # "fast" | "stock"

    def new_cache(self, capacity: int = 0) -> KVCache: ...

    def forward(
        self,
        cache: KVCache,
        token_ids: torch.Tensor,  # [q] long
        positions: torch.Tensor | None = None,  # [q] long, default cache.length + arange(q)
        tree_mask: torch.Tensor | None = None,  # [q, q] bool, True = may attend; None = causal
        num_logits: int | None = None,  # logits for the last k tokens only; None = all q
        argmax_only: bool = False,  # only each row's argmax need be right (greedy); other entries may be -inf
    ) -> torch.Tensor:  # [k, vocab] float32
        ...


def causal_tree_mask(q: int) -> torch.Tensor:
    """[q, q] bool lower-triangular mask: the chain case of a tree mask."""
    return torch.ones(q, q, dtype=torch.bool).tril_()


def default_positions(start: int, q: int) -> torch.Tensor:
    return torch.arange(start, start + q, dtype=torch.long)


def check_forward_args(cache_length: int, token_ids: torch.Tensor, tree_mask: torch.Tensor | None,
                       capacity: int) -> None:
    """Boundary checks shared by the backends: clear errors instead of shape errors deep in attention."""
    assert token_ids.ndim == 1, f"token_ids must be 1-D [q], got {tuple(token_ids.shape)}"
    q = token_ids.shape[0]
    if q == 0:
        raise ValueError("forward needs at least one token")
    if tree_mask is not None:
        assert tree_mask.shape == (q, q), f"tree_mask must be [{q}, {q}], got {tuple(tree_mask.shape)}"
    if capacity and cache_length + q > capacity:
        raise ValueError(
            f"context too long: {cache_length + q} tokens exceed the model's context of {capacity}"
        )
