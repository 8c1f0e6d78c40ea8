"""Text around the token loop: chat prompts, incremental detokenisation, stop strings."""

from __future__ import annotations

from typing import Sequence


def chat_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a chat prompt ending where the assistant's answer starts.

    Uses the model's own chat template when it has one; otherwise a plain "Role: text" transcript.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"
    return tokenizer(text)["input_ids"]


class TextStream:
    """Turns a growing list of token ids into text deltas, holding back incomplete characters.

    Decoding token by token breaks multi-byte characters and words that tokenizers join with the next
    token, so each delta is the difference of two decodes of the whole answer (answers are short).
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""

    def push(self, ids: Sequence[int]) -> str:
        self.ids.extend(ids)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            return ""
        delta = text[len(self.text) :] if text.startswith(self.text) else text
        self.text = text
        return delta


def stop_condition(tokenizer, stops: Sequence[str]):
    """An engine stop condition: stop at the first token after which any stop string appears."""
    stops = [s for s in stops if s]
    if not stops:
        return None

    def check(ids: list[int]) -> int | None:
        tail = tokenizer.decode(ids[-32:], skip_special_tokens=True)  # stop strings are short
        if not any(s in tail for s in stops):
            return None
        for k in range(max(1, len(ids) - 32), len(ids) + 1):
            text = tokenizer.decode(ids[:k], skip_special_tokens=True)
            if any(s in text for s in stops):
                return k
        return len(ids)

    return check


def trim_at_stop(text: str, stops: Sequence[str]) -> str:
    """Cut the text at the earliest stop string (the engine stops on token boundaries)."""
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text
