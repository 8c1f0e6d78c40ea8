"""Token-aware chunking with overlap, on character offsets from a Hugging Face fast tokenizer.

Chunks are measured in the embedding model's own word pieces because the model silently truncates
anything longer (MiniLM: 256 pieces including [CLS]/[SEP]); a chunk that is cut off is a chunk whose tail
can never be found. Boundaries prefer, cheaply, a paragraph break, then a sentence end, then a word
boundary, so chunks read as whole passages. `iter_spans` does the same over a stream of text blocks so a
50 MB file is chunked in bounded memory, and gives the same chunks as `chunk_text` on the whole text
except possibly near block joins.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

DEFAULT_CHUNK_SIZE = 200
DEFAULT_CHUNK_OVERLAP = 30
_SENTENCE_END = frozenset(".!?\u3002")
_CLOSERS = frozenset("\"')]\u201d\u2019")


@dataclass(frozen=True)
class Span:
    """A chunk as character offsets `[start, end)` into the chunked text, with its word-piece count."""

    start: int
    end: int
    n_tokens: int


class OffsetTokenizer(Protocol):
    """The one thing chunking needs from a tokenizer: character offsets of its tokens, no special tokens."""

    def offsets(self, text: str) -> list[tuple[int, int]]: ...


class _BackendOffsets:
    """Adapts a `tokenizers.Tokenizer`, on a private copy with truncation and padding switched off.

    Model folders often ship tokenizer.json with truncation at 128 and fixed padding, which would cut a
    long text silently; the copy keeps the caller's tokenizer untouched.
    """

    def __init__(self, backend: Any) -> None:
        from tokenizers import Tokenizer

        if backend.truncation is not None or backend.padding is not None:
            backend = Tokenizer.from_str(backend.to_str())
            backend.no_truncation()
            backend.no_padding()
        self._backend = backend

    def offsets(self, text: str) -> list[tuple[int, int]]:
        encoding = self._backend.encode(text, add_special_tokens=False)
        return [(s, e) for s, e in encoding.offsets if e > s]


class RegexTokenizer:
    """Words and punctuation marks as tokens: for tests, and for counting when no model tokenizer exists."""

    name = "regex-words"

    def __init__(self, pattern: str = r"\w+|[^\w\s]") -> None:
        self._pattern = re.compile(pattern)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._pattern.finditer(text)]


_ADAPTERS: dict[int, tuple[Any, OffsetTokenizer]] = {}


def as_offset_tokenizer(tokenizer: Any) -> OffsetTokenizer:
    """Accept a `tokenizers.Tokenizer`, a transformers fast tokenizer, or anything with `offsets(text)`."""
    if hasattr(tokenizer, "offsets") and callable(tokenizer.offsets):
        return tokenizer
    cached = _ADAPTERS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not hasattr(backend, "encode") or not hasattr(backend, "to_str"):
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer with offsets")
    adapter = _BackendOffsets(backend)
    _ADAPTERS[id(tokenizer)] = (tokenizer, adapter)  # keeps `tokenizer` alive so its id is not reused
    return adapter


@lru_cache(maxsize=2)
def default_tokenizer(name: str = "minilm-l6") -> OffsetTokenizer:
    """The embedding model's own tokenizer, read from its local folder (no transformers import needed)."""
    from tokenizers import Tokenizer

    from ragspec.retrieval.embedder import minilm_path

    path = minilm_path(name) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer not found at {path}; run: ragspec models pull {name}")
    return _BackendOffsets(Tokenizer.from_file(str(path)))


def _check_sizes(size: int, overlap: int) -> None:
    if size < 1:
        raise ValueError(f"chunk size must be at least 1 token, got {size}")
    if overlap < 0 or overlap >= size:
        raise ValueError(f"chunk overlap must be in [0, size), got {overlap} for size {size}")


def _break_score(text: str, offs: Sequence[tuple[int, int]], j: int) -> int:
    """How good it is to cut before token `j`: 4 paragraph, 3 sentence, 2 line, 1 word, 0 mid-word."""
    if j >= len(offs):
        return 4
    prev_end, next_start = offs[j - 1][1], offs[j][0]
    gap = text[prev_end:next_start]
    if not gap:
        return 0
    if gap.count("\n") >= 2:
        return 4
    last = prev_end - 1
    while last > 0 and text[last] in _CLOSERS:
        last -= 1
    if text[last] in _SENTENCE_END:
        return 3
    return 2 if "\n" in gap else 1


