"""The fast backend: a lean forward for Llama-family models over the Hugging Face weights.

Why not the stock forward: on a 2-core CPU a decode step is mostly memory traffic, and the stock path
adds traffic that speculation cannot afford. DynamicCache concatenates (copies) the whole KV cache every
step, and a multi-token forward with a mask repeats K/V for every query head (GQA) before attention.
At 8K tokens of context that makes a 32-token verification cost 3.4x a decode step.

This runner keeps the same weights and arithmetic (RMSNorm, RoPE from the model's own rotary module,
SwiGLU) but:
- holds K/V in one preallocated slab per model, [layers, kv_heads, capacity, head_dim], written in place;
- fuses the q/k/v and gate/up projections into single matmuls (the HF modules keep views of the fused
  weights, so no memory is duplicated and the stock path still works on the same model);
- reads the cache once per forward for attention, queries grouped per KV head: decode and verification
  forwards (up to attention.MAX_ROWS grouped rows) run `models/attention.py`'s kernel, the prefix and the
  new rows under the tree mask in one call; prefill chunks (or every forward, where the kernel is
  missing) run torch's flash attention in two parts merged by their log-sum-exp: the committed prefix,
  which every new token sees in full (no mask, split along the sequence so both cores stay busy), and
  the new tokens among themselves under the tree mask (tiny).

Supported: model types llama, qwen2, mistral (without sliding window). Anything else uses the stock backend.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from ragspec.models import attention
from ragspec.models import grid as g4
from ragspec.models import int8 as q8
from ragspec.models.base import check_forward_args, default_positions
from ragspec.models.screen import MAX_ROWS, ScreenedHead
from ragspec.models.stock import model_info

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "mistral")
_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
SPLIT_MIN_ROWS = 1024  # split the prefix into chunks of at least this many rows
PACKED_MIN_ROWS = 4  # from 4 rows on MKL switches to a GEMM that repacks the weight on every call
WIDE_MIN_ROWS = 32  # int8 layers run forwards of this many rows or more (prefill) in float32 (see _Linear)
INT4_GROUP = 32  # inputs per int4 scale and zero point
INT4_MAX_ROWS = 4  # int4 layers read their int4 copy below this many rows (the kernel's time grows with rows)
PACK_MEMORY_SHARE = 0.6  # pack when the packed copy takes at most this share of the available memory
DRAFTER_COPIES = ("int8", "int4")  # the quantized copies a drafter may run on (see FastLM)


def _can_pack() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _Linear:
    """y = x W^T + b with two kernels: MKL's GEMV for up to 3 rows (decode), and oneDNN with the weight
    prepacked once for more rows (verification). From 4 rows MKL repacks the weight on every call: at
    Qwen2.5-1.5B's sizes 4 rows cost 2.0x one row (8 rows 3.1x); prepacked they cost 1.05x (1.3x).

    With `int8`, forwards of fewer than WIDE_MIN_ROWS rows (decode, drafts) run on an int8 copy
    (per-output-channel scales, fbgemm's dynamic linear): a quarter of the bytes to read per token, about
    2.4x faster, ~1% relative error. For drafters only: drafts need not be exact, the float32 target
    verifies them. Wider forwards (prefill) run on the float32 weight, which the caller shares with the
    Hugging Face module (no copy): fbgemm quantizes a call's activations with one scale for all its rows,
    so a 512-row prefill chunk loses the small rows' precision and every later draft reads a worse cache.
    Measured on 800 tokens after a 700-token prefill (scripts/drafter_fidelity.py): the int8 drafter's
    argmax matched float32's on 88% (SmolLM2) and 87% (Qwen 0.5B) with an int8 prefill, 92% and 97%
    with a float32 one.

    With `int4` as well, forwards of fewer than INT4_MAX_ROWS rows run on a weight-only int4 copy (groups
    of INT4_GROUP inputs, bfloat16 activations): an eighth of float32's bytes, and no activation
    quantization. On SmolLM2 it is both faster and closer to float32 than int8 (see FastLM).

    With `grid`, a float32 weight whose values lie on 4- or 8-bit block grids (the GGUF-derived
    checkpoints ragspec pulls) also keeps its codes (`models/grid.py`): forwards of up to grid.MAX_ROWS
    rows rebuild exactly the same float32 weights from a fifth or a third of the bytes, so decode and
    verification read less."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, pack: bool, int8: bool = False,
                 int4: bool = False, grid: bool = False, parts: tuple[int, ...] | None = None) -> None:
        """parts: the row counts of a fused weight's pieces (q, k, v), each of which may lie on its own grid."""
        self.weight, self.bias, self.packed, self.int8, self.int4 = weight, bias, None, None, None
        self.grid = g4.pack(weight, parts) if grid else None
        # With grid codes, forwards of over grid.MAX_ROWS rows are prefill chunks, where MKL's GEMM
        # amortises its own packing: no second float32 copy.
        pack = pack and self.grid is None
        if int8 or int4:
            self.int8 = q8.prepack(q8.quantize(weight), bias)
            self.int4 = _quantize_int4(weight.detach()) if int4 else None
        elif pack:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.grid is not None and x.shape[0] <= g4.MAX_ROWS:
            y = self.grid(x)
            return y if self.bias is None else y + self.bias
        if self.int4 is not None and x.shape[0] < INT4_MAX_ROWS:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), *self.int4).float()
            return y if self.bias is None else y + self.bias
        if self.int8 is not None and x.shape[0] < WIDE_MIN_ROWS:
            return q8.linear(x, self.int8)
        if self.packed is not None and x.shape[0] >= PACKED_MIN_ROWS:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


