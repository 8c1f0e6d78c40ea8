"""Plots from benchmark JSON (matplotlib, written to PNG without a display)."""

from __future__ import annotations

from pathlib import Path


def speed_plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    names = [r["method"] for r in rows]
    values = [r["speedup_vs_hf_greedy"] or 0.0 for r in rows]
    colors = ["#999999" if n.startswith("hf-") else "#2a6fbb" for n in names]
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.9), 3.6))
    ax.bar(names, values, color=colors)
    ax.axhline(1.0, color="black", linewidth=0.8)
    for i, v in enumerate(values):
        ax.text(i, v + 0.02, f"{v:.2f}x", ha="center", fontsize=8)
    ax.set_ylabel("decode tokens/s vs hf-greedy")
    ax.set_title(f"{result['set']}: {result['model']} ({result['num_prompts']} prompts)")
    plt.xticks(rotation=30, ha="right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def context_plot(results: list[dict], path: Path, baseline: str = "hf-greedy") -> None:
    """Speedup over `baseline` against prompt length, one line per method, from several speed results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = sorted(results, key=lambda r: r["prompt_tokens_mean"])
    methods = [r["method"] for r in results[0]["rows"] if r["method"] != baseline]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = [r["prompt_tokens_mean"] for r in results]
    for m in methods:
        ys = [next((row["speedup_vs_hf_greedy"] for row in r["rows"] if row["method"] == m), None) for r in results]
        ax.plot(xs, ys, marker="o", label=m)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("prompt tokens (mean)")
    ax.set_ylabel(f"decode tokens/s vs {baseline}")
    ax.set_title(f"{results[0]['model']}: speedup by context length")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
