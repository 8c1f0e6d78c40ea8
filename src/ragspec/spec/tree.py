"""Draft token trees: what every proposer returns and what the verifier checks in one forward.

A tree hangs off the *root*, the last committed token whose logits the target has not computed yet (it
is not stored in the tree). Node i has a token, a parent (-1 = the root), a depth (1 = child of the
root) and provenance: the set of sources that proposed it ("draft_lm", "pld", "rest", ...). Nodes are
kept in topological order (a parent before its children), so any prefix of the node list is a tree.

Sampling conventions (see `ragspec.spec.acceptance`):
- a node with `draft_probs[i] is None` is a deterministic proposal (retrieval, top-k expansion);
- a node with `draft_probs[i]` = q [V] was *sampled* from q given its parent; such a node comes first
  among its siblings, and a parent has at most one such child.

Trees are built with `TreeBuilder`, a trie: inserting a path follows matching tokens from the root as
deep as possible (longest prefix match) and attaches the rest as a new branch, so fusing trees from
several sources is just inserting their paths into one builder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

ROOT = -1


@dataclass(frozen=True)
class TokenTree:
    """An immutable draft tree (see module docstring). Use `TreeBuilder` or `TokenTree.chain` to make one."""

    token_ids: tuple[int, ...] = ()
    parents: tuple[int, ...] = ()
    depths: tuple[int, ...] = ()
    sources: tuple[frozenset[str], ...] = ()
    draft_probs: tuple[torch.Tensor | None, ...] = ()
    scores: tuple[float, ...] = ()  # ranking weight per node (e.g. drafter probability x retrieval count)
    children: tuple[tuple[int, ...], ...] = field(default=(), compare=False)
    root_children: tuple[int, ...] = field(default=(), compare=False)

    @staticmethod
    def empty() -> "TokenTree":
        return TokenTree()

    @staticmethod
    def chain(tokens: list[int], source: str, draft_probs: list[torch.Tensor] | None = None,
              scores: list[float] | None = None) -> "TokenTree":
        """A single path; `draft_probs[i]` is the q token i was sampled from (None = deterministic)."""
        builder = TreeBuilder()
        builder.insert(tokens, source, draft_probs=draft_probs, scores=scores)
        return builder.build()

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_nodes(self) -> int:
        return len(self.token_ids)

    @property
    def max_depth(self) -> int:
        return max(self.depths, default=0)

    @property
    def is_deterministic(self) -> bool:
        return all(q is None for q in self.draft_probs)

    def kids(self, node: int) -> tuple[int, ...]:
        """Children of `node` (ROOT for the root), stochastic child first, then in insertion order."""
        return self.root_children if node == ROOT else self.children[node]

    def path_to(self, node: int) -> list[int]:
        """Node indices from the root's child down to `node`."""
        path = []
        while node != ROOT:
            path.append(node)
            node = self.parents[node]
        return path[::-1]

    def leaves(self) -> list[int]:
        return [i for i in range(len(self)) if not self.children[i]]

    def paths(self) -> list[list[int]]:
        """Every root-to-leaf path, as node indices."""
        return [self.path_to(leaf) for leaf in self.leaves()]

    def token_paths(self) -> list[list[int]]:
        return [[self.token_ids[i] for i in path] for path in self.paths()]

    def subtree(self, keep: list[int]) -> "TokenTree":
        """The tree restricted to `keep` node indices (each kept node's ancestors must be kept too)."""
        keep_set = set(keep)
        builder = TreeBuilder()
        for i in sorted(keep_set):
            assert self.parents[i] == ROOT or self.parents[i] in keep_set, "pruning must keep ancestors"
        for path in self.paths():
            kept = [i for i in path if i in keep_set]
            if kept:
                builder.insert_nodes(self, kept)
        return builder.build()


def attention_mask(tree: TokenTree) -> torch.Tensor:
    """[N+1, N+1] bool over [root, nodes...]: True where row may attend to column (itself and ancestors)."""
    n = len(tree) + 1
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[:, 0] = True  # everyone sees the root
    for i, parent in enumerate(tree.parents):
        row = i + 1
        if parent != ROOT:
            mask[row] = mask[parent + 1]  # parents come first: copy the parent's ancestor row
        mask[row, row] = True
    mask[0, 0] = True
    return mask


