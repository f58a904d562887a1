"""Hybrid retrieval: dense (Chroma) and BM25 rankings fused at paper level.

Both retrievers rank chunks. Each ranking is first collapsed to papers (a paper
takes the rank of its best chunk), then the paper rankings are fused with weighted
reciprocal rank fusion. Fusing papers rather than chunks keeps a paper with three
mildly matching chunks from crowding out the others, and gives every paper one
place in the list with its best chunks as evidence. This is short enough to write
here; llama-index's QueryFusionRetriever fuses nodes, not papers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

import numpy as np
from chromadb.errors import ChromaError

from index.embedding import Embedder
from index.ingest import date_num, paper_from_metadata
from index.lexical import LexicalIndex, tokenize
from rag.config import Settings
from rag.errors import RagError
from rag.types import Chunk, PaperHit

Mode = Literal["hybrid", "dense", "lexical"]
MAX_QUERY_CHARS = 2000
#: Filtered dense search goes to Chroma as the list of chunk ids the filter keeps (see
#: `Retriever._dense`). Against a Chroma server the list travels with every query, so past this
#: many ids the filter goes to Chroma's `where` instead; the embedded store takes any number
#: (125k ids at 100k papers: 139 ms, against 783 ms through `where`).
FILTER_IDS_MAX = 20_000
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


@lru_cache(maxsize=1)
def _sentence_splitter() -> Callable[[str], list[str]]:
    from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer

    return split_by_sentence_tokenizer()


def sentences(text: str) -> list[str]:
    """Sentences of an abstract (nltk punkt, bundled with llama-index: no download)."""
    return [s.strip() for s in _sentence_splitter()(text) if s.strip()]


@dataclass(frozen=True)
class Filters:
    """Date range (YYYY, YYYY-MM or YYYY-MM-DD, inclusive) and source file name."""

    date_from: str | None = None
    date_to: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and not _DATE.match(value):
                raise RagError(f"{name}={value!r} is not a date: use YYYY, YYYY-MM or YYYY-MM-DD")

    @property
    def bounds(self) -> tuple[int | None, int | None]:
        lo = date_num(self.date_from) if self.date_from else None
        # An upper bound covers its whole year or month: 2021 -> 20219999, 2021-02 -> 20210299.
        hi = int(self.date_to.replace("-", "").ljust(8, "9")) if self.date_to else None
        return lo, hi

    def where(self) -> dict[str, Any] | None:
        """The Chroma `where` clause for these filters (None when there are none)."""
        lo, hi = self.bounds
        clauses: list[dict[str, Any]] = []
        if lo is not None:
            clauses.append({"date_num": {"$gte": lo}})
        if hi is not None:
            clauses.append({"date_num": {"$lte": hi}})
        if self.source:
            clauses.append({"source_names": {"$contains": self.source}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


@dataclass
class _ChunkHit:
    id: str
    paper_id: str
    score: float


class Reranker(Protocol):
    """Reorders the fused papers (for example with a cross-encoder over query and evidence)."""

    def __call__(self, query: str, hits: list[PaperHit]) -> list[PaperHit]: ...


#: Rerankers by the name `Settings.reranker` uses. Only the identity ships: no cross-encoder
#: weights come inside a PyPI package, and nothing may be downloaded at run time.
RERANKERS: dict[str, Reranker] = {"none": lambda query, hits: hits}


def rrf(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Weighted reciprocal rank fusion: sum over rankings of weight / (k + rank)."""
    fused: dict[str, float] = {}
    for ranking, weight in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return fused


def _papers_in_order(hits: list[_ChunkHit]) -> list[str]:
    return list(dict.fromkeys(h.paper_id for h in hits))


def why(query: str, text: str) -> str:
    """The sentence of `text` sharing most query terms: fast, and it shows the user the match."""
    terms = set(tokenize([query])[0])
    best, best_n = "", -1
    for sent in sentences(text):
        n = len(terms & set(tokenize([sent])[0]))
        if n > best_n:
            best, best_n = sent, n
    return best


