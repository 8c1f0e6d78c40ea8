"""Which of a model's decoder weights lie on 4- or 8-bit grids, tensor by tensor, and whether the fused
q/k/v and gate/up of each layer fit one grid (where they do not, the fast backend packs them part by
part: grid.GridStack).

    python scripts/grid_probe.py ~/.cache/ragspec/models/qwen2.5-coder-1.5b/model.safetensors

Prints one line per layer (each projection's bits, or None), then the weights that one grid per fused
tensor would leave in float32 (the fast backend before GridStack).
"""

import sys

import torch
from safetensors import safe_open

from ragspec.models import grid

PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
FUSED = {"q": "qkv", "k": "qkv", "v": "qkv", "gate": "gate_up", "up": "gate_up"}


def main(path: str) -> None:
    torch.set_num_threads(1)
    f = safe_open(path, "pt")
    layers = sorted({int(n.split(".")[2]) for n in f.keys() if n.endswith("proj.weight")})
    total = {"packed": 0, "float": 0}
    for i in layers:
        bits, sizes = {}, {}
        for p in PROJECTIONS:
            w = f.get_tensor(f"model.layers.{i}.{p}.weight")
            g = grid.pack(w)
            name = p.split(".")[1].removesuffix("_proj")
            bits[name], sizes[name] = (g.bits if g is not None else None), w.numel()
        one_grid = {"qkv": len({bits["q"], bits["k"], bits["v"]}) == 1 and bits["q"] is not None,
                    "gate_up": bits["gate"] == bits["up"] and bits["gate"] is not None}
        for name, n in sizes.items():
            ok = one_grid[FUSED[name]] if name in FUSED else bits[name] is not None
            total["packed" if ok else "float"] += n
        print(i, " ".join(f"{n}:{b}" for n, b in bits.items()),
              "| one grid: qkv", one_grid["qkv"], "gate_up", one_grid["gate_up"], flush=True)
    print(total, "share on one grid per fused tensor:", round(total["packed"] / sum(total.values()), 4))


if __name__ == "__main__":
    main(sys.argv[1])
