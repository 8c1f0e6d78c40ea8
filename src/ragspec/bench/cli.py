"""`ragspec bench ...` commands: wiring only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ragspec.cli_errors import user_errors
from ragspec.corpus import cli as corpus_cli

app = typer.Typer(help="Benchmarks: generation speed, verification cost, retrieval quality.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)


def write_json(path: Optional[Path], obj: dict) -> None:
    """Write a result object (nothing when no path was asked for)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


@app.command("speed")
@user_errors
def speed(
    data: Annotated[str, typer.Option("--data", help="Prompt set: squad-longdoc, rag, summarization, qa, mt_bench, math_reasoning, translation, humaneval, or longdoc:DIR.")],
    model: Annotated[str, typer.Option("--model", help="Target model.")] = "smollm2-135m",
    drafter: Annotated[Optional[str], typer.Option("--drafter", help="Draft model (for draft and hf-assisted).")] = None,
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated methods.")] = "",
    limit: Annotated[int, typer.Option("--limit", help="Prompts.")] = 20,
    skip: Annotated[int, typer.Option("--skip", help="Leave out the first N prompts that fit (a fresh sample after an earlier run).")] = 0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 128,
    datastore: Annotated[str, typer.Option("--datastore", help="auto (a corpus per set), none, or a store folder.")] = "auto",
    backend: Annotated[str, typer.Option(help="ragspec backend: auto, fast, stock.")] = "auto",
    random_weights: Annotated[bool, typer.Option("--random-weights", help="Random weights of the model's shape (speed only).")] = False,
    drafter_quant: Annotated[str, typer.Option("--drafter-quant", help="auto (float32 where the weights lie on block grids, else int8), int8, int4 or none: drafts need not be exact.")] = "auto",
    ignore_eos: Annotated[bool, typer.Option("--ignore-eos", help="Go on past EOS to --max-new-tokens in every method (as vLLM's benchmarks), so all are timed on as many tokens.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the result here.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a bar chart PNG here.")] = None,
) -> None:
    """Tokens/s of ragspec's methods and Hugging Face's generate on the same prompts, in one process."""
    from ragspec.bench.speed import DEFAULT_METHODS, run_speed

    chosen = split_methods(methods) or list(DEFAULT_METHODS)
    if not drafter:
        chosen = [m for m in chosen if "draft" not in m and m != "hf-assisted"] if not methods else chosen
    from ragspec.bench.speed import load_models

    models = load_models(model, drafter, data, datastore, backend, random_weights, drafter_quant)
    result = run_speed(models, data, chosen, limit, max_new_tokens, on_prompt=_progress, ignore_eos=ignore_eos,
                       skip=skip)
    write_json(json_out, result)
    _print_speed(result)
    if plot is not None:
        from ragspec.bench.plots import speed_plot

        speed_plot(result, plot)


def _progress(i: int, pid: str, outputs: dict, ids: list[int]) -> None:
    err.print(f"[dim]prompt {i + 1} ({pid}) done[/]", highlight=False)


@app.command("ceiling")
@user_errors
def ceiling(
    data: Annotated[str, typer.Option("--data", help="Prompt set, as for bench speed.")],
    model: Annotated[str, typer.Option("--model", help="Target model.")] = "smollm2-135m",
    methods: Annotated[str, typer.Option("--methods", help="Measured methods beside greedy.")] = "hf-greedy,pld",
    limit: Annotated[int, typer.Option("--limit", help="Prompts.")] = 10,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 128,
    depth: Annotated[int, typer.Option("--depth", help="Longest draft the oracles may propose.")] = 8,
    datastore: Annotated[str, typer.Option("--datastore", help="auto (a corpus per set), none, or a store folder.")] = "auto",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the result here.")] = None,
) -> None:
    """The most drafts copied from the prompt, the output or a datastore could gain here (an upper bound)."""
    from ragspec.bench.ceiling import run_ceiling

    if not 1 <= depth <= 15:
        raise ValueError(f"--depth must be 1-15 (REST matches at most 16 tokens), got {depth}")
    chosen = split_methods(methods)
    if any("draft" in m or m == "hf-assisted" or m.startswith("rapid") for m in chosen):
        raise ValueError("bench ceiling bounds copy-based drafts: measure drafter methods with bench speed")
    from ragspec.bench.speed import load_models

    models = load_models(model, None, data, datastore, "auto", False)
    result = run_ceiling(models, data, chosen, limit, max_new_tokens, depth, on_prompt=_progress)
    write_json(json_out, result)
    _print_speed(result)
    c = result["ceiling"]
    table = Table(title=f"copy-draft ceilings (depth {c['depth']}, costs at {c['context']} tokens of context)")
    for col in ("oracle", "tok/s", "x greedy", "x hf-greedy", "tokens/step"):
        table.add_column(col, justify="right")
    fmt = lambda v, f="{:.2f}": "-" if v is None else f.format(v)  # noqa: E731
    for name, o in c["oracles"].items():
        table.add_row(name, fmt(o["tokens_per_s"], "{:.1f}"), fmt(o["speedup_vs_greedy"]),
                      fmt(o["speedup_vs_hf_greedy"]), fmt(o["tokens_per_step"]))
    out.print(table)


