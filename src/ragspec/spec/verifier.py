"""One target forward over the pending root and every draft node, then commit the accepted path.

The cache holds every committed token except the pending root. `verify` appends [root, nodes...] in one
forward (positions = root position + depth, tree attention mask) and returns logits for all of them;
`commit` keeps the root and the accepted nodes in contiguous rows and drops the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ragspec.models.base import CausalLM, KVCache
from ragspec.spec.acceptance import Acceptance
from ragspec.spec.tree import TokenTree, attention_mask, input_ids, position_offsets


@dataclass(frozen=True)
class VerifyResult:
    """What one verification step saw and decided; proposers learn from it in `observe`."""

    tree: TokenTree
    acceptance: Acceptance
    input_ids: torch.Tensor  # [N+1] long: root, nodes...
    logits: torch.Tensor  # [N+1, V] target logits for the same rows


def verify(lm: CausalLM, cache: KVCache, root_token: int, tree: TokenTree, argmax_only: bool = False) -> torch.Tensor:
    """Logits [N+1, V] for [root, nodes...]; the cache grows by N+1 rows. `argmax_only`: greedy acceptance
    reads only each row's argmax, so the backend may leave the other entries -inf (CausalLM.forward)."""
    ids = input_ids(root_token, tree)
    if not len(tree):
        return lm.forward(cache, ids, argmax_only=argmax_only)
    base = cache.length
    return lm.forward(cache, ids, positions=base + position_offsets(tree), tree_mask=attention_mask(tree),
                      argmax_only=argmax_only)


def commit(cache: KVCache, base: int, acceptance: Acceptance) -> None:
    """Keep rows of the root and the accepted path (rows base, base+1+node...), contiguous from `base`."""
    keep = [0] + [node + 1 for node in acceptance.accepted]
    if keep == list(range(len(keep))):  # a prefix of the verified rows: cropping is enough
        cache.crop(base + len(keep))
    else:
        cache.keep(base, torch.tensor(keep))
