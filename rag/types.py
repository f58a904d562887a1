"""The project's data shapes, in one place.

Their JSON is what `--json` prints, what the app renders and what the eval harness
stores: one shape everywhere.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Paper(BaseModel):
    id: str = Field(description="Stable id derived from the normalised title.")
    title: str
    abstract: str
    authors: list[str] = Field(default_factory=list)
    date: str | None = Field(None, description="ISO date (YYYY-MM-DD, YYYY-MM or YYYY) when known.")
    url: str | None = None
    sources: list[str] = Field(default_factory=list, description="Files the paper was read from.")
    extra: dict[str, str] = Field(
        default_factory=dict, description="Loader-specific metadata: arxiv id, categories, upvotes..."
    )


class Chunk(BaseModel):
    paper_id: str
    position: int
    text: str


class PaperHit(BaseModel):
    paper: Paper
    score: float
    chunks: list[Chunk] = Field(description="Best matching chunks, best first.")
    why: str = Field("", description="The sentence that best matches the query.")


class FindResult(BaseModel):
    query: str
    papers: list[PaperHit]
    timings: dict[str, float] = Field(default_factory=dict)


class Source(BaseModel):
    n: int
    paper_id: str
    title: str
    date: str | None = None
    snippet: str


class Sentence(BaseModel):
    text: str
    citations: list[int] = Field(default_factory=list)
    supported: bool | None = Field(
        None, description="Whether the cited sources support it; None when it needs no support."
    )


class Answer(BaseModel):
    question: str
    answer: str
    backend: str
    abstained: bool = False
    sources: list[Source] = Field(default_factory=list)
    sentences: list[Sentence] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    notice: str | None = Field(None, description="One-line reason when the LLM failed and we fell back.")
    invalid_citations: int = Field(0, description="Citation numbers removed because no source had them.")
    settings_hash: str = ""


class IngestReport(BaseModel):
    files: int
    papers_read: int
    papers_unique: int
    added: int
    updated: int
    unchanged: int
    removed: int
    chunks_embedded: int
    problems: list[str] = Field(default_factory=list)
    seconds: float = 0.0


class Status(BaseModel):
    papers: int
    chunks: int
    embed_model: str
    chunk_size: int
    store: str
    data_dir: str
    last_ingest: str | None = None
    lexical_chunks: int = 0
