"""chunk_text / iter_spans: size limits, overlap, boundaries, streaming equivalence, HF tokenizers."""

from __future__ import annotations

import random

import pytest

from ragspec.corpus.chunking import RegexTokenizer, as_offset_tokenizer, chunk_text, iter_spans

WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
)


def _text(n_sentences: int, seed: int = 0, paragraph_every: int = 7) -> str:
    rng = random.Random(seed)
    parts = []
    for i in range(n_sentences):
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        parts.append(sentence.capitalize() + ".")
        parts.append("\n\n" if (i + 1) % paragraph_every == 0 else " ")
    return "".join(parts).strip()


def test_spans_fit_size_and_cover_every_token(word_tokenizer):
    text = _text(200)
    spans = chunk_text(text, word_tokenizer, size=50, overlap=10)
    offsets = word_tokenizer.offsets(text)
    assert all(0 < s.n_tokens <= 50 for s in spans)
    for span in spans:
        inside = [o for o in offsets if span.start <= o[0] and o[1] <= span.end]
        assert len(inside) == span.n_tokens
        assert text[span.start : span.end] == text[span.start : span.end].strip()
    covered = set()
    for span in spans:
        covered.update(i for i, o in enumerate(offsets) if span.start <= o[0] and o[1] <= span.end)
    assert covered == set(range(len(offsets)))


def test_consecutive_spans_overlap_and_advance(word_tokenizer):
    spans = chunk_text(_text(200, seed=1), word_tokenizer, size=60, overlap=12)
    for a, b in zip(spans, spans[1:]):
        assert a.start < b.start < a.end <= b.end


def test_zero_overlap_gives_disjoint_spans(word_tokenizer):
    spans = chunk_text(_text(100), word_tokenizer, size=30, overlap=0)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


def test_prefers_paragraph_then_sentence_boundaries(word_tokenizer):
    text = _text(300, seed=2, paragraph_every=3)
    spans = chunk_text(text, word_tokenizer, size=80, overlap=0)
    for span in spans[:-1]:
        assert text[span.end - 1] == "."  # every cut lands after a sentence end
    para_cuts = sum(text[span.end : span.end + 2] == "\n\n" for span in spans[:-1])
    assert para_cuts >= len(spans) // 2


def test_short_and_empty_text(word_tokenizer):
    assert chunk_text("   \n\t ", word_tokenizer) == []
    [span] = chunk_text("  Hello world.  ", word_tokenizer, size=10, overlap=2)
    assert (span.start, span.end, span.n_tokens) == (2, 14, 3)


@pytest.mark.parametrize("size,overlap", [(0, 0), (10, 10), (10, -1)])
def test_rejects_bad_sizes(word_tokenizer, size, overlap):
    with pytest.raises(ValueError):
        chunk_text("some text here", word_tokenizer, size=size, overlap=overlap)


def test_streaming_matches_whole_text(word_tokenizer):
    text = _text(2000, seed=3)
    whole = chunk_text(text, word_tokenizer, size=64, overlap=10)
    blocks = [text[i : i + 997] for i in range(0, len(text), 997)]
    streamed = list(iter_spans(blocks, word_tokenizer, 64, 10, buffer_chars=5_000, guard_chars=200))
    assert [s for s, _ in streamed] == whole
    assert all(chunk == text[s.start : s.end] for s, chunk in streamed)


def test_hf_fast_tokenizer_truncation_is_ignored():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {w: i for i, w in enumerate(["[UNK]", *WORDS, "."])}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.enable_truncation(8)
    text = _text(50, seed=4)
    spans = chunk_text(text, tok, size=20, overlap=4)
    assert spans[-1].end == len(text)  # the 8-token truncation did not cut the text short
    assert tok.truncation is not None  # and the caller's tokenizer was not modified
    expected = chunk_text(text, RegexTokenizer(r"\w+|\."), size=20, overlap=4)
    assert spans == expected


def test_offset_protocol_objects_pass_through(word_tokenizer):
    assert as_offset_tokenizer(word_tokenizer) is word_tokenizer
    with pytest.raises(TypeError):
        as_offset_tokenizer(object())


@pytest.mark.integration
def test_minilm_chunks_fit_the_model(minilm_dir, shared_data):
    from transformers import AutoTokenizer

    from ragspec.corpus.chunking import default_tokenizer

    hf = AutoTokenizer.from_pretrained(str(minilm_dir), local_files_only=True)
    text = (shared_data / "squad" / "corpus.jsonl").read_text(encoding="utf-8")[:200_000]
    spans = chunk_text(text, default_tokenizer(), size=254, overlap=30)
    assert len(spans) > 50
    for span in spans:
        ids = hf(text[span.start : span.end], add_special_tokens=True)["input_ids"]
        assert len(ids) <= 256
    # a transformers fast tokenizer is accepted as well and gives the same spans
    assert chunk_text(text[:20_000], hf, 200, 30) == chunk_text(text[:20_000], default_tokenizer(), 200, 30)
