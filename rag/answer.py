"""Answers and summaries with verified citations.

One flow for every backend: retrieve papers, check that the evidence covers the
question (else abstain and list the nearest papers), draft the text (extractive,
or an LLM through `rag.llm`), then parse, renumber and verify the citations with
the support judge. When an LLM is configured but fails, the extractive answer is
given instead with a one-line notice: the user always gets a cited answer.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from index.ingest import paper_from_metadata
from rag.citations import ParsedSentence, parse, renumber, with_markers
from rag.errors import RagError
from rag.judge import Judge, get_judge
from rag.llm import LLM, LLMError
from rag.prompts import render
from rag.retrieve import Filters, sentences
from rag.types import Answer, Chunk, PaperHit, Sentence, Source

log = logging.getLogger(__name__)

EXTRACTIVE = "extractive"
ABSTAIN_TEXT = "The indexed papers do not cover this question. The nearest papers are listed below."
#: How an LLM says it cannot answer; such an answer counts as an abstention.
LLM_ABSTAINS = re.compile(
    r"(do(es)? not (answer|cover|contain|mention|provide|address)|cannot (be )?answer|can't answer|"
    r"no (relevant )?information|not (mentioned|covered|stated) in the (sources|papers|abstracts))",
    re.IGNORECASE,
)
#: An uncited sentence with at least this many words is a claim without support.
UNCITED_CLAIM_WORDS = 6
#: A follow-up this short is read together with the previous question when no LLM can rewrite it.
SHORT_FOLLOW_UP_WORDS = 12
SNIPPET_CHARS = 320
#: A found paper enters a summary when its best sentence is this close to the best paper's.
SUMMARY_SPREAD = 0.2
SUMMARY_SENTENCES_PER_PAPER = 2


@dataclass
class _Candidate:
    """A sentence of a retrieved abstract, with the index of its paper among the hits."""

    text: str
    paper: int
    order: int


def _in_order(chunks: Sequence[Chunk]) -> str:
    return " ".join(c.text for c in sorted(chunks, key=lambda c: c.position))


def _evidence(hit: PaperHit) -> str:
    return _in_order(hit.chunks)


def cited_text(title: str, chunks: Sequence[Chunk]) -> str:
    """What a citation of a paper may rest on: its title and the chunks the answerer was given
    (the LLM sees both in its source block; stored chunks do not repeat the title)."""
    return f"{title.rstrip('.')}. {_in_order(chunks)}"


#: "G2PTL: A Pre-trained Model for ..." -> "G2PTL": the name a paper's method goes by.
_SHORT_NAME = re.compile(r"^\s*([^:]{2,40}?)\s*:\s+\S")


def short_name(title: str) -> str | None:
    """The name before a title's colon when it is a name (at most three words), else None."""
    m = _SHORT_NAME.match(title)
    return m.group(1) if m and len(m.group(1).split()) <= 3 else None


#: Chat-template control tokens of common model families (ChatML, Gemma, Llama 2/3, Mistral):
#: a server that parses special tokens in the prompt would read them in paper text as turns.
_CHAT_TOKENS = re.compile(
    r"<\|[a-z_]{2,20}\|>|</?(start_of_turn|end_of_turn|s)>|\[/?INST\]|<</?SYS>>", re.IGNORECASE
)


def _inert(text: str) -> str:
    """Paper text cannot open or close a source block (the delimiters are taken out of it) nor
    start a chat turn (template control tokens are taken out too)."""
    text = _CHAT_TOKENS.sub(" ", text)
    return text.replace("<<<", "‹‹‹").replace(">>>", "›››")


def _source_block(hits: Sequence[PaperHit]) -> str:
    """Every word that comes from a paper file, title included, sits inside its delimited block."""
    return "\n\n".join(
        render(
            "source",
            n=str(i),
            title=_inert(h.paper.title),
            date=h.paper.date or "undated",
            text=_inert(_evidence(h)),
        )
        for i, h in enumerate(hits, start=1)
    )


def build_messages(
    kind: str, hits: Sequence[PaperHit], max_sentences: int, **fields: str
) -> list[dict[str, str]]:
    """System rules + sources inside delimiters: text from abstracts never joins the instructions."""
    system = (
        render(f"{kind}_system", max_sentences=str(max_sentences))
        if kind == "answer"
        else render(f"{kind}_system")
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": render(kind, sources=_source_block(hits), **fields)},
    ]


