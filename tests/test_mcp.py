"""`rag mcp`: a real server subprocess over stdio, driven by the official SDK's own client.

The server is started once for the module against the session's corpus index, every
call is made in one client session, and the tests check what came back: the tool list,
each tool's result against the in-process Library (the same JSON shapes as the CLI's
`--json`), and bad arguments that must come back as tool errors while the server
keeps answering.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from index.loaders import load_file
from rag.cli import find_json
from rag.errors import RagError
from rag.mcp_server import build_server
from rag.types import Answer, Paper

QUERY = "sharpness-aware minimization"
QUESTION = "How does sharpness-aware minimization improve generalization?"
SAM_TITLE = "Sharpness-Aware Minimization for Efficiently Improving Generalization"
#: Calls that must each come back as a tool error (is_error), with these words in the message.
BAD_CALLS: dict[str, tuple[str, dict[str, Any], str]] = {
    "empty-query": ("find_papers", {"query": ""}, "at least 1 character"),
    "blank-query": ("find_papers", {"query": "   \n "}, "the query is empty"),
    "huge-query": ("find_papers", {"query": "minimization " * 20_000}, "at most 2000 characters"),
    "k-zero": ("find_papers", {"query": QUERY, "k": 0}, "greater than or equal to 1"),
    "k-not-a-number": ("find_papers", {"query": QUERY, "k": "many"}, "valid integer"),
    "k-huge": ("find_papers", {"query": QUERY, "k": 10_000}, "less than or equal to 50"),
    "bad-date": ("find_papers", {"query": QUERY, "date_from": "last week"}, "is not a date"),
    "missing-query": ("find_papers", {}, "Field required"),
    "empty-question": ("ask", {"question": " "}, "the question is empty"),
    "huge-question": ("ask", {"question": "why " * 5_000}, "at most 2000 characters"),
    "bad-history": ("ask", {"question": QUESTION, "history": [{"role": "robot"}]}, "history"),
    "summarize-nothing": ("summarize", {}, "give a topic or at least one paper_id"),
    "unknown-paper": ("get_paper", {"paper_id": "0000000000000000"}, "no paper with id"),
    "unknown-summary-paper": ("summarize", {"paper_ids": ["nope"]}, "no paper with id 'nope'"),
    "no-bibtex-ids": ("get_bibtex", {"paper_ids": []}, "at least 1 item"),
    "unknown-tool": ("delete_everything", {}, "Unknown tool"),
}


def in_own_thread(async_fn: Any) -> Any:
    """anyio.run in a fresh thread: the browser tests' Playwright keeps an event loop running in the
    main thread for the whole session, and a second loop cannot run there."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, async_fn).result()


def _server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"}
    env.update(
        RAG_DATA_DIR=str(data_dir),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
    )
    return env


@pytest.fixture(scope="module")
def mcp_session(corpus_lib, tmp_path_factory) -> dict[str, Any]:
    """One server process, one client session: every call's result, recorded for the tests."""
    workdir = tmp_path_factory.mktemp("mcp")  # no .env of the developer's in the server's cwd
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rag.cli", "mcp"],
        env=_server_env(corpus_lib.settings.data_dir),
        cwd=str(workdir),
    )
    log_path = workdir / "server-stderr.log"
    got: dict[str, Any] = {"bad": {}}

    async def scenario() -> None:
        with log_path.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=600) as client:
                got["tools"] = (await client.list_tools()).tools
                got["find"] = await client.call_tool("find_papers", {"query": QUERY, "k": 5})
                got["ask"] = await client.call_tool("ask", {"question": QUESTION})
                pid = got["find"].structured_content["papers"][0]["paper_id"]
                got["paper_id"] = pid
                got["get_paper"] = await client.call_tool("get_paper", {"paper_id": pid})
                got["summarize_topic"] = await client.call_tool("summarize", {"topic": QUERY})
                got["summarize_ids"] = await client.call_tool("summarize", {"paper_ids": [pid]})
                got["bibtex"] = await client.call_tool("get_bibtex", {"paper_ids": [pid]})
                for name, (tool, args, _) in BAD_CALLS.items():
                    got["bad"][name] = await client.call_tool(tool, args)
                got["find_after"] = await client.call_tool("find_papers", {"query": QUERY, "k": 5})

    in_own_thread(scenario)
    got["stderr"] = log_path.read_text(errors="replace")
    return got


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


