"""Opening the Chroma collection: embedded or server, chosen by settings in one place.

`RAG_CHROMA_HOST` unset: an embedded store under `RAG_DATA_DIR/chroma`. Set (with
`RAG_CHROMA_PORT`): the collection of a running `chroma run --path DIR --host H --port N`,
through HttpClient. One client per server is kept for the process (creating one costs
round trips), requests that cannot reach the server become a `RagError` naming it, and a
server that stops answering is given up on after `SERVER_TIMEOUT` seconds instead of
hanging the caller.

The collection's metadata records what made its vectors (embedding model and
chunking settings) and an ingest generation, so that opening it with another
model is an error instead of silent garbage, and so that every machine's BM25 copy
can tell when it is out of date.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from rag.config import Settings
from rag.errors import RagError

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

log = logging.getLogger(__name__)

#: Metadata keys on the collection beside the index signature.
GENERATION = "generation"
LAST_INGEST = "last_ingest"
#: Generation of the ingest running now (or interrupted), 0 when none: BM25 copies re-read its chunks.
INGESTING = "ingesting"
#: Papers in the collection after the last ingest (machines that never ingested have no docstore).
PAPERS = "papers"
#: Seconds before a request to a Chroma server is abandoned (connecting: CONNECT_TIMEOUT).
SERVER_TIMEOUT = 300.0
CONNECT_TIMEOUT = 5.0


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


@functools.lru_cache(maxsize=8)
def _http_client(host: str, port: int) -> Any:
    import chromadb
    import httpx

    try:
        c = chromadb.HttpClient(host=host, port=port, settings=_chroma_settings())
        c.heartbeat()
    except Exception as err:  # chromadb raises bare ValueError/ConnectionError variants
        raise RagError(
            f"cannot reach the Chroma server at {host}:{port} ({err}); start it with "
            f"`chroma run --path DIR --host {host} --port {port}`, or unset RAG_CHROMA_HOST "
            f"to use the embedded store"
        ) from err
    session = getattr(getattr(c, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):  # chromadb leaves it without any timeout
        session.timeout = httpx.Timeout(SERVER_TIMEOUT, connect=CONNECT_TIMEOUT)
    return c


def client(settings: Settings) -> Any:
    if settings.chroma_host:
        return _http_client(settings.chroma_host, settings.chroma_port)
    import chromadb

    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=_chroma_settings())


class ServerCollection:
    """A collection on a Chroma server: the same calls, with a lost connection reported as a
    `RagError` that names the server instead of an httpx traceback."""

    def __init__(self, col: Any, where: str) -> None:
        self._col = col
        self._where = where

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._col, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            import httpx

            try:
                return value(*args, **kwargs)
            except httpx.TransportError as err:
                raise RagError(
                    f"lost the connection to the {self._where} during {name} ({type(err).__name__}: {err}); "
                    "is the server still running?"
                ) from err

        return call


def describe(settings: Settings) -> str:
    if settings.chroma_host:
        return f"chroma server {settings.chroma_host}:{settings.chroma_port}"
    return f"chroma embedded {settings.chroma_dir}"


def _check_signature(settings: Settings, metadata: dict[str, Any]) -> None:
    for key, wanted in settings.index_signature.items():
        have = metadata.get(key)
        if have is not None and have != wanted:
            raise RagError(
                f"the index in {describe(settings)} was built with {key}={have!r}, "
                f"but the settings ask for {wanted!r}: set RAG_{key.upper()}={have!r}, "
                f"or rebuild with `rag ingest --rebuild PATH`"
            )


def open_collection(settings: Settings, create: bool) -> Any | None:
    """The collection, checked against the settings; None when it does not exist and create is False."""
    c = client(settings)
    try:
        if create:
            col = c.get_or_create_collection(
                settings.collection,
                metadata={"hnsw:space": "cosine", **settings.index_signature, GENERATION: 0},
                embedding_function=None,  # never Chroma's default: it downloads an ONNX model
            )
        else:
            col = c.get_collection(settings.collection, embedding_function=None)
    except Exception as err:
        if not create and "does not exist" in str(err).lower():
            return None
        if isinstance(err, RagError):
            raise
        raise RagError(f"cannot open the collection in {describe(settings)}: {err}") from err
    _check_signature(settings, col.metadata or {})
    return ServerCollection(col, describe(settings)) if settings.chroma_host else col


def update_metadata(col: Any, **values: Any) -> dict[str, Any]:
    """Merge values into the collection metadata (Chroma's modify replaces it whole)."""
    meta = {k: v for k, v in {**(col.metadata or {}), **values}.items() if not k.startswith("hnsw:")}
    col.modify(metadata=meta)
    return meta


def delete_collection(settings: Settings) -> None:
    c = client(settings)
    try:
        c.delete_collection(settings.collection)
    except Exception as err:  # absent already: nothing to delete
        log.debug("delete_collection: %s", err)
