"""Fixtures for the running Gradio app (owned by the browser tests).

`app_url` starts `python app.py` as a subprocess on a free loopback port over the
session's indexed corpus (so it does not index again); `tiny_app_url` starts a
second one over a three-paper index built here (seconds), which the write-path and
escaping tests may change freely, with an LLM endpoint that is down (so its answers
are the extractive fallback with a notice). `browser` is headless Debian Chromium driven by
Playwright (which cannot download its own browsers here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.config import PROJECT_ROOT
from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
START_TIMEOUT = 180.0

#: Papers whose text tries to inject markup: the app must show it as text.
HOSTILE_PAPERS: list[dict[str, Any]] = [
    {
        "title": "Quantum gardening <script>window.__xss = 'title'</script> for tomatoes",
        "abstract": (
            "Quantum gardening improves tomato yield by forty percent in greenhouse trials. "
            "<script>window.__xss = 'abstract'</script> "
            "Watering robots guided by [a helpful link](javascript:window.__xss='link') raise tomato yield further. "
            '<img src="x" onerror="window.__xss=\'img\'"> Soil sensors detect **drought** before the tomato plants wilt.'
        ),
        "authors": ["Ada <b>Bold</b>", "Grace Hopper"],
        "date": "2024-05-01",
    },
    {
        "title": "Sparse attention for long documents",
        "abstract": (
            "We propose a sparse attention pattern that scales linearly with document length. "
            "It matches dense attention on long-document question answering while using far less memory."
        ),
        "date": "2023-11-20",
    },
    {
        "title": "Contrastive pretraining for molecule property prediction",
        "abstract": (
            "Contrastive pretraining on unlabeled molecules improves property prediction. "
            "The learned representations transfer to toxicity and solubility benchmarks."
        ),
        "date": "2022-03-02",
    },
]


class AppProcess:
    """`python app.py` over one data directory, on a free loopback port."""

    def __init__(self, data_dir: Path, log_path: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"}
        env.update(RAG_DATA_DIR=str(data_dir), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        env.update({f"RAG_{k.upper()}": v for k, v in settings.items()})
        self._log = log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Seconds from spawn until the app answers HTTP; fails with the app's log otherwise."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"app exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        pytest.fail(f"app did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def _keep_log(app: AppProcess, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(app.log_path, ARTIFACTS / f"app-{name}.log")


@pytest.fixture(scope="session")
def app_url(corpus_lib, tmp_path_factory) -> Iterator[str]:
    """The app over the session's indexed bundled corpus (it finds the index: no re-indexing)."""
    app = AppProcess(corpus_lib.settings.data_dir, tmp_path_factory.mktemp("app-logs") / "corpus.log")
    try:
        app.wait_ready()
        yield app.url
    finally:
        app.stop()
        _keep_log(app, "corpus")


@pytest.fixture(scope="session")
def tiny_app_url(shared_embedder, tmp_path_factory) -> Iterator[str]:
    """The app over its own three-paper index (hostile markup included), configured with an
    LLM endpoint where nothing listens, so every answer is the extractive fallback with its
    one-line notice. Tests may add papers to it."""
    from tests.conftest import make_library, write_jsonl

    root = tmp_path_factory.mktemp("tiny-app")
    tiny = make_library(root / "data", shared_embedder)
    tiny.ingest([write_jsonl(root / "hostile.jsonl", HOSTILE_PAPERS)])
    app = AppProcess(
        root / "data",
        root / "tiny.log",
        llm_base_url=f"http://127.0.0.1:{free_port()}/v1",
        llm_max_retries="0",
        llm_timeout="5",
    )
    try:
        app.wait_ready()
        yield app.url
    finally:
        app.stop()
        _keep_log(app, "tiny")


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    """A fresh page that records (and blocks) every request leaving the machine, and any dialog."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.external_requests = []  # type: ignore[attr-defined]
    page.dialogs = []  # type: ignore[attr-defined]

    def guard(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            page.external_requests.append(url)  # type: ignore[attr-defined]
            route.abort()

    page.route("**/*", guard)

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.set_default_timeout(30_000)
    yield page
    context.close()
