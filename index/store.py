"""Opening the Chroma collection: embedded or server, chosen by settings in one place.

The collection's metadata records what made its vectors (embedding model and
chunking settings) and an ingest generation, so that opening it with another
model is an error instead of silent garbage, and so that the BM25 index can tell
when it is out of date.
"""

from __future__ import annotations

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


def client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        try:
            return chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
            )
        except Exception as err:  # chromadb raises bare ValueError/ConnectionError variants
            raise RagError(
                f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({err})"
            ) from err
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


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
    return col


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
