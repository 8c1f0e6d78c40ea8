"""The `ragspec` command line: wiring only, no logic (each command calls into the package).

    ragspec models list | pull NAME
    ragspec ingest PATH... --store DIR
    ragspec search "query" --store DIR
    ragspec ask "question" --store DIR [--model NAME] [--method rag|lc|SPECULATION] [--json]
    ragspec eval DATA_DIR --method rag --limit N --json OUT
    ragspec bench retrieval|speed|verify ...

User errors print one red line and exit with code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional, Sequence

import typer
from rich.console import Console

from ragspec.bench import cli as bench_cli
from ragspec.cli_errors import user_errors
from ragspec.corpus import cli as corpus_cli
from ragspec.models import cli as models_cli

DEFAULT_MODEL = "smollm2-135m"
ETA_HELP = ("RAPID: knowledge-transfer strength, 0 = lossless (default: 10 with a drafter the target's size or "
            "smaller, 40 with a larger one, as the paper sets them).")
app = typer.Typer(name="ragspec", help="Retrieval-augmented speculative generation over your documents.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out, err = Console(), Console(stderr=True)


# ----- corpus ---------------------------------------------------------------------------------------


@app.command("ingest")
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (.txt .md .html .pdf .jsonl).")],
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder (created on first ingest).")] = corpus_cli.DEFAULT_STORE,
    chunk_size: Annotated[Optional[int], typer.Option("--chunk-size", help="Tokens per chunk.")] = None,
    chunk_overlap: Annotated[Optional[int], typer.Option("--chunk-overlap", help="Overlap in tokens.")] = None,
    embedder: Annotated[str, typer.Option("--embedder", help="Embedding model name or folder.")] = "minilm-l6",
    datastore_model: Annotated[list[str], typer.Option("--datastore-model", help="Build the REST token datastore for this model's tokenizer (repeatable).")] = [DEFAULT_MODEL],  # noqa: B006
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Add files to a store (atomic per file), then build its REST token datastores."""
    code = 0
    try:
        corpus_cli.ingest_command(paths, store, chunk_size, chunk_overlap, embedder, quiet)
    except typer.Exit as exc:  # failed files: the good ones are committed, still build datastores
        code = exc.exit_code
        if not (store / "store.sqlite").is_file():
            raise
    _build_datastores(store, datastore_model)
    if code:
        raise typer.Exit(code)


app.command("search")(corpus_cli.search_command)
app.command("store-info")(corpus_cli.store_info_command)
app.command("delete")(corpus_cli.delete_command)


@user_errors
def _build_datastores(store: Path, models: list[str]) -> None:
    from ragspec.corpus.store import Store
    from ragspec.models.loader import load_tokenizer
    from ragspec.rag.datastore import load_datastore

    with Store.open(store) as db:
        for name in models:
            ds = load_datastore(db, load_tokenizer(name))
            if ds is not None:
                out.print(f"datastore for {name}: {len(ds):,} tokens", highlight=False)