def _can_int4() -> bool:
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")


def _quantize_int4(weight: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor] | None:
    """(packed weight, group size, scales and zeros) for `_weight_int4pack_mm_for_cpu`, or None when the
    shape does not fit the kernel (then the layer stays int8). Asymmetric rounding per group: a group's
    16 levels span its own min..max, and the kernel computes w = (q - 8) * scale + zero, so zero is the
    value of level 8."""
    n, k = weight.shape
    if not _can_int4() or k % INT4_GROUP or n % 16:
        return None
    groups = weight.float().reshape(n, k // INT4_GROUP, INT4_GROUP)
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    scale = ((high - low) / 15).clamp_min(1e-8)  # [n, k / G, 1]
    q = torch.round((groups - low) / scale).clamp(0, 15).to(torch.int32).reshape(n, k)
    zero = low + 8 * scale
    scales_zeros = torch.cat((scale, zero), -1).transpose(0, 1).contiguous().to(torch.bfloat16)  # [k / G, n, 2]
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2), INT4_GROUP, scales_zeros


def supports(model: PreTrainedModel) -> bool:
    """True when the fast runner reproduces this model's forward."""
    cfg = model.config
    if cfg.model_type not in SUPPORTED_MODEL_TYPES or model.device.type != "cpu":
        return False
    if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
        return False
    if cfg.model_type == "mistral" and getattr(cfg, "sliding_window", None):
        return False
    return getattr(cfg, "hidden_act", "silu") == "silu" and not getattr(cfg, "mlp_bias", False)


class FastCache:
    """Preallocated K/V slab: [layers, kv_heads, capacity, head_dim] each, grown by doubling."""

    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype) -> None:
        shape = (num_layers, num_kv_heads, max(capacity, 16), head_dim)
        self.keys = torch.empty(shape, dtype=dtype)
        self.values = torch.empty(shape, dtype=dtype)
        self._length = 0

    @property
    def length(self) -> int:
        return self._length

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]

    def reserve(self, needed: int) -> None:
        """Make room for `needed` rows, copying the committed ones into a larger slab if necessary."""
        if needed <= self.capacity:
            return
        new_cap = max(needed, 2 * self.capacity)
        for name in ("keys", "values"):
            old = getattr(self, name)
            new = old.new_empty((old.shape[0], old.shape[1], new_cap, old.shape[3]))
            new[:, :, : self._length].copy_(old[:, :, : self._length])
            setattr(self, name, new)

    def copy(self, extra: int = 0) -> "FastCache":
        """An independent cache holding the same committed rows (room for `extra` more)."""
        new = FastCache.__new__(FastCache)
        cap = max(self._length + extra, 16)
        new.keys = self.keys.new_empty((*self.keys.shape[:2], cap, self.keys.shape[3]))
        new.values = self.values.new_empty(new.keys.shape)
        new.keys[:, :, : self._length].copy_(self.keys[:, :, : self._length])
        new.values[:, :, : self._length].copy_(self.values[:, :, : self._length])
        new._length = self._length
        return new

    def crop(self, length: int) -> None:
        assert 0 <= length <= self._length, f"cannot crop a cache of {self._length} rows to {length}"
        self._length = length

    def keep(self, base: int, indices: torch.Tensor) -> None:
        k = indices.numel()
        assert base + k <= self._length
        rows = base + indices.to(torch.long)
        # Advanced indexing gathers into a temporary first, so overlapping source/target rows are safe.
        self.keys[:, :, base : base + k] = self.keys[:, :, rows]
        self.values[:, :, base : base + k] = self.values[:, :, rows]
        self._length = base + k


