"""Several proposers fused into one tree: each one's tree is inserted into a shared trie.

Longest-prefix insertion merges branches that agree (a PLD match and a REST continuation that start the
same way become one branch tagged with both sources), so the verifier checks the union in one forward.
Proposers are asked in order and later ones fill the node budget that earlier ones left.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ragspec.drafting.base import DraftContext, Proposer, reads_target_logits
from ragspec.spec.acceptance import Acceptance
from ragspec.spec.tree import TokenTree, TreeBuilder
from ragspec.spec.verifier import VerifyResult


class CompositeProposer:
    def __init__(self, proposers: Sequence[Proposer], name: str | None = None) -> None:
        if not proposers:
            raise ValueError("a composite proposer needs at least one proposer")
        self.proposers = list(proposers)
        self.name = name or "+".join(p.name for p in self.proposers)

    @property
    def reads_target_logits(self) -> bool:
        return any(reads_target_logits(p) for p in self.proposers)

    def begin(self, prompt_ids: Sequence[int]) -> None:
        for p in self.proposers:
            p.begin(prompt_ids)

    def propose(self, ctx: DraftContext) -> TokenTree:
        builder = TreeBuilder(ctx.max_nodes)
        self.trees = [p.propose(ctx) for p in self.proposers]
        for tree in self.trees:
            builder.merge(tree)
        return builder.build()

    def observe(self, ctx: DraftContext, result: VerifyResult) -> None:
        observe_parts(ctx, result, zip(self.proposers, self.trees))


def observe_parts(ctx: DraftContext, result: VerifyResult, parts: Iterable[tuple[Proposer, TokenTree]]) -> None:
    """Each part proposer learns how far the target followed *its own* tree; all see the logits."""
    tree, acceptance = result.tree, result.acceptance
    accepted = [tree.token_ids[i] for i in acceptance.accepted]
    for proposer, own in parts:
        mine = own_acceptance(own, accepted, acceptance.next_token)
        proposer.observe(ctx, VerifyResult(own, mine, result.input_ids, result.logits))


def own_acceptance(tree: TokenTree, accepted_tokens: list[int], next_token: int) -> Acceptance:
    """The accepted path re-expressed in one proposer's own tree (as far as that tree follows it)."""
    node, path = -1, []
    for tok in accepted_tokens:
        match = next((c for c in tree.kids(node) if tree.token_ids[c] == tok), None)
        if match is None:
            break
        path.append(match)
        node = match
    return Acceptance(tuple(path), next_token, bonus=False)
