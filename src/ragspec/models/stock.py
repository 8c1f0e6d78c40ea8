"""The stock backend: the Hugging Face model forward with its own DynamicCache.

Works for every architecture transformers knows, and is the numerical reference the fast backend is
tested against. Tree verification passes a custom 4-D boolean mask, which transformers takes as is.
"""

from __future__ import annotations

import copy

import torch
from transformers import DynamicCache, PreTrainedModel

from ragspec.models.base import ModelInfo, check_forward_args, default_positions


class StockCache:
    """A DynamicCache plus the crop/keep verbs of `ragspec.models.base.KVCache`."""

    def __init__(self, config) -> None:
        self.dynamic = DynamicCache(config=config)

    @property
    def length(self) -> int:
        return int(self.dynamic.get_seq_length())

    def crop(self, length: int) -> None:
        extra = self.length - length
        assert extra >= 0, f"cannot crop a cache of {self.length} rows to {length}"
        if extra:
            self.dynamic.crop(-extra)  # transformers 5: a negative value removes that many rows

    def copy(self, extra: int = 0) -> "StockCache":
        new = StockCache.__new__(StockCache)
        new.dynamic = copy.deepcopy(self.dynamic)
        return new

    def keep(self, base: int, indices: torch.Tensor) -> None:
        rows = torch.cat([torch.arange(base), base + indices.to(torch.long)])
        for layer in self.dynamic.layers:
            if layer.is_initialized:
                layer.keys = layer.keys.index_select(2, rows)
                layer.values = layer.values.index_select(2, rows)


class StockLM:
    """`CausalLM` over an unmodified Hugging Face model."""

    backend = "stock"

    def __init__(self, model: PreTrainedModel, tokenizer=None, name: str = "") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = model_info(model, name, tokenizer)

    def new_cache(self, capacity: int = 0) -> StockCache:
        return StockCache(self.model.config)

    @torch.inference_mode()
    def forward(self, cache: StockCache, token_ids: torch.Tensor, positions: torch.Tensor | None = None,
                tree_mask: torch.Tensor | None = None, num_logits: int | None = None,
                argmax_only: bool = False) -> torch.Tensor:
        n = cache.length
        check_forward_args(n, token_ids, tree_mask, self.info.max_context)
        q = token_ids.shape[0]
        if positions is None:
            positions = default_positions(n, q)
        mask = None
        if tree_mask is not None or q > 1:
            # [1, 1, q, n + q] bool: every new token sees the whole prefix, and the new tokens per tree_mask.
            local = tree_mask if tree_mask is not None else torch.ones(q, q, dtype=torch.bool).tril_()
            mask = torch.cat([torch.ones(q, n, dtype=torch.bool), local], dim=1)[None, None]
        out = self.model(
            input_ids=token_ids[None],
            position_ids=positions[None],
            attention_mask=mask,
            past_key_values=cache.dynamic,
            use_cache=True,
            logits_to_keep=num_logits or q,
        )
        return out.logits[0].float()


# End-of-turn tokens of common chat formats: generation configs often list only one of them (Qwen2.5's
# GGUF lists <|im_end|> but not <|endoftext|>), and either one ends a chat answer.
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>")


def model_info(model: PreTrainedModel, name: str, tokenizer=None) -> ModelInfo:
    cfg = model.config
    eos = model.generation_config.eos_token_id if model.generation_config is not None else None
    eos = cfg.eos_token_id if eos is None else eos
    eos_ids = set(eos) if isinstance(eos, (list, tuple)) else ({eos} if eos is not None else set())
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        eos_ids |= {vocab[t] for t in END_TOKENS if t in vocab}
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
    return ModelInfo(
        name=name or getattr(cfg, "_name_or_path", "") or cfg.model_type,
        vocab_size=model.get_output_embeddings().weight.shape[0],
        max_context=int(getattr(cfg, "max_position_embeddings", 0) or 0),
        eos_token_ids=tuple(sorted(eos_ids)),
        architecture=(cfg.architectures or [type(model).__name__])[0],
        num_parameters=sum(p.numel() for p in model.parameters()),
    )