class Retriever:
    def __init__(self, settings: Settings, embedder: Embedder, col: Any, lexical: LexicalIndex) -> None:
        self.settings = settings
        self.embedder = embedder
        self.col = col
        self.lex = lexical

    def _allowed_ids(self, filters: Filters) -> list[str] | None:
        """The chunk ids the filters keep, from the BM25 copy (which holds every chunk's date and
        sources); None when there is no filter or too many ids to pass as a list."""
        lo, hi = filters.bounds
        mask = self.lex.mask(lo, hi, filters.source)
        if mask is None:
            return None
        rows = np.flatnonzero((mask > 0) & self.lex.live)
        if self.settings.chroma_host and len(rows) > FILTER_IDS_MAX:
            return None
        return [self.lex.ids[i] for i in rows]

    def _dense(self, qvec: list[float], n: int, filters: Filters) -> tuple[list[_ChunkHit], dict[str, Any]]:
        where = filters.where()
        query = {
            "query_embeddings": [qvec],
            "n_results": n,
            "include": ["documents", "metadatas", "distances"],
        }
        got = None
        if where:
            # Chroma evaluates `where` by scanning its metadata tables on every query (a date and
            # source filter cost 472 ms at 100k papers, against 10 ms unfiltered), while a search
            # restricted to ids costs little more than an unfiltered one (82 ms for the whole
            # hybrid query with that filter).
            allowed = self._allowed_ids(filters)
            if allowed is not None and not allowed:
                return [], {}
            if allowed is not None:
                try:
                    got = self.col.query(ids=allowed, **query)
                except ChromaError:  # the BM25 copy names a chunk the collection no longer has
                    got = None
        if got is None:
            got = self.col.query(**query, **({"where": where} if where else {}))
        rows = {}
        hits = []
        for cid, doc, meta, dist in zip(
            got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0], strict=True
        ):
            rows[cid] = (doc, meta)
            hits.append(_ChunkHit(cid, meta["paper_id"], 1.0 - float(dist)))
        return hits, rows

    def _lexical(self, query: str, n: int, filters: Filters) -> list[_ChunkHit]:
        lo, hi = filters.bounds
        mask = self.lex.mask(lo, hi, filters.source)
        return [_ChunkHit(c.id, c.paper_id, s) for c, s in self.lex.search(query, n, mask)]

    def search(
        self, query: str, k: int = 10, filters: Filters | None = None, mode: Mode = "hybrid"
    ) -> tuple[list[PaperHit], dict[str, float]]:
        """Top-k papers for the query, each with its best chunks; plus timings in ms."""
        query = " ".join(query.split())
        if not query:
            raise RagError("the query is empty: type a few words about what you are looking for")
        query = query[:MAX_QUERY_CHARS]  # longer text adds nothing to a 256-token model or to BM25
        filters = filters or Filters()
        n = max(self.settings.candidates, k * 3)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        dense: list[_ChunkHit] = []
        rows: dict[str, Any] = {}
        if mode in ("hybrid", "dense"):
            qvec = self.embedder.encode([query])[0].tolist()
            timings["embed_ms"] = (time.perf_counter() - t0) * 1000
            dense, rows = self._dense(qvec, n, filters)
            timings["dense_ms"] = (time.perf_counter() - t0) * 1000 - timings["embed_ms"]
        t1 = time.perf_counter()
        lexical = self._lexical(query, n, filters) if mode in ("hybrid", "lexical") else []
        timings["lexical_ms"] = (time.perf_counter() - t1) * 1000

        rankings = []
        if dense:
            rankings.append((_papers_in_order(dense), self.settings.weight_dense))
        if lexical:
            rankings.append((_papers_in_order(lexical), self.settings.weight_lexical))
        paper_scores = rrf(rankings, self.settings.rrf_k)
        chunk_scores = rrf(
            [
                ([h.id for h in dense], self.settings.weight_dense),
                ([h.id for h in lexical], self.settings.weight_lexical),
            ],
            self.settings.rrf_k,
        )
        top = sorted(paper_scores, key=lambda p: -paper_scores[p])[:k]
        hits = RERANKERS[self.settings.reranker](
            query, self._hits(query, top, paper_scores, chunk_scores, dense + lexical, rows)
        )
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        return hits, timings

    def _hits(
        self,
        query: str,
        top: list[str],
        paper_scores: dict[str, float],
        chunk_scores: dict[str, float],
        chunk_hits: list[_ChunkHit],
        rows: dict[str, Any],
    ) -> list[PaperHit]:
        evidence: dict[str, list[str]] = {p: [] for p in top}
        for cid in sorted(
            {h.id: h for h in chunk_hits if h.paper_id in evidence}, key=lambda c: -chunk_scores[c]
        ):
            pid = cid.rsplit(":", 1)[0]
            if len(evidence[pid]) < self.settings.evidence_per_paper:
                evidence[pid].append(cid)
        missing = [c for ids in evidence.values() for c in ids if c not in rows]
        if missing:
            got = self.col.get(ids=missing, include=["documents", "metadatas"])
            rows.update(
                {
                    cid: (doc, meta)
                    for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
                }
            )
        out = []
        for pid in top:
            chunks = [
                Chunk(paper_id=pid, position=int(rows[c][1].get("position", 0)), text=rows[c][0])
                for c in evidence[pid]
                if c in rows
            ]
            if not chunks:
                continue
            meta = rows[evidence[pid][0]][1]
            out.append(
                PaperHit(
                    paper=paper_from_metadata(meta),
                    score=round(paper_scores[pid], 6),
                    chunks=chunks,
                    why=why(query, chunks[0].text),
                )
            )
        return out

    def paper_chunks(self, paper_id: str) -> list[Chunk]:
        """All chunks of one paper in order (for summaries of chosen papers and `get_paper`)."""
        got = self.col.get(where={"paper_id": paper_id}, include=["documents", "metadatas"])
        chunks = [
            Chunk(paper_id=paper_id, position=int(m.get("position", 0)), text=d)
            for d, m in zip(got["documents"], got["metadatas"], strict=True)
        ]
        return sorted(chunks, key=lambda c: c.position)
