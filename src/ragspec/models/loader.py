"""Load a causal LM by registered name, local HF folder or GGUF path, on the fastest backend that fits."""

from __future__ import annotations

import os

import torch

from ragspec.models import fast, grid
from ragspec.models.base import CausalLM
from ragspec.models.stock import StockLM

BACKENDS = ("auto", "fast", "stock")
# "auto" (drafters): float32 where the weights lie on block grids (as exact as the target, and as fast as
# int8 through the grid kernel), else int8 where the fast backend runs, else full precision.
QUANT = (None, "none", "auto", *fast.DRAFTER_COPIES)


def wrap(model, tokenizer=None, name: str = "", backend: str = "auto", quantize: str | None = None) -> CausalLM:
    """Wrap an already loaded Hugging Face model in a ragspec backend (`quantize="int8"|"int4"|"auto"`: a drafter copy)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
    if quantize not in QUANT:
        raise ValueError(f"unknown quantization {quantize!r}; choose from {list(QUANT)}")
    if backend == "fast" or (backend == "auto" and fast.supports(model)):
        if quantize == "auto":
            quantize = None if grid.on_grid(model) else "int8"
        return fast.FastLM(model, tokenizer, name, quantize=None if quantize == "none" else quantize)
    if quantize in fast.DRAFTER_COPIES:
        raise ValueError(f"{quantize} drafters need the fast backend (Llama-family models)")
    return StockLM(model, tokenizer, name)


def load_tokenizer(name_or_path: str):
    """The tokenizer of a registered name, HF folder or GGUF file (local files only)."""
    from transformers import AutoTokenizer

    from ragspec.models.registry import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(name_or_path).path, local_files_only=True)


def load_hf(name_or_path: str):
    """(model, tokenizer, resolved name) for a registered name, HF folder or GGUF file; float32 on CPU."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from ragspec.models.registry import resolve_model

    resolved = resolve_model(name_or_path)
    if resolved.kind != "causal-lm":
        raise ValueError(f"{name_or_path!r} is a {resolved.kind} model, not a causal LM")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()  # "Loading weights" bars would interleave with ragspec's own output
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32, local_files_only=True)
    return model.eval(), load_tokenizer(resolved.path), resolved.name


def load_causal_lm(name_or_path: str, backend: str = "auto", quantize: str | None = None) -> CausalLM:
    """Load a model for ragspec's own decoding loop.

    Args:
        name_or_path: a registered model name (see `ragspec models list`), a local Hugging Face model folder,
            or a local .gguf file (converted once to a safetensors cache).
        backend: "fast" (lean Llama-family runner), "stock" (the transformers forward) or "auto".
    """
    model, tokenizer, name = load_hf(name_or_path)
    return wrap(model, tokenizer, name, backend, quantize)


def random_hf(name_or_path: str, seed: int = 0):
    """A randomly initialised model of a pulled model's exact shape, with its tokenizer (speed runs on
    machines where the weights cannot travel)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from ragspec.models.registry import resolve_model

    resolved = resolve_model(name_or_path)
    config = AutoConfig.from_pretrained(resolved.path, local_files_only=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval(), load_tokenizer(resolved.path), f"{resolved.name} (random weights)"
