"""The one settings object: defaults, environment, .env, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rag.config import PROJECT_ROOT, Settings, load_settings
from rag.errors import RagError


def test_defaults_work_offline() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.data_dir == PROJECT_ROOT / ".rag"
    assert s.chroma_host is None and s.llm_base_url is None and s.reranker == "none"


def test_environment_and_dotenv(tmp_path, monkeypatch) -> None:
    (tmp_path / ".env").write_text("RAG_CHUNK_SIZE=128\nOPENAI_API_KEY=sk-test\nSOME_OTHER_TOOL=1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_LLM_MODEL", "my-model")
    s = load_settings()
    assert s.chunk_size == 128 and s.llm_model == "my-model"
    assert s.llm_api_key is not None and s.llm_api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(s)


def test_typos_and_bad_values_are_one_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RagError, match="chunk_szie"):
        load_settings(chunk_szie=3)
    (tmp_path / ".env").write_text("RAG_LLM_MODLE=x\n")
    with pytest.raises(RagError, match="llm_modle"):
        load_settings()
    (tmp_path / ".env").write_text("RAG_CHUNK_SIZE=tiny\n")
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli", "status"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "chunk_size" in done.stderr and "Traceback" not in done.stderr


def test_settings_hash_tracks_results_not_secrets() -> None:
    a = Settings(_env_file=None)  # type: ignore[call-arg]
    assert a.settings_hash() == Settings(_env_file=None, llm_api_key="sk-other").settings_hash()  # type: ignore[call-arg]
    assert a.settings_hash() != Settings(_env_file=None, rrf_k=10).settings_hash()  # type: ignore[call-arg]
