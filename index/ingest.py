"""The write path: papers -> llama-index Documents -> chunks -> embeddings -> Chroma.

llama-index's IngestionPipeline does the chunking, embedding and upsert logic; its
docstore remembers each paper's hash, so an unchanged paper is never embedded
again and a changed abstract replaces its chunks. Two things are added by hand:

* The pipeline runs in batches with the docstore saved atomically after each, which
  gives the progress bar and bounds what a crash can lose to one batch.
* Before each run the docstore and the collection are reconciled (a paper counts as
  stored only when all of its chunks are in Chroma). The pipeline writes vectors
  first and the docstore second, so a `kill -9` between the two would otherwise
  leave orphans or half-written papers; reconciliation makes any interrupted run
  resume cleanly, without duplicates, on the next call.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llama_index.core import Document
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, TransformComponent
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.vector_stores.chroma import ChromaVectorStore

from index import store
from index.diskspace import ensure_room
from index.embedding import Embedder
from index.lexical import ChunkMeta, LexicalIndex
from index.loaders import load_paths
from index.papers import merge
from rag.config import PROJECT_ROOT, Settings
from rag.errors import RagError
from rag.types import IngestReport, Paper

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
BATCH_PAPERS = 64
#: The docstore is one JSON file: saving it after every batch would cost O(n^2) at 100k papers.
#: Saving every few seconds bounds both that cost and what a crash can lose (re-done next run).
DOCSTORE_SAVE_SECONDS = 10.0
#: Metadata kept on the paper but out of the embedded and LLM text (only the title goes in).
_PAPER_KEYS = ["paper_id", "date", "date_num", "url", "authors", "sources", "source_names"]


def date_num(date: str | None) -> int:
    """2021-02-16 -> 20210216, 2021 -> 20210000, unknown -> 0: Chroma compares only numbers."""
    if not date:
        return 0
    digits = date.replace("-", "")
    return int(digits.ljust(8, "0")) if digits.isdigit() else 0


def _source_label(path: str) -> str:
    """Paths inside the project are stored relative to it, so a moved clone re-embeds nothing."""
    p = Path(path).resolve()
    return str(p.relative_to(PROJECT_ROOT)) if p.is_relative_to(PROJECT_ROOT) else str(p)


def paper_to_document(paper: Paper) -> Document:
    meta: dict[str, Any] = {
        "title": paper.title,
        "paper_id": paper.id,
        "date": paper.date or "",
        "date_num": date_num(paper.date),
        "url": paper.url or "",
        "authors": "; ".join(paper.authors),
        "sources": paper.sources,
        "source_names": sorted({Path(s).name for s in paper.sources}),
        **{f"x_{k}": v for k, v in sorted(paper.extra.items()) if k != "line"},
    }
    hidden = [k for k in meta if k != "title"]
    return Document(
        id_=paper.id,
        text=paper.abstract,
        metadata=meta,
        excluded_embed_metadata_keys=hidden,
        excluded_llm_metadata_keys=hidden,
    )


def paper_from_metadata(meta: dict[str, Any], abstract: str = "") -> Paper:
    """Inverse of `paper_to_document` for the fields a chunk or stored document carries."""
    return Paper(
        id=meta["paper_id"],
        title=meta["title"],
        abstract=abstract,
        authors=[a for a in str(meta.get("authors") or "").split("; ") if a],
        date=meta.get("date") or None,
        url=meta.get("url") or None,
        sources=list(meta.get("sources") or []),
        extra={k[2:]: str(v) for k, v in meta.items() if k.startswith("x_")},
    )


def _keep_stored_sources(paper: Paper, old: Document | None) -> Paper:
    """A paper stored earlier from other files that still exist keeps those files as sources."""
    if old is None:
        return paper
    others = [
        s
        for s in old.metadata.get("sources") or []
        if s not in paper.sources and Path(PROJECT_ROOT, s).exists()
    ]
    return paper.model_copy(update={"sources": paper.sources + others}) if others else paper


class _Positions(TransformComponent):
    """Numbers each paper's chunks (position, n_chunks): evidence order, and completeness checks."""

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        per_paper: dict[str, list[BaseNode]] = defaultdict(list)
        for node in nodes:
            per_paper[node.ref_doc_id or node.id_].append(node)
        for chunks in per_paper.values():
            for i, node in enumerate(chunks):
                node.metadata["position"] = i
                node.metadata["n_chunks"] = len(chunks)
                node.excluded_embed_metadata_keys = [
                    *node.excluded_embed_metadata_keys,
                    "position",
                    "n_chunks",
                ]
                node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, "position", "n_chunks"]
        return nodes


