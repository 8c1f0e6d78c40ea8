"""REST token datastores of a corpus store, one per tokenizer, kept next to the store's indexes.

A datastore is the store's documents tokenised with one model's tokenizer (drafts must be in the target's
vocabulary). It is built at ingest for the tokenizers asked for, and lazily on first use for any other;
`meta.json` records the store generation it was built from, so a changed store rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ragspec.drafting.datastore import TokenDatastore


def tokenizer_key(tokenizer) -> str:
    """A short stable id of a tokenizer's vocabulary (models that share a tokenizer share a datastore)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def datastore_dir(store_dir: str | Path, tokenizer) -> Path:
    return Path(store_dir) / "datastores" / tokenizer_key(tokenizer)


def build_datastore(store, tokenizer, on_document=None) -> TokenDatastore:
    """Tokenise every document of `store` (a `ragspec.corpus.store.Store`) and save the datastore."""
    def documents():
        for doc_id, *_ in store.documents():
            text = store.document_text(doc_id)
            if on_document is not None:
                on_document(doc_id)
            yield tokenizer(text, add_special_tokens=False)["input_ids"]

    ds = TokenDatastore.build(documents())
    ds.save(datastore_dir(store.directory, tokenizer),
            {"generation": store.generation, "tokenizer": tokenizer_key(tokenizer)})
    return ds


def load_datastore(store, tokenizer, build: bool = True) -> TokenDatastore | None:
    """The store's datastore for this tokenizer; (re)built when missing or stale, if `build`."""
    path = datastore_dir(store.directory, tokenizer)
    meta = path / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("generation") == store.generation:
        return TokenDatastore.load(path)
    if not build:
        return None
    if not store.num_documents():
        return None
    return build_datastore(store, tokenizer)
