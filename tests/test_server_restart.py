"""Server mode: the Chroma server is killed and restarted while a Library keeps querying.

While the server is down every query fails quickly with a one-line `RagError` that names
the server (never a raw chromadb/httpx exception, never a hang); once the server is back on
the same port and path, the SAME Library object answers again, without being rebuilt.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pytest

from rag.errors import RagError
from tests.conftest import make_library, write_jsonl
from tests.servers import chroma_server, free_port
from tests.test_server_mode import records

#: A query against a dead server must fail within this many seconds (connection refused is instant;
#: the store's connect timeout is 5 s).
DOWN_BOUND = 20.0
PAPERS = 20


def bounded(fn: Callable[[], Any], seconds: float = DOWN_BOUND) -> tuple[Any, BaseException | None, float]:
    """(result, exception, elapsed) of fn() run in a worker thread; fails the test if it hangs."""
    pool = ThreadPoolExecutor(max_workers=1)
    t0 = time.monotonic()
    future = pool.submit(fn)
    try:
        try:
            return future.result(timeout=seconds), None, time.monotonic() - t0
        except FutureTimeout:
            pytest.fail(f"the call did not return within {seconds:.0f} s while the Chroma server was down")
        except BaseException as err:  # noqa: BLE001 - the caller inspects it
            return None, err, time.monotonic() - t0
    finally:
        pool.shutdown(wait=False)


def assert_clear_error(err: BaseException | None, port: int) -> str:
    assert err is not None, "a query against a dead Chroma server returned instead of failing"
    assert isinstance(err, RagError), f"raw {type(err).__module__}.{type(err).__name__} leaked: {err}"
    message = str(err)
    assert "\n" not in message, f"not one line: {message!r}"
    assert f"127.0.0.1:{port}" in message and "chroma server" in message.lower(), message
    return message


def test_server_restart_during_queries(tmp_path, shared_embedder, corpus_papers) -> None:
    port = free_port()
    server_path = tmp_path / "server"
    lib = make_library(tmp_path / "client", shared_embedder, chroma_host="127.0.0.1", chroma_port=port)
    targets = corpus_papers[:PAPERS]
    probes = [targets[i] for i in (1, 7, 13, 19)]

    def top_ids() -> list[str]:
        return [lib.find(p.title, k=1).papers[0].paper.id for p in probes]

    with chroma_server(server_path, port) as (_, proc):
        report = lib.ingest([write_jsonl(tmp_path / "papers.jsonl", records(corpus_papers, 0, PAPERS))])
        assert report.added == PAPERS
        before = top_ids()
        assert before == [p.id for p in probes]
        for mode in ("dense", "lexical"):
            assert lib.find(probes[0].title, k=1, mode=mode).papers[0].paper.id == probes[0].id

        # A run of queries in the background while the server is killed and restarted.
        outcomes: list[tuple[float, str, str]] = []  # (time, "ok" | "rag" | "raw", detail)
        stop = threading.Event()

        def query_loop() -> None:
            i = 0
            while not stop.is_set():
                probe = probes[i % len(probes)]
                i += 1
                try:
                    got = lib.find(probe.title, k=1).papers[0].paper.id
                    outcomes.append((time.monotonic(), "ok", "" if got == probe.id else f"wrong: {got}"))
                except RagError as err:
                    outcomes.append((time.monotonic(), "rag", str(err)))
                except Exception as err:  # noqa: BLE001 - recorded, asserted below
                    outcomes.append((time.monotonic(), "raw", f"{type(err).__name__}: {err}"))
                time.sleep(0.05)

        runner = threading.Thread(target=query_loop, daemon=True)
        runner.start()
        time.sleep(1.0)
        assert any(kind == "ok" for _, kind, _ in outcomes), outcomes[:3]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.monotonic()

    # Down: each query fails fast with a clear one-line message naming the server.
    for mode in ("hybrid", "dense", "lexical"):
        _, err, took = bounded(lambda m=mode: lib.find(probes[0].title, k=1, mode=m))  # type: ignore[misc]
        message = assert_clear_error(err, port)
        assert took < DOWN_BOUND, f"{mode}: {took:.1f} s"
    _, err, _ = bounded(lib.status)
    assert_clear_error(err, port)
    print(f"\nwhile down: {message}")
    time.sleep(1.0)  # the background loop sees the dead server too

    with chroma_server(server_path, port):
        restarted_at = time.monotonic()
        # The same Library object answers again: no new Library, no restart of anything but Chroma.
        deadline = time.monotonic() + DOWN_BOUND
        while True:
            got, err, _ = bounded(top_ids)
            if err is None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert err is None, f"the same Library did not recover after the restart: {type(err).__name__}: {err}"
        assert got == before
        assert lib.find(probes[2].title, k=1, mode="dense").papers[0].paper.id == probes[2].id
        assert lib.status().papers == PAPERS
        time.sleep(1.0)
        stop.set()
        runner.join(timeout=DOWN_BOUND)
        assert not runner.is_alive(), "a background query hung"

    kinds = {k: sum(1 for _, kind, _ in outcomes if kind == k) for k in ("ok", "rag", "raw")}
    print(f"background queries: {kinds}; distinct errors: {sorted({d for _, k, d in outcomes if k != 'ok'})}")
    raw = [o for o in outcomes if o[1] == "raw"]
    assert not raw, f"raw exceptions escaped during the restart: {raw[:3]}"
    wrong = [o for o in outcomes if o[1] == "ok" and o[2]]
    assert not wrong, wrong[:3]
    down = [o for o in outcomes if o[1] == "rag"]
    assert down, "no query ran while the server was down"
    for _, _, detail in down:
        assert "\n" not in detail and f"127.0.0.1:{port}" in detail, detail
    assert any(kind == "ok" and t > restarted_at for t, kind, _ in outcomes), (
        "no query succeeded after restart"
    )
    assert all(kind == "ok" for t, kind, _ in outcomes if t < killed_at - 0.5)
