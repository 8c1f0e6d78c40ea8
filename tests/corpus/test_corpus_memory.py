"""A large text file is ingested in bounded memory: streamed, chunked and embedded in batches.

Peak RSS (VmHWM) is measured in fresh subprocesses for a 1 MB and a 5 MB file with the fake embedder.
Streaming (read, decode, chunk, embed, insert) must cost the same for both: it holds one block and one
batch, never the file. Rebuilding the indexes afterwards grows with the corpus (bm25s builds its sparse
matrix in memory), so it only gets a loose bound that catches an accidental extra copy.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import pytest

MIB = 1024 * 1024
CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from ragspec.corpus.chunking import RegexTokenizer
    from ragspec.corpus.store import Store
    from ragspec.retrieval.embedder import HashEmbedder

    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    store = Store(sys.argv[1], embedder=HashEmbedder(64), tokenizer=RegexTokenizer(),
                  chunk_size=200, chunk_overlap=30)
    warm = Path(sys.argv[1]).parent / "warm.txt"
    warm.write_text("warm up " * 2000)
    store.add(warm)
    store.refresh()
    base = hwm()
    result = store.add(sys.argv[2])
    after_add = hwm()
    store.refresh()
    print(json.dumps({"base": base, "after_add": after_add, "after_index": hwm(), "chunks": result.chunks}))
    """
)


def _big_text(path, size: int) -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)] + "the of and a to in is was for on that with as by".split() * 50
    with open(path, "w", encoding="utf-8") as fh:
        written = 0
        while written < size:
            paragraph = " ".join(rng.choice(words) for _ in range(rng.randint(40, 160))) + ".\n\n"
            fh.write(paragraph)
            written += len(paragraph)


def _measure(tmp_path, mib: int) -> dict:
    big = tmp_path / f"big{mib}.txt"
    _big_text(big, mib * MIB)
    store = tmp_path / f"store{mib}"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(store), str(big)], capture_output=True, text=True, check=True
    )
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    mem.update(
        size=big.stat().st_size,
        streaming=mem["after_add"] - mem["base"],
        total=mem["after_index"] - mem["base"],
    )
    return mem


@pytest.mark.slow
def test_large_file_ingests_in_bounded_memory(tmp_path):
    small, large = _measure(tmp_path, 1), _measure(tmp_path, 5)
    print(
        f"\nstreaming growth: {small['streaming'] / MIB:.1f} MiB (1 MB file),"
        f" {large['streaming'] / MIB:.1f} MiB (5 MB);"
        f" with index build: {small['total'] / MIB:.1f} / {large['total'] / MIB:.1f} MiB"
    )
    assert large["chunks"] > 4 * small["chunks"] > 2000
    assert large["streaming"] < 16 * MIB
    assert large["streaming"] - small["streaming"] < 0.25 * (large["size"] - small["size"]) + 2 * MIB
    assert large["total"] < 12 * large["size"]
