"""Corpus ingestion: loaders, token-aware chunking, and the persistent SQLite + index store."""

from ragspec.corpus.chunking import Span, chunk_text, default_tokenizer, iter_spans
from ragspec.corpus.errors import IngestError
from ragspec.corpus.ingest import IngestReport, ingest
from ragspec.corpus.loaders import SUPPORTED_SUFFIXES, LoadedDocument, Page
from ragspec.corpus.store import AddResult, Store, StoreInfo

__all__ = [
    "SUPPORTED_SUFFIXES",
    "AddResult",
    "IngestError",
    "IngestReport",
    "LoadedDocument",
    "Page",
    "Span",
    "Store",
    "StoreInfo",
    "chunk_text",
    "default_tokenizer",
    "ingest",
    "iter_spans",
]