def _vector_store(col: Any) -> ChromaVectorStore:
    """llama-index's Chroma store, allowed list-valued metadata (sources), which Chroma 1.x filters
    with `$contains`; the integration has no constructor argument for it."""
    vs = ChromaVectorStore(chroma_collection=col)
    vs.flat_metadata = False
    return vs


class Indexer:
    """Owns the docstore, the collection and the BM25 copy under one data directory."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.docstore_path = settings.data_dir / "docstore.json"
        self.lexical_dir = settings.data_dir / "bm25"

    # --- docstore -------------------------------------------------------------------
    def _load_docstore(self) -> SimpleDocumentStore:
        if self.docstore_path.exists():
            try:
                return SimpleDocumentStore.from_persist_path(str(self.docstore_path))
            except ValueError as err:
                log.warning(
                    "docstore %s unreadable (%s); rebuilding it from the store", self.docstore_path, err
                )
        return SimpleDocumentStore()

    def _save_docstore(self, docstore: SimpleDocumentStore) -> None:
        tmp = self.docstore_path.with_suffix(".json.tmp")
        docstore.persist(persist_path=str(tmp))
        os.replace(tmp, self.docstore_path)

    # --- the collection -------------------------------------------------------------
    def _all_chunks(self, col: Any) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Every chunk's id, text and metadata, read in pages (Chroma caps one get)."""
        ids: list[str] = []
        docs: list[str] = []
        metas: list[dict[str, Any]] = []
        page = 5000
        for offset in range(0, col.count(), page):
            got = col.get(include=["documents", "metadatas"], limit=page, offset=offset)
            ids += got["ids"]
            docs += got["documents"]
            metas += got["metadatas"]
        return ids, docs, metas

    def _reconcile(self, col: Any, docstore: SimpleDocumentStore) -> None:
        """Make the docstore and the collection agree after any interruption."""
        _, _, metas = self._all_chunks(col)
        counts = Counter(m["paper_id"] for m in metas)
        expected = {m["paper_id"]: m.get("n_chunks", 0) for m in metas}
        complete = {pid for pid, n in counts.items() if n == expected[pid]}
        for pid in counts.keys() - complete:
            log.info("removing partly written paper %s", pid)
            col.delete(where={"paper_id": pid})
        for pid in list(docstore.get_all_document_hashes().values()):
            if pid not in complete:
                docstore.delete_document(pid, raise_error=False)
        known = set(docstore.get_all_document_hashes().values())
        for pid in complete - known:
            col.delete(where={"paper_id": pid})  # vectors written, docstore not: redo the paper

    def open_collection(self, create: bool) -> Any | None:
        return store.open_collection(self.settings, create=create)

    # --- ingest ---------------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[Path | str],
        prune: bool = False,
        rebuild: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport:
        start = time.perf_counter()
        if rebuild:
            self.reset()
        loaded = load_paths(paths)
        if not loaded.files:
            raise RagError(
                "nothing to ingest: " + ("; ".join(loaded.problems) or "no corpus files in the given paths")
            )
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        col = self.open_collection(create=True)
        meta = store.update_metadata(
            col, **{store.GENERATION: int((col.metadata or {}).get(store.GENERATION, 0)) + 1}
        )
        docstore = self._load_docstore()
        self._reconcile(col, docstore)

        stored = {pid: docstore.get_document(pid) for pid in set(docstore.get_all_document_hashes().values())}
        papers = merge(
            [p.model_copy(update={"sources": [_source_label(s) for s in p.sources]}) for p in loaded.papers]
        )
        documents = [paper_to_document(_keep_stored_sources(p, stored.get(p.id))) for p in papers]

        todo = [d for d in documents if docstore.get_document_hash(d.id_) != d.hash]
        added = sum(1 for d in todo if d.id_ not in stored)
        pipeline = IngestionPipeline(
            transformations=[
                SentenceSplitter(
                    chunk_size=self.settings.chunk_size,
                    chunk_overlap=self.settings.chunk_overlap,
                    tokenizer=self.embedder.count_tokens,
                    id_func=lambda i, doc: f"{doc.id_}:{i}",
                ),
                _Positions(),
                self.embedder.llama,
            ],
            docstore=docstore,
            vector_store=_vector_store(col),
            docstore_strategy=DocstoreStrategy.UPSERTS,
            disable_cache=True,
        )
        embedded = 0
        saved = time.perf_counter()
        if progress:
            progress(0, len(todo), "embedding")
        for i in range(0, len(todo), BATCH_PAPERS):
            if not self.settings.chroma_host:
                ensure_room(self.settings.data_dir, self.settings.min_free_mb)
            batch = todo[i : i + BATCH_PAPERS]
            for d in batch:
                if docstore.get_document_hash(d.id_) is None:
                    col.delete(where={"paper_id": d.id_})  # leftovers of an interrupted run
            embedded += len(pipeline.run(documents=batch))
            if time.perf_counter() - saved > DOCSTORE_SAVE_SECONDS:
                self._save_docstore(docstore)
                saved = time.perf_counter()
            if progress:
                progress(min(i + BATCH_PAPERS, len(todo)), len(todo), "embedding")

        removed = self._prune(col, docstore, loaded.files, {p.id for p in papers}) if prune else 0
        self._save_docstore(docstore)
        store.update_metadata(col, **{store.LAST_INGEST: datetime.now(UTC).isoformat(timespec="seconds")})
        self.lexical(col, generation=int(meta[store.GENERATION]), force=True)
        return IngestReport(
            files=len(loaded.files),
            papers_read=len(loaded.papers),
            papers_unique=len(papers),
            added=added,
            updated=len(todo) - added,
            unchanged=len(documents) - len(todo),
            removed=removed,
            chunks_embedded=embedded,
            problems=loaded.problems,
            seconds=round(time.perf_counter() - start, 2),
        )

    def _prune(self, col: Any, docstore: SimpleDocumentStore, files: list[Path], seen: set[str]) -> int:
        """Remove papers all of whose sources are gone: deleted files, or files read now without them."""
        read_now = {_source_label(str(f)) for f in files}
        removed = 0
        for pid in set(docstore.get_all_document_hashes().values()) - seen:
            doc = docstore.get_document(pid)
            sources = doc.metadata.get("sources") or []
            alive = [s for s in sources if s not in read_now and Path(PROJECT_ROOT, s).exists()]
            if not alive:
                col.delete(where={"paper_id": pid})
                docstore.delete_document(pid, raise_error=False)
                removed += 1
        return removed

    def reset(self) -> None:
        """Forget everything built: collection, docstore and BM25 copy."""
        store.delete_collection(self.settings)
        self.docstore_path.unlink(missing_ok=True)
        shutil.rmtree(self.lexical_dir, ignore_errors=True)

    # --- the lexical copy -----------------------------------------------------------
    def lexical(self, col: Any, generation: int | None = None, force: bool = False) -> LexicalIndex:
        """The BM25 index for the collection's current generation, rebuilt when stale."""
        if generation is None:
            generation = int((col.metadata or {}).get(store.GENERATION, 0))
        if not force:
            current = LexicalIndex.load(self.lexical_dir)
            if current is not None and current.generation == generation:
                return current
        ids, docs, metas = self._all_chunks(col)
        chunks = [
            ChunkMeta(
                id=i,
                paper_id=m["paper_id"],
                date_num=int(m.get("date_num") or 0),
                sources=list(m.get("source_names") or []),
            )
            for i, m in zip(ids, metas, strict=True)
        ]
        texts = [f"{m['title']}\n{d}" for d, m in zip(docs, metas, strict=True)]
        index = LexicalIndex.build(texts, chunks, generation)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        index.save(self.lexical_dir)
        return index