class Answerer:
    def __init__(self, lib) -> None:  # type: ignore[no-untyped-def]
        self.lib = lib
        self.settings = lib.settings
        self.embedder = lib.embedder
        self.llm = LLM(self.settings)
        self.judge: Judge = get_judge("trained", self.embedder)

    # --- public ---------------------------------------------------------------------
    def ask(self, question: str, history: Sequence[dict[str, str]], filters: Filters) -> Answer:
        answer = None
        for item in self.ask_stream(question, history, filters):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def ask_stream(
        self, question: str, history: Sequence[dict[str, str]], filters: Filters
    ) -> Iterator[str | Answer]:
        t0 = time.perf_counter()
        question = question.strip()
        if not question:
            raise RagError("the question is empty")
        query, notice = self._standalone(question, history)
        hits, _ = self.lib.retriever().search(query, self.settings.answer_papers, filters)
        timings = {"retrieve_ms": (time.perf_counter() - t0) * 1000}
        candidates, sims = self._rank_sentences(query, hits)
        if not candidates or float(sims.max()) < self.settings.abstain_below:
            answer = self._abstain(question, hits, timings, t0)
            yield answer.answer
            yield answer
            return
        if self.llm.configured and notice is None:
            try:
                deltas: list[str] = []
                for delta in self.llm.stream(
                    build_messages("answer", hits, self.settings.answer_sentences, question=question)
                ):
                    deltas.append(delta)
                    yield delta
                timings["generate_ms"] = (time.perf_counter() - t0) * 1000 - timings["retrieve_ms"]
                drafted = self._finish(question, "".join(deltas), hits, self.llm.name, timings, t0)
                if drafted.sources or drafted.abstained:
                    yield drafted
                    return
                # An answer citing nothing cannot be checked: the user gets a cited one instead.
                raise LLMError("the LLM answer cited none of the sources", "uncited")
            except LLMError as err:
                notice = f"{err}; showing the extractive answer instead"
                log.warning("LLM failed: %s", err)
                yield "\n\n"  # separates any partial LLM text already streamed from the fallback
        answer = self._extractive(question, hits, candidates, sims, timings, t0)
        answer.notice = notice
        yield answer.answer
        yield answer

    def summarize(self, topic: str | None, paper_ids: list[str], filters: Filters) -> Answer:
        t0 = time.perf_counter()
        if paper_ids:
            hits = [self._paper_hit(pid) for pid in paper_ids]
            focus = topic or "; ".join(h.paper.title for h in hits)
        elif topic and topic.strip():
            focus = topic.strip()
            hits, _ = self.lib.retriever().search(focus, max(self.settings.answer_papers, 8), filters)
        else:
            raise RagError("summarize needs a topic or paper ids")
        label = topic or f"{len(hits)} chosen papers"
        timings = {"retrieve_ms": (time.perf_counter() - t0) * 1000}
        candidates, sims = self._rank_sentences(focus, hits)
        if not candidates or (not paper_ids and float(sims.max()) < self.settings.abstain_below):
            return self._abstain(label, hits, timings, t0)
        notice = None
        if self.llm.configured:
            try:
                text = self.llm.complete(build_messages("summarize", hits, 0, topic=focus))
                return self._finish(label, text, hits, self.llm.name, timings, t0)
            except LLMError as err:
                notice = f"{err}; showing the extractive summary instead"
        chosen: list[_Candidate] = []
        best_overall = float(sims.max())
        for i in range(len(hits)):
            mine = sorted((j for j, c in enumerate(candidates) if c.paper == i), key=lambda j: -sims[j])
            # Chosen papers are all summarised; found ones only when they are about the topic.
            if mine and (
                paper_ids or sims[mine[0]] >= max(self.settings.abstain_below, best_overall - SUMMARY_SPREAD)
            ):
                chosen.extend(candidates[j] for j in sorted(mine[:SUMMARY_SENTENCES_PER_PAPER]))
        answer = self._compose(label, chosen, hits, EXTRACTIVE, timings, t0, papers_per_paragraph=2)
        answer.notice = notice
        return answer

    # --- steps ----------------------------------------------------------------------
    def _standalone(self, question: str, history: Sequence[dict[str, str]]) -> tuple[str, str | None]:
        """The question to retrieve with; with an LLM, follow-ups are rewritten by it."""
        users = [m["content"] for m in history if m.get("role") == "user" and m.get("content")]
        if not users:
            return question, None
        if self.llm.configured:
            convo = "\n".join(f"{m['role']}: {m['content'][:500]}" for m in history[-6:])
            try:
                rewritten = self.llm.complete(
                    [{"role": "user", "content": render("condense", history=convo, question=question)}]
                ).strip()
                return (rewritten.splitlines()[0] if rewritten else question), None
            except LLMError as err:
                return self._heuristic_follow_up(
                    question, users
                ), f"{err}; showing the extractive answer instead"
        return self._heuristic_follow_up(question, users), None

    @staticmethod
    def _heuristic_follow_up(question: str, users: list[str]) -> str:
        return f"{users[-1]} {question}" if len(question.split()) <= SHORT_FOLLOW_UP_WORDS else question

    def _rank_sentences(self, query: str, hits: Sequence[PaperHit]) -> tuple[list[_Candidate], np.ndarray]:
        """Every sentence of the evidence, with its cosine similarity to the query."""
        candidates: list[_Candidate] = []
        seen: set[str] = set()
        for i, hit in enumerate(hits):
            for order, sent in enumerate(sentences(_evidence(hit))):
                if sent not in seen and len(sent.split()) >= 4:
                    seen.add(sent)
                    candidates.append(_Candidate(sent, i, order))
        if not candidates:
            return [], np.zeros(0)
        vecs = self.embedder.encode([query] + [c.text for c in candidates])
        self._vecs = vecs[1:]  # kept for the redundancy term of _mmr on the same candidates
        return candidates, vecs[1:] @ vecs[0]

    def _mmr(self, sims: np.ndarray, k: int) -> list[int]:
        """Maximal marginal relevance: relevant sentences that do not repeat each other."""
        lam = self.settings.mmr_lambda
        floor = float(sims.max()) - 0.2
        pool = [i for i in np.argsort(-sims) if sims[i] >= floor]
        chosen: list[int] = []
        while pool and len(chosen) < k:

            def gain(i: int) -> float:
                redundancy = max((float(self._vecs[i] @ self._vecs[j]) for j in chosen), default=0.0)
                return lam * float(sims[i]) - (1 - lam) * redundancy

            best = max(pool, key=gain)
            chosen.append(best)
            pool.remove(best)
        return chosen

    def _extractive(
        self,
        question: str,
        hits: Sequence[PaperHit],
        candidates: list[_Candidate],
        sims: np.ndarray,
        timings: dict[str, float],
        t0: float,
    ) -> Answer:
        picked = [candidates[i] for i in self._mmr(sims, self.settings.answer_sentences)]
        picked.sort(key=lambda c: (c.paper, c.order))  # papers in rank order, sentences in abstract order
        return self._compose(question, picked, hits, EXTRACTIVE, timings, t0)

    def _compose(
        self,
        question: str,
        picked: list[_Candidate],
        hits: Sequence[PaperHit],
        backend: str,
        timings: dict[str, float],
        t0: float,
        papers_per_paragraph: int = 0,
    ) -> Answer:
        """Sentences quoted from abstracts, each citing its paper: supported by construction.

        A paper's first quoted sentence is led by the paper's short name ("G2PTL: ...") when
        none of its quoted sentences says it: abstracts often write "we propose a model" and
        leave the name to the title, and a reader needs to know which method is meant.
        """
        named: set[int] = set()
        texts: list[str] = []
        for c in picked:
            text = c.text
            if c.paper not in named:
                named.add(c.paper)
                name = short_name(hits[c.paper].paper.title)
                mine = " ".join(o.text for o in picked if o.paper == c.paper)
                if name and name.lower() not in mine.lower():
                    text = f"{name}: {text}"
            texts.append(text)
        parsed = [ParsedSentence(t, [c.paper + 1]) for t, c in zip(texts, picked, strict=True)]
        mapping, _ = renumber(parsed, set(range(1, len(hits) + 1)))
        snippets: dict[int, str] = {}
        for c, p in zip(picked, parsed, strict=True):
            snippets.setdefault(p.citations[0], c.text)
        sources = self._sources(hits, mapping, snippets)
        out = [Sentence(text=p.text, citations=p.citations, supported=True) for p in parsed]
        paragraphs: list[list[str]] = []
        papers_seen: list[int] = []
        for c, p in zip(picked, parsed, strict=True):
            if c.paper not in papers_seen:
                papers_seen.append(c.paper)
                if papers_per_paragraph and (len(papers_seen) - 1) % papers_per_paragraph == 0:
                    paragraphs.append([])
            if not paragraphs:
                paragraphs.append([])
            paragraphs[-1].append(with_markers(p.text, p.citations))
        text = "\n\n".join(" ".join(par) for par in paragraphs)
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        return Answer(
            question=question,
            answer=text,
            backend=backend,
            sources=sources,
            sentences=out,
            timings=timings,
            settings_hash=self.settings.settings_hash(),
        )

    def _finish(
        self,
        question: str,
        text: str,
        hits: Sequence[PaperHit],
        backend: str,
        timings: dict[str, float],
        t0: float,
    ) -> Answer:
        """Parse an LLM draft, drop invalid citations, renumber, and verify every sentence."""
        t1 = time.perf_counter()
        paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
        parsed_pars = [parse(p) for p in paragraphs]
        flat = [s for par in parsed_pars for s in par]
        mapping, invalid = renumber(flat, set(range(1, len(hits) + 1)))
        by_new = {new: hits[old - 1] for old, new in mapping.items()}
        sentences_out: list[Sentence] = []
        for s in flat:
            if s.citations:
                verdict = self.judge.supports(
                    s.text, [cited_text(by_new[n].paper.title, by_new[n].chunks) for n in s.citations]
                )
                supported: bool | None = verdict.supported
            else:
                supported = (
                    False
                    if len(s.text.split()) >= UNCITED_CLAIM_WORDS and not LLM_ABSTAINS.search(s.text)
                    else None
                )
            sentences_out.append(Sentence(text=s.text, citations=s.citations, supported=supported))
        keep = {
            id(s)
            for s, o in zip(flat, sentences_out, strict=True)
            if not (self.settings.drop_unsupported and o.supported is False)
        }
        answer_text = "\n\n".join(
            " ".join(with_markers(s.text, s.citations) for s in par if id(s) in keep) for par in parsed_pars
        ).strip()
        abstained = not mapping and bool(LLM_ABSTAINS.search(text))
        sources = self._sources(hits, mapping, {})
        if abstained:
            sources = self._nearest(hits)
        timings["verify_ms"] = (time.perf_counter() - t1) * 1000
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        return Answer(
            question=question,
            answer=answer_text or text.strip(),
            backend=backend,
            abstained=abstained,
            sources=sources,
            sentences=[o for s, o in zip(flat, sentences_out, strict=True) if id(s) in keep],
            timings=timings,
            invalid_citations=invalid,
            settings_hash=self.settings.settings_hash(),
        )

    def _abstain(
        self, question: str, hits: Sequence[PaperHit], timings: dict[str, float], t0: float
    ) -> Answer:
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        return Answer(
            question=question,
            answer=ABSTAIN_TEXT,
            backend=EXTRACTIVE,
            abstained=True,
            sources=self._nearest(hits),
            sentences=[Sentence(text=ABSTAIN_TEXT, citations=[], supported=None)],
            timings=timings,
            settings_hash=self.settings.settings_hash(),
        )

    @staticmethod
    def _nearest(hits: Sequence[PaperHit], n: int = 3) -> list[Source]:
        return [
            Source(
                n=i,
                paper_id=h.paper.id,
                title=h.paper.title,
                date=h.paper.date,
                snippet=h.why[:SNIPPET_CHARS],
            )
            for i, h in enumerate(hits[:n], start=1)
        ]

    @staticmethod
    def _sources(hits: Sequence[PaperHit], mapping: dict[int, int], snippets: dict[int, str]) -> list[Source]:
        out = []
        for old, new in sorted(mapping.items(), key=lambda kv: kv[1]):
            h = hits[old - 1]
            snippet = snippets.get(new) or h.why or _evidence(h)
            out.append(
                Source(
                    n=new,
                    paper_id=h.paper.id,
                    title=h.paper.title,
                    date=h.paper.date,
                    snippet=snippet[:SNIPPET_CHARS],
                )
            )
        return out

    def _paper_hit(self, paper_id: str) -> PaperHit:
        retriever = self.lib.retriever()
        got = retriever.col.get(where={"paper_id": paper_id}, include=["metadatas"], limit=1)
        if not got["ids"]:
            raise RagError(f"no paper with id {paper_id!r} in the index (ids are shown by `rag find --json`)")
        return PaperHit(
            paper=paper_from_metadata(got["metadatas"][0]),
            score=0.0,
            chunks=retriever.paper_chunks(paper_id),
            why="",
        )
