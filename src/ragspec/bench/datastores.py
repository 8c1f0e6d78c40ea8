"""REST datastores for the speed benchmark, built per tokenizer and cached.

| corpus  | text                                                    | used by                       |
|---------|---------------------------------------------------------|-------------------------------|
| wiki    | the SQuAD and HotpotQA paragraphs in data/ (Wikipedia)  | squad-longdoc, rag, qa, ...   |
| python  | the Python standard library's .py files (code, like REST's The Stack) | humaneval       |

HumanEval's own solutions are never in a datastore (that would leak answers). `--datastore DIR` uses a
ragspec store's datastore instead.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path
from typing import Iterator

from ragspec.bench.sets import data_dir
from ragspec.drafting.datastore import TokenDatastore
from ragspec.paths import home
from ragspec.rag.datastore import tokenizer_key

DEFAULT_CORPUS = {"humaneval": "python"}
MAX_PYTHON_BYTES = 8_000_000  # about 2M tokens: enough variety, built in under a minute


def _wiki() -> Iterator[str]:
    for name in ("squad", "hotpotqa"):
        with (data_dir() / name / "corpus.jsonl").open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                yield f"{row['title']}\n{row['text']}"


def _python() -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if total > MAX_PYTHON_BYTES:
            break
        if "test" in path.parent.name:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        total += len(text)
        yield text


CORPORA = {"wiki": _wiki, "python": _python}


def bench_datastore(set_name: str, tokenizer) -> tuple[str, TokenDatastore]:
    """(corpus name, datastore) for a benchmark set, built once per tokenizer."""
    corpus = DEFAULT_CORPUS.get(set_name, "wiki")
    path = home() / "datastores" / f"{corpus}-{tokenizer_key(tokenizer)}"
    if (path / "meta.json").exists():
        return corpus, TokenDatastore.load(path)
    docs = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in CORPORA[corpus]())
    ds = TokenDatastore.build(docs)
    ds.save(path, {"corpus": corpus})
    return corpus, ds
