"""Answer a question over a store: retrieve, prompt with numbered sources, generate (with speculation).

The same pipeline serves `ragspec ask`, `ragspec eval` and the server. Methods:
- `rag`: retrieve the top-k chunks (hybrid by default) and answer from them;
- `lc`: the target reads a whole document (no retrieval), middle-truncated to fit its context.
Speculation (how generation is accelerated, see `ragspec.drafting.registry`) is orthogonal and lossless.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Callable, Sequence

from ragspec.decoding.sampling import SamplingParams
from ragspec.decoding.text import TextStream, stop_condition, trim_at_stop
from ragspec.drafting.registry import SpecOptions, make_proposer
from ragspec.engine import Engine, EngineConfig, Generation
from ragspec.metrics import SpecStats
from ragspec.models.base import CausalLM
from ragspec.rag.prompt import Passage, Prompt, lc_prompt, rag_prompt

PIPELINES = ("rag", "lc")


@dataclass(frozen=True)
class RagConfig:
    k: int = 5  # sources in the prompt
    mode: str = "hybrid"  # retrieval mode
    by_position: bool = False  # put sources in document order instead of rank order
    max_new_tokens: int = 64
    speculation: str = "auto"
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_new_tokens < 1:
            raise ValueError("k and max_new_tokens must be >= 1")


@dataclass(frozen=True)
class Source:
    number: int
    doc_id: str
    title: str
    score: float
    text: str
    source: str = ""
    page: int | None = None


@dataclass
class Answer:
    question: str
    answer: str
    method: str
    model: str
    speculation: str
    sources: list[Source]
    new_tokens: int
    prompt_tokens: int
    retrieval_s: float
    ttft_s: float  # from the question to the first answer token (retrieval + prefill + first step)
    tokens_per_s: float  # decode rate after the first token
    latency_s: float
    finish_reason: str
    truncated: bool
    stats: SpecStats

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("sources", "stats")}
        out["sources"] = [{"number": s.number, "id": s.doc_id, "title": s.title, "score": round(s.score, 6),
                           "source": s.source, "page": s.page} for s in self.sources]
        out["stats"] = self.stats.to_dict()
        return out


class RagPipeline:
    """Holds the loaded models, retriever and datastore; answers questions (see module docstring)."""

    def __init__(self, target: CausalLM, retriever=None, *, drafter: CausalLM | None = None, datastore=None,
                 config: RagConfig | None = None, spec_options: SpecOptions | None = None) -> None:
        if target.tokenizer is None:
            raise ValueError("the target model has no tokenizer")
        self.target, self.retriever, self.drafter, self.datastore = target, retriever, drafter, datastore
        self.config = config or RagConfig()
        self.spec_options = spec_options
        # Kept across questions: token recycling learns across them, and so does the speculation gate.
        self._engines: dict[str, Engine] = {}

    def engine(self, speculation: str | None = None) -> Engine:
        name = speculation or self.config.speculation
        if name not in self._engines:
            proposer = make_proposer(name, drafter=self.drafter, datastore=self.datastore,
                                     options=self.spec_options, vocab_size=self.target.info.vocab_size)
            self._engines[name] = Engine(self.target, proposer, self.config.engine)
        return self._engines[name]

    def retrieve(self, question: str) -> list[Source]:
        if self.retriever is None:
            raise ValueError("method 'rag' needs a store (--store DIR)")
        hits = self.retriever.search(question, k=self.config.k, mode=self.config.mode,
                                     by_position=self.config.by_position)
        return [Source(i, h.doc_id, h.chunk.title, h.score, h.text, h.chunk.source, h.chunk.page)
                for i, h in enumerate(hits, 1)]

    def budget(self) -> int:
        """Prompt tokens that leave room for the answer and one draft tree."""
        ctx = self.target.info.max_context or 1 << 20
        return ctx - self.config.max_new_tokens - self.config.engine.max_nodes - 1

    def answer(self, question: str, method: str = "rag", document: str | None = None,
               sampling: SamplingParams | None = None, speculation: str | None = None,
               on_text: Callable[[str], None] | None = None, stop: Sequence[str] = ()) -> Answer:
        """Answer `question`; `on_text` receives the answer as it streams; generation ends at the first
        of the `stop` strings, which the answer does not include."""
        if method not in PIPELINES:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(PIPELINES)}")
        if not question or not question.strip():
            raise ValueError("empty question")
        start = time.perf_counter()
        tok = self.target.tokenizer
        if method == "rag":
            sources = self.retrieve(question)
            prompt = rag_prompt(tok, question, [Passage(s.title, s.text) for s in sources], self.budget())
            sources = sources[: prompt.num_passages]
        else:
            if document is None:
                raise ValueError("method 'lc' needs the document text")
            sources, prompt = [], lc_prompt(tok, question, document, self.budget())
        retrieval_s = time.perf_counter() - start
        gen, text = self._generate(prompt, sampling, speculation, on_text, stop)
        return self._answer(question, method, speculation, sources, prompt, gen, text, retrieval_s, start)

    def _generate(self, prompt: Prompt, sampling, speculation, on_text, stop: Sequence[str]) -> tuple[Generation, str]:
        stream = TextStream(self.target.tokenizer)
        steps = self.engine(speculation).stream(prompt.ids, self.config.max_new_tokens, sampling,
                                                stop_condition(self.target.tokenizer, stop))
        for ids in steps:
            delta = stream.push(ids)
            if delta and on_text is not None:
                on_text(delta)
        return steps.result, trim_at_stop(stream.text, stop)

    def _answer(self, question, method, speculation, sources, prompt, gen, text, retrieval_s, start) -> Answer:
        return answer_from(question, text, method, self.target.info.name, speculation or self.config.speculation,
                           sources, len(prompt.ids), retrieval_s, gen, prompt.truncated, start)


def answer_from(question: str, text: str, method: str, model: str, speculation: str, sources: list[Source],
                prompt_tokens: int, retrieval_s: float, gen: Generation, truncated: bool, start: float) -> Answer:
    """An Answer from a finished generation (timings from its statistics)."""
    st = gen.stats
    n = len(gen.token_ids)
    return Answer(
        question=question, answer=text.strip(), method=method, model=model, speculation=speculation,
        sources=sources, new_tokens=n, prompt_tokens=prompt_tokens, retrieval_s=retrieval_s,
        ttft_s=retrieval_s + st.ttft_s, tokens_per_s=st.decode_rate(n),
        latency_s=time.perf_counter() - start, finish_reason=gen.finish_reason, truncated=truncated, stats=st,
    )
