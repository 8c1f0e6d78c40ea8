"""Tiny random-weight models built inside the tests: no download, a few milliseconds per forward."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from ragspec.models.loader import wrap


def tiny_hf(arch: str = "llama", vocab: int = 96, seed: int = 0, layers: int = 2, max_pos: int = 512):
    """A random Llama (no bias) or Qwen2 (q/k/v bias) model with grouped-query attention."""
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_pos,
                  eos_token_id=1, bos_token_id=0, pad_token_id=0, tie_word_embeddings=True)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=False))
    else:
        raise ValueError(arch)
    # Random init is near-uniform; sharpen the output so greedy and sampling tests see real structure.
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20.0)
    return model.eval()


def tiny_lm(arch: str = "llama", backend: str = "fast", **kw):
    return wrap(tiny_hf(arch, **kw), None, f"tiny-{arch}", backend)


def successor_lm(swap: tuple[int, int] | None = None):
    """A tiny model whose next token is a fixed permutation of its last one (the sharpened embedding
    dominates the residual stream; the untied output layer is the permuted embedding), so its text runs
    through a 17-token cycle that prompt lookup can predict. `swap` exchanges two successors: a drafter
    that is right on most of the cycle and wrong at the swapped tokens."""
    hf = tiny_hf("llama", seed=7)
    perm = torch.randperm(96, generator=torch.Generator().manual_seed(3))
    if swap:
        perm[list(swap)] = perm[list(swap[::-1])]
    hf.lm_head.weight = torch.nn.Parameter(hf.model.embed_tokens.weight[perm].clone())
    return wrap(hf, backend="fast")


TINY_CHARS = [chr(c) for c in range(32, 127)] + ["\n"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def tiny_tokenizer():
    """A character-level fast tokenizer with a chat template: 100 ids, built in memory (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<s>": 2, "<unk>": 3}
    for ch in TINY_CHARS:
        vocab.setdefault(ch, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_chat_lm(arch: str = "llama", backend: str = "fast", seed: int = 0, max_pos: int = 4096, layers: int = 2):
    """A tiny random model over the tiny tokenizer's vocabulary."""
    tok = tiny_tokenizer()
    model = tiny_hf(arch, vocab=len(tok), seed=seed, max_pos=max_pos, layers=layers)
    return wrap(model, tok, f"tiny-{arch}", backend)
