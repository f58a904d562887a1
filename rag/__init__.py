"""Question answering over research-paper abstracts: `from rag import Library`.

The names are imported on first use: `import rag` stays instant, and the models,
Chroma and llama-index load only when a `Library` is made.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.errors import LoaderError, RagError
    from rag.library import Library
    from rag.types import Answer, FindResult, IngestReport, Paper, PaperHit, Source, Status

_WHERE = {
    "Library": "rag.library",
    "RagError": "rag.errors",
    "LoaderError": "rag.errors",
    **{
        name: "rag.types"
        for name in ("Answer", "FindResult", "IngestReport", "Paper", "PaperHit", "Source", "Status")
    },
}
__all__ = [
    "Answer",
    "FindResult",
    "IngestReport",
    "Library",
    "LoaderError",
    "Paper",
    "PaperHit",
    "RagError",
    "Source",
    "Status",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
