"""The write path: papers -> llama-index Documents -> chunks -> embeddings -> Chroma.

llama-index's IngestionPipeline does the chunking and the upsert logic; its docstore
remembers each paper's hash, so an unchanged paper is never embedded again and a
changed abstract replaces its chunks. What is added by hand, for crashes and scale:

* The docstore is llama-index's KVDocumentStore on a SQLite key-value store
  (`docstore.sqlite` in the data directory): one transaction per batch of papers,
  lookups by id, nothing loaded or rewritten whole, so a 100k-paper index costs no
  more per batch than a 500-paper one. It holds hashes and source files, not texts.
* A journal in the same file names the papers of the batch being written. The
  pipeline writes vectors first and the docstore second, so a `kill -9` between the
  two leaves at most that batch half-written; the next run deletes exactly those
  papers' chunks and redoes them, without reading the rest of the collection.
* The docstore also records which collection (id and ingest generation) it
  describes. If that is not the collection found (another machine ingested into a
  shared server, the docstore was lost, or it comes from an older version), the
  docstore is rebuilt from the chunks' own metadata, each of which carries its
  paper's hash and chunk count, so nothing is embedded again and half-written
  papers are removed.
* Every chunk is stamped with the ingest generation that wrote it, so the BM25 copy
  of any machine catches up by reading only newer chunks (see `Indexer.lexical`).

Chroma collection metadata written here: `generation` (moves at the start and end of
every ingest; readers compare it), `ingesting` (the generation of a running or
interrupted ingest, 0 when none), `last_ingest` and `papers`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import Document
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, MetadataMode, TransformComponent
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore
from llama_index.core.storage.kvstore.types import DEFAULT_BATCH_SIZE, DEFAULT_COLLECTION, BaseKVStore
from llama_index.vector_stores.chroma import ChromaVectorStore
from pydantic import PrivateAttr

from index import store
from index.diskspace import ensure_room
from index.embedding import Embedder
from index.lexical import LexicalIndex
from index.loaders import load_paths
from index.papers import merge
from rag.config import PROJECT_ROOT, Settings
from rag.errors import RagError
from rag.types import IngestReport, Paper

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
Encode = Callable[[list[str]], np.ndarray]
#: Papers per pipeline run: one docstore transaction, one Chroma write and one call into the
#: model (which sorts the batch's chunks by length, so padding is small). What a crash redoes.
BATCH_PAPERS = 128
#: Chunks per Chroma read when scanning the collection.
PAGE = 5000
#: Metadata kept on the paper but out of the embedded and LLM text (only the title goes in).
_PAPER_KEYS = ["paper_id", "date", "date_num", "url", "authors", "sources", "source_names"]
#: Per-chunk bookkeeping, out of the embedded and LLM text too.
_CHUNK_KEYS = ["position", "n_chunks", "gen", "doc_hash"]


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


def _keep_stored_sources(paper: Paper, stored: list[str] | None) -> Paper:
    """A paper stored earlier from other files that still exist keeps those files as sources."""
    if not stored:
        return paper
    others = [s for s in stored if s not in paper.sources and Path(PROJECT_ROOT, s).exists()]
    return paper.model_copy(update={"sources": paper.sources + others}) if others else paper


def _chunked(items: Sequence[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield list(items[i : i + n])


# --- the docstore's storage ------------------------------------------------------------
class SqliteKVStore(BaseKVStore):
    """llama-index's key-value store interface on one SQLite file.

    Writes join an open transaction that `commit` ends, so a batch of papers is stored
    all or nothing. Extra bulk methods (`get_many`, `keys`, `delete_many`, `clear`)
    serve the indexer's own lookups.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (collection TEXT NOT NULL, key TEXT NOT NULL, "
            "value TEXT NOT NULL, PRIMARY KEY (collection, key)) WITHOUT ROWID"
        )
        self.conn.commit()

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def put(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        self.put_all([(key, val)], collection)

    async def aput(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        self.put(key, val, collection)

    def put_all(
        self,
        kv_pairs: list[tuple[str, dict]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO kv (collection, key, value) VALUES (?, ?, ?)",
            [(collection, k, json.dumps(v)) for k, v in kv_pairs],
        )

    async def aput_all(
        self,
        kv_pairs: list[tuple[str, dict]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.put_all(kv_pairs, collection, batch_size)

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict | None:
        row = self.conn.execute(
            "SELECT value FROM kv WHERE collection = ? AND key = ?", (collection, key)
        ).fetchone()
        return json.loads(row[0]) if row else None

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict | None:
        return self.get(key, collection)

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        rows = self.conn.execute("SELECT key, value FROM kv WHERE collection = ?", (collection,))
        return {k: json.loads(v) for k, v in rows}

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        return self.get_all(collection)

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        cur = self.conn.execute("DELETE FROM kv WHERE collection = ? AND key = ?", (collection, key))
        return cur.rowcount > 0

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return self.delete(key, collection)

    def get_many(self, keys: Sequence[str], collection: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for part in _chunked(keys, 500):
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT key, value FROM kv WHERE collection = ? AND key IN ({marks})", (collection, *part)
            )
            out.update((k, json.loads(v)) for k, v in rows)
        return out

    def keys(self, collection: str) -> list[str]:
        return [k for (k,) in self.conn.execute("SELECT key FROM kv WHERE collection = ?", (collection,))]

    def count(self, collection: str) -> int:
        return int(
            self.conn.execute("SELECT COUNT(*) FROM kv WHERE collection = ?", (collection,)).fetchone()[0]
        )

    def delete_many(self, keys: Iterable[str], collection: str) -> None:
        self.conn.executemany(
            "DELETE FROM kv WHERE collection = ? AND key = ?", [(collection, k) for k in keys]
        )

    def clear(self, collection: str) -> None:
        self.conn.execute("DELETE FROM kv WHERE collection = ?", (collection,))


class _State:
    """The docstore plus the indexer's own records, in one SQLite file."""

    HASHES = "docstore/metadata"  # llama-index's: paper id -> {"doc_hash": ...}
    SOURCES = "papers/sources"  # paper id -> {"sources": [...]}
    PENDING = "ingest/pending"  # the journal: papers of the batch being written
    META = "ingest/state"  # "collection" -> {"id": ..., "generation": ...}

    def __init__(self, path: Path) -> None:
        self.kv = SqliteKVStore(path)
        self.docstore = KVDocumentStore(self.kv)

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        return {k: v.get("doc_hash", "") for k, v in self.kv.get_many(ids, self.HASHES).items()}

    def sources(self, ids: Sequence[str]) -> dict[str, list[str]]:
        return {k: v.get("sources", []) for k, v in self.kv.get_many(ids, self.SOURCES).items()}

    def paper_ids(self) -> list[str]:
        return self.kv.keys(self.HASHES)

    def papers(self) -> int:
        return self.kv.count(self.HASHES)

    def forget(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for collection in (self.HASHES, self.SOURCES, self.PENDING):
            self.kv.delete_many(ids, collection)

    def described(self) -> dict | None:
        return self.kv.get("collection", self.META)

    def describe(self, collection_id: str, generation: int) -> None:
        self.kv.put("collection", {"id": collection_id, "generation": generation}, self.META)
        self.kv.commit()


# --- pipeline components -----------------------------------------------------------------
class _Positions(TransformComponent):
    """Numbers each paper's chunks (position, n_chunks) for evidence order and completeness
    checks, and stamps them with the paper's hash and the ingest generation."""

    generation: int = 0

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        per_paper: dict[str, list[BaseNode]] = defaultdict(list)
        for node in nodes:
            per_paper[node.ref_doc_id or node.id_].append(node)
        for chunks in per_paper.values():
            for i, node in enumerate(chunks):
                node.metadata["position"] = i
                node.metadata["n_chunks"] = len(chunks)
                node.metadata["gen"] = self.generation
                node.metadata["doc_hash"] = node.source_node.hash if node.source_node else ""
                node.excluded_embed_metadata_keys = [*node.excluded_embed_metadata_keys, *_CHUNK_KEYS]
                node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, *_CHUNK_KEYS]
        return nodes


class _Embed(TransformComponent):
    """The embedding step: all chunks of a batch in one call to the model, which sorts them by
    length and pads each 64-text sub-batch only to its own longest text. (llama-index's
    HuggingFaceEmbedding calls the model once per 64 texts in corpus order instead.)"""

    _encode: Encode = PrivateAttr()
    _clock: dict[str, float] = PrivateAttr()

    def __init__(self, encode: Encode, clock: dict[str, float]) -> None:
        super().__init__()
        self._encode = encode
        self._clock = clock

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        if not nodes:
            return nodes
        texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        start = time.perf_counter()
        vectors = self._encode(texts)
        self._clock["embed_s"] += time.perf_counter() - start
        for node, vector in zip(nodes, vectors, strict=True):
            node.embedding = vector.tolist()
        return nodes


class _LeanChroma(ChromaVectorStore):
    """llama-index's Chroma store writing flat chunk metadata only.

    The stock `add` also stores each node serialised as JSON (`_node_content`, with the
    paper's metadata repeated for every relationship) and three copies of the paper id;
    Chroma indexes every string value, so that was about 40% of the store on disk and a
    fifth of its write time. Nothing here reads it back (llama-index itself can still read
    these chunks, through its legacy path). Writes are upserts, so a repeated write can
    never duplicate a chunk; a paper's chunks are deleted by `paper_id`.
    """

    _clock: dict[str, float] = PrivateAttr()

    def __init__(self, col: Any, clock: dict[str, float]) -> None:
        super().__init__(chroma_collection=col)
        self.flat_metadata = False  # list-valued metadata (sources), filtered with `$contains`
        self._clock = clock

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        start = time.perf_counter()
        ids = [n.node_id for n in nodes]
        if nodes:
            self._collection.upsert(
                ids=ids,
                embeddings=np.asarray([n.get_embedding() for n in nodes], dtype=np.float32),
                metadatas=[{k: ("" if v is None else v) for k, v in n.metadata.items()} for n in nodes],
                documents=[n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes],
            )
        self._clock["store_s"] += time.perf_counter() - start
        self._clock["chunks"] += len(nodes)
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        self._collection.delete(where={"paper_id": ref_doc_id})


def _delete_papers(col: Any, ids: Iterable[str]) -> None:
    for part in _chunked(sorted(set(ids)), 200):
        col.delete(where={"paper_id": {"$in": part}})


def _scan(col: Any, include: list[str], where: dict | None = None) -> Iterator[dict[str, Any]]:
    """The collection in pages of PAGE chunks (Chroma caps what one get returns)."""
    offset = 0
    while True:
        got = col.get(include=include, where=where, limit=PAGE, offset=offset)
        if got["ids"]:
            yield got
        if len(got["ids"]) < PAGE:
            return
        offset += PAGE


def _legacy_hash(meta: dict[str, Any]) -> str:
    """The paper hash of a chunk written before chunks carried `doc_hash` (llama-index's node JSON)."""
    try:
        return str(json.loads(meta["_node_content"])["relationships"]["1"]["hash"] or "")
    except (KeyError, TypeError, ValueError):
        return ""


class Indexer:
    """Owns the docstore, the collection and the BM25 copy under one data directory.

    `encode` replaces the model for the chunks only (benchmarks use a cached stand-in);
    queries always go through the embedder.
    """

    def __init__(self, settings: Settings, embedder: Embedder, encode: Encode | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.encode = encode
        self.docstore_path = settings.data_dir / "docstore.sqlite"
        self.legacy_docstore_path = settings.data_dir / "docstore.json"
        self.lexical_dir = settings.data_dir / "bm25"
        self._lex: LexicalIndex | None = None
        #: Where the last ingest spent its time (seconds) and what it wrote: for benchmarks and logs.
        self.timings: dict[str, float] = {}

    # --- docstore -------------------------------------------------------------------
    def _load_docstore(self) -> KVDocumentStore | SimpleDocumentStore:
        """The docstore of this data directory (empty when nothing was ingested from here)."""
        if not self.docstore_path.exists():
            return SimpleDocumentStore()
        return _State(self.docstore_path).docstore

    def paper_count(self, col: Any | None = None) -> int:
        """Papers in the collection, from its metadata: right on any machine, ingesting or not
        (a collection last written before that was recorded falls back to the local docstore)."""
        col = col if col is not None else self.open_collection(create=False)
        if col is None:
            return 0
        recorded = (col.metadata or {}).get(store.PAPERS)
        if recorded is not None:
            return int(recorded)
        return len(self._load_docstore().get_all_document_hashes())

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One ingest at a time per data directory (the lock goes with the process, even on kill -9)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.settings.data_dir / "ingest.lock").open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RagError(
                    f"another ingest is running on {self.settings.data_dir}; wait for it to finish"
                ) from None
            yield

    # --- recovery -------------------------------------------------------------------
    def _recover(self, col: Any, state: _State) -> str:
        """Make the docstore and the collection agree; returns how ('journal' or 'rebuilt')."""
        generation = int((col.metadata or {}).get(store.GENERATION, 0))
        if state.described() == {"id": str(col.id), "generation": generation}:
            pending = state.kv.keys(state.PENDING)
            if pending:
                log.info("redoing %d papers of an interrupted batch", len(pending))
                _delete_papers(col, pending)
                state.forget(pending)
                state.kv.commit()
            return "journal"
        self._rebuild_docstore(col, state)
        return "rebuilt"

    def _rebuild_docstore(self, col: Any, state: _State) -> None:
        """The docstore from the chunks' metadata: each complete paper keeps its vectors;
        partly written papers are removed from the collection."""
        log.info("rebuilding the docstore from %s", store.describe(self.settings))
        counts: Counter[str] = Counter()
        expected: dict[str, int] = {}
        hashes: dict[str, str] = {}
        sources: dict[str, list[str]] = {}
        for page in _scan(col, ["metadatas"]):
            for meta in page["metadatas"]:
                pid = meta["paper_id"]
                counts[pid] += 1
                expected[pid] = int(meta.get("n_chunks") or 0)
                hashes[pid] = str(meta.get("doc_hash") or "") or _legacy_hash(meta)
                sources[pid] = list(meta.get("sources") or [])
        complete = {pid for pid, n in counts.items() if n == expected[pid] and hashes[pid]}
        broken = counts.keys() - complete
        if broken:
            log.info("removing %d partly written papers", len(broken))
            _delete_papers(col, broken)
        for collection in (state.HASHES, state.SOURCES, state.PENDING, state.docstore._node_collection):
            state.kv.clear(collection)
        state.kv.put_all([(p, {"doc_hash": hashes[p]}) for p in complete], state.HASHES)
        state.kv.put_all([(p, {"sources": sources[p]}) for p in complete], state.SOURCES)
        state.kv.commit()
        self.legacy_docstore_path.unlink(missing_ok=True)

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
        with self._exclusive():
            if rebuild:
                self.reset()
            loaded = load_paths(paths)
            if not loaded.files:
                raise RagError(
                    "nothing to ingest: "
                    + ("; ".join(loaded.problems) or "no corpus files in the given paths")
                )
            state = _State(self.docstore_path)
            try:
                return self._ingest(loaded, prune, progress, state, start)
            finally:
                state.kv.close()

    def _ingest(
        self, loaded: Any, prune: bool, progress: Progress | None, state: _State, start: float
    ) -> IngestReport:
        clock: dict[str, float] = defaultdict(float)
        col = self.open_collection(create=True)
        assert col is not None  # created when missing
        t = time.perf_counter()
        clock["recovery"] = 0.0 if self._recover(col, state) == "journal" else 1.0
        clock["recover_s"] = time.perf_counter() - t

        generation = int((col.metadata or {}).get(store.GENERATION, 0)) + 1
        store.update_metadata(col, **{store.GENERATION: generation, store.INGESTING: generation})
        state.describe(str(col.id), generation)

        papers = merge(
            [p.model_copy(update={"sources": [_source_label(s) for s in p.sources]}) for p in loaded.papers]
        )
        ids = [p.id for p in papers]
        stored_sources = state.sources(ids)
        documents = [paper_to_document(_keep_stored_sources(p, stored_sources.get(p.id))) for p in papers]
        stored_hashes = state.hashes(ids)
        todo = [d for d in documents if stored_hashes.get(d.id_) != d.hash]
        added = sum(1 for d in todo if d.id_ not in stored_hashes)

        pipeline = IngestionPipeline(
            transformations=[
                SentenceSplitter(
                    chunk_size=self.settings.chunk_size,
                    chunk_overlap=self.settings.chunk_overlap,
                    tokenizer=self.embedder.count_tokens,
                    id_func=lambda i, doc: f"{doc.id_}:{i}",
                ),
                _Positions(generation=generation),
                _Embed(self.encode or self._encode_chunks, clock),
            ],
            docstore=state.docstore,
            vector_store=_LeanChroma(col, clock),
            docstore_strategy=DocstoreStrategy.UPSERTS,
            disable_cache=True,
        )
        if progress:
            progress(0, len(todo), "embedding")
        t = time.perf_counter()
        for i in range(0, len(todo), BATCH_PAPERS):
            if not self.settings.chroma_host:
                ensure_room(self.settings.data_dir, self.settings.min_free_mb)
            batch = todo[i : i + BATCH_PAPERS]
            batch_ids = [d.id_ for d in batch]
            state.kv.put_all([(p, {}) for p in batch_ids], state.PENDING)
            state.kv.commit()  # journal first: these papers may now be half-written
            pipeline.run(documents=batch, store_doc_text=False)
            state.kv.put_all([(d.id_, {"sources": d.metadata["sources"]}) for d in batch], state.SOURCES)
            state.kv.delete_many(batch_ids, state.PENDING)
            state.kv.commit()
            if progress:
                progress(min(i + BATCH_PAPERS, len(todo)), len(todo), "embedding")
        clock["pipeline_s"] = time.perf_counter() - t

        removed = self._prune(col, state, loaded.files, set(ids)) if prune else 0
        store.update_metadata(
            col,
            **{
                store.GENERATION: generation + 1,
                store.INGESTING: 0,
                store.LAST_INGEST: datetime.now(UTC).isoformat(timespec="seconds"),
                store.PAPERS: state.papers(),
            },
        )
        state.describe(str(col.id), generation + 1)
        t = time.perf_counter()
        self.lexical(col)
        clock["bm25_s"] = time.perf_counter() - t
        self.timings = dict(clock)
        return IngestReport(
            files=len(loaded.files),
            papers_read=len(loaded.papers),
            papers_unique=len(papers),
            added=added,
            updated=len(todo) - added,
            unchanged=len(documents) - len(todo),
            removed=removed,
            chunks_embedded=int(clock["chunks"]),
            problems=loaded.problems,
            seconds=round(time.perf_counter() - start, 2),
        )

    def _encode_chunks(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts, batch_size=self.settings.embed_batch_size)

    def _prune(self, col: Any, state: _State, files: list[Path], seen: set[str]) -> int:
        """Remove papers all of whose sources are gone: deleted files, or files read now without them."""
        read_now = {_source_label(str(f)) for f in files}
        candidates = [pid for pid in state.paper_ids() if pid not in seen]
        stored = state.sources(candidates)
        gone = [
            pid
            for pid in candidates
            if not [s for s in stored.get(pid, []) if s not in read_now and Path(PROJECT_ROOT, s).exists()]
        ]
        if gone:
            state.kv.put_all([(p, {}) for p in gone], state.PENDING)
            state.kv.commit()
            _delete_papers(col, gone)
            state.forget(gone)
            state.kv.commit()
        return len(gone)

    def reset(self) -> None:
        """Forget everything built: collection, docstore and BM25 copy."""
        store.delete_collection(self.settings)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.docstore_path}{suffix}").unlink(missing_ok=True)
        self.legacy_docstore_path.unlink(missing_ok=True)
        (self.lexical_dir / "index.npz").unlink(missing_ok=True)
        self._lex = None

    # --- the lexical copy -----------------------------------------------------------
    def lexical(self, col: Any, generation: int | None = None, force: bool = False) -> LexicalIndex:
        """The BM25 copy for the collection's current generation, brought up to date when stale.

        A copy from an earlier generation reads only the chunks stamped with a newer
        ingest generation than it has seen, tombstones the chunks that are gone, and
        saves itself; a missing copy (a machine that never ingested, a new data
        directory) is built from the whole collection once. The update goes to a clone,
        so searches running meanwhile keep a consistent index.
        """
        meta = col.metadata or {}
        current = int(meta.get(store.GENERATION, 0)) if generation is None else generation
        lex = None if force else (self._lex or LexicalIndex.load(self.lexical_dir))
        if lex is not None and lex.collection_id != str(col.id):
            lex = None
        if lex is not None and lex.generation == current:
            self._lex = lex
            return lex
        ingesting = int(meta.get(store.INGESTING, 0) or 0)
        lex = lex.clone() if lex is not None else LexicalIndex(collection_id=str(col.id))
        fresh = not lex.ids
        for page in _scan(
            col, ["documents", "metadatas"], None if fresh else {"gen": {"$gte": lex.watermark}}
        ):
            self._add_chunks(lex, page)
        if len(lex) != col.count():
            self._sync_ids(col, lex)
        if fresh:
            lex.merge()
        else:
            lex.maybe_merge()
        lex.generation = current
        # Chunks of an ingest still running (or interrupted) are read again next time.
        lex.watermark = ingesting or current
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        lex.save(self.lexical_dir)
        self._lex = lex
        return lex

    @staticmethod
    def _add_chunks(lex: LexicalIndex, got: dict[str, Any]) -> None:
        metas = got["metadatas"]
        lex.upsert(
            [f"{m['title']}\n{d}" for d, m in zip(got["documents"], metas, strict=True)],
            got["ids"],
            [m["paper_id"] for m in metas],
            [int(m.get("date_num") or 0) for m in metas],
            [list(m.get("source_names") or []) for m in metas],
            merge=False,
        )

    def _sync_ids(self, col: Any, lex: LexicalIndex) -> None:
        """Chunk ids differ from the collection's (papers removed or shrunk, or a read raced an
        ingest): drop the ones gone, fetch the ones missing."""
        remote: set[str] = set()
        for page in _scan(col, []):
            remote.update(page["ids"])
        gone = [cid for cid in lex.row_of if cid not in remote]
        lex.delete(gone)
        missing = [cid for cid in remote if cid not in lex.row_of]
        for part in _chunked(missing, PAGE):
            self._add_chunks(lex, col.get(ids=part, include=["documents", "metadatas"]))
        log.info("BM25 copy: %d chunks dropped, %d fetched by id", len(gone), len(missing))