class _Layer:
    """The weights of one decoder layer, with q/k/v and gate/up fused."""

    def __init__(self, layer, pack: bool, int8: bool, int4: bool = False, grid: bool = False) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.ln1 = layer.input_layernorm.weight
        self.ln2 = layer.post_attention_layernorm.weight
        self.eps1 = layer.input_layernorm.variance_epsilon
        self.eps2 = layer.post_attention_layernorm.variance_epsilon
        qkv = [attn.q_proj, attn.k_proj, attn.v_proj]
        # Fuse and re-point the modules at the fused tensor (shared memory, and the stock path still works).
        gate_up = [mlp.gate_proj, mlp.up_proj]
        qkv_rows, gate_up_rows = (tuple(lin.weight.shape[0] for lin in part) for part in (qkv, gate_up))
        self.qkv = _Linear(_fuse(qkv, "weight"), _fuse(qkv, "bias"), pack, int8, int4, grid, qkv_rows)
        self.o = _Linear(attn.o_proj.weight, attn.o_proj.bias, pack, int8, int4, grid)
        self.gate_up = _Linear(_fuse(gate_up, "weight"), None, pack, int8, int4, grid, gate_up_rows)
        self.down = _Linear(mlp.down_proj.weight, None, pack, int8, int4, grid)
        self.inter = mlp.gate_proj.weight.shape[0]


def _grid_share(layers: list[_Layer]) -> float:
    """The share of the decoder layers' weights read through grid codes."""
    linears = [lin for layer in layers for lin in (layer.qkv, layer.o, layer.gate_up, layer.down)]
    total = sum(lin.weight.numel() for lin in linears)
    return sum(lin.weight.numel() for lin in linears if lin.grid is not None) / max(total, 1)


def _fuse(linears: list[torch.nn.Linear], attr: str) -> torch.Tensor | None:
    """Concatenate the linears' `attr` tensors and re-point each module at its slice, so the fused tensor
    costs no extra memory. Modules already re-pointed (a second wrap of the same model, say its int8
    drafter copy) give back the fused tensor they view, again without a copy."""
    parts = [getattr(lin, attr) for lin in linears]
    if any(p is None for p in parts):
        assert all(p is None for p in parts), "mixed bias/no-bias projections are not supported"
        return None
    shared = _fused_view(parts)
    if shared is not None:
        return shared
    fused = torch.cat([p.detach() for p in parts], dim=0).contiguous()
    start = 0
    for lin, p in zip(linears, parts):
        rows = p.shape[0]
        setattr(lin, attr, torch.nn.Parameter(fused[start : start + rows], requires_grad=False))
        start += rows
    return fused


def _fused_view(parts: list[torch.Tensor]) -> torch.Tensor | None:
    """The tensor that `parts` tile, when they are contiguous, back-to-back slices of one storage."""
    storage, offset = parts[0].untyped_storage(), parts[0].storage_offset()
    for p in parts:
        if (not p.is_contiguous() or p.untyped_storage().data_ptr() != storage.data_ptr()
                or p.storage_offset() != offset):
            return None
        offset += p.numel()
    rows = sum(p.shape[0] for p in parts)
    return parts[0].new_empty(0).set_(storage, parts[0].storage_offset(), (rows, *parts[0].shape[1:])).detach()


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # One fused op; bit-identical to transformers' LlamaRMSNorm in float32 (checked in tests).
    return torch.rms_norm(x, (x.shape[-1],), weight, eps)