# ----- answers --------------------------------------------------------------------------------------
def _pipeline(store: Path | None, model: str, drafter: str | None, speculation: str, k: int, mode: str,
              max_new_tokens: int, backend: str, drafter_quant: str = "auto", datastores: Sequence[Path] = ()):
    from ragspec.corpus.store import Store
    from ragspec.drafting.datastore import DatastoreUnion
    from ragspec.drafting.registry import parse
    from ragspec.models.loader import load_causal_lm
    from ragspec.rag.answer import RagConfig, RagPipeline
    from ragspec.rag.datastore import load_datastore
    from ragspec.retrieval.hybrid import StoreRetriever

    uses_rest = "rest" in parse(speculation)
    if datastores and not uses_rest:
        raise ValueError(f"--datastore feeds REST drafts, which speculation {speculation!r} does not use; "
                         "pick --spec rest or retrieval, or --method rasd")
    for extra in datastores:
        if not (Path(extra) / "store.sqlite").is_file():
            raise ValueError(f"--datastore {extra}: no store here; run `ragspec ingest PATH --store {extra}` first")
    target = load_causal_lm(model, backend)
    draft_lm = _drafter(target, model, drafter, backend, drafter_quant)
    retriever, parts = None, []
    if store is not None:
        if not (Path(store) / "store.sqlite").is_file():
            raise ValueError(f"{store}: no store here; run `ragspec ingest PATH --store {store}` first")
        db = Store.open(store)
        retriever = StoreRetriever(db, mode=mode)
        if uses_rest and (own := load_datastore(db, target.tokenizer)) is not None:
            parts.append(own)
    for extra in datastores:
        ds = load_datastore(Store.open(extra), target.tokenizer)
        if ds is None:
            raise ValueError(f"--datastore {extra}: the store has no documents")
        parts.append(ds)
    datastore = parts[0] if len(parts) == 1 else DatastoreUnion(parts) if parts else None
    config = RagConfig(k=k, mode=mode, max_new_tokens=max_new_tokens, speculation=speculation)
    return RagPipeline(target, retriever, drafter=draft_lm, datastore=datastore, config=config)


def _drafter(target, model: str, drafter: str | None, backend: str, quant: str):
    """The draft model: an int8 copy by default (drafts need not be exact; the target verifies them)."""
    from ragspec.models.loader import load_causal_lm, wrap

    if not drafter:
        return None
    if drafter == model and quant == "none":
        return target  # the same weights; the engine gives the drafter its own cache
    if drafter == model and getattr(target, "model", None) is not None:
        return wrap(target.model, target.tokenizer, target.info.name, backend, quant)
    return load_causal_lm(drafter, backend, quant)


def _rapid(model: str, drafter: str | None, backend: str, quant: str, config):
    """RAPID's target and drafter (default: the target model, as an int8 copy) with the default embedder."""
    from ragspec.methods.rapid import Rapid
    from ragspec.models.loader import load_causal_lm
    from ragspec.retrieval.embedder import default_embedder

    target = load_causal_lm(model, backend)
    return Rapid(target, _drafter(target, model, drafter or model, backend, quant), default_embedder(), config)


def _rapid_answer(question, document, model, drafter, backend, quant, eta, residual, max_new_tokens, sampling):
    """RAPID on one document: the drafter reads the retrieved chunks."""
    from ragspec.methods.rapid import RapidConfig

    config = RapidConfig(eta=eta, residual=residual, max_new_tokens=max_new_tokens)
    return _rapid(model, drafter, backend, quant, config).answer(question, document, sampling)


def _method(method: str) -> tuple[str, str | None]:
    """`--method` takes a pipeline (rag, lc, rapid) or a speculation name (then the pipeline is rag)."""
    from ragspec.drafting.registry import SPECULATION, is_speculation
    from ragspec.rag.answer import PIPELINES

    if method in PIPELINES or method == "rapid":
        return method, None
    if is_speculation(method):
        return "rag", method
    raise ValueError(f"unknown method {method!r}; choose a pipeline ({', '.join(PIPELINES)}, rapid) "
                     f"or a speculation ({', '.join(SPECULATION)})")


