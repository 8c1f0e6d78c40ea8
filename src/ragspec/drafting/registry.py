"""Speculation methods by name: which proposer drives the engine.

| name       | drafts from                                                          |
|------------|----------------------------------------------------------------------|
| none       | nothing: plain decoding                                              |
| pld        | n-gram matches in the prompt and output                              |
| rest       | a token datastore (REST): the store's documents or a named corpus    |
| draft[:k=v] | a small draft model; options k=N (siblings: its top N at each depth), |
|            | len=N (longest chain), min=N, conf=X (early stop), adaptive=0|1       |
| recycle    | the target's own earlier predictions (token recycling)               |
| a+b[+c]    | several of the above fused into one tree per step (e.g. pld+rest)    |
| retrieval  | pld+rest                                                             |
| auto       | pld: the fastest lossless source measured on CPU (pld+rest was 12-18% |
|            | slower than pld on all four copy-heavy sets, docs/benchmarks.md)       |
| rasd[:k=v] | RASD: pld+rest pruned by the drafter and fused with its tree; options  |
|            | prune=none|topk|threshold|auto, k=N, threshold=X, nodes=N, overlap=0|1, |
|            | skip=0|1 (skip the drafter's chain when retrieval covers the step),    |
|            | idle=0|1 (in a copy streak, the drafter reads nothing when retrieval   |
|            | covers its whole step), tree=N (the drafter's k), len=N (its chain)    |
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ragspec.drafting.base import Proposer
from ragspec.drafting.composite import CompositeProposer
from ragspec.drafting.datastore import TokenDatastore
from ragspec.drafting.draft_lm import DraftLMConfig, DraftLMProposer
from ragspec.drafting.pld import PLDConfig, PLDProposer
from ragspec.drafting.rasd import RASDConfig, RASDProposer
from ragspec.drafting.recycle import RecycleConfig, RecycleProposer
from ragspec.drafting.rest import RESTConfig, RESTProposer
from ragspec.models.base import CausalLM

SOURCES = ("pld", "rest", "draft", "recycle")
ALIASES = {"retrieval": "pld+rest", "none": ""}
SPECULATION = ("none", *SOURCES, "retrieval", "auto", "rasd")  # named choices; any "+" combination of SOURCES works too


@dataclass(frozen=True)
class SpecOptions:
    """Per-proposer configs; the defaults suit a 2-core CPU (short drafts, small trees)."""

    pld: PLDConfig = field(default_factory=PLDConfig)
    rest: RESTConfig = field(default_factory=RESTConfig)
    draft: DraftLMConfig = field(default_factory=DraftLMConfig)
    recycle: RecycleConfig = field(default_factory=RecycleConfig)


def parse(name: str, has_datastore: bool = True) -> tuple[str, ...]:
    """The sources a speculation name stands for."""
    if name == "rasd" or name.startswith("rasd:"):
        rasd_config(name)  # validates the options
        return ("draft", "pld", "rest") if has_datastore else ("draft", "pld")
    if name == "auto":
        return ("pld",)
    if name.startswith("draft:"):
        draft_config(name)  # validates the options
        return ("draft",)
    parts = tuple(p for p in ALIASES.get(name, name).split("+") if p)
    if not all(p in SOURCES for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"unknown speculation {name!r}; choose from {', '.join(SPECULATION)} "
                         f"or join sources with '+' ({'+'.join(SOURCES)})")
    return parts


def is_speculation(name: str) -> bool:
    try:
        parse(name)
        return True
    except ValueError:
        return False


def method_options(name: str, casts: dict[str, Callable[[str], Any]]) -> dict[str, Any]:
    """The options of a method name like "rasd:prune=topk,k=4": {key: cast(value)}; unknown or empty
    keys are a one-line error naming the accepted ones."""
    method, _, opts = name.partition(":")
    values = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        if key not in casts or not value:
            raise ValueError(f"bad {method} option {item!r}; use {', '.join(k + '=...' for k in casts)}")
        values[key] = casts[key](value)
    return values


def _flag(value: str) -> bool:
    return value not in ("0", "false")


# Drafter options in a method name: key -> (DraftLMConfig field, cast), as in "draft:k=2,len=8".
_DRAFT_FIELDS = {"k": ("top_k", int), "len": ("max_len", int), "min": ("min_len", int),
                 "conf": ("confidence", float), "adaptive": ("adaptive", _flag)}
# RASD's keys for its drafter: tree=N is the drafter's k (RASD's own k is the retrieval pruning's top-k).
_RASD_DRAFT_FIELDS = {"tree": "top_k", "len": "max_len"}


def draft_config(name: str, base: DraftLMConfig | None = None) -> DraftLMConfig:
    """`base` (default DraftLMConfig()) with the options of "draft:k=2,len=8" or of RASD's drafter keys
    ("rasd:tree=2,len=8") applied; a bad value is the config's one-line error."""
    if name.startswith("rasd"):
        fields = {_RASD_DRAFT_FIELDS[k]: v for k, v in _rasd_options(name).items() if k in _RASD_DRAFT_FIELDS}
    else:
        values = method_options(name, {k: cast for k, (_, cast) in _DRAFT_FIELDS.items()})
        fields = {_DRAFT_FIELDS[k][0]: v for k, v in values.items()}
    return replace(base or DraftLMConfig(), **fields)


def _rasd_options(name: str) -> dict[str, Any]:
    casts = {"prune": str, "k": int, "threshold": float, "nodes": int, "overlap": _flag, "skip": _flag,
             "idle": _flag, "resume": _flag, "tree": int, "len": int}
    return method_options(name, casts)


def rasd_config(name: str) -> RASDConfig:
    """RASDConfig from "rasd" or "rasd:prune=topk,k=4,overlap=0" (the drafter's keys go to `draft_config`)."""
    fields_of = {"prune": "prune", "k": "top_k", "threshold": "threshold", "nodes": "max_retrieval_nodes",
                 "overlap": "overlap", "skip": "skip", "idle": "idle", "resume": "resume"}
    draft_config(name)  # validates the drafter's keys
    return RASDConfig(**{fields_of[k]: v for k, v in _rasd_options(name).items() if k in fields_of})


def make_proposer(name: str, *, drafter: CausalLM | None = None, datastore: TokenDatastore | None = None,
                  options: SpecOptions | None = None, vocab_size: int | None = None) -> Proposer | None:
    """The proposer for a speculation name (None for plain decoding); clear errors for missing parts."""
    opts = options or SpecOptions()
    if name == "rasd" or name.startswith("rasd:"):
        retrieval: list[Proposer] = [PLDProposer(opts.pld)]
        if datastore is not None:
            retrieval.append(RESTProposer(datastore, opts.rest))
        draft = DraftLMProposer(drafter, draft_config(name, opts.draft)) if drafter is not None else None
        return RASDProposer(draft, retrieval, rasd_config(name))
    parts: list[Proposer] = []
    for source in parse(name, datastore is not None):
        if source == "pld":
            parts.append(PLDProposer(opts.pld))
        elif source == "recycle":
            if vocab_size is None:
                raise ValueError(f"speculation {name!r} needs the target's vocabulary size")
            parts.append(RecycleProposer(vocab_size, opts.recycle))
        elif source == "rest":
            if datastore is None:
                raise ValueError(f"speculation {name!r} needs a token datastore (ingest documents into a store)")
            parts.append(RESTProposer(datastore, opts.rest))
        else:
            if drafter is None:
                raise ValueError(f"speculation {name!r} needs a drafter model (--drafter NAME)")
            parts.append(DraftLMProposer(drafter, draft_config(name, opts.draft)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else CompositeProposer(parts, name)
