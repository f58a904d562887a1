"""The BM25 side of retrieval, derived from the Chroma collection and updated in place.

Chunks are tokenised with bm25s (stop words, Snowball stems); scores follow bm25s'
default Lucene variant (k1=1.5, b=0.75), computed at query time from stored term
frequencies instead of precomputed per chunk. That is what makes the index
incremental: adding, replacing or removing chunks changes document frequencies and
the average length for every chunk, which a precomputed score matrix (bm25s' own
index) can only follow by being rebuilt from scratch, a minute or more at 100k papers.
Here new chunks become a new posting segment, removed ones are tombstoned, and
segments are merged (dropping the dead rows) once the small ones add up.

The index is a copy of what the collection holds, never a second source of truth: it
records the collection generation it reflects, and `index.ingest.Indexer.lexical`
brings it up to date from the collection (chunks stamped with a newer ingest
generation, plus removals). It lives in one file under the local data directory, also
in server mode: each machine keeps its own copy and refreshes it when the shared
collection's generation moves.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

log = logging.getLogger(__name__)

_stemmer = Stemmer.Stemmer("english")
K1 = 1.5
B = 0.75
FORMAT = 2
FILE = "index.npz"
#: Merge the posting segments when the newer ones hold this share of the postings, or there are
#: more than MAX_SEGMENTS of them, or this share of the rows is dead.
MERGE_SHARE = 0.25
MAX_SEGMENTS = 8
DEAD_SHARE = 0.25


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stop words removed, Snowball-stemmed: the same for chunks and queries."""
    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer, return_ids=False, show_progress=False)  # type: ignore[return-value]


@dataclass
class ChunkMeta:
    """What BM25 needs per chunk: its id, its paper, and the fields filters look at."""

    id: str
    paper_id: str
    date_num: int
    sources: list[str]


@dataclass
class _Segment:
    """Postings of rows [start, start + n_rows) by term: CSC arrays, rows local to the segment."""

    start: int
    n_rows: int
    indptr: np.ndarray  # int64, n_terms + 1
    rows: np.ndarray  # int32
    tf: np.ndarray  # uint16

    @property
    def n_terms(self) -> int:
        return len(self.indptr) - 1


def _json_bytes(value: object) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)