@app.command("ask")
@user_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    store: Annotated[Optional[Path], typer.Option("--store", "-s", help="Store folder to retrieve from.")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Target model name, HF folder or .gguf.")] = DEFAULT_MODEL,
    drafter: Annotated[Optional[str], typer.Option("--drafter", help="Draft model (for --spec draft).")] = None,
    method: Annotated[str, typer.Option("--method", help="rag, lc, rapid, or a speculation name (implies rag).")] = "rag",
    spec: Annotated[str, typer.Option("--spec", help="Speculation: auto, none, pld, rest, retrieval, draft (draft:k=2,len=8,...), rasd.")] = "auto",
    context: Annotated[Optional[Path], typer.Option("--context", help="Document file for --method lc or rapid.")] = None,
    eta: Annotated[Optional[float], typer.Option("--eta", help=ETA_HELP)] = None,
    residual: Annotated[str, typer.Option("--residual", help="RAPID: p_hat or rapid.")] = "p_hat",
    k: Annotated[int, typer.Option("-k", help="Sources in the prompt.")] = 5,
    mode: Annotated[str, typer.Option("--mode", help="Retrieval: hybrid, bm25, dense.")] = "hybrid",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Answer length limit.")] = 96,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    top_k: Annotated[int, typer.Option(help="0 = off.")] = 0,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed.")] = None,
    stop: Annotated[list[str], typer.Option("--stop", help="Stop string (repeatable); not part of the answer.")] = [],  # noqa: B006
    backend: Annotated[str, typer.Option(help="auto, fast or stock.")] = "auto",
    drafter_quant: Annotated[str, typer.Option("--drafter-quant", help="auto (float32 where the weights lie on block grids, else int8), int8, int4 or none.")] = "auto",
    datastore: Annotated[list[Path], typer.Option("--datastore", help="Another store whose documents REST drafts from, besides --store's (repeatable; e.g. a code base).")] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer a question from a store with numbered sources, timings and speculation statistics."""
    from ragspec.decoding.sampling import SamplingParams

    pipeline_name, implied = _method(method)
    speculation = implied or spec
    document = None
    if pipeline_name in ("lc", "rapid"):
        if context is None:
            raise ValueError(f"--method {pipeline_name} needs --context FILE")
        document = context.read_text(encoding="utf-8")
    sampling = SamplingParams(temperature, top_p, top_k, seed)
    stream = None if as_json else (lambda text: out.print(text, end="", highlight=False, markup=False, soft_wrap=True))
    if pipeline_name == "rapid" and datastore:
        raise ValueError("--datastore feeds REST drafts; RAPID drafts with its drafter only")
    if pipeline_name == "rapid":
        ans = _rapid_answer(question, document, model, drafter, backend, drafter_quant, eta, residual,
                            max_new_tokens, sampling)
        if stream:
            stream(ans.answer)
    else:
        pipe = _pipeline(store if pipeline_name == "rag" else None, model, drafter, speculation, k, mode,
                         max_new_tokens, backend, drafter_quant, datastore)
        ans = pipe.answer(question, pipeline_name, document=document, sampling=sampling, speculation=speculation,
                          on_text=stream, stop=stop)
    if as_json:
        sys.stdout.write(json.dumps(ans.to_dict(), ensure_ascii=False, indent=2) + "\n")
        return
    out.print()
    for s in ans.sources:
        where = f", p.{s.page}" if s.page is not None else ""
        out.print(f"[dim][{s.number}] {s.title} ({s.doc_id}{where}) score={s.score:.4f}[/]", highlight=False)
    st = ans.stats
    note = " (prompt truncated to fit the context)" if ans.truncated else ""
    out.print(f"[dim]{ans.new_tokens} tokens, TTFT {ans.ttft_s:.2f}s, {ans.tokens_per_s:.1f} tok/s, "
              f"speculation {ans.speculation}: mean acceptance length {st.mean_acceptance_length:.2f}{note}[/]",
              highlight=False)


data_app = typer.Typer(help="Build evaluation sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("longdoc")
@user_errors
def data_longdoc(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write.")],
    tokens: Annotated[int, typer.Option("--tokens", help="Document budget in the model's tokens.")] = 7500,
    model: Annotated[str, typer.Option("--model", help="Whose tokenizer measures the documents.")] = DEFAULT_MODEL,
    limit: Annotated[int, typer.Option("--limit", help="Questions.")] = 200,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    max_articles: Annotated[int, typer.Option("--max-articles")] = 4,
    fill: Annotated[bool, typer.Option("--fill", help="As many whole articles as fit (up to --max-articles), then top each document up to --tokens with part of one more (speed benches at a set context length).")] = False,
    squad: Annotated[Path, typer.Option("--squad", help="SQuAD folder.")] = Path("data/squad"),
) -> None:
    """The long-document QA set for RAPID: each question's article alone or with 1-3 others."""
    from ragspec.eval.longdoc import build_longdoc
    from ragspec.models.loader import load_tokenizer

    summary = build_longdoc(squad, out_dir, load_tokenizer(model), tokens, limit, seed, max_articles, fill)
    out.print_json(json.dumps(summary))


