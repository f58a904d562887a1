"""`rag mcp`: the library served over the Model Context Protocol (official `mcp` SDK).

Coding and writing assistants (Claude Desktop/Code, VS Code, Cursor, Zed...) start
`rag mcp` and talk to it over stdin/stdout. The tools return the CLI's JSON shapes:

* `find_papers` -> `rag find --json`: {"query", "papers": [{"rank", "paper_id", "title", "date", "score", "why"}]}
* `ask`, `summarize` -> `rag ask --json`: the `Answer` model (sentences with citation
  numbers, sources with paper ids, titles and snippets)
* `get_paper` -> the `Paper` model (whole abstract, authors, date, url, DOI/arXiv id in `extra`)
* `get_bibtex` -> BibTeX entries for paper ids, to cite them in a LaTeX document

One `Library` serves every call, so the embedding model and the index stay loaded;
it is warmed up in the background as soon as the server starts. A bad argument (an
empty or oversized query, an unknown paper id, a malformed date) comes back as a
tool error with a one-line reason; the server keeps running and the index is only read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import BaseModel, Field

from rag.errors import RagError
from rag.retrieve import MAX_QUERY_CHARS
from rag.types import Answer, Paper

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from rag.library import Library

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_K = 50
MAX_HISTORY = 50
MAX_PAPER_IDS = 50
INSTRUCTIONS = (
    "Search and question the user's own library of research-paper abstracts. "
    "Use find_papers to locate papers (each has a paper_id), ask for an answer whose sentences cite "
    "numbered sources, summarize for a cited summary of a topic or of chosen paper ids, get_paper for "
    "one paper's abstract and metadata, and get_bibtex for BibTeX entries to cite. Ground claims in "
    "these results and keep the paper ids or BibTeX keys with them."
)

Query = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description=f"A few words or a sentence, at most {MAX_QUERY_CHARS} characters.",
    ),
]
DateBound = Annotated[
    str | None, Field(description="YYYY, YYYY-MM or YYYY-MM-DD, inclusive; omit for no bound.")
]


class FoundPaper(BaseModel):
    rank: int
    paper_id: str
    title: str
    date: str | None
    score: float
    why: str = Field(description="The sentence of the paper that best matches the query.")


class FindPapersResult(BaseModel):
    """The `rag find --json` shape."""

    query: str
    papers: list[FoundPaper]


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: Annotated[str, Field(max_length=20_000)]


class LibraryService:
    """One Library for the server's life, loaded in the background; calls wait until it is ready."""

    def __init__(self, factory: Callable[[], Library]) -> None:
        self._factory = factory
        self._lib: Library | None = None
        self._error: RagError | None = None
        self._ready = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._warm, name="rag-warm-up", daemon=True).start()

    def _warm(self) -> None:
        try:
            lib = self._lib = self._factory()
            lib.embedder.encode(["warm up"])  # loads the model
            lib.retriever()  # opens the index and the BM25 copy; fails when nothing is indexed
        except RagError as err:
            log.warning("%s", err)
            if self._lib is None:
                self._error = err
        except Exception:
            log.exception("loading the library failed")
        finally:
            self._ready.set()

    def get(self) -> Library:
        self.start()
        self._ready.wait()
        if self._lib is None:
            raise self._error or RagError("the library could not be loaded: see the server's log")
        return self._lib


