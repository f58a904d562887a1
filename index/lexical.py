"""The BM25 side of retrieval (bm25s), derived from the Chroma collection.

The lexical index is rebuilt from what the collection holds rather than updated
alongside it, so the two can never disagree about which chunks exist: a stale
index (its recorded generation differs from the collection's) is simply rebuilt,
which takes well under a second for the sample and a few seconds at 100k papers.
It lives under the local data directory, also in server mode: each app instance
keeps its own copy and rebuilds it when the shared collection's generation moves.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

log = logging.getLogger(__name__)

_stemmer = Stemmer.Stemmer("english")


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


class LexicalIndex:
    def __init__(self, bm25: bm25s.BM25, chunks: list[ChunkMeta], generation: int) -> None:
        self.bm25 = bm25
        self.chunks = chunks
        self.generation = generation
        self._date_nums = np.array([c.date_num for c in chunks], dtype=np.int64)

    @classmethod
    def build(cls, texts: list[str], chunks: list[ChunkMeta], generation: int) -> LexicalIndex:
        bm25 = bm25s.BM25()
        if texts:
            bm25.index(tokenize(texts), show_progress=False)
        return cls(bm25, chunks, generation)

    def save(self, folder: Path) -> None:
        """Written beside, then swapped in, so a crash never leaves half an index."""
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.chunks:
            self.bm25.save(str(tmp))
        meta = {"generation": self.generation, "chunks": [c.__dict__ for c in self.chunks]}
        (tmp / "chunks.json").write_text(json.dumps(meta))
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        try:
            meta = json.loads((folder / "chunks.json").read_text())
            chunks = [ChunkMeta(**c) for c in meta["chunks"]]
            bm25 = bm25s.BM25.load(str(folder)) if chunks else bm25s.BM25()
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.info("no usable BM25 index in %s (%s); it will be rebuilt", folder, err)
            return None
        return cls(bm25, chunks, int(meta["generation"]))

    def mask(self, date_from: int | None, date_to: int | None, source: str | None) -> np.ndarray | None:
        """The same filters that go to Chroma's `where`, as a 0/1 weight per chunk."""
        if date_from is None and date_to is None and source is None:
            return None
        keep = np.ones(len(self.chunks), dtype=bool)
        if date_from is not None:
            keep &= self._date_nums >= date_from
        if date_to is not None:
            keep &= self._date_nums <= date_to
        if source is not None:
            keep &= np.array([source in c.sources for c in self.chunks], dtype=bool)
        return keep.astype(np.float32)

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[ChunkMeta, float]]:
        if not self.chunks:
            return []
        tokens = tokenize([query])[0]
        ids = self.bm25.get_tokens_ids(tokens)
        if not ids:
            return []
        scores = self.bm25.get_scores_from_ids(ids, weight_mask=mask)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.chunks[i], float(scores[i])) for i in top if scores[i] > 0]