def _signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """sin with its first half negated: folds rotate_half's sign into the table once per forward."""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """RoPE as transformers applies it, x * cos + rotate_half(x) * sin, in 4 ops instead of 7 (a decode
    step runs this once per layer, and on 2 cores each small op costs several microseconds). roll(x, D/2)
    is cat(x2, x1); rotate_half(x) * sin = cat(-x2, x1) * sin = roll(x) * signed_sin, bit for bit."""
    return x * cos + torch.roll(x, x.shape[-1] // 2, -1) * signed_sin


def _merge(outs: list[torch.Tensor], lses: list[torch.Tensor]) -> torch.Tensor:
    """Combine attention over disjoint key sets: outs [H, q, D], lses [H, q] (natural log-sum-exp)."""
    if len(outs) == 1:
        return outs[0]
    weights = torch.softmax(torch.stack(lses), dim=0).unsqueeze(-1)  # [P, H, q, 1]
    return (torch.stack(outs) * weights).sum(0)


def _prefix_attention(qg: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float,
                      splits: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Unmasked attention of grouped queries over the committed prefix.

    Args:
        qg: [kv_heads, rows, D] queries grouped by KV head (rows = group * q).
        keys, values: [kv_heads, n, D] prefix views of the slab.
        splits: number of sequence chunks run as one batched call (keeps both cores busy at q = 1).
    Returns:
        Partial outputs [kv_heads, rows, D] and log-sum-exps [kv_heads, rows], one per chunk call.
    """
    n = keys.shape[1]
    chunk = n // splits
    outs, lses = [], []
    if splits > 1:
        body = splits * chunk
        kb = keys[:, :body].unflatten(1, (splits, chunk)).transpose(0, 1)  # [S, kv_heads, chunk, D]
        vb = values[:, :body].unflatten(1, (splits, chunk)).transpose(0, 1)
        out, lse = _flash(qg.expand(splits, *qg.shape), kb, vb, 0.0, False, scale=scale)[:2]
        outs.extend(out.unbind(0))
        lses.extend(lse.unbind(0))
        if body < n:
            out, lse = _flash(qg[None], keys[None, :, body:], values[None, :, body:], 0.0, False, scale=scale)[:2]
            outs.append(out[0])
            lses.append(lse[0])
    else:
        out, lse = _flash(qg[None], keys[None], values[None], 0.0, False, scale=scale)[:2]
        outs.append(out[0])
        lses.append(lse[0])
    return outs, lses


@lru_cache(maxsize=64)
def _causal(q: int) -> torch.Tensor:
    return torch.ones(q, q, dtype=torch.bool).tril_()


class FastLM:
    """`CausalLM` over a Llama-family Hugging Face model (see module docstring)."""

    backend = "fast"

    def __init__(self, model: PreTrainedModel, tokenizer=None, name: str = "", pack: bool | None = None,
                 quantize: str | None = None, grid: bool | None = None) -> None:
        """pack: keep oneDNN-prepacked copies of the weights for multi-token forwards (None: when the copy
        fits in PACK_MEMORY_SHARE of the available memory); it doubles the weights' memory and makes
        verifying several tokens cost little more than decoding one.
        quantize (drafters only; see `_Linear`): "int8" runs every linear layer's decode on an int8 copy;
        "int4" runs the decoder layers' decode on int4 copies (the output layer stays int8: with it in int4
        too the argmax matched float32's on 80% of SmolLM2's tokens, against 95% with it in int8), with
        int8 for forwards of a few rows. Both prefill in float32.
        grid: read the float32 weights that lie on 4- or 8-bit block grids through their codes (`models/grid.py`;
        None: unless quantized). The same weights bit for bit, so the model's outputs stay its own."""
        if quantize not in (None, "none", *DRAFTER_COPIES):
            raise ValueError(f"unknown quantization {quantize!r}; choose from none, int8, int4")
        if not supports(model):
            raise ValueError(f"the fast backend does not support {model.config.model_type!r}; use backend='stock'")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = model_info(model, name, tokenizer)
        cfg = model.config
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads or cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.num_heads
        self.group = self.num_heads // self.num_kv_heads
        self.scale = self.head_dim**-0.5
        base = model.model
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        self.quantized = quantize in DRAFTER_COPIES  # a drafter copy: never packed, never screened
        if pack is None:
            pack = not self.quantized and weight_bytes <= PACK_MEMORY_SHARE * _available_bytes()
        self.packed = _can_pack() and pack and not self.quantized
        grid = not self.quantized if grid is None else grid and not self.quantized
        self.layers = [_Layer(layer, self.packed, self.quantized, quantize == "int4", grid) for layer in base.layers]
        self.grid_share = _grid_share(self.layers)
        self.embed = base.embed_tokens.weight
        self.norm_w, self.norm_eps = base.norm.weight, base.norm.variance_epsilon
        self.lm_head = _Linear(model.get_output_embeddings().weight, None, self.packed, self.quantized, grid=grid)
        # Greedy one-row steps of a float32 model read an int8 screen of the output layer (models/screen.py),
        # built on first use: float32 drafters and sampling-only runs never pay its memory. An output layer
        # on a grid (Q8_0 or Q6_K in the pulled GGUFs) is read through its codes instead: the full float32
        # logits, from fewer bytes than the screen's (scripts/head_probe.py: SmolLM2 at 1K 14.0 ms against 14.6).
        self.screen: ScreenedHead | None = None
        if self.quantized:
            self.info = replace(self.info, name=f"{self.info.name} ({quantize})")
        self.rotary = base.rotary_emb
        self.dtype = self.embed.dtype
        # The attention kernel, held once (None: torch's flash attention for every forward).
        self.attention = attention.kernel() if attention.usable(self.head_dim, self.dtype) else None

    def new_cache(self, capacity: int = 0) -> FastCache:
        return FastCache(len(self.layers), self.num_kv_heads, self.head_dim, capacity or 1024, self.dtype)

    @torch.inference_mode()
    def forward(self, cache: FastCache, token_ids: torch.Tensor, positions: torch.Tensor | None = None,
                tree_mask: torch.Tensor | None = None, num_logits: int | None = None,
                argmax_only: bool = False) -> torch.Tensor:
        n = cache.length
        check_forward_args(n, token_ids, tree_mask, self.info.max_context)
        q = token_ids.shape[0]
        if positions is None:
            positions = default_positions(n, q)
        cache.reserve(n + q)
        x = self.embed[token_ids]  # [q, C]
        cos, sin = self.rotary(x[None], positions[None])  # [1, q, D] each
        rope = (cos[0, :, None], _signed_sin(sin[0, :, None]))  # [q, 1, D] each, shared by every layer
        # Views shared by every layer: the rows the new K/V go to, and (decode) the prefix they join.
        rows = (cache.keys[:, :, n : n + q], cache.values[:, :, n : n + q])  # [L, Hkv, q, D] each
        prefix = (cache.keys[:, None, :, : n + 1], cache.values[:, None, :, : n + 1]) if q == 1 else None
        kernel_mask = local_mask = None  # the kernel's bool mask where it runs, else flash's additive one
        splits = 1
        if self.attention is not None and self.group * q <= attention.MAX_ROWS:
            kernel_mask = tree_mask.contiguous() if tree_mask is not None else _causal(q)
        else:
            if tree_mask is not None:
                local_mask = torch.zeros(q, q, dtype=self.dtype).masked_fill_(~tree_mask, float("-inf"))
            splits = max(1, min(2, n // SPLIT_MIN_ROWS)) if self.group * q <= 128 else 1
        for i, layer in enumerate(self.layers):
            h = _rms_norm(x, layer.ln1, layer.eps1)
            attn = self._attention(i, layer, h, rope, rows, prefix, cache, n, local_mask, splits, kernel_mask)
            x = x + layer.o(attn)
            h = _rms_norm(x, layer.ln2, layer.eps2)
            gate_up = layer.gate_up(h)
            x = x + layer.down(F.silu(gate_up[:, : layer.inter]) * gate_up[:, layer.inter :])
        cache._length = n + q
        k = num_logits or q
        h = _rms_norm(x[q - k :], self.norm_w, self.norm_eps)
        if argmax_only and k <= MAX_ROWS and not self.quantized and self.lm_head.grid is None:
            if self.screen is None:
                self.screen = ScreenedHead(self.model.get_output_embeddings().weight, self.lm_head)
            return self.screen(h).float()
        return self.lm_head(h).float()

    def _attention(self, i: int, layer: _Layer, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                   rows: tuple[torch.Tensor, torch.Tensor], prefix: tuple[torch.Tensor, torch.Tensor] | None,
                   cache: FastCache, n: int, local_mask: torch.Tensor | None, splits: int,
                   kernel_mask: torch.Tensor | None) -> torch.Tensor:
        """Self-attention of the q new tokens; writes their K/V at rows n..n+q-1 of layer i.

        rope: (cos, signed sin) [q, 1, D]; rows: the slab's rows n..n+q-1, [L, Hkv, q, D];
        prefix (decode only): the slab's rows 0..n, [L, 1, Hkv, n + 1, D]; kernel_mask: [q, q] bool, set
        when the attention kernel runs (then local_mask and splits, flash's, are unused)."""
        q = h.shape[0]
        H, Hkv, D, G = self.num_heads, self.num_kv_heads, self.head_dim, self.group
        qkv = layer.qkv(h)  # [q, (H + 2 Hkv) D]
        # RoPE on queries and keys together (they are adjacent in the fused output).
        qk = _rotate(qkv[:, : (H + Hkv) * D].view(q, H + Hkv, D), *rope)
        queries = qk[:, :H].transpose(0, 1)  # [H, q, D]
        keys_new = qk[:, H:].transpose(0, 1)  # [Hkv, q, D]
        values_new = qkv[:, (H + Hkv) * D :].view(q, Hkv, D).transpose(0, 1)
        rows[0][i].copy_(keys_new)
        rows[1][i].copy_(values_new)

        if kernel_mask is not None:  # one call: the prefix, and the new rows under the mask
            qg = queries.reshape(Hkv, G * q, D)  # row g * q + t: query head g of the group, token t
            out = self.attention.attention(qg, cache.keys[i], cache.values[i], n, kernel_mask, self.scale)[0]
            return out.reshape(H, q, D).transpose(0, 1).reshape(q, H * D)
        if q == 1:  # decode: the token attends to every row, itself included, so no mask and no local part
            qg = queries.reshape(Hkv, G, D)
            if splits == 1:  # one call, no merge
                out = _flash(qg[None], prefix[0][i], prefix[1][i], 0.0, False, scale=self.scale)[0]
                return out.reshape(1, H * D)
            outs, lses = _prefix_attention(qg, prefix[0][i, 0], prefix[1][i, 0], self.scale, splits)
            return _merge([o.reshape(H, 1, D) for o in outs], [lse.reshape(H, 1) for lse in lses]).reshape(1, H * D)
        outs, lses = [], []
        if n:
            qg = queries.reshape(Hkv, G * q, D)  # query head h uses KV head h // G
            p_outs, p_lses = _prefix_attention(qg, cache.keys[i, :, :n], cache.values[i, :, :n], self.scale, splits)
            outs = [o.reshape(H, q, D) for o in p_outs]
            lses = [lse.reshape(H, q) for lse in p_lses]
        kn = keys_new[:, None].expand(Hkv, G, q, D).reshape(H, q, D)
        vn = values_new[:, None].expand(Hkv, G, q, D).reshape(H, q, D)
        out, lse = _flash(queries[None], kn[None], vn[None], 0.0, local_mask is None,
                          attn_mask=local_mask, scale=self.scale)[:2]
        outs.append(out[0])
        lses.append(lse[0])
        return _merge(outs, lses).transpose(0, 1).reshape(q, H * D)
