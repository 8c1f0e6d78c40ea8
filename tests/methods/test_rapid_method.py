"""RAPID end to end on tiny models: eta 0 is the long-context target's greedy; the set builder fits documents."""

import json
from dataclasses import replace

import pytest
import torch

from ragspec.decoding.sampling import SamplingParams
from ragspec.engine import Engine
from ragspec.eval.longdoc import build_longdoc, load_longdoc, run_longdoc
from ragspec.methods.rapid import PLD_NODES, SELF_ETA, UPWARD_ETA, Rapid, RapidConfig, rapid_config
from ragspec.models.loader import wrap
from ragspec.retrieval.embedder import HashEmbedder
from tiny import tiny_chat_lm, tiny_hf, tiny_tokenizer

DOC = " ".join(f"Fact {i}: the code word of room {i} is w{i * 7 % 13}." for i in range(60))


def _rapid(**kw):
    target = tiny_chat_lm("llama", max_pos=8192)
    drafter = tiny_chat_lm("llama", seed=3, max_pos=8192)
    return Rapid(target, drafter, HashEmbedder(64), RapidConfig(chunk_size=64, budget=200, max_new_tokens=16, **kw))


def test_eta_zero_is_exactly_the_long_context_greedy_and_eta_changes_output():
    rapid = _rapid()
    prompts = rapid.prompts("What is the code word of room 12?", DOC)
    assert len(prompts.drafter_ids) < len(prompts.target_ids)  # the drafter reads only retrieved chunks
    assert "room 12" in prompts.rag_context
    lc = Engine(rapid.target).generate(prompts.target_ids, 16).token_ids
    cache = rapid.prefill_target(prompts)
    zero = rapid.answer("What is the code word of room 12?", DOC, eta=0.0, prompts=prompts, target_cache=cache)
    assert zero.answer == rapid.target.tokenizer.decode(lc, skip_special_tokens=True).strip()
    assert zero.stats.num_drafts > 0
    strong = rapid.answer("What is the code word of room 12?", DOC, eta=50.0, prompts=prompts, target_cache=cache)
    assert strong.stats.acceptance_rate >= zero.stats.acceptance_rate


def test_upward_speculation_a_larger_drafter_at_eta_zero_is_the_target_greedy():
    target = tiny_chat_lm("llama", max_pos=8192)
    drafter = tiny_chat_lm("llama", seed=5, max_pos=8192, layers=4)  # twice the target's layers
    assert sum(p.numel() for p in drafter.model.parameters()) > sum(p.numel() for p in target.model.parameters())
    rapid = Rapid(target, drafter, HashEmbedder(64), RapidConfig(chunk_size=64, budget=200, max_new_tokens=16))
    question = "What is the code word of room 40?"
    prompts = rapid.prompts(question, DOC)
    want = target.tokenizer.decode(Engine(target).generate(prompts.target_ids, 16).token_ids, skip_special_tokens=True)
    zero = rapid.answer(question, DOC, eta=0.0, prompts=prompts)
    assert zero.answer == want.strip() and zero.stats.num_drafts > 0
    assert rapid.answer(question, DOC, eta=40.0, prompts=prompts).stats.num_drafts > 0


def test_the_default_eta_is_the_papers_value_for_the_pair(tmp_path):
    """Without an eta, a drafter the target's size or smaller gets 10 and a larger one 40 (the paper's self
    and upward values); an eval without --eta names each drafter's rows by its own default."""
    _two_question_set(tmp_path)
    target = tiny_chat_lm("llama", max_pos=8192)
    config = RapidConfig(chunk_size=64, budget=200, max_new_tokens=8)
    small = Rapid(target, tiny_chat_lm("llama", seed=3, max_pos=8192), HashEmbedder(64), config)
    large = Rapid(target, tiny_chat_lm("llama", seed=5, max_pos=8192, layers=4), HashEmbedder(64), config)
    assert (small.config.eta, large.config.eta) == (SELF_ETA, UPWARD_ETA) == (10.0, 40.0)
    assert Rapid(target, target, HashEmbedder(64), config).config.eta == SELF_ETA
    for eta in (0.0, 5.0):  # a given eta stands, 0 (lossless) included
        assert Rapid(target, large.drafter, HashEmbedder(64), replace(config, eta=eta)).config.eta == eta
    assert rapid_config("rapid").eta is None and rapid_config("rapid:eta=20").eta == 20.0
    result = run_longdoc([small, large], tmp_path, ["rapid"], [], 1)
    assert list(result["methods"]) == ["rapid[tiny-llama-1]@eta=10", "rapid[tiny-llama-2]@eta=40"]


