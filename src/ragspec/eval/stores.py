"""Stores for evaluation sets: the corpus.jsonl of a data folder ingested once and cached.

`ragspec eval` needs a store per data set; ingesting SQuAD (800 paragraphs) takes about half a minute,
so the store is cached under $RAGSPEC_HOME/eval-stores/<folder>-<sha of corpus.jsonl> and rebuilt only
when the corpus changes.
"""

from __future__ import annotations

from pathlib import Path

from ragspec.paths import home


def eval_store(data_dir: str | Path, console=None) -> Path:
    from ragspec.corpus.ingest import ingest
    from ragspec.corpus.store import Store, file_sha256
    from ragspec.retrieval.embedder import embedder_for

    corpus = Path(data_dir) / "corpus.jsonl"
    if not corpus.is_file():
        raise ValueError(f"{corpus} not found: a data folder needs corpus.jsonl and questions.jsonl")
    digest = file_sha256(corpus)[0][:12]
    path = home() / "eval-stores" / f"{Path(data_dir).resolve().name}-{digest}"
    with Store.open(path, embedder=embedder_for("minilm-l6")) as store:
        if not store.num_documents():
            if console is not None:
                console.print(f"[dim]ingesting {corpus} into {path} (cached for later runs)[/]", highlight=False)
            report = ingest(store, [corpus])
            if not report.ok:
                raise ValueError(f"could not ingest {corpus}: {report.failed[0]}")
    return path