def _call(fn: Callable[[], T]) -> T:
    """A RagError (what the user can fix) becomes the tool error's message."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        return fn()
    except RagError as err:
        raise ToolError(str(err)) from None


def _text(value: str, name: str) -> str:
    from mcp.server.mcpserver.exceptions import ToolError

    text = " ".join(value.split())
    if not text:
        raise ToolError(f"{name} is empty: give a few words about what you are looking for")
    return text


def build_server(factory: Callable[[], Library] | None = None) -> MCPServer:
    """The MCP server with its tools; `factory` makes the Library (default: settings from the environment)."""
    from mcp.server.mcpserver import MCPServer

    from rag.bibtex import to_bibtex
    from rag.cli import find_json

    if factory is None:
        from rag.library import Library

        factory = Library
    service = LibraryService(factory)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        service.start()
        yield

    server: MCPServer = MCPServer(
        name="paper-rag",
        title="Paper library",
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )

    @server.tool(
        description="Find papers in the library on a topic: ranked, each with its paper_id, date and the "
        "sentence that matches (the `rag find --json` shape)."
    )
    def find_papers(
        query: Query,
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many papers.")] = 10,
        date_from: DateBound = None,
        date_to: DateBound = None,
    ) -> FindPapersResult:
        q = _text(query, "the query")
        lib = _call(service.get)
        result = _call(lambda: lib.find(q, k=k, date_from=date_from, date_to=date_to))
        return FindPapersResult.model_validate(find_json(result))

    @server.tool(
        description="Answer a question from the library's abstracts. Every sentence cites numbered sources; "
        "`sources` maps each number to a paper_id and title; `abstained` is true when the library does "
        "not cover the question (the `rag ask --json` shape)."
    )
    def ask(
        question: Query,
        history: Annotated[
            list[Message] | None,
            Field(max_length=MAX_HISTORY, description="The conversation so far, oldest first."),
        ] = None,
        date_from: DateBound = None,
        date_to: DateBound = None,
    ) -> Answer:
        q = _text(question, "the question")
        lib = _call(service.get)
        messages = [m.model_dump() for m in history or []]
        return _call(lambda: lib.ask(q, history=messages, date_from=date_from, date_to=date_to))

    @server.tool(
        description="A cited summary of a topic, or of chosen papers by paper_id (same shape as `ask`)."
    )
    def summarize(
        topic: Annotated[
            str | None, Field(max_length=MAX_QUERY_CHARS, description="The topic; or give paper_ids.")
        ] = None,
        paper_ids: Annotated[
            list[str] | None, Field(max_length=MAX_PAPER_IDS, description="Papers to summarise, by paper_id.")
        ] = None,
        date_from: DateBound = None,
        date_to: DateBound = None,
    ) -> Answer:
        from mcp.server.mcpserver.exceptions import ToolError

        clean_topic = " ".join((topic or "").split()) or None
        ids = [p.strip() for p in paper_ids or [] if p.strip()]
        if not clean_topic and not ids:
            raise ToolError("give a topic or at least one paper_id to summarise")
        lib = _call(service.get)
        return _call(lambda: lib.summarize(clean_topic, paper_ids=ids, date_from=date_from, date_to=date_to))

    @server.tool(
        description="One paper by paper_id: title, whole abstract, authors, date, url and, in `extra`, "
        "identifiers such as doi and arxiv_id."
    )
    def get_paper(paper_id: Annotated[str, Field(min_length=1, max_length=200)]) -> Paper:
        pid = _text(paper_id, "the paper id")
        lib = _call(service.get)
        return _call(lambda: lib.get_paper(pid))

    @server.tool(
        description="BibTeX entries for papers by paper_id (stable keys, escaped text, doi/eprint/url "
        "where known), to cite them in a LaTeX document."
    )
    def get_bibtex(
        paper_ids: Annotated[list[str], Field(min_length=1, max_length=MAX_PAPER_IDS)],
    ) -> str:
        ids = [_text(p, "a paper id") for p in paper_ids]
        lib = _call(service.get)
        return to_bibtex(_call(lambda: [lib.get_paper(pid) for pid in dict.fromkeys(ids)]))

    return server


def serve(transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the server until the client disconnects (stdio) or the process is stopped (HTTP)."""
    if transport not in ("stdio", "streamable-http"):
        raise RagError(f"unknown transport {transport!r}: use stdio or streamable-http")
    server = build_server()
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)


__all__ = ["LibraryService", "build_server", "serve"]