def _rolled_drafter():
    """The target's own weights with its output rows rolled by one: its greedy token is the id after the
    target's, so the target (almost) never accepts a draft."""
    tok = tiny_tokenizer()
    hf = tiny_hf("llama", vocab=len(tok), max_pos=8192)
    hf.lm_head.weight = torch.nn.Parameter(hf.lm_head.weight.detach().roll(1, dims=0).clone())
    return wrap(hf, tok, "tiny-rolled", "fast")


def test_the_gate_falls_back_only_where_rapid_is_lossless():
    """At eta 0 a drafter the target never agrees with is gated off (the answer stays LC's); at eta > 0
    every step drafts, since a skipped draft would change the output; gate=0 keeps eta 0 drafting too."""
    target, drafter, question = tiny_chat_lm("llama", max_pos=8192), _rolled_drafter(), "Code word of room 12?"

    def rapid(**kw):
        return Rapid(target, drafter, HashEmbedder(64), RapidConfig(chunk_size=64, budget=200, max_new_tokens=40, **kw))

    prompts = rapid().prompts(question, DOC)
    lc = Engine(target).generate(prompts.target_ids, 40).token_ids
    zero = rapid().answer(question, DOC, eta=0.0, prompts=prompts)
    assert zero.answer == target.tokenizer.decode(lc, skip_special_tokens=True).strip()
    assert zero.stats.acceptance_rate < 0.2 and zero.stats.num_plain_fallback_steps > 0
    assert rapid().answer(question, DOC, eta=10.0, prompts=prompts).stats.num_plain_fallback_steps == 0
    ungated = rapid(gate=0).answer(question, DOC, eta=0.0, prompts=prompts)
    assert ungated.answer == zero.answer and ungated.stats.num_plain_fallback_steps == 0
    with pytest.raises(ValueError, match="gate are 0 or 1"):
        rapid_config("rapid:gate=2")


def test_shared_drafter_cache_gives_the_same_answer():
    rapid = _rapid()
    prompts = rapid.prompts("What is the code word of room 3?", DOC)
    a = rapid.answer("What is the code word of room 3?", DOC, eta=10.0, prompts=prompts)
    b = rapid.answer("What is the code word of room 3?", DOC, eta=10.0, prompts=prompts,
                     drafter_cache=rapid.prefill_drafter(prompts))
    assert a.answer == b.answer


def test_longdoc_builder_fits_and_marks_truncation(tmp_path):
    squad = tmp_path / "squad"
    squad.mkdir()
    rows = [{"id": f"A/{i}", "title": "A", "text": f"Alpha paragraph {i}. " * 20} for i in range(6)]
    rows += [{"id": f"B/{i}", "title": "B", "text": f"Beta paragraph {i}. " * 20} for i in range(3)]
    (squad / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    qs = [{"id": "q1", "question": "alpha 4?", "answers": ["4"], "title": "A", "paragraph_id": "A/4"}]
    (squad / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in qs) + "\n")
    tok = tiny_tokenizer()
    summary = build_longdoc(squad, tmp_path / "ld", tok, 1200, limit=1)
    questions, docs = load_longdoc(tmp_path / "ld")
    doc = docs[questions[0]["doc_id"]]
    assert summary["questions"] == 1 and doc["num_tokens"] <= 1200
    assert doc["truncated"] and "Alpha paragraph 4." in doc["text"]  # the gold paragraph survives the cut