def position_offsets(tree: TokenTree) -> torch.Tensor:
    """[N+1] long: depth of [root, nodes...] (root 0); positions are the root's position plus these."""
    return torch.tensor((0,) + tree.depths, dtype=torch.long)


def input_ids(root_token: int, tree: TokenTree) -> torch.Tensor:
    """[N+1] long: the verifier's input, root first."""
    return torch.tensor((root_token,) + tree.token_ids, dtype=torch.long)


class TreeBuilder:
    """A trie of draft paths with a node budget (see module docstring)."""

    def __init__(self, max_nodes: int = 1 << 30) -> None:
        self.max_nodes = max_nodes
        self._tokens: list[int] = []
        self._parents: list[int] = []
        self._depths: list[int] = []
        self._sources: list[set[str]] = []
        self._probs: list[torch.Tensor | None] = []
        self._scores: list[float] = []
        self._kids: dict[int, dict[int, int]] = {ROOT: {}}  # node -> {token: child}
        self._stochastic_kid: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def insert(self, tokens: list[int], source: str, draft_probs: list[torch.Tensor | None] | None = None,
               scores: list[float] | None = None, parent: int = ROOT) -> list[int]:
        """Insert a path below `parent` by longest-prefix match; returns its node indices (may be cut short
        by the node budget). A token with a draft distribution marks its node stochastic."""
        nodes = []
        for j, tok in enumerate(tokens):
            q = draft_probs[j] if draft_probs is not None else None
            score = scores[j] if scores is not None else 0.0
            node = self._kids[parent].get(int(tok))
            if node is None:
                if len(self._tokens) >= self.max_nodes:
                    break
                node = self._add(int(tok), parent, source, q, score)
            else:
                self._sources[node].add(source)
                self._scores[node] = max(self._scores[node], score)
                if q is not None and self._probs[node] is None and parent not in self._stochastic_kid:
                    self._probs[node] = q
                    self._stochastic_kid[parent] = node
            nodes.append(node)
            parent = node
        return nodes

    def insert_nodes(self, tree: TokenTree, path: list[int]) -> list[int]:
        """Insert a path of another tree's nodes, keeping their sources, draft probs and scores."""
        parent, out = ROOT, []
        for i in path:
            for source in sorted(tree.sources[i]):
                node = self.insert([tree.token_ids[i]], source, [tree.draft_probs[i]], [tree.scores[i]], parent)
            if not node:
                break
            parent = node[0]
            out.append(parent)
        return out

    def merge(self, tree: TokenTree) -> None:
        """Fuse another tree into this one (RASD's tree fusion): insert each of its root-to-leaf paths."""
        for path in tree.paths():
            self.insert_nodes(tree, path)

    def _add(self, tok: int, parent: int, source: str, q: torch.Tensor | None, score: float) -> int:
        node = len(self._tokens)
        self._tokens.append(tok)
        self._parents.append(parent)
        self._depths.append(1 if parent == ROOT else self._depths[parent] + 1)
        self._sources.append({source})
        if q is not None and parent in self._stochastic_kid:
            q = None  # one stochastic child per parent; a second sampled token is kept as deterministic
        if q is not None:
            self._stochastic_kid[parent] = node
        self._probs.append(q)
        self._scores.append(score)
        self._kids[parent][tok] = node
        self._kids[node] = {}
        return node

    def build(self) -> TokenTree:
        def ordered(parent: int) -> tuple[int, ...]:
            kids = list(self._kids[parent].values())
            first = self._stochastic_kid.get(parent)
            if first is not None:
                kids.remove(first)
                kids.insert(0, first)
            return tuple(kids)

        return TokenTree(
            token_ids=tuple(self._tokens),
            parents=tuple(self._parents),
            depths=tuple(self._depths),
            sources=tuple(frozenset(s) for s in self._sources),
            draft_probs=tuple(self._probs),
            scores=tuple(self._scores),
            children=tuple(ordered(i) for i in range(len(self._tokens))),
            root_children=ordered(ROOT),
        )