def _pick_end(text: str, offs: Sequence[tuple[int, int]], i: int, size: int) -> int:
    """The exclusive end token of the window starting at `i`: the latest good break, shorter if better."""
    hi = i + size
    for frac, min_score in ((0.6, 4), (0.75, 3), (0.9, 1)):
        lo = i + max(1, int(size * frac))
        for j in range(hi, lo - 1, -1):
            if _break_score(text, offs, j) >= min_score:
                return j
    return hi


def _pick_start(text: str, offs: Sequence[tuple[int, int]], i: int, end: int, overlap: int) -> int:
    """Where the next window starts: about `overlap` tokens back, snapped to a sentence or word start."""
    if overlap <= 0:
        return end
    target = max(i + 1, end - overlap)
    hi = max(target, min(end - 1, target + overlap // 2))
    for min_score in (3, 1):
        for j in range(target, hi + 1):
            if _break_score(text, offs, j) >= min_score:
                return j
    return target


def _windows(
    text: str, offs: Sequence[tuple[int, int]], size: int, overlap: int, limit: int | None
) -> tuple[list[tuple[int, int]], int]:
    """Token windows `[i, j)` over `offs`; with `limit`, stop before any window that needs token >= limit."""
    windows: list[tuple[int, int]] = []
    i, n = 0, len(offs)
    while i < n:
        if n - i <= size:
            if limit is not None:
                break
            windows.append((i, n))
            return windows, n
        if limit is not None and i + size >= limit:
            break
        j = _pick_end(text, offs, i, size)
        windows.append((i, j))
        i = _pick_start(text, offs, i, j, overlap)
    return windows, i


def chunk_text(
    text: str, tokenizer: Any, size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_CHUNK_OVERLAP
) -> list[Span]:
    """Split `text` into spans of at most `size` tokens that overlap by about `overlap` tokens.

    Spans start and end on tokens (no leading or trailing whitespace); whitespace-only text gives [].
    """
    _check_sizes(size, overlap)
    offs = as_offset_tokenizer(tokenizer).offsets(text)
    windows, _ = _windows(text, offs, size, overlap, limit=None)
    return [Span(offs[i][0], offs[j - 1][1], j - i) for i, j in windows]


def _pieces(blocks: Iterable[str], size: int) -> Iterator[str]:
    """Cut large blocks so a tokenizer call never sees much more than `size` characters at once
    (a 1 MB block as Python token-offset tuples costs ~25 MB)."""
    for block in blocks:
        for i in range(0, len(block), size):
            yield block[i : i + size]


def iter_spans(
    blocks: Iterable[str],
    tokenizer: Any,
    size: int = DEFAULT_CHUNK_SIZE,
    overlap: int = DEFAULT_CHUNK_OVERLAP,
    *,
    buffer_chars: int = 64_000,
    guard_chars: int = 2_000,
) -> Iterator[tuple[Span, str]]:
    """Chunk a stream of text blocks, yielding `(span, chunk_text)` with offsets into the whole stream.

    Only `buffer_chars` plus one window of text is held at a time. Tokens within `guard_chars` of the
    buffer's end are not trusted (a word may continue in the next block) and are re-tokenised later.
    """
    _check_sizes(size, overlap)
    tok = as_offset_tokenizer(tokenizer)
    buf, base = "", 0
    for piece in _pieces(blocks, buffer_chars):
        buf += piece
        if len(buf) < buffer_chars:
            continue
        offs = tok.offsets(buf)
        limit = bisect.bisect_right([e for _, e in offs], len(buf) - guard_chars)
        windows, next_i = _windows(buf, offs, size, overlap, limit=limit)
        for i, j in windows:
            start, end = offs[i][0], offs[j - 1][1]
            yield Span(base + start, base + end, j - i), buf[start:end]
        cut = offs[next_i][0] if next_i < len(offs) else len(buf)
        if cut:
            base += cut
            buf = buf[cut:]
    offs = tok.offsets(buf)
    windows, _ = _windows(buf, offs, size, overlap, limit=None)
    for i, j in windows:
        start, end = offs[i][0], offs[j - 1][1]
        yield Span(base + start, base + end, j - i), buf[start:end]