def test_longdoc_fill_tops_documents_up_to_the_budget(tmp_path):
    squad = tmp_path / "squad"
    squad.mkdir()
    rows = [{"id": f"{t}/{i}", "title": t, "text": f"{t} paragraph {i}. " * 10} for t in "ABCD" for i in range(8)]
    (squad / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    qs = [{"id": "q1", "question": "A 2?", "answers": ["2"], "title": "A", "paragraph_id": "A/2"}]
    (squad / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in qs) + "\n")
    tok = tiny_tokenizer()
    article = len(tok("\n\n".join(r["text"] for r in rows[:8]), add_special_tokens=False)["input_ids"])
    budget = int(2.5 * article) + 64
    plain = build_longdoc(squad, tmp_path / "plain", tok, budget, limit=1, max_articles=2)
    filled = build_longdoc(squad, tmp_path / "fill", tok, budget, limit=1, max_articles=2, fill=True)
    questions, docs = load_longdoc(tmp_path / "fill")
    doc = docs[questions[0]["doc_id"]]
    assert len(doc["titles"]) == 3 and not doc["truncated"]  # two whole articles + the leading part of a third
    assert plain["doc_tokens_max"] < filled["doc_tokens_max"] <= budget
    assert budget - filled["doc_tokens_max"] < article / 8 + 32  # within about one paragraph of the budget
    assert "A paragraph 2." in doc["text"]


def test_run_longdoc_reports_every_method(tmp_path):
    (tmp_path / "documents.jsonl").write_text(json.dumps({"id": "d", "text": DOC, "titles": ["F"], "num_tokens": 900,
                                                          "truncated": False}) + "\n")
    (tmp_path / "questions.jsonl").write_text(json.dumps({"id": "q", "question": "Code word of room 5?",
                                                          "answers": ["w9"], "doc_id": "d"}) + "\n")
    result = run_longdoc(_rapid(), tmp_path, ["lc", "rag", "rapid"], [0.0, 10.0], None)
    assert set(result["methods"]) == {"lc", "rag", "rapid@eta=0", "rapid@eta=10"}
    row = result["rows"][0]["results"]
    assert row["lc"]["prediction"] == row["rapid@eta=0"]["prediction"]  # eta 0 reproduces LC exactly


def test_rapid_config_from_a_method_name():
    cfg = rapid_config("rapid:eta=0,gamma=6,residual=rapid", max_new_tokens=7)
    assert (cfg.eta, cfg.gamma, cfg.residual, cfg.max_new_tokens) == (0.0, 6, "rapid", 7)
    assert cfg.prompt_key == rapid_config("rapid:eta=40", max_new_tokens=7, gamma=6).prompt_key
    with pytest.raises(ValueError, match="bad rapid option 'depth=3'"):
        rapid_config("rapid:depth=3")
    assert rapid_config("rapid:confidence=0").confidence == 0.0
    with pytest.raises(ValueError, match="0 <= confidence <= 1"):  # at once, not at the first question's draft
        rapid_config("rapid:confidence=2")


def _two_question_set(tmp_path):
    (tmp_path / "documents.jsonl").write_text(json.dumps({"id": "d", "text": DOC, "titles": ["F"], "num_tokens": 900,
                                                          "truncated": False}) + "\n")
    (tmp_path / "questions.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "question": f"Code word of room {i}?", "answers": [f"w{i * 7 % 13}"],
                    "doc_id": "d"}) + "\n" for i in (5, 21)))


