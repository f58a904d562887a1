"""Shared fixtures: real Chroma stores in temporary folders and the real packaged model.

The bundled corpus is indexed once per test session (`corpus_lib`) and shared by the
read-path tests; tests that write get their own empty data directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
for _key in [k for k in os.environ if k.startswith("RAG_") or k == "OPENAI_API_KEY"]:
    del os.environ[_key]  # the developer's own settings must not leak into tests

from rag.config import BUNDLED_CORPUS, Settings  # noqa: E402
from rag.library import Library  # noqa: E402

# Fixtures that other test modules own (the LLM server, the running app).
pytest_plugins = ["tests.fixtures_llm", "tests.fixtures_app"]


@pytest.fixture(scope="session")
def shared_embedder():
    """One loaded model for the whole session: loading it costs seconds."""
    from index.embedding import Embedder

    return Embedder(Settings().embed_model)


def make_library(data_dir: Path, embedder, **overrides) -> Library:
    lib = Library(Settings(_env_file=None, data_dir=data_dir, **overrides))  # type: ignore[call-arg]
    lib.__dict__["embedder"] = embedder  # share the loaded model (cached_property slot)
    return lib


@pytest.fixture(scope="session")
def corpus_lib(tmp_path_factory, shared_embedder) -> Library:
    """The bundled corpus, indexed once (about a minute), shared read-only."""
    lib = make_library(tmp_path_factory.mktemp("corpus"), shared_embedder)
    report = lib.ingest([BUNDLED_CORPUS])
    assert report.papers_unique == 578
    return lib


@pytest.fixture
def empty_lib(tmp_path, shared_embedder) -> Library:
    return make_library(tmp_path / "data", shared_embedder)


@pytest.fixture(scope="session")
def corpus_papers():
    from index.loaders import load_paths
    from index.papers import merge

    return merge(load_paths([BUNDLED_CORPUS]).papers)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_cli(data_dir: Path, *args: str, background: bool = False):
    """`rag ARGS...` in a fresh process against data_dir: what a user at a terminal gets."""
    import subprocess
    import sys

    from rag.config import PROJECT_ROOT

    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    cmd = [sys.executable, "-m", "rag.cli", *args]
    if background:
        return subprocess.Popen(
            cmd, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    return subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
