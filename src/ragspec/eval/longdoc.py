"""The long-document QA set (for RAPID) and its evaluation.

Built from data/squad: each question gets a document made of its own article, alone or concatenated with
1-3 other articles in a seeded order, that fits `max_tokens` tokens of the target's tokenizer. An article
longer than the budget keeps the paragraphs nearest the gold one and is marked truncated, so every
question stays answerable from its document and the output says when a document was cut. With `fill`,
every document takes up to `max_articles` articles and is then topped up to the budget with the leading
paragraphs of one more article, so a speed bench gets contexts of the length it names.

Folder format: documents.jsonl {"id", "text", "titles", "num_tokens", "truncated"} and questions.jsonl
{"id", "question", "answers", "title", "paragraph_id", "doc_id"}.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import fields
from pathlib import Path
from typing import Callable

from ragspec.eval.data import _order, load_corpus, load_questions
from ragspec.eval.metrics import exact_match, f1_score

SEPARATOR = "\n\n"


def _paragraphs(corpus: list[dict]) -> dict[str, list[dict]]:
    by_title: dict[str, list[dict]] = {}
    for row in corpus:
        by_title.setdefault(row["title"], []).append(row)
    return {t: sorted(rows, key=lambda r: _order(str(r["id"]))) for t, rows in by_title.items()}


def _fit_article(rows: list[dict], gold: str, budget: int, count) -> tuple[str, bool]:
    """The article's text within `budget` tokens, keeping the paragraphs nearest the gold one."""
    text = SEPARATOR.join(r["text"] for r in rows)
    if count(text) <= budget:
        return text, False
    center = next(i for i, r in enumerate(rows) if r["id"] == gold)
    lo = hi = center
    while True:
        grown = False
        for lo2, hi2 in ((lo - 1, hi), (lo, hi + 1)):
            if 0 <= lo2 and hi2 < len(rows) and count(SEPARATOR.join(r["text"] for r in rows[lo2 : hi2 + 1])) <= budget:
                lo, hi, grown = lo2, hi2, True
        if not grown:
            return SEPARATOR.join(r["text"] for r in rows[lo : hi + 1]), True


