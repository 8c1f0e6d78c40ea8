"""SIGKILL an ingestion mid-way: the store must reopen consistent, and re-ingesting must complete it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from ragspec.corpus.ingest import ingest
from ragspec.corpus.store import Store
from ragspec.retrieval.embedder import HashEmbedder

N_FILES = 12
CHILD = textwrap.dedent(
    """
    import sys
    from ragspec.corpus.chunking import RegexTokenizer
    from ragspec.corpus.ingest import ingest
    from ragspec.corpus.store import Store
    from ragspec.retrieval.embedder import HashEmbedder

    store = Store(sys.argv[1], embedder=HashEmbedder(64, delay=0.05), tokenizer=RegexTokenizer(),
                  chunk_size=40, chunk_overlap=8, embed_batch=4)
    ingest(store, [sys.argv[2]])
    print("finished", flush=True)
    """
)


def _committed(db: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return conn.execute("SELECT COUNT(*) FROM sources").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_sigkill_mid_ingest_leaves_a_consistent_store(tmp_path, check_consistent):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(N_FILES):
        body = " ".join(f"File {i} sentence {j} mentions keyword{i} and filler words." for j in range(40))
        (docs / f"f{i:02d}.txt").write_text(body)
    store_dir = tmp_path / "store"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(store_dir), str(docs)], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _committed(str(store_dir / "store.sqlite")) < 3:
        assert child.poll() is None, "ingestion finished before it could be killed"
        assert time.monotonic() < deadline, "ingestion made no progress"
        time.sleep(0.02)
    time.sleep(0.1)  # land somewhere inside the next file's transaction
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    store = Store.open(store_dir, embedder=HashEmbedder(64))
    committed = store.info().sources
    assert 3 <= committed < N_FILES
    assert store.indexes().generation == committed  # stale index files were rebuilt at open
    check_consistent(store)
    assert store.info().documents == committed  # the file being written when killed left no trace

    report = ingest(store, [docs])
    assert len(report.unchanged) == committed and len(report.added) == N_FILES - committed and report.ok
    assert store.info().documents == N_FILES
    check_consistent(store)
    store.close()
