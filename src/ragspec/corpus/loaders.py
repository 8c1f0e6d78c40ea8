"""File loaders: .txt, .md, .html, .pdf and .jsonl into documents whose text arrives as a stream.

Text is decoded strictly as UTF-8 and never "repaired": a wrong byte is reported with its offset, because
a silently mangled document gives wrong answers later with no trace of why. Plain text is streamed in
blocks so a 50 MB file never sits in memory whole; HTML and PDF are read whole (HTML parsing needs the
title first, PDF text comes page by page anyway).
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ragspec.corpus.errors import IngestError

OnBytes = Callable[[int], None]
BLOCK_BYTES = 1 << 18
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, ".pdf", ".jsonl")
PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Page:
    """A run of text chunked on its own; `number` is the 1-based PDF page, None for other formats."""

    number: int | None
    blocks: Iterable[str]


@dataclass(frozen=True)
class LoadedDocument:
    """One document of a file; pages are joined with PAGE_SEPARATOR to form the document text."""

    doc_id: str
    title: str
    pages: Iterable[Page]


def _noop(_: int) -> None:
    return None


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def _decode_error(path: Path, offset: int, exc: UnicodeDecodeError) -> IngestError:
    bad = exc.object[exc.start : exc.start + 4].hex(" ")
    return IngestError(path, f"not valid UTF-8 at byte {offset} (bytes {bad}); convert the file to UTF-8")


def iter_utf8_blocks(path: Path, on_bytes: OnBytes = _noop, block_bytes: int = BLOCK_BYTES) -> Iterator[str]:
    """Decode a file strictly as UTF-8, block by block; NUL bytes mean a binary file."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    consumed = 0
    with open(path, "rb") as fh:
        while data := fh.read(block_bytes):
            if consumed == 0 and data.startswith(codecs.BOM_UTF8):
                data, consumed = data[3:], 3
            nul = data.find(b"\0")
            if nul >= 0:
                raise IngestError(path, f"binary file (NUL byte at byte {consumed + nul})")
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(data)
            except UnicodeDecodeError as exc:
                raise _decode_error(path, consumed - pending + exc.start, exc) from None
            consumed += len(data)
            on_bytes(len(data))
            if text:
                yield text
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise _decode_error(path, consumed - pending + exc.start, exc) from None


def _text_title(path: Path, first: str) -> str:
    if path.suffix.lower() in (".md", ".markdown"):
        match = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", first[:20_000], re.MULTILINE)
        if match:
            return match.group(1)
    return path.stem


def load_text(path: Path, on_bytes: OnBytes = _noop) -> Iterator[LoadedDocument]:
    """A .txt or .md file is one document, streamed; its title is the first Markdown heading or the name."""
    blocks = iter_utf8_blocks(path, on_bytes)
    first = next(blocks, "")

    def stream() -> Iterator[str]:
        if first:
            yield first
        yield from blocks

    yield LoadedDocument(str(path), _text_title(path, first), [Page(None, stream())])


_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head"})
_BLOCK_TAGS = frozenset(
    "p div section article header footer nav aside main blockquote pre ul ol li dl dt dd table tr "
    "h1 h2 h3 h4 h5 h6 figure figcaption form fieldset address hr".split()
)


class _TextExtractor(HTMLParser):
    """Keeps visible text, drops script/style, and turns block elements into paragraph breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS or tag in ("td", "th"):
            self.parts.append("\n\n" if tag in _BLOCK_TAGS else " ")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        raw = "".join(self.parts)
        raw = re.sub(r"[ \t]*\n[ \t]*", "\n", raw)
        return re.sub(r"\n{3,}", "\n\n", raw).strip()


def html_to_text(markup: str) -> tuple[str, str]:
    """Visible text of an HTML page and its <title> (empty if none)."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return parser.text(), " ".join("".join(parser.title_parts).split())


def load_html(path: Path, on_bytes: OnBytes = _noop) -> Iterator[LoadedDocument]:
    markup = "".join(iter_utf8_blocks(path, on_bytes))
    text, title = html_to_text(markup)
    yield LoadedDocument(str(path), title or path.stem, [Page(None, [text])])


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """pypdf logs a warning per oddity it repairs; the user gets one line from us instead."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _open_pdf(path: Path):  # -> pypdf.PdfReader
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(path, "encrypted PDF (needs a password)")
        _ = len(reader.pages)
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files
        raise IngestError(path, f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from None
    return reader


def _pdf_pages(path: Path, reader, on_bytes: OnBytes) -> Iterator[Page]:
    total = max(1, len(reader.pages))
    size = os.path.getsize(path)
    done = 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            with _quiet("pypdf"):
                text = page.extract_text() or ""
        except Exception as exc:
            raise IngestError(
                path, f"page {number}: cannot extract text ({type(exc).__name__}: {exc})"
            ) from None
        share = size * number // total - done
        done += share
        on_bytes(share)
        yield Page(number, [text])


def load_pdf(path: Path, on_bytes: OnBytes = _noop) -> Iterator[LoadedDocument]:
    """A PDF is one document, extracted one page at a time; each chunk keeps its page number."""
    with _quiet("pypdf"):
        reader = _open_pdf(path)
        meta_title = ""
        try:
            meta_title = (reader.metadata.title or "") if reader.metadata else ""
        except Exception:
            meta_title = ""
    yield LoadedDocument(str(path), str(meta_title).strip() or path.stem, _pdf_pages(path, reader, on_bytes))


def _jsonl_row(path: Path, lineno: int, line: str) -> tuple[str, str, str]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise IngestError(path, f"line {lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise IngestError(path, f'line {lineno}: expected an object with a "text" string')
    if not row["text"].strip():
        raise IngestError(path, f"line {lineno}: empty text")
    doc_id = str(row["id"]) if row.get("id") not in (None, "") else f"{path.stem}:{lineno}"
    title = str(row["title"]) if row.get("title") not in (None, "") else doc_id
    return doc_id, title, row["text"]


def load_jsonl(path: Path, on_bytes: OnBytes = _noop) -> Iterator[LoadedDocument]:
    """Each `{"id", "title", "text"}` row is one document; the file is read line by line."""
    seen: set[str] = set()
    offset = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            nul = raw.find(b"\0")
            if nul >= 0:
                raise IngestError(path, f"binary file (NUL byte at byte {offset + nul})")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _decode_error(path, offset + exc.start, exc) from None
            offset += len(raw)
            on_bytes(len(raw))
            if not line.strip():
                continue
            doc_id, title, text = _jsonl_row(path, lineno, line.lstrip("\ufeff"))
            if doc_id in seen:
                raise IngestError(path, f"line {lineno}: duplicate id {doc_id!r}")
            seen.add(doc_id)
            yield LoadedDocument(doc_id, title, [Page(None, [text])])


Loader = Callable[[Path, OnBytes], Iterator[LoadedDocument]]


def loader_for(path: Path) -> Loader:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return load_text
    if suffix in HTML_SUFFIXES:
        return load_html
    if suffix == ".pdf":
        return load_pdf
    if suffix == ".jsonl":
        return load_jsonl
    raise IngestError(
        path, f"unsupported file type {suffix or '(none)'!r}; supported: {' '.join(SUPPORTED_SUFFIXES)}"
    )


def walk(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files to ingest: given files as they are (so a bad one is reported), directories recursively.

    Inside directories only supported extensions are taken, hidden files and folders are skipped, and
    the order is sorted so that runs are reproducible.
    """
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise IngestError(path, "no such file or directory")
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    child = Path(root) / name
                    if not name.startswith(".") and is_supported(child):
                        yield child
        else:
            yield path