def split_methods(text: str) -> list[str]:
    """Comma-separated methods; a bare `key=value` piece continues the previous method's options, so
    `greedy,rasd:prune=topk,k=4` is ["greedy", "rasd:prune=topk,k=4"]."""
    out: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if out and "=" in piece and ":" not in piece:
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


def _print_speed(result: dict) -> None:
    table = Table(title=f"{result['set']}: {result['model']} ({result['num_prompts']} prompts, "
                        f"{result['prompt_tokens_mean']:.0f} prompt tokens on average"
                        f"{', EOS ignored' if result.get('ignore_eos') else ''})")
    for col in ("method", "tok/s", "x hf-greedy", "MAL", "accept", "=greedy", "=hf-greedy", "fallback"):
        table.add_column(col, justify="right")
    fmt = lambda v, f="{:.2f}": "-" if v is None else f.format(v)  # noqa: E731
    for r in result["rows"]:
        table.add_row(r["method"], fmt(r["tokens_per_s"], "{:.1f}"), fmt(r["speedup_vs_hf_greedy"]),
                      fmt(r["mean_acceptance_length"]), fmt(r["acceptance_rate"]), fmt(r["identical_to_greedy"]),
                      fmt(r["identical_to_hf_greedy"]), fmt(r.get("fallback_share")))
    out.print(table)


@app.command("plot")
@user_errors
def plot(
    results: Annotated[list[Path], typer.Argument(help="Speed JSON files of one model at several context lengths.")],
    out_png: Annotated[Path, typer.Option("--out", help="PNG to write.")],
) -> None:
    """Plot speedup against context length from several `bench speed --json` results."""
    from ragspec.bench.plots import context_plot

    context_plot([json.loads(p.read_text()) for p in results], out_png)


@app.command("verify")
@user_errors
def verify(
    model: Annotated[str, typer.Option("--model")] = "smollm2-135m",
    contexts: Annotated[str, typer.Option("--contexts", help="Comma-separated context lengths.")] = "1024,4096,8000",
    tokens: Annotated[str, typer.Option("--tokens", help="Comma-separated token counts (1 = decode).")] = "1,4,8,16,32",
    backends: Annotated[str, typer.Option("--backends")] = "fast,stock",
    reps: Annotated[int, typer.Option("--reps")] = 5,
    random_weights: Annotated[bool, typer.Option("--random-weights")] = False,
    quantize: Annotated[str, typer.Option("--quantize", help="none, int8 or int4 (the drafters' copies; fast backend)")] = "none",
    json_out: Annotated[Optional[Path], typer.Option("--json")] = None,
) -> None:
    """Milliseconds per verification forward by context length and number of tokens."""
    from ragspec.bench.verify import verify_curve
    from ragspec.models.loader import load_hf, random_hf, wrap

    if quantize not in ("none", "auto") and "stock" in backends.split(","):
        raise ValueError(f"--quantize {quantize} runs on the fast backend only: add --backends fast")
    hf, tok, name = random_hf(model) if random_weights else load_hf(model)
    rows = []
    for backend in backends.split(","):
        lm = wrap(hf, tok, name, backend, quantize)
        rows += verify_curve(lm, [int(c) for c in contexts.split(",")], [int(t) for t in tokens.split(",")], reps)
        for r in rows[-len(tokens.split(",")) * len(contexts.split(",")):]:
            err.print(f"[dim]{r}[/]", highlight=False)
    result = {"model": name, "random_weights": random_weights, "quantize": quantize, "rows": rows}
    write_json(json_out, result)
    table = Table(title=f"ms per forward: {name}")
    for col in ("backend", "context", "tokens", "ms", "x decode"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["backend"], str(r["context"]), str(r["tokens"]), f"{r['ms']:.1f}", f"{r['ratio_to_decode']:.2f}")
    out.print(table)


app.command("retrieval", help="Recall@k, MRR and query latency of BM25, dense and hybrid retrieval.")(
    corpus_cli.bench_retrieval_command)