@app.command("eval")
@user_errors
def evaluate(
    data_dir: Annotated[Path, typer.Argument(help="Folder with corpus.jsonl and questions.jsonl, or a long-document set.")],
    method: Annotated[str, typer.Option("--method", help="rag or lc; on a long-document set also rapid (comma-separate several).")] = "rag",
    limit: Annotated[Optional[int], typer.Option("--limit", help="Questions (a seeded sample).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the result object here.")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Target model.")] = DEFAULT_MODEL,
    drafter: Annotated[Optional[str], typer.Option("--drafter", help="Draft model.")] = None,
    spec: Annotated[str, typer.Option("--spec", help="Speculation for generation.")] = "auto",
    store: Annotated[Optional[Path], typer.Option("--store", help="Reuse this store instead of a cached one.")] = None,
    k: Annotated[int, typer.Option("-k", help="Sources in the prompt.")] = 5,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 32,
    seed: Annotated[int, typer.Option(help="Question sample seed.")] = 0,
    backend: Annotated[str, typer.Option(help="auto, fast or stock.")] = "auto",
    eta: Annotated[str, typer.Option("--eta", help=f"{ETA_HELP} Comma-separate several: a sweep shares each prefill.")] = "",
    alpha: Annotated[float, typer.Option("--alpha", help="RAPID tail mask.")] = 0.1,
    gamma: Annotated[int, typer.Option("--gamma", help="RAPID draft length.")] = 10,
    residual: Annotated[str, typer.Option("--residual", help="RAPID: p_hat or rapid.")] = "p_hat",
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="RAPID chunk tokens.")] = 256,
    budget: Annotated[int, typer.Option("--budget", help="RAPID drafter context tokens (0 = max(L/8, 1024)).")] = 0,
    confidence: Annotated[str, typer.Option("--confidence", help="RAPID: the drafter ends its chain after a token it gives less than this probability (default 0.1); comma-separate several to compare them on one target prefill.")] = "",
    drafter_quant: Annotated[str, typer.Option("--drafter-quant", help="auto (float32 where the weights lie on block grids, else int8), int8, int4 or none.")] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Long-document sets: keep the rows already in the --json file's .rows.jsonl and ask only the other questions.")] = False,
) -> None:
    """Answer a question set and score it: EM/F1, retrieval recall@5, latency, tokens/s.

    On a long-document set, --drafter takes several models (comma-separated, e.g. the target itself and a
    larger one for self and upward RAPID): they share each question's target prefill."""
    from ragspec.eval.longdoc import is_longdoc
    from ragspec.eval.runner import NEEDS_STORE, run_eval
    from ragspec.eval.stores import eval_store

    if is_longdoc(data_dir):
        _eval_longdoc(data_dir, method, limit, json_out, model, drafter, backend, max_new_tokens,
                      [float(e) for e in eta.split(",") if e.strip()], alpha, gamma, residual, chunk_size, budget,
                      [float(c) for c in confidence.split(",") if c.strip()], drafter_quant, resume)
        return
    if resume:
        raise ValueError("--resume works on long-document sets (ragspec data longdoc)")

    store_dir = None
    if method in NEEDS_STORE:
        store_dir = store or eval_store(data_dir, err)
    pipe = _pipeline(store_dir, model, drafter, spec, k, "hybrid", max_new_tokens, backend, drafter_quant)
    done, keep = [0], _row_log(json_out)

    def progress(row: dict) -> None:
        done[0] += 1
        keep(row)
        err.print(f"[dim]{done[0]:4d} em={row['em']:.0f} f1={row['f1']:.2f} {row['latency_s']:.2f}s  "
                  f"{row['prediction'][:60]!r}[/]", highlight=False)

    result = run_eval(pipe, str(data_dir), method, limit, seed, on_row=progress,
                      extra={"model": model, "drafter": drafter, "speculation": spec, "data": str(data_dir)})
    bench_cli.write_json(json_out, result)
    out.print_json(json.dumps(result["summary"]))


