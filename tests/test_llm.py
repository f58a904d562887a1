"""`rag.llm.LLM` against a real llama.cpp server, and its failure paths.

Generation is only ever claimed against the real server (`llm_server`). The tiny socket
servers below exist solely for failures a healthy server cannot produce on demand
(silence, garbage, 401, 429, a dropped stream); they test the protocol handling.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator

import pytest

from rag.llm import LLM, LLMError
from tests.fixtures_llm import MODEL_ALIAS, llm_settings
from tests.servers import free_port

pytestmark = [pytest.mark.llm, pytest.mark.timeout(120)]

QUESTION = [
    {"role": "system", "content": "You answer questions about machine learning in one short sentence."},
    {"role": "user", "content": "What is a neural network?"},
]
SECRET = "sk-test-SECRET-4f1c2e9a7b"


# --- tiny scripted servers (failure modes only) ------------------------------------------
Handler = Callable[[socket.socket, "TinyServer"], None]


class TinyServer:
    """A raw-socket HTTP/1.1 listener that runs `handler` for each request it receives."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests = 0
        self.stopped = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                self._read_request(conn)
                with self._lock:
                    self.requests += 1
                self.handler(conn, self)
            except OSError:
                pass

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        return body

    def close(self) -> None:
        self.stopped.set()
        self._sock.close()


def respond(
    status: str, body: bytes | str, content_type: str = "application/json", **headers: str
) -> Handler:
    payload = body.encode() if isinstance(body, str) else body

    def handler(conn: socket.socket, _server: TinyServer) -> None:
        extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
            f"Connection: close\r\n{extra}\r\n"
        )
        conn.sendall(head.encode() + payload)

    return handler


def sse(*events: dict | str) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


def chunk(text: str | None = None, role: str | None = None) -> dict:
    delta = {k: v for k, v in {"content": text, "role": role}.items() if v is not None}
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL_ALIAS,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


def completion(content: str | None) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL_ALIAS,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
        }
    )


@pytest.fixture
def tiny() -> Iterator[Callable[[Handler], TinyServer]]:
    servers: list[TinyServer] = []

    def start(handler: Handler) -> TinyServer:
        servers.append(TinyServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def call(llm: LLM, how: str) -> str:
    if how == "complete":
        return llm.complete(QUESTION)
    return "".join(llm.stream(QUESTION))


def failure(llm: LLM, how: str) -> tuple[LLMError, float]:
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        call(llm, how)
    err = info.value
    assert "\n" not in str(err)
    assert "Traceback" not in str(err)
    return err, time.monotonic() - started


# --- the real server --------------------------------------------------------------------
def test_complete_returns_text(llm_settings_factory):
    llm = LLM(llm_settings_factory(llm_max_tokens=32))
    assert llm.configured
    assert llm.name == f"llm:{MODEL_ALIAS}"
    text = llm.complete(QUESTION)
    assert isinstance(text, str) and text.strip()


def test_stream_yields_deltas(llm_settings_factory):
    llm = LLM(llm_settings_factory(llm_max_tokens=32))
    deltas = list(llm.stream(QUESTION))
    assert deltas and all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas).strip()


def test_stream_stopped_early_is_fine(llm_settings_factory):
    """A consumer that stops reading (user pressed stop) closes the response, no error."""
    stream = LLM(llm_settings_factory(llm_max_tokens=64)).stream(QUESTION)
    assert isinstance(stream, Generator)
    assert isinstance(next(stream), str)
    stream.close()


def test_killed_server_mid_stream(start_llama_server):
    server = start_llama_server()
    # Long, sampled output so the generation is still running when the server dies.
    llm = LLM(llm_settings(server.url, llm_max_tokens=400, llm_temperature=1.0))
    stream = llm.stream([{"role": "user", "content": "Count from 1 to 300, one number per line."}])
    assert isinstance(next(stream), str)
    server.kill()
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        for _ in stream:
            pass
    assert info.value.kind == "dropped", str(info.value)
    assert "dropped" in str(info.value) and f"127.0.0.1:{server.port}" in str(info.value)
    assert time.monotonic() - started < 10


# --- configuration ------------------------------------------------------------------------
def test_unconfigured():
    llm = LLM(llm_settings(None))  # type: ignore[arg-type]
    assert not llm.configured
    with pytest.raises(LLMError, match="RAG_LLM_BASE_URL"):
        llm.complete(QUESTION)
    with pytest.raises(LLMError, match="RAG_LLM_BASE_URL"):
        list(llm.stream(QUESTION))


def test_base_url_without_scheme():
    llm = LLM(llm_settings("localhost:8080"))
    with pytest.raises(LLMError, match="not an http"):
        llm.complete(QUESTION)


# --- failure paths ------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["complete", "stream"])
def test_endpoint_down(how):
    port = free_port()  # nothing listens there
    err, seconds = failure(LLM(llm_settings(f"http://127.0.0.1:{port}/v1")), how)
    assert err.kind == "unreachable"
    assert f"127.0.0.1:{port}" in str(err) and "unreachable (connection refused)" in str(err)
    assert seconds < 5