class LexicalIndex:
    def __init__(self, generation: int = 0, watermark: int = 0, collection_id: str = "") -> None:
        #: The collection generation this copy reflects (compared by `rag.library.Library`).
        self.generation = generation
        #: Chunks stamped with an ingest generation >= watermark are read again on refresh.
        self.watermark = watermark
        self.collection_id = collection_id
        self.vocab: dict[str, int] = {}
        self.ids: list[str] = []
        self.paper_ids: list[str] = []
        self.row_of: dict[str, int] = {}
        self.date_nums = np.zeros(0, dtype=np.int64)
        self.lengths = np.zeros(0, dtype=np.float32)
        self.live = np.zeros(0, dtype=bool)
        self.source_names: list[str] = []
        self._source_code: dict[str, int] = {}
        self.source_ptr = np.zeros(1, dtype=np.int64)
        self.source_idx = np.zeros(0, dtype=np.int32)
        self.segments: list[_Segment] = []
        self._stats: tuple[int, float] | None = None
        self._source_rows: dict[int, np.ndarray] = {}

    # --- building and updating ---------------------------------------------------------
    @classmethod
    def build(cls, texts: list[str], chunks: list[ChunkMeta], generation: int) -> LexicalIndex:
        index = cls(generation)
        index.upsert(
            texts,
            [c.id for c in chunks],
            [c.paper_id for c in chunks],
            [c.date_num for c in chunks],
            [c.sources for c in chunks],
        )
        return index

    def clone(self) -> LexicalIndex:
        """A copy that can be updated while searches keep using this one (arrays are never
        written in place, except `live`, which is copied here)."""
        other = copy.copy(self)
        other.vocab = dict(self.vocab)
        other.ids = list(self.ids)
        other.paper_ids = list(self.paper_ids)
        other.row_of = dict(self.row_of)
        other.live = self.live.copy()
        other.source_names = list(self.source_names)
        other._source_code = dict(self._source_code)
        other.segments = list(self.segments)
        other._source_rows = {}
        return other

    def upsert(
        self,
        texts: Sequence[str],
        ids: Sequence[str],
        paper_ids: Sequence[str],
        date_nums: Sequence[int],
        sources: Sequence[Sequence[str]],
        merge: bool = True,
    ) -> None:
        """Add chunks; a chunk whose id is already here replaces the old one."""
        if not ids:
            return
        self.delete([i for i in ids if i in self.row_of])
        start = len(self.ids)
        n = len(ids)
        tokenized = bm25s.tokenize(
            list(texts), stopwords="en", stemmer=_stemmer, return_ids=True, show_progress=False
        )
        local_to_global = np.zeros(len(tokenized.vocab), dtype=np.int64)
        for token, local in tokenized.vocab.items():
            local_to_global[local] = self.vocab.setdefault(token, len(self.vocab))
        lengths = np.fromiter((len(doc) for doc in tokenized.ids), dtype=np.int64, count=n)
        flat = np.fromiter(
            (t for doc in tokenized.ids for t in doc), dtype=np.int64, count=int(lengths.sum())
        )
        terms = local_to_global[flat]
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        n_terms = len(self.vocab)
        # Term-major order gives the CSC layout directly; unique pairs count term frequencies.
        pairs, tf = np.unique(terms * n + rows, return_counts=True)
        term_of, row_of = np.divmod(pairs, n)
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_of, minlength=n_terms), out=indptr[1:])
        self.segments.append(
            _Segment(start, n, indptr, row_of.astype(np.int32), np.minimum(tf, 65535).astype(np.uint16))
        )

        for offset, cid in enumerate(ids):
            self.row_of[cid] = start + offset
        self.ids.extend(ids)
        self.paper_ids.extend(paper_ids)
        self.date_nums = np.concatenate([self.date_nums, np.asarray(date_nums, dtype=np.int64)])
        self.lengths = np.concatenate([self.lengths, lengths.astype(np.float32)])
        self.live = np.concatenate([self.live, np.ones(n, dtype=bool)])
        codes = [self._source_code.setdefault(s, len(self._source_code)) for names in sources for s in names]
        self.source_names = list(self._source_code)
        self.source_idx = np.concatenate([self.source_idx, np.asarray(codes, dtype=np.int32)])
        counts = np.fromiter((len(names) for names in sources), dtype=np.int64, count=n)
        self.source_ptr = np.concatenate([self.source_ptr, self.source_ptr[-1] + np.cumsum(counts)])
        self._changed()
        if merge:
            self.maybe_merge()

    def delete(self, ids: Sequence[str]) -> int:
        """Tombstone chunks by id; returns how many were here."""
        rows = [self.row_of.pop(i) for i in ids if i in self.row_of]
        if rows:
            self.live[np.asarray(rows)] = False
            self._changed()
        return len(rows)

    def _changed(self) -> None:
        self._stats = None
        self._source_rows = {}

    def maybe_merge(self) -> None:
        newer = sum(len(s.rows) for s in self.segments[1:])
        base = len(self.segments[0].rows) if self.segments else 0
        dead = len(self.live) - int(self.live.sum())
        if (
            len(self.segments) > MAX_SEGMENTS
            or (len(self.segments) > 1 and newer > MERGE_SHARE * base)
            or dead > DEAD_SHARE * max(len(self.live), 1)
        ):
            self.merge()

    def merge(self) -> None:
        """One segment over the live rows only (rows are renumbered)."""
        keep = np.flatnonzero(self.live)
        new_row = np.full(len(self.live), -1, dtype=np.int64)
        new_row[keep] = np.arange(len(keep))
        n_terms = len(self.vocab)
        terms_parts, rows_parts, tf_parts = [], [], []
        for seg in self.segments:
            counts = np.diff(seg.indptr)
            terms = np.repeat(np.arange(seg.n_terms, dtype=np.int64), counts)
            rows = new_row[seg.rows.astype(np.int64) + seg.start]
            alive = rows >= 0
            terms_parts.append(terms[alive])
            rows_parts.append(rows[alive])
            tf_parts.append(seg.tf[alive])
        terms = np.concatenate(terms_parts) if terms_parts else np.zeros(0, dtype=np.int64)
        rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, dtype=np.int64)
        tf = np.concatenate(tf_parts) if tf_parts else np.zeros(0, dtype=np.uint16)
        order = np.lexsort((rows, terms))
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=n_terms), out=indptr[1:])
        self.segments = (
            [_Segment(0, len(keep), indptr, rows[order].astype(np.int32), tf[order])] if len(keep) else []
        )

        src_counts = np.diff(self.source_ptr)
        src_keep = np.repeat(self.live, src_counts)
        self.source_idx = self.source_idx[src_keep]
        self.source_ptr = np.concatenate([[0], np.cumsum(src_counts[keep])]).astype(np.int64)
        self.ids = [self.ids[i] for i in keep]
        self.paper_ids = [self.paper_ids[i] for i in keep]
        self.row_of = {cid: i for i, cid in enumerate(self.ids)}
        self.date_nums = self.date_nums[keep]
        self.lengths = self.lengths[keep]
        self.live = np.ones(len(keep), dtype=bool)
        self._changed()

    # --- reading -----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.live.sum())

    @property
    def chunks(self) -> list[ChunkMeta]:
        """Every live chunk (for checks and tests; searching never builds this list)."""
        return [self._meta(int(i)) for i in np.flatnonzero(self.live)]

    def _meta(self, row: int) -> ChunkMeta:
        names = self.source_idx[self.source_ptr[row] : self.source_ptr[row + 1]]
        return ChunkMeta(
            id=self.ids[row],
            paper_id=self.paper_ids[row],
            date_num=int(self.date_nums[row]),
            sources=[self.source_names[c] for c in names],
        )

    def _rows_with_source(self, source: str) -> np.ndarray:
        code = self._source_code.get(source)
        if code is None:
            return np.zeros(0, dtype=np.int64)
        if code not in self._source_rows:
            entries = np.flatnonzero(self.source_idx == code)
            self._source_rows[code] = np.searchsorted(self.source_ptr, entries, side="right") - 1
        return self._source_rows[code]

    def mask(self, date_from: int | None, date_to: int | None, source: str | None) -> np.ndarray | None:
        """The same filters that go to Chroma's `where`, as a 0/1 weight per chunk."""
        if date_from is None and date_to is None and source is None:
            return None
        keep = np.ones(len(self.live), dtype=bool)
        if date_from is not None:
            keep &= self.date_nums >= date_from
        if date_to is not None:
            keep &= self.date_nums <= date_to
        if source is not None:
            has = np.zeros(len(self.live), dtype=bool)
            has[self._rows_with_source(source)] = True
            keep &= has
        return keep.astype(np.float32)

    def _collection_stats(self) -> tuple[int, float]:
        if self._stats is None:
            n = int(self.live.sum())
            avg = float(self.lengths[self.live].mean()) if n else 1.0
            self._stats = (n, avg or 1.0)
        return self._stats

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 (Lucene variant) of every row for the query's terms, repeats counted as bm25s does."""
        scores = np.zeros(len(self.live), dtype=np.float32)
        n_docs, avg_len = self._collection_stats()
        for term in query_terms:
            t = self.vocab.get(term)
            if t is None:
                continue
            rows_parts, tf_parts = [], []
            for seg in self.segments:
                if t < seg.n_terms and seg.indptr[t + 1] > seg.indptr[t]:
                    lo, hi = seg.indptr[t], seg.indptr[t + 1]
                    rows_parts.append(seg.rows[lo:hi].astype(np.int64) + seg.start)
                    tf_parts.append(seg.tf[lo:hi])
            if not rows_parts:
                continue
            rows = np.concatenate(rows_parts)
            tf = np.concatenate(tf_parts).astype(np.float32)
            alive = self.live[rows]
            df = int(alive.sum())
            if not df:
                continue
            idf = np.float32(np.log(1 + (n_docs - df + 0.5) / (df + 0.5)))
            tfc = tf / (K1 * ((1 - B) + B * self.lengths[rows] / avg_len) + tf)
            scores[rows] += idf * tfc * alive
        return scores

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[ChunkMeta, float]]:
        """The k best chunks with a positive score; ties broken by chunk id, so the order does
        not depend on the order chunks were added in."""
        if not len(self.live) or k < 1:
            return []
        scores = self.scores(tokenize([query])[0])
        if mask is not None:
            scores *= mask
        positive = np.flatnonzero(scores > 0)
        if not len(positive):
            return []
        if len(positive) > k:
            kth = np.partition(scores[positive], len(positive) - k)[len(positive) - k]
            positive = positive[scores[positive] >= kth]
        ids = [self.ids[i] for i in positive]
        order = sorted(range(len(positive)), key=lambda j: (-scores[positive[j]], ids[j]))[:k]
        return [(self._meta(int(positive[j])), float(scores[positive[j]])) for j in order]

    # --- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """One file, written beside and swapped in: a reader sees the old or the new index,
        and a crash never leaves half of one."""
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "meta": _json_bytes(
                {
                    "format": FORMAT,
                    "generation": self.generation,
                    "watermark": self.watermark,
                    "collection_id": self.collection_id,
                    "segments": [[s.start, s.n_rows] for s in self.segments],
                }
            ),
            "vocab": _json_bytes(list(self.vocab)),
            "ids": _json_bytes(self.ids),
            "paper_ids": _json_bytes(self.paper_ids),
            "source_names": _json_bytes(self.source_names),
            "date_nums": self.date_nums,
            "lengths": self.lengths,
            "live": self.live,
            "source_ptr": self.source_ptr,
            "source_idx": self.source_idx,
        }
        for i, seg in enumerate(self.segments):
            arrays[f"indptr{i}"] = seg.indptr
            arrays[f"rows{i}"] = seg.rows
            arrays[f"tf{i}"] = seg.tf
        tmp = folder / f".{FILE}.{os.getpid()}.tmp"
        with tmp.open("wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, folder / FILE)
        for stale in folder.iterdir():  # files of the earlier format (a bm25s folder)
            if stale.name != FILE and not stale.name.startswith("."):
                stale.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        try:
            with np.load(folder / FILE) as data:
                meta = json.loads(data["meta"].tobytes())
                if meta.get("format") != FORMAT:
                    raise ValueError(f"format {meta.get('format')}")
                index = cls(int(meta["generation"]), int(meta["watermark"]), str(meta["collection_id"]))
                index.vocab = {t: i for i, t in enumerate(json.loads(data["vocab"].tobytes()))}
                index.ids = json.loads(data["ids"].tobytes())
                index.paper_ids = json.loads(data["paper_ids"].tobytes())
                index.source_names = json.loads(data["source_names"].tobytes())
                index._source_code = {s: i for i, s in enumerate(index.source_names)}
                index.date_nums = data["date_nums"]
                index.lengths = data["lengths"]
                index.live = data["live"]
                index.source_ptr = data["source_ptr"]
                index.source_idx = data["source_idx"]
                index.segments = [
                    _Segment(start, n, data[f"indptr{i}"], data[f"rows{i}"], data[f"tf{i}"])
                    for i, (start, n) in enumerate(meta["segments"])
                ]
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.info("no usable BM25 index in %s (%s); it will be built from the collection", folder, err)
            return None
        index.row_of = {cid: i for i, cid in enumerate(index.ids) if index.live[i]}
        return index