def _row_log(json_out: Optional[Path], append: bool = False):
    """Appends each scored row to JSON_OUT's `.rows.jsonl` as it comes, so a long run cut short keeps its rows
    (and `--resume` can pick them up)."""
    if json_out is None:
        return lambda row: None
    path = json_out.with_suffix(".rows.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not append:
        path.write_text("")

    def keep(row: dict) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return keep


def _done_rows(json_out: Optional[Path]) -> list[dict]:
    """The rows an earlier run wrote to JSON_OUT's `.rows.jsonl` (a torn last line is dropped)."""
    if json_out is None:
        raise ValueError("--resume needs --json (its .rows.jsonl holds the rows already scored)")
    path = json_out.with_suffix(".rows.jsonl")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # the run was cut while writing this line
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def _eval_longdoc(data_dir, method, limit, json_out, model, drafter, backend, max_new_tokens, etas, alpha,
                  gamma, residual, chunk_size, budget, confidences, drafter_quant, resume) -> None:
    from rich.markup import escape

    from ragspec.eval.longdoc import run_longdoc
    from ragspec.methods.rapid import Rapid, RapidConfig
    from ragspec.models.loader import load_causal_lm
    from ragspec.retrieval.embedder import default_embedder

    configs = [RapidConfig(alpha=alpha, gamma=gamma, residual=residual, chunk_size=chunk_size, budget=budget,
                           max_new_tokens=max_new_tokens, confidence=c) for c in confidences or [RapidConfig.confidence]]
    drafters = [d.strip() for d in (drafter or model).split(",") if d.strip()]
    target, embedder = load_causal_lm(model, backend), default_embedder()
    rapids = []
    for d in drafters:  # one drafter model per name, each with every confidence
        draft_lm = _drafter(target, model, d, backend, drafter_quant)
        rapids += [Rapid(target, draft_lm, embedder, config) for config in configs]
    previous = _done_rows(json_out) if resume else []
    if previous:
        err.print(f"[dim]resuming: {len(previous)} questions already scored[/]", highlight=False)
    done, keep = [0], _row_log(json_out, append=resume)

    def progress(row: dict) -> None:
        done[0] += 1
        keep(row)
        parts = escape(" ".join(f"{k}={v['f1']:.2f}" for k, v in row["results"].items()))  # [drafter] is no markup
        err.print(f"[dim]{done[0]:4d} {row['doc_tokens']} tok  f1 {parts}[/]", highlight=False)

    result = run_longdoc(rapids, data_dir, [m.strip() for m in method.split(",")], etas, limit, progress,
                         {"model": model, "drafter": ",".join(drafters), "drafter_quant": drafter_quant,
                          "data": str(data_dir), "alpha": alpha, "gamma": gamma, "residual": residual,
                          "chunk_size": chunk_size, "budget": budget,
                          "confidence": [c.confidence for c in configs] if len(configs) > 1 else configs[0].confidence},
                         done=previous)
    bench_cli.write_json(json_out, result)
    out.print_json(json.dumps(result["methods"]))


app.add_typer(models_cli.app, name="models")
app.add_typer(bench_cli.app, name="bench")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