@pytest.mark.parametrize("how", ["complete", "stream"])
def test_silent_server_times_out(tiny, how):
    server = tiny(lambda conn, srv: srv.stopped.wait(30))  # accepts, reads, never answers
    err, seconds = failure(LLM(llm_settings(server.url, llm_timeout=1, llm_max_retries=0)), how)
    assert err.kind == "timeout"
    assert "within 1 s" in str(err)
    assert seconds < 5


def test_stream_dropped_mid_way(tiny):
    def handler(conn: socket.socket, _srv: TinyServer) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        first = sse(chunk(role="assistant"), chunk("Neural networks"))
        conn.sendall(head + f"{len(first):x}\r\n".encode() + first + b"\r\n")
        time.sleep(0.2)
        # Abort (RST) without the terminating chunk: what a crashed proxy or server does.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    server = tiny(handler)
    stream = LLM(llm_settings(server.url)).stream(QUESTION)
    assert next(stream) == "Neural networks"
    with pytest.raises(LLMError) as info:
        next(stream)
    assert info.value.kind == "dropped"
    assert "dropped mid-answer" in str(info.value)


@pytest.mark.parametrize(
    "content_type, body",
    [("text/html", "<html><body>502 Bad Gateway</body></html>"), ("application/json", "{not json")],
)
def test_garbage_response(tiny, content_type, body):
    server = tiny(respond("200 OK", body, content_type))
    err, _ = failure(LLM(llm_settings(server.url)), "complete")
    assert err.kind == "malformed"
    assert "malformed response" in str(err)


def test_wrong_json_shape(tiny):
    server = tiny(respond("200 OK", json.dumps({"result": "hello"})))
    err, _ = failure(LLM(llm_settings(server.url)), "complete")
    assert err.kind == "malformed"


def test_garbage_stream(tiny):
    server = tiny(respond("200 OK", "data: {not json\n\n", "text/event-stream"))
    err, _ = failure(LLM(llm_settings(server.url)), "stream")
    assert err.kind == "malformed"


@pytest.mark.parametrize("content", [None, "", "   \n"])
def test_empty_answer(tiny, content):
    server = tiny(respond("200 OK", completion(content)))
    err, _ = failure(LLM(llm_settings(server.url)), "complete")
    assert err.kind == "empty"
    assert "empty answer" in str(err)


def test_empty_stream(tiny):
    body = sse(chunk(role="assistant"), chunk(""), "[DONE]")
    server = tiny(respond("200 OK", body, "text/event-stream"))
    err, _ = failure(LLM(llm_settings(server.url)), "stream")
    assert err.kind == "empty"
    assert "empty answer" in str(err)


@pytest.mark.parametrize("how", ["complete", "stream"])
@pytest.mark.parametrize("status", ["401 Unauthorized", "403 Forbidden"])
def test_key_rejected_and_never_shown(tiny, how, status):
    # Servers echo the key they got; the message must still not contain it.
    body = {
        "error": {
            "message": f"Incorrect API key provided: {SECRET}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    server = tiny(respond(status, json.dumps(body)))
    err, _ = failure(LLM(llm_settings(server.url, llm_api_key=SECRET)), how)
    assert err.kind == "auth"
    assert status.split()[0] in str(err) and "API key" in str(err)
    assert SECRET not in str(err) and SECRET[-8:] not in str(err)
    assert server.requests == 1  # a rejected key is not retried


def test_rate_limited_after_retries(tiny):
    body = json.dumps({"error": {"message": "Rate limit reached", "type": "requests", "code": None}})
    # retry-after-ms is what OpenAI sends; it keeps the client's backoff short here.
    server = tiny(respond("429 Too Many Requests", body, retry_after_ms="20"))
    err, seconds = failure(LLM(llm_settings(server.url, llm_max_retries=2)), "complete")
    assert err.kind == "rate_limited"
    assert "429" in str(err) and "2 retries" in str(err)
    assert server.requests == 3
    assert seconds < 5


def test_other_status_shows_server_reason(tiny):
    body = json.dumps({"error": {"message": f"This model's maximum context length is 2048 tokens {SECRET}"}})
    server = tiny(respond("400 Bad Request", body))
    err, _ = failure(LLM(llm_settings(server.url, llm_api_key=SECRET)), "complete")
    assert err.kind == "http"
    assert "HTTP 400" in str(err) and "maximum context length" in str(err)
    assert SECRET not in str(err)


def test_server_errors_are_retried(tiny):
    server = tiny(respond("503 Service Unavailable", json.dumps({"error": {"message": "loading"}})))
    err, _ = failure(LLM(llm_settings(server.url, llm_max_retries=1)), "complete")
    assert "HTTP 503" in str(err)
    assert server.requests == 2


def test_not_found_hints_at_base_url(tiny):
    server = tiny(respond("404 Not Found", json.dumps({"detail": "Not Found"})))
    err, _ = failure(LLM(llm_settings(server.url.removesuffix("/v1"))), "complete")
    assert "HTTP 404" in str(err) and "/v1" in str(err)
