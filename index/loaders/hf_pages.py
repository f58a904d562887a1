"""Hugging Face "Daily Papers" page dumps (text copied from the web page).

Three layouts occur: records separated by blank lines with metadata lines
(author count or organisation, a "·" line, a date with or without a year and an
upvote count), the same without metadata, and two lines per record with no blank
lines at all, where the first title is glued to the word "Subscribe". Blank lines
carry no meaning here, so all three are read the same way: drop page chrome and
metadata, then pair the remaining lines as title and abstract.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from index.papers import make_paper
from rag.errors import LoaderError
from rag.types import Paper

CHROME = {
    "new",
    "subscribe",
    "daily papers",
    "byak and the research community",
    "get trending papers in your email inbox!",
    "get trending papers in your email inbox once a day!",
}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DATE = re.compile(rf"^({'|'.join(MONTHS)}) (\d{{1,2}})(?:, (\d{{4}}))?(?: (\d+))?$")
AUTHORS = re.compile(r"^•\s*(\d+) authors?$")
SEPARATOR = "·"
#: An abstract shorter than this is more likely a second title: the pairing is off.
MIN_ABSTRACT_CHARS = 80


@dataclass
class _Record:
    title: str
    title_line: int
    abstract: str
    extra: dict[str, str] = field(default_factory=dict)
    date: str | None = None


def looks_like_page_dump(head: str) -> bool:
    """Content sniffing: the page chrome, or at least a title line followed by a long line."""
    lines = [ln.strip() for ln in head.splitlines() if ln.strip()]
    if any(ln.casefold() in CHROME or ln.startswith("Subscribe") for ln in lines[:8]):
        return True
    return len(lines) >= 2 and len(lines[0]) < 400 and len(lines[1]) >= MIN_ABSTRACT_CHARS


def _parse_date(match: re.Match[str]) -> tuple[str | None, str | None, str | None]:
    """(iso date or None when the year is missing, the raw text, upvotes)."""
    month, day, year, upvotes = match.groups()
    raw = f"{month} {day}" + (f", {year}" if year else "")
    iso = f"{year}-{MONTHS.index(month) + 1:02d}-{int(day):02d}" if year else None
    return iso, raw, upvotes


def _records(path: Path, lines: list[str], problems: list[str]) -> Iterator[_Record]:
    started = False
    pending: tuple[int, str] | None = None
    last: _Record | None = None
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line == SEPARATOR:
            continue
        if not started:
            if line.casefold() in CHROME:
                continue
            if line.startswith("Subscribe"):
                line = line.removeprefix("Subscribe").strip()
        nxt = next((ln.strip() for ln in lines[i + 1 : i + 3] if ln.strip()), "")
        prev = next((ln.strip() for ln in reversed(lines[max(0, i - 2) : i]) if ln.strip()), "")
        if date := DATE.match(line):
            if prev == SEPARATOR and last is not None:
                last.date, last.extra["date_text"], upvotes = _parse_date(date)
                if upvotes:
                    last.extra["upvotes"] = upvotes
            continue  # a date not after "·" is the page's own header date
        if authors := AUTHORS.match(line):
            if last is not None:
                last.extra["n_authors"] = authors.group(1)
            continue
        if nxt == SEPARATOR:
            if last is not None:
                last.extra["organisation"] = line
            continue
        started = True
        if pending is None:
            pending = (i + 1, line)
            continue
        title_line, title = pending
        pending = None
        if len(line) < MIN_ABSTRACT_CHARS:
            problems.append(
                f"{path}:{title_line}: '{title[:60]}' has no abstract (next line is short); skipped"
            )
            pending = (i + 1, line)
            continue
        last = _Record(title=title, title_line=title_line, abstract=line)
        yield last
    if pending is not None:
        problems.append(f"{path}:{pending[0]}: title without an abstract at the end of the file; skipped")


def load_page_dump(path: Path, text: str, problems: list[str]) -> list[Paper]:
    records = list(_records(path, text.splitlines(), problems))
    if not records:
        raise LoaderError(path, "no papers recognised (expected title lines each followed by an abstract)")
    return [
        make_paper(r.title, r.abstract, str(path), date=r.date, extra={**r.extra, "line": str(r.title_line)})
        for r in records
    ]
