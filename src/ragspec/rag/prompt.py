"""Prompts: numbered sources for RAG, a whole document for long-context answers, both fitted to the context.

Fitting policy (documented in the README): the question is never cut. RAG prompts drop the lowest-ranked
sources first, then shorten the last kept source. Long-context prompts cut the middle of the document
(its beginning and end usually matter most) and say so. A question that does not fit alone is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragspec.decoding.text import chat_ids

SYSTEM = ("Answer the question with the shortest phrase from the sources that answers it, then cite the "
          "source number. If the sources do not contain the answer, say you don't know.")
LC_SYSTEM = "Answer the question about the document with the shortest phrase from the document that answers it."
# Two worked exchanges before the question: small chat models follow examples more than instructions
# (Qwen2.5-1.5B on 20 SQuAD questions: 6.7 answer tokens instead of 14.4, F1 53.4 instead of 45.9).
RAG_SHOTS = (
    ("Sources:\n\n[1] Rivers\nThe Nile flows north through eleven countries into the Mediterranean Sea.\n\n"
     "Question: Into which sea does the Nile flow?\nAnswer:", "the Mediterranean Sea [1]"),
    ("Sources:\n\n[1] Computers\nThe first electronic general-purpose computer, ENIAC, was completed in 1945 at "
     "the University of Pennsylvania.\n\n[2] Mathematics\nAlan Turing described a universal machine in 1936.\n\n"
     "Question: When was ENIAC completed?\nAnswer:", "1945 [1]"),
)
LC_SHOTS = (
    ("Document:\nThe Nile flows north through eleven countries into the Mediterranean Sea.\n\n"
     "Question: Into which sea does the Nile flow?\nAnswer:", "the Mediterranean Sea"),
)


class PromptTooLong(ValueError):
    """The question alone does not fit the model's context."""


@dataclass(frozen=True)
class Passage:
    title: str
    text: str


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    num_passages: int  # sources kept (RAG)
    truncated: bool  # some text was dropped to fit


def rag_user_message(question: str, passages: list[Passage]) -> str:
    blocks = [f"[{i}] {p.title}\n{p.text}" for i, p in enumerate(passages, 1)]
    return "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer:"


def lc_user_message(question: str, document: str, instruction: str = "") -> str:
    head = f"{instruction}\n\n" if instruction else ""
    return f"{head}Document:\n{document}\n\nQuestion: {question}\nAnswer:"


def _ids(tokenizer, system: str, user: str) -> list[int]:
    shots = RAG_SHOTS if system == SYSTEM else LC_SHOTS
    messages = [{"role": "system", "content": system}]
    for question, answer in shots:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return chat_ids(tokenizer, messages + [{"role": "user", "content": user}])


def _check_question(tokenizer, system: str, question: str, budget: int, empty: str) -> None:
    n = len(_ids(tokenizer, system, empty))
    if n > budget:
        raise PromptTooLong(
            f"the question needs {n} tokens but the model's context leaves {budget} for the prompt; shorten it"
        )


def rag_prompt(tokenizer, question: str, passages: list[Passage], budget: int) -> Prompt:
    """Chat prompt ids with numbered sources, at most `budget` tokens."""
    _check_question(tokenizer, SYSTEM, question, budget, rag_user_message(question, []))
    kept = list(passages)
    while kept:
        ids = _ids(tokenizer, SYSTEM, rag_user_message(question, kept))
        if len(ids) <= budget:
            return Prompt(ids, len(kept), truncated=len(kept) < len(passages))
        if len(kept) > 1:
            kept.pop()
            continue
        # One source left and still too long: shorten it proportionally until it fits.
        over = len(ids) - budget
        text = kept[0].text
        keep_chars = max(0, int(len(text) * (1 - (over + 8) / max(1, len(tokenizer(text)["input_ids"])))))
        if keep_chars >= len(text):
            keep_chars = len(text) - 1
        kept = [Passage(kept[0].title, text[:keep_chars])] if keep_chars > 0 else []
        if not kept:
            break
        ids = _ids(tokenizer, SYSTEM, rag_user_message(question, kept))
        if len(ids) <= budget:
            return Prompt(ids, 1, truncated=True)
    return Prompt(_ids(tokenizer, SYSTEM, rag_user_message(question, [])), 0, truncated=bool(passages))


def lc_prompt(tokenizer, question: str, document: str, budget: int, instruction: str = "") -> Prompt:
    """Chat prompt ids with the whole document, middle-truncated to at most `budget` tokens."""
    _check_question(tokenizer, LC_SYSTEM, question, budget, lc_user_message(question, "", instruction))
    ids = _ids(tokenizer, LC_SYSTEM, lc_user_message(question, document, instruction))
    if len(ids) <= budget:
        return Prompt(ids, 1, truncated=False)
    doc_ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    room = len(doc_ids) - (len(ids) - budget) - 8  # 8 tokens for the "[...]" marker and re-tokenisation drift
    while room > 0:
        head, tail = doc_ids[: room // 2], doc_ids[len(doc_ids) - (room - room // 2) :]
        text = tokenizer.decode(head) + "\n[...]\n" + tokenizer.decode(tail)
        ids = _ids(tokenizer, LC_SYSTEM, lc_user_message(question, text, instruction))
        if len(ids) <= budget:
            return Prompt(ids, 1, truncated=True)
        room -= max(8, len(ids) - budget)
    return Prompt(_ids(tokenizer, LC_SYSTEM, lc_user_message(question, "", instruction)), 0, truncated=True)
