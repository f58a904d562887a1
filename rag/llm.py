"""The one path to a language model: the official `openai` client against any
OpenAI-compatible endpoint (OpenAI, llama.cpp, vLLM, Ollama, LM Studio...).

There is deliberately no branch per vendor: the endpoint's base URL, model name and
key are settings, and everything else is the Chat Completions protocol. Retries on
429/5xx/connection errors are the client's own (exponential backoff with jitter,
bounded by `llm_max_retries`), so they behave the same everywhere.

Every failure becomes an `LLMError` whose message is one line a user can act on and
never contains the API key, so callers can show it as is (the answerer falls back to
an extractive answer and shows it as a notice).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import openai

from rag.config import Settings
from rag.errors import RagError

log = logging.getLogger(__name__)

#: Longest piece of a server's own error message we repeat to the user.
_SERVER_MESSAGE_CHARS = 160


class LLMError(RagError):
    """An LLM call that did not produce an answer.

    `kind` lets callers and tests tell the reasons apart without parsing the message:
    unconfigured, unreachable, timeout, auth, rate_limited, http, malformed, empty,
    dropped.
    """

    def __init__(self, message: str, kind: str = "error") -> None:
        # One line, whatever the server sent: the message goes straight to a status bar.
        super().__init__(" ".join(message.split()))
        self.kind = kind


def _endpoint(base_url: str) -> str:
    """host:port as the user would check it (with curl, a firewall rule or `ss -ltn`)."""
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}"


def _connect_reason(err: Exception) -> str:
    """The OS-level cause in a few words: refused and unresolvable need different fixes."""
    cause = str(err.__cause__ or err).lower()
    if "refused" in cause:
        return "connection refused"
    if "name or service not known" in cause or "nodename nor servname" in cause or "getaddrinfo" in cause:
        return "host name not resolved"
    if "unreachable" in cause:
        return "network unreachable"
    return "connection failed"


class LLM:
    """A configured OpenAI-compatible chat model.

    Cheap to construct: the HTTP client (and its connection pool) is created once here
    and reused for every call, which matters when the judge calls it per sentence.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
        self._key = key
        self._where = _endpoint(settings.llm_base_url) if settings.llm_base_url else ""
        self._client: openai.OpenAI | None = None
        self._url_problem = ""
        if settings.llm_base_url and urlsplit(settings.llm_base_url).scheme not in ("http", "https"):
            # Without a scheme the client would read "localhost:8080" as scheme "localhost".
            self._url_problem = (
                f"LLM base URL {settings.llm_base_url!r} is not an http(s) URL: "
                "set RAG_LLM_BASE_URL like http://localhost:8080/v1"
            )
        elif settings.llm_base_url:
            # Local servers ignore the key but the client insists on one.
            self._client = openai.OpenAI(
                base_url=settings.llm_base_url,
                api_key=key or "not-needed",
                timeout=settings.llm_timeout,
                max_retries=settings.llm_max_retries,
            )

    @property
    def configured(self) -> bool:
        return bool(self.settings.llm_base_url)

    @property
    def name(self) -> str:
        return f"llm:{self.settings.llm_model}"

    # --- calls --------------------------------------------------------------------------
    def complete(self, messages: list[dict[str, str]]) -> str:
        client = self._require_client()
        try:
            response: Any = client.chat.completions.create(**self._request(messages))
        except Exception as err:
            self._raise(err)
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, KeyError, TypeError):
            # Non-JSON bodies come back from the client as a plain str; JSON of the wrong
            # shape as a model with fields missing. Either way there is no answer in it.
            log.debug("malformed completion from %s: %.200r", self._where, response)
            raise LLMError(
                f"LLM endpoint {self._where} sent a malformed response (not an OpenAI chat completion)",
                "malformed",
            ) from None
        if not isinstance(content, str) or not content.strip():
            raise LLMError(
                f"LLM {self.settings.llm_model} at {self._where} returned an empty answer", "empty"
            )
        return content

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Text deltas as the server produces them.

        A generator, so nothing is sent until the caller starts iterating, and the
        response is closed if the caller stops early.
        """
        client = self._require_client()
        try:
            response: Any = client.chat.completions.create(**self._request(messages), stream=True)
        except Exception as err:
            self._raise(err)
        if not isinstance(response, openai.Stream):
            raise LLMError(
                f"LLM endpoint {self._where} did not stream (sent a plain response to stream=True)",
                "malformed",
            )
        produced = False
        with response:
            try:
                for chunk in response:
                    choices = getattr(chunk, "choices", None)
                    if not choices:  # usage-only and keep-alive chunks carry no text
                        continue
                    delta = getattr(choices[0], "delta", None)
                    text = getattr(delta, "content", None)
                    if text:
                        produced = True
                        yield text
            except httpx.TimeoutException:
                raise LLMError(
                    f"LLM stream from {self._where} stalled: no data for {self.settings.llm_timeout:g} s",
                    "timeout",
                ) from None
            except (httpx.HTTPError, openai.APIConnectionError) as err:
                log.debug("stream from %s dropped: %r", self._where, err)
                raise LLMError(
                    f"LLM stream from {self._where} dropped mid-answer (connection lost)", "dropped"
                ) from None
            except (json.JSONDecodeError, ValueError, AttributeError, TypeError) as err:
                log.debug("malformed stream from %s: %r", self._where, err)
                raise LLMError(
                    f"LLM endpoint {self._where} sent a malformed stream (not OpenAI chat chunks)",
                    "malformed",
                ) from None
            except Exception as err:
                self._raise(err)
        if not produced:
            raise LLMError(
                f"LLM {self.settings.llm_model} at {self._where} streamed an empty answer", "empty"
            )

    # --- helpers -------------------------------------------------------------------------
    def _require_client(self) -> openai.OpenAI:
        if self._url_problem:
            raise LLMError(self._url_problem, "unconfigured")
        if self._client is None:
            raise LLMError(
                "no LLM endpoint configured: set RAG_LLM_BASE_URL (and RAG_LLM_MODEL)", "unconfigured"
            )
        return self._client

    def _request(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        # max_tokens (not max_completion_tokens): it is the field every compatible server reads.
        return {
            "model": self.settings.llm_model,
            "messages": messages,
            "max_tokens": self.settings.llm_max_tokens,
            "temperature": self.settings.llm_temperature,
        }

    def _redact(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "***")
        text = " ".join(text.split())
        if len(text) > _SERVER_MESSAGE_CHARS:
            text = text[: _SERVER_MESSAGE_CHARS - 1] + "…"
        return text

    def _server_message(self, err: openai.APIStatusError) -> str:
        body = err.body
        message: Any = None
        if isinstance(body, dict):
            inner = body.get("error", body)
            message = inner.get("message") if isinstance(inner, dict) else inner
            message = message or body.get("detail") or body.get("message")
        elif isinstance(body, str):
            message = body
        return self._redact(str(message)) if message else ""

    def _raise(self, err: Exception) -> NoReturn:
        """Translate whatever the client raised into one actionable line."""
        where, retries = self._where, self.settings.llm_max_retries
        log.debug("LLM call to %s failed: %r", where, err)
        # Order matters: APITimeoutError is an APIConnectionError, the status errors share a base.
        if isinstance(err, openai.APITimeoutError):
            raise LLMError(
                f"LLM endpoint {where} did not answer within {self.settings.llm_timeout:g} s"
                + (f" ({retries} retries)" if retries else ""),
                "timeout",
            ) from None
        if isinstance(err, openai.APIConnectionError):
            raise LLMError(
                f"LLM endpoint {where} is unreachable ({_connect_reason(err)}); is the server running?",
                "unreachable",
            ) from None
        if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
            # The server's own text is left out: some echo (part of) the key back.
            raise LLMError(
                f"LLM endpoint {where} rejected the API key (HTTP {err.status_code}): "
                "check RAG_LLM_API_KEY or OPENAI_API_KEY",
                "auth",
            ) from None
        if isinstance(err, openai.RateLimitError):
            raise LLMError(
                f"LLM endpoint {where} is rate limiting (HTTP 429), still after {retries} retries; "
                "try again later",
                "rate_limited",
            ) from None
        if isinstance(err, openai.APIStatusError):
            detail = self._server_message(err)
            if err.status_code == 404:
                # The usual cause: a base URL without its /v1 (or a model name the server lacks).
                hint = "check that RAG_LLM_BASE_URL ends in /v1 and RAG_LLM_MODEL exists"
                detail = f"{detail}; {hint}" if detail else hint
            raise LLMError(
                f"LLM endpoint {where} answered HTTP {err.status_code}" + (f": {detail}" if detail else ""),
                "http",
            ) from None
        if isinstance(err, openai.APIResponseValidationError | json.JSONDecodeError | ValueError):
            raise LLMError(
                f"LLM endpoint {where} sent a malformed response (not an OpenAI chat completion)",
                "malformed",
            ) from None
        if isinstance(err, openai.APIError):
            detail = self._redact(err.message)
            raise LLMError(f"LLM endpoint {where} failed: {detail}", "http") from None
        if isinstance(err, httpx.HTTPError):
            raise LLMError(f"LLM endpoint {where} failed: {type(err).__name__}", "unreachable") from None
        raise LLMError(f"LLM call to {where} failed unexpectedly: {type(err).__name__}", "error") from None
