"""`Library`: the one entry point. The CLI, the app, the eval harness and the MCP server
call it; none of them talks to Chroma, BM25 or the LLM directly.

Models load once per Library and stay loaded; the BM25 copy is reloaded only when
the collection's ingest generation moves (another process ingested).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from index import store
from index.embedding import Embedder
from index.ingest import Indexer, Progress
from rag.config import BUNDLED_CORPUS, Settings, load_settings
from rag.errors import RagError
from rag.retrieve import Filters, Mode, Retriever
from rag.types import Answer, FindResult, IngestReport, Paper, Status

log = logging.getLogger(__name__)


class Library:
    """A collection of papers you can ingest into, search, question and summarise.

    >>> lib = Library(data_dir="/tmp/my-papers")
    >>> lib.ingest(["data/hf-daily-papers"])
    >>> lib.find("sharpness-aware minimization", k=5).papers[0].paper.title
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings.model_copy(update=overrides) if settings else load_settings(**overrides)
        self._lock = threading.Lock()
        self._retriever: Retriever | None = None

    # --- shared resources -------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.embed_model, self.settings.embed_batch_size)

    @cached_property
    def indexer(self) -> Indexer:
        return Indexer(self.settings, self.embedder)

    def _collection(self) -> Any:
        col = store.open_collection(self.settings, create=False)
        if col is None or col.count() == 0:
            raise RagError(
                f"no papers indexed in {store.describe(self.settings)}: run `rag ingest data/hf-daily-papers` first"
            )
        return col

    def retriever(self) -> Retriever:
        """The retriever over the current index, refreshed when another ingest changed it."""
        with self._lock:
            col = self._collection()
            generation = int((col.metadata or {}).get(store.GENERATION, 0))
            if self._retriever is None or self._retriever.lex.generation != generation:
                lexical = self.indexer.lexical(col, generation)
                self._retriever = Retriever(self.settings, self.embedder, col, lexical)
            return self._retriever

    # --- write path -------------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[str | Path],
        prune: bool = False,
        rebuild: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport:
        with self._lock:
            self._retriever = None
            return self.indexer.ingest(paths, prune=prune, rebuild=rebuild, progress=progress)

    def ensure_index(self, progress: Progress | None = None) -> IngestReport | None:
        """Build the index from the bundled corpus when there is none (first start of the app)."""
        col = store.open_collection(self.settings, create=False)
        if col is not None and col.count() > 0:
            return None
        return self.ingest([BUNDLED_CORPUS], progress=progress)

    def status(self) -> Status:
        col = store.open_collection(self.settings, create=False)
        meta = (col.metadata or {}) if col is not None else {}
        chunks = col.count() if col is not None else 0
        papers = len(self.indexer._load_docstore().get_all_document_hashes()) if chunks else 0
        return Status(
            papers=papers,
            chunks=chunks,
            embed_model=str(meta.get("embed_model", self.settings.embed_model)),
            chunk_size=int(meta.get("chunk_size", self.settings.chunk_size)),
            store=store.describe(self.settings),
            data_dir=str(self.settings.data_dir),
            last_ingest=meta.get(store.LAST_INGEST),
        )

    # --- read path --------------------------------------------------------------------
    def find(
        self,
        query: str,
        k: int = 10,
        date_from: str | None = None,
        date_to: str | None = None,
        source: str | None = None,
        mode: Mode = "hybrid",
    ) -> FindResult:
        if k < 1:
            raise RagError(f"k={k}: ask for at least one paper")
        hits, timings = self.retriever().search(query, k, Filters(date_from, date_to, source), mode)
        return FindResult(query=query, papers=hits, timings=timings)

    def ask(
        self,
        question: str,
        history: Sequence[dict[str, str]] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> Answer:
        from rag.answer import Answerer

        return Answerer(self).ask(question, history or [], Filters(date_from, date_to))

    def ask_stream(
        self,
        question: str,
        history: Sequence[dict[str, str]] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> Iterator[str | Answer]:
        """Text deltas as they are generated, then the verified Answer last."""
        from rag.answer import Answerer

        return Answerer(self).ask_stream(question, history or [], Filters(date_from, date_to))

    def summarize(
        self,
        topic: str | None = None,
        paper_ids: Sequence[str] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> Answer:
        from rag.answer import Answerer

        return Answerer(self).summarize(topic, list(paper_ids or []), Filters(date_from, date_to))

    def get_paper(self, paper_id: str) -> Paper:
        """One indexed paper by id, with its whole abstract put back together from its chunks."""
        from index.ingest import paper_from_metadata

        paper_id = (paper_id or "").strip()
        if not paper_id:
            raise RagError("the paper id is empty (ids are shown by `rag find --json`)")
        retriever = self.retriever()
        got = retriever.col.get(where={"paper_id": paper_id}, include=["metadatas"], limit=1)
        if not got["ids"]:
            raise RagError(f"no paper with id {paper_id!r} in the index (ids are shown by `rag find --json`)")
        # Consecutive chunks overlap by up to `chunk_overlap` word pieces: keep the overlap once.
        abstract = ""
        for chunk in retriever.paper_chunks(paper_id):
            text = chunk.text.strip()
            overlap = next(
                (n for n in range(min(len(abstract), len(text)), 9, -1) if abstract.endswith(text[:n])), 0
            )
            abstract = f"{abstract} {text[overlap:]}".strip() if not overlap else abstract + text[overlap:]
        return paper_from_metadata(got["metadatas"][0], abstract)