def test_self_and_upward_drafters_share_one_target_prefill(tmp_path):
    _two_question_set(tmp_path)
    target = tiny_chat_lm("llama", max_pos=8192)
    config = RapidConfig(chunk_size=64, budget=200, max_new_tokens=12)
    rapids = [Rapid(target, tiny_chat_lm("llama", seed=3, max_pos=8192), HashEmbedder(64), config),
              Rapid(target, tiny_chat_lm("llama", seed=5, max_pos=8192, layers=4), HashEmbedder(64), config)]
    result = run_longdoc(rapids, tmp_path, ["lc", "rag", "rapid"], [0.0, 20.0], None)
    assert list(result["methods"]) == ["lc", "rag[tiny-llama-1]", "rapid[tiny-llama-1]@eta=0",
                                       "rapid[tiny-llama-1]@eta=20", "rag[tiny-llama-2]",
                                       "rapid[tiny-llama-2]@eta=0", "rapid[tiny-llama-2]@eta=20"]
    for row in result["rows"]:  # eta 0 reproduces LC with either drafter
        r = row["results"]
        assert r["lc"]["prediction"] == r["rapid[tiny-llama-1]@eta=0"]["prediction"] == \
            r["rapid[tiny-llama-2]@eta=0"]["prediction"]
    # the second question's target prefill reused the document's rows of the first
    assert rapids[0]._prefix["target"].reused > 0 and rapids[1]._prefix["target"].reused == 0


def test_one_drafter_with_two_settings_is_named_by_what_differs(tmp_path):
    _two_question_set(tmp_path)
    target, drafter = tiny_chat_lm("llama", max_pos=8192), tiny_chat_lm("llama", seed=3, max_pos=8192)
    rapids = [Rapid(target, drafter, HashEmbedder(64), RapidConfig(chunk_size=64, budget=200, max_new_tokens=8,
                                                                   confidence=c)) for c in (0.1, 0.5)]
    result = run_longdoc(rapids, tmp_path, ["rapid"], [0.0, 20.0], 1)
    assert list(result["methods"]) == [f"rapid[tiny-llama,confidence={c}]@eta={e}" for c in (0.1, 0.5) for e in (0, 20)]
    r = result["rows"][0]["results"]  # eta 0 is the target's greedy whatever the drafter's chains
    assert r["rapid[tiny-llama,confidence=0.1]@eta=0"]["prediction"] == \
        r["rapid[tiny-llama,confidence=0.5]@eta=0"]["prediction"]


def test_a_resumed_run_asks_only_the_missing_questions_and_scores_all(tmp_path):
    _two_question_set(tmp_path)
    full = run_longdoc(_rapid(), tmp_path, ["lc", "rapid"], [10.0], None)
    first = run_longdoc(_rapid(), tmp_path, ["lc", "rapid"], [10.0], 1)
    asked = []
    resumed = run_longdoc(_rapid(), tmp_path, ["lc", "rapid"], [10.0], None, on_row=asked.append,
                          done=first["rows"] + [{"id": "q21", "results": {"lc": {}}}])  # an incomplete row
    assert [r["id"] for r in asked] == ["q21"] and len(resumed["rows"]) == 2
    for m in full["methods"]:  # the summaries count the kept row and the new one as a full run does
        for k in ("n", "em", "f1", "mean_acceptance_length", "acceptance_rate"):
            assert resumed["methods"][m][k] == full["methods"][m][k], (m, k)


def test_prefix_cache_reuses_the_common_prefix_and_matches_a_fresh_prefill():
    import torch

    from ragspec.prefix import PrefixCache

    lm = tiny_chat_lm("llama", max_pos=8192)
    ids = lm.tokenizer(DOC[:600])["input_ids"]
    a, b = ids + lm.tokenizer(" first?")["input_ids"], ids + lm.tokenizer(" second one?")["input_ids"]
    cache = PrefixCache(lm)
    cache.prefill(a, 4)
    kept = cache.prefill(b, 4)
    assert cache.reused == len(ids) + 1  # " first?" and " second one?" share their leading space
    fresh = PrefixCache(lm).prefill(b, 4)
    nxt = torch.tensor([5])
    torch.testing.assert_close(lm.forward(kept.copy(2), nxt), lm.forward(fresh.copy(2), nxt), rtol=0, atol=1e-5)


