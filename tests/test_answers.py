"""Extractive answers, abstention, verification and summaries on the real index."""

from __future__ import annotations

import json

from rag.answer import cited_text, short_name
from rag.judge import LexicalJudge
from rag.retrieve import Filters
from rag.types import Chunk
from tests.conftest import run_cli


def test_extractive_answer_cites_retrieved_papers_only(corpus_lib) -> None:
    question = "How can linear attention match the quality of softmax attention?"
    answer = corpus_lib.ask(question)
    assert answer.backend == "extractive" and not answer.abstained
    retrieved = {h.paper.id for h in corpus_lib.find(question, k=corpus_lib.settings.answer_papers).papers}
    numbers = {s.n for s in answer.sources}
    assert numbers == set(range(1, len(answer.sources) + 1))
    assert {s.paper_id for s in answer.sources} <= retrieved
    assert answer.sentences and all(s.citations and set(s.citations) <= numbers for s in answer.sentences)
    for sentence in answer.sentences:  # quoted, so each sentence is in its cited source's abstract
        assert sentence.supported is True
    assert "[1]" in answer.answer
    assert any("Hedgehog" in s.title for s in answer.sources)


def test_short_names_come_from_titles_that_have_one() -> None:
    assert short_name("G2PTL: A Pre-trained Model for Delivery Address") == "G2PTL"
    assert (
        short_name("Label-Agnostic Forgetting: A Supervision-Free Unlearning") == "Label-Agnostic Forgetting"
    )
    assert short_name("Learning-Rate-Free Learning by D-Adaptation") is None
    assert short_name("Rethinking the Role of Token Retrieval in Multi-Vector Retrieval: a study") is None
    chunks = [Chunk(paper_id="p", position=1, text="second."), Chunk(paper_id="p", position=0, text="First.")]
    assert cited_text("G2PTL: A Model.", chunks) == "G2PTL: A Model. First. second."


def test_extractive_answer_names_each_quoted_papers_method(corpus_lib) -> None:
    """Abstracts often say "we propose a model" and leave the name to the title: every paper the
    answer quotes is named in its sentences, by the abstract itself or by a lead-in."""
    for question in (
        "Is there a pre-trained model specialised for encoding delivery addresses in logistics?",
        "How can a deep model forget what it learned without any labels?",
    ):
        answer = corpus_lib.ask(question)
        assert not answer.abstained
        for source in answer.sources:
            name = short_name(source.title)
            quoted = " ".join(s.text for s in answer.sentences if source.n in s.citations)
            if name and quoted:
                assert name.lower() in quoted.lower(), (name, quoted)
        assert all(s.supported for s in answer.sentences)


def test_off_topic_question_abstains_and_lists_nearest_papers(corpus_lib) -> None:
    answer = corpus_lib.ask("How do I change a flat bicycle tyre?")
    assert answer.abstained
    assert "do not cover" in answer.answer
    assert answer.sources and all(not s.citations for s in answer.sentences)


def test_judge_catches_an_altered_claim(corpus_lib) -> None:
    judge = LexicalJudge(corpus_lib.embedder)
    hit = corpus_lib.find("semi-supervised audio classification MixMatch error rate", k=1).papers[0]
    source = " ".join(c.text for c in hit.chunks)
    true_claim = "On UBS8K and GSC, MixMatch achieved 18.02% and 3.25% error rate respectively."
    altered = "On UBS8K and GSC, MixMatch achieved 11.02% and 3.25% error rate respectively."
    assert judge.supports(true_claim, [source]).supported
    assert not judge.supports(altered, [source]).supported
    other_paper = "Galactic achieves over 421,000 steps-per-second on an 8-GPU node."
    assert not judge.supports(other_paper, [source]).supported


def test_unsupported_llm_style_sentence_is_marked(corpus_lib) -> None:
    """The verification step (used for LLM drafts) marks a cited sentence its source does not support."""
    from rag.answer import Answerer

    answerer = Answerer(corpus_lib)
    hits, _ = corpus_lib.retriever().search("Hedgehog linear attention", 2, Filters())
    draft = (
        "Hedgehog is a learnable linear attention that mimics softmax attention [1]. "
        "Hedgehog was trained on 4,000 GPUs for ten years of protein folding [1]. "
        "Linear attention is a widely studied topic in many fields of machine learning research."
    )
    answer = answerer._finish("q", draft, hits, "llm:test", {}, 0.0)
    assert [s.supported for s in answer.sentences] == [True, False, False]
    assert answer.invalid_citations == 0


def test_summary_of_a_topic_and_of_chosen_papers(corpus_lib) -> None:
    summary = corpus_lib.summarize("sharpness-aware minimization")
    assert not summary.abstained and len(summary.sources) >= 2
    assert all(s.citations for s in summary.sentences)
    assert "\n\n" in summary.answer  # paragraphs
    ids = [s.paper_id for s in summary.sources[:2]]
    chosen = corpus_lib.summarize(paper_ids=ids)
    assert {s.paper_id for s in chosen.sources} == set(ids)


def test_follow_up_uses_the_conversation(corpus_lib) -> None:
    history = [
        {"role": "user", "content": "What is sharpness-aware minimization?"},
        {"role": "assistant", "content": "SAM seeks flat minima [1]."},
    ]
    answer = corpus_lib.ask("Does it work under class imbalance?", history=history)
    assert any("ImbSAM" in s.title for s in answer.sources)


def test_ask_json_shape(corpus_lib) -> None:
    done = run_cli(
        corpus_lib.settings.data_dir, "ask", "What is GLEE, the object-level foundation model?", "--json"
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"question", "answer", "backend", "abstained", "sources", "sentences", "timings"} <= set(data)
    assert set(data["sources"][0]) == {"n", "paper_id", "title", "date", "snippet"}
    assert set(data["sentences"][0]) == {"text", "citations", "supported"}