def build_longdoc(squad_dir: str | Path, out_dir: str | Path, tokenizer, max_tokens: int, limit: int = 200,
                  seed: int = 0, max_articles: int = 4, fill: bool = False) -> dict:
    """Write the set; returns its summary (documents, token counts, truncations)."""
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    # room for the article title lines and separators (one more article with fill)
    requested, max_tokens = max_tokens, max_tokens - 16 * (max_articles + fill)
    paragraphs = _paragraphs(load_corpus(squad_dir))
    sizes = {t: count(SEPARATOR.join(r["text"] for r in rows)) for t, rows in paragraphs.items()}
    rng = random.Random(seed)
    questions = load_questions(squad_dir)
    rng.shuffle(questions)
    docs: dict[str, dict] = {}
    rows = []
    for q in questions[:limit]:
        gold = q.gold_doc_ids[0]
        n_articles = max_articles if fill else rng.choice([1] * 2 + list(range(2, max_articles + 1)))
        others = [t for t in paragraphs if t != q.title]
        rng.shuffle(others)
        chosen, used = [q.title], min(sizes[q.title], max_tokens)
        for t in others:
            if len(chosen) >= n_articles:
                break
            if used + sizes[t] <= max_tokens:
                chosen.append(t)
                used += sizes[t]
        filler = next((t for t in others if t not in chosen), None) if fill and used < max_tokens else None
        if filler is not None:
            chosen.append(filler)
        rng.shuffle(chosen)
        texts, truncated = {}, False
        for t in chosen:
            if t == q.title:
                texts[t], cut = _fit_article(paragraphs[t], gold, max_tokens - (used - min(sizes[t], max_tokens)), count)
                truncated |= cut
            elif t != filler:
                texts[t] = SEPARATOR.join(r["text"] for r in paragraphs[t])
        join = lambda: SEPARATOR.join(f"{t.replace('_', ' ')}\n\n{texts[t]}" for t in chosen if t in texts)  # noqa: E731
        kept = len(paragraphs[filler]) if filler is not None else 0
        while filler is not None and kept > 0:
            texts[filler] = SEPARATOR.join(r["text"] for r in paragraphs[filler][:kept])
            if count(join()) <= requested:
                break
            kept -= 1
        if filler is not None and kept == 0:
            texts.pop(filler, None)
            chosen.remove(filler)
        text = join()
        doc_id = f"{'+'.join(chosen)}{'~' + gold if truncated else ''}{f'#{kept}' if kept else ''}"
        if doc_id not in docs:
            docs[doc_id] = {"id": doc_id, "text": text, "titles": chosen, "num_tokens": count(text), "truncated": truncated}
        rows.append({"id": q.id, "question": q.question, "answers": list(q.answers), "title": q.title,
                     "paragraph_id": gold, "doc_id": doc_id})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "documents.jsonl").open("w", encoding="utf-8") as f:
        for d in docs.values():
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with (out / "questions.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tokens = [docs[r["doc_id"]]["num_tokens"] for r in rows]
    return {"questions": len(rows), "documents": len(docs), "max_tokens": requested,
            "doc_tokens_mean": round(statistics.fmean(tokens), 1), "doc_tokens_max": max(tokens),
            "truncated_questions": sum(docs[r["doc_id"]]["truncated"] for r in rows),
            "articles_per_document_mean": round(statistics.fmean(len(docs[r["doc_id"]]["titles"]) for r in rows), 2)}


def is_longdoc(data_dir: str | Path) -> bool:
    return (Path(data_dir) / "documents.jsonl").is_file()


def load_longdoc(data_dir: str | Path) -> tuple[list[dict], dict[str, dict]]:
    d = Path(data_dir)
    with (d / "documents.jsonl").open(encoding="utf-8") as f:
        docs = {row["id"]: row for row in map(json.loads, f)}
    with (d / "questions.jsonl").open(encoding="utf-8") as f:
        questions = [json.loads(line) for line in f]
    return questions, docs


def run_longdoc(rapid, data_dir: str | Path, methods: list[str], etas: list[float], limit: int | None,
                on_row: Callable[[dict], None] | None = None, extra: dict | None = None,
                done: list[dict] | None = None) -> dict:
    """Evaluate `lc` (target on the whole document), `rag` (drafter on retrieved chunks) and `rapid` (one
    run per eta; no etas: each `Rapid`'s own) on the set.

    `rapid` is one `Rapid` or a list of them sharing one target (self and upward speculation in one run):
    with several, each drafter's results are named `rag[NAME]` and `rapid[NAME]@eta=X`. One target prefill
    per question serves lc, every drafter and every eta, and questions on the same document are taken
    together so that the next prefill reuses the document's rows (`ragspec.prefix`). `done`: rows of an
    earlier run of the same settings (its `.rows.jsonl`); their questions are not asked again and count in
    the summaries."""
    unknown = set(methods) - {"lc", "rag", "rapid"}
    if unknown:
        raise ValueError(f"long-document methods are lc, rag and rapid; got {', '.join(sorted(unknown))}")
    rapids = list(rapid) if isinstance(rapid, (list, tuple)) else [rapid]
    if any(r.target is not rapids[0].target for r in rapids):
        raise ValueError("the RAPID runs of one evaluation must share one target model")
    labels = _labels(rapids)
    sweeps = [list(etas) or [r.config.eta] for r in rapids]  # no etas given: each pair's default
    names = ["lc"] if "lc" in methods else []
    for label, sweep in zip(labels, sweeps):
        names += [f"rag{label}"] if "rag" in methods else []
        names += [f"rapid{label}@eta={e:g}" for e in sweep] if "rapid" in methods else []
    questions, docs = load_longdoc(data_dir)
    questions = questions[:limit] if limit else questions
    order = {d: i for i, d in reversed(list(enumerate(q["doc_id"] for q in questions)))}
    questions.sort(key=lambda q: order[q["doc_id"]])  # stable: one document's questions in a row
    wanted = {q["id"] for q in questions}
    rows = list({r["id"]: r for r in done or [] if r["id"] in wanted and set(names) <= set(r["results"])}.values())
    asked = {r["id"] for r in rows}
    for q in questions:
        if q["id"] in asked:
            continue
        doc = docs[q["doc_id"]]
        prompts = [r.prompts(q["question"], doc["text"]) for r in rapids]
        if any(p.target_ids != prompts[0].target_ids for p in prompts):
            raise ValueError("the RAPID runs of one evaluation must build the same target prompt")
        cache = rapids[0].prefill_target(prompts[0]) if {"lc", "rapid"} & set(methods) else None
        row = {"id": q["id"], "question": q["question"], "answers": q["answers"], "doc_tokens": doc["num_tokens"],
               "doc_truncated": doc["truncated"], "prompt_truncated": prompts[0].target_truncated,
               "drafter_context_tokens": len(prompts[0].drafter_ids), "results": {}}
        if "lc" in methods:
            row["results"]["lc"] = _result(rapids[0].lc_answer(q["question"], prompts[0], target_cache=cache), q)
        for r, p, label, sweep in zip(rapids, prompts, labels, sweeps):
            draft_cache = r.prefill_drafter(p) if {"rag", "rapid"} & set(methods) else None
            if "rag" in methods:
                row["results"][f"rag{label}"] = _result(r.rag_answer(q["question"], p, drafter_cache=draft_cache), q)
            for e in sweep if "rapid" in methods else []:
                ans = r.answer(q["question"], doc["text"], eta=e, prompts=p, target_cache=cache,
                               drafter_cache=draft_cache)
                row["results"][f"rapid{label}@eta={e:g}"] = _result(ans, q)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    summaries = {n: _summary(n, [r["results"][n] for r in rows]) for n in names}
    first = summaries[names[-1]]
    return {"summary": {**first, **(extra or {}), "questions": len(rows),
                        "doc_tokens_mean": round(statistics.fmean(r["doc_tokens"] for r in rows), 1) if rows else 0,
                        "truncated_documents": sum(r["doc_truncated"] for r in rows)},
            "methods": summaries, "rows": rows}


def _labels(rapids: list) -> list[str]:
    """Each run's tag in its rows' names: "" for one run, else "[drafter]"; the same drafter twice is told
    apart by the settings that differ ("[smollm2-135m,confidence=0.3]"; eta is in every name already), or
    numbered where none does (say, its int8 and float32 copies)."""
    if len(rapids) == 1:
        return [""]
    names = [r.drafter.info.name.split()[0] for r in rapids]
    if len(set(names)) < len(names):
        differ = [f.name for f in fields(rapids[0].config)
                  if f.name != "eta" and len({getattr(r.config, f.name) for r in rapids}) > 1]
        names = [",".join([n, *(f"{k}={getattr(r.config, k)}" for k in differ)]) if differ else f"{n}-{i + 1}"
                 for i, (n, r) in enumerate(zip(names, rapids))]
    return [f"[{n}]" for n in names]


def _result(ans, q: dict) -> dict:
    """One method's answer to one question, scored, with the counters the summary adds up."""
    st = ans.stats
    return {"prediction": ans.answer, "em": exact_match(ans.answer, q["answers"]),
            "f1": f1_score(ans.answer, q["answers"]), "latency_s": round(ans.latency_s, 3),
            "new_tokens": ans.new_tokens, "tokens_per_s": round(ans.tokens_per_s, 3),
            "mean_acceptance_length": round(st.mean_acceptance_length, 3),
            "decode_s": round(st.total_s - st.ttft_s, 4), "decode_tokens": st.decode_tokens(ans.new_tokens),
            "num_drafts": st.num_drafts,
            "num_draft_tokens": st.num_draft_tokens, "num_accepted_tokens": st.num_accepted_tokens}


def _summary(name: str, results: list[dict]) -> dict:
    mean = lambda xs: statistics.fmean(xs) if xs else 0.0  # noqa: E731
    total = lambda key: sum(r.get(key, 0) for r in results)  # noqa: E731
    decode_s, drafts, drafted, accepted = (total(k) for k in ("decode_s", "num_drafts", "num_draft_tokens",
                                                               "num_accepted_tokens"))
    # Rows logged before "decode_tokens" existed counted every token but the first.
    decode_tokens = sum(r.get("decode_tokens", max(0, r["new_tokens"] - 1)) for r in results)
    return {"method": name, "n": len(results), "em": round(100 * mean([r["em"] for r in results]), 2),
            "f1": round(100 * mean([r["f1"] for r in results]), 2),
            "latency_s": round(mean([r["latency_s"] for r in results]), 3),
            "tokens_per_s": round(decode_tokens / decode_s, 3) if decode_s > 0 else 0.0,
            "mean_acceptance_length": round(1 + accepted / drafts, 3) if drafts else 1.0,
            "acceptance_rate": round(accepted / drafted, 4) if drafted else 0.0}