def test_resume_reads_the_rows_log_and_drops_a_torn_last_line(tmp_path):
    from ragspec.cli import _done_rows, _row_log

    out = tmp_path / "run.json"
    keep = _row_log(out)
    keep({"id": "q1", "results": {}})
    keep({"id": "q2", "results": {}})
    with out.with_suffix(".rows.jsonl").open("a") as f:
        f.write('{"id": "q3", "resu')  # the run was killed mid-write
    assert [r["id"] for r in _done_rows(out)] == ["q1", "q2"]
    _row_log(out, append=True)({"id": "q3", "results": {}})  # resuming appends after the kept rows
    assert [r["id"] for r in _done_rows(out)] == ["q1", "q2", "q3"]
    with pytest.raises(ValueError, match="--resume needs --json"):
        _done_rows(None)


def test_questions_on_one_document_share_its_chunk_index(monkeypatch):
    import ragspec.methods.rapid as rapid_module

    built = []

    class Counting(rapid_module.DocumentIndex):
        def __init__(self, text, *args, **kw):
            built.append(text)
            super().__init__(text, *args, **kw)

    monkeypatch.setattr(rapid_module, "DocumentIndex", Counting)
    rapid = _rapid()
    first = rapid.prompts("What is the code word of room 12?", DOC)
    again = rapid.prompts("What is the code word of room 40?", DOC)
    assert len(built) == 1  # the second question reused the index
    assert "room 40" in again.rag_context and again.drafter_ids != first.drafter_ids
    fresh = _rapid().prompts("What is the code word of room 40?", DOC)  # its own Rapid, its own index
    assert again.drafter_ids == fresh.drafter_ids and again.chunks == fresh.chunks
    built.clear()
    rapid.prompts("What is the pass word of room 3?", DOC.replace("code word", "pass word"))
    assert len(built) == 1  # another document gets its own index
    rapid.prompts("What is the code word of room 7?", DOC)
    assert len(built) == 1  # and the first one is still kept
    for i in range(rapid_module.INDEXES_KEPT):
        rapid.prompts("Which room?", f"Room {i} is empty. " * 40)
    rapid.prompts("What is the code word of room 12?", DOC)
    assert len(built) == 2 + rapid_module.INDEXES_KEPT  # the least recent documents were let go


def test_rapid_with_prompt_lookup_is_lossless_and_copies_what_the_drafter_never_read():
    """pld=1 fuses lookup over the target's whole context into the drafter's tree: at eta 0 the tokens
    are still the long-context greedy ones, and lookup branches are drafted and accepted."""
    rapid = _rapid(eta=0.0, pld=1, gamma=4)
    question = "What is the code word of room 12?"
    prompts = rapid.prompts(question, DOC)
    sampling = SamplingParams(ignore_eos=True)
    want = Engine(rapid.target).generate(prompts.target_ids, 48, sampling).token_ids
    gen = rapid.engine(prompts).generate(prompts.target_ids, 48, sampling)
    assert gen.token_ids == want
    assert gen.stats.by_source["pld"].accepted > 0 and gen.stats.by_source["draft_lm"].drafted > 0
    assert rapid.config.max_nodes == 4 + PLD_NODES
    with pytest.raises(ValueError, match="needs eta=0"):
        rapid_config("rapid:eta=10,pld=1")


def test_the_drafter_reads_the_callers_chat_format_with_chunks_for_the_document():
    """Given the caller's chat prompt over the document, the target reads it as is and the drafter with the
    document replaced by its retrieved chunks; a chat prompt without the document is a clear error."""
    from ragspec.decoding.text import chat_ids

    rapid = _rapid()
    question = "What is the code word of room 12?"
    messages = ({"role": "user", "content": f"Notes:\n{DOC}\n\nAsk: {question}"},)
    prompts = rapid.prompts(question, DOC, messages=messages)
    assert prompts.target_ids == chat_ids(rapid.target.tokenizer, list(messages))
    want = [{"role": "user", "content": f"Notes:\n{prompts.rag_context}\n\nAsk: {question}"}]
    assert prompts.drafter_ids == chat_ids(rapid.drafter.tokenizer, want)
    assert len(prompts.drafter_ids) < len(prompts.target_ids)
    with pytest.raises(ValueError, match="needs the document inside"):
        rapid.prompts(question, DOC, messages=({"role": "user", "content": question},))
