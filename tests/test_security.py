"""Security defaults: the app is private unless told otherwise; secrets stay out of output."""

from __future__ import annotations

import os
import subprocess
import sys

from rag.config import PROJECT_ROOT, Settings
from rag.webapp import access


def settings(**kw) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


def test_loopback_needs_no_password() -> None:
    assert access("127.0.0.1", settings(), open_anyway=False) == (None, None)
    assert access("localhost", settings(), open_anyway=False) == (None, None)


def test_other_addresses_need_a_password_or_an_explicit_open() -> None:
    auth, refusal = access("0.0.0.0", settings(), open_anyway=False)
    assert auth is None and refusal and "RAG_APP_PASSWORD" in refusal
    auth, refusal = access("0.0.0.0", settings(app_password="s3cret"), open_anyway=False)
    assert auth == ("researcher", "s3cret") and refusal is None
    assert access("0.0.0.0", settings(), open_anyway=True) == (None, None)


def test_app_refuses_a_public_address_without_password_before_loading_anything(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "app.py", "--host", "0.0.0.0", "--port", "7999"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0" in done.stderr
    assert not (tmp_path / "chroma").exists()  # nothing indexed, nothing served


def test_keys_never_show_in_settings_output() -> None:
    s = settings(llm_api_key="sk-very-secret", app_password="hunter2")
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "sk-very-secret" not in text and "hunter2" not in text
