"""Paper identity: title normalisation, stable ids, and merging duplicates."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from rag.types import Paper

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_title(title: str) -> str:
    """Case, accents, punctuation and spacing removed, so one paper has one key across sources."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", text.casefold()).strip()


def paper_id(title: str) -> str:
    """Content-based id: the same title gives the same id in every run and on every machine."""
    return hashlib.sha1(normalise_title(title).encode()).hexdigest()[:16]


def make_paper(title: str, abstract: str, source: str, **fields: object) -> Paper:
    title = " ".join(title.split())
    return Paper(id=paper_id(title), title=title, abstract=abstract.strip(), sources=[source], **fields)  # type: ignore[arg-type]


def _better_date(a: str | None, b: str | None) -> str | None:
    """The more precise date wins (2021-02-16 over 2021)."""
    if not a:
        return b
    if not b:
        return a
    return b if len(b) > len(a) else a


def merge(papers: Iterable[Paper]) -> list[Paper]:
    """One paper per normalised title, in first-seen order, metadata merged.

    The longest abstract wins (page dumps sometimes truncate), sources are united,
    and the most precise date, longest author list and first URL are kept.
    """
    merged: dict[str, Paper] = {}
    for p in papers:
        seen = merged.get(p.id)
        if seen is None:
            merged[p.id] = p.model_copy(deep=True)
            continue
        if len(p.abstract) > len(seen.abstract):
            seen.abstract = p.abstract
        seen.sources = list(dict.fromkeys(seen.sources + p.sources))
        seen.date = _better_date(seen.date, p.date)
        if len(p.authors) > len(seen.authors):
            seen.authors = p.authors
        seen.url = seen.url or p.url
        seen.extra = {**p.extra, **seen.extra}
    return list(merged.values())