def test_the_server_lists_its_tools_with_bounded_arguments(mcp_session) -> None:
    tools = {t.name: t for t in mcp_session["tools"]}
    assert {"find_papers", "ask", "summarize", "get_paper"} <= set(tools)
    query = tools["find_papers"].input_schema["properties"]["query"]
    assert (query["minLength"], query["maxLength"]) == (1, 2000)
    k = tools["find_papers"].input_schema["properties"]["k"]
    assert (k["minimum"], k["maximum"], k["default"]) == (1, 50, 10)
    assert tools["get_paper"].input_schema["required"] == ["paper_id"]
    for name in ("find_papers", "ask", "summarize", "get_paper"):
        assert tools[name].description and tools[name].output_schema, name
    assert "paper_id" in json.dumps(tools["find_papers"].output_schema)


def test_find_papers_returns_the_cli_json_shape(mcp_session, corpus_lib) -> None:
    got = _ok(mcp_session["find"])
    expected = find_json(corpus_lib.find(QUERY, k=5))
    assert got["query"] == expected["query"]
    assert [p["paper_id"] for p in got["papers"]] == [p["paper_id"] for p in expected["papers"]]
    for g, e in zip(got["papers"], expected["papers"], strict=True):
        assert set(g) == {"rank", "paper_id", "title", "date", "score", "why"}
        assert (g["rank"], g["title"], g["date"], g["why"]) == (e["rank"], e["title"], e["date"], e["why"])
        assert g["score"] == pytest.approx(e["score"], abs=1e-6)
    assert got["papers"][0]["title"] == SAM_TITLE
    # The text content is the same JSON, for clients that read only text.
    assert json.loads(mcp_session["find"].content[0].text) == got


def test_ask_returns_the_cited_answer_json(mcp_session, corpus_lib) -> None:
    answer = Answer.model_validate(_ok(mcp_session["ask"]))
    expected = corpus_lib.ask(QUESTION)
    assert not answer.abstained and answer.backend == "extractive"
    assert answer.answer == expected.answer
    assert [(s.n, s.paper_id, s.title) for s in answer.sources] == [
        (s.n, s.paper_id, s.title) for s in expected.sources
    ]
    cited = {n for s in answer.sentences for n in s.citations}
    assert cited and cited <= {s.n for s in answer.sources}
    assert SAM_TITLE in {s.title for s in answer.sources}


def test_summarize_by_topic_and_by_paper_ids(mcp_session) -> None:
    topic = Answer.model_validate(_ok(mcp_session["summarize_topic"]))
    assert not topic.abstained and topic.sources
    chosen = Answer.model_validate(_ok(mcp_session["summarize_ids"]))
    assert [s.paper_id for s in chosen.sources] == [mcp_session["paper_id"]]
    assert all(s.citations == [1] for s in chosen.sentences)


def test_get_paper_returns_the_whole_paper(mcp_session, corpus_lib) -> None:
    paper = Paper.model_validate(_ok(mcp_session["get_paper"]))
    assert paper == corpus_lib.get_paper(mcp_session["paper_id"])
    assert paper.title == SAM_TITLE and len(paper.abstract) > 500


def test_get_bibtex_reads_back_to_the_same_paper(mcp_session, tmp_path: Path) -> None:
    result = mcp_session["bibtex"]
    assert not result.is_error
    bib = tmp_path / "cite.bib"
    bib.write_text(result.content[0].text, encoding="utf-8")
    (paper,), problems = load_file(bib)
    assert problems == [] and paper.title == SAM_TITLE and paper.id == mcp_session["paper_id"]


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_come_back_as_tool_errors(mcp_session, name: str) -> None:
    result = mcp_session["bad"][name]
    text = result.content[0].text
    assert result.is_error, text
    assert BAD_CALLS[name][2] in text
    assert "Traceback" not in text and len(text) < 2000


def test_the_server_keeps_answering_after_bad_calls(mcp_session) -> None:
    assert _ok(mcp_session["find_after"]) == _ok(mcp_session["find"])
    # Only anticipated errors: nothing crashed inside a tool.
    assert "raised an unexpected exception" not in mcp_session["stderr"]
    assert "Traceback" not in mcp_session["stderr"]


# --- in process: the same server object, without a subprocess ---------------------------------
def _call_in_process(factory: Any, tool: str, args: dict[str, Any]) -> Any:
    async def call() -> Any:
        async with Client(build_server(factory)) as client:
            return await client.call_tool(tool, args)

    return in_own_thread(call)


def test_an_empty_index_is_a_tool_error_that_says_what_to_do(empty_lib) -> None:
    result = _call_in_process(lambda: empty_lib, "find_papers", {"query": QUERY})
    assert result.is_error
    assert "no papers indexed" in result.content[0].text and "rag ingest" in result.content[0].text


def test_a_library_that_cannot_load_is_a_tool_error(tmp_path: Path) -> None:
    def broken() -> Any:
        raise RagError("invalid settings (RAG_* environment variables, .env or arguments): chunk_size")

    result = _call_in_process(broken, "get_paper", {"paper_id": "abc"})
    assert result.is_error and "invalid settings" in result.content[0].text
