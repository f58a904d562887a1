"""Structured records: JSON lines (our own shape or the arXiv metadata snapshot) and CSV.

Files are streamed line by line, so a large snapshot is never read whole. A bad
record is reported with its line and skipped; the file's other records still load.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from index.papers import make_paper
from rag.errors import LoaderError
from rag.types import Paper

#: Largest field csv accepts; its default (128 KiB) rejects long abstracts with a cryptic error.
csv.field_size_limit(16 * 1024 * 1024)

_ISO_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?")


def _authors(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(a).strip() for a in value if str(a).strip()]
    if isinstance(value, str) and value.strip():
        sep = ";" if ";" in value else ","
        parts = re.split(rf"\s*{sep}\s*|\s+and\s+", value.strip())
        return [p for p in parts if p]
    return []


def _date(value: Any) -> str | None:
    match = _ISO_DATE.match(str(value or "").strip())
    return match.group(0) if match else None


def _paper(path: Path, line: int, rec: dict[str, Any]) -> Paper:
    """One record to a Paper; a missing title or abstract is the loader's error for that line."""
    title = str(rec.get("title") or "").strip()
    abstract = str(rec.get("abstract") or rec.get("summary") or "").strip()
    if not title:
        raise LoaderError(path, "record has no 'title'", line)
    if not abstract:
        raise LoaderError(path, "record has no 'abstract'", line)
    extra: dict[str, str] = {"line": str(line)}
    if rec.get("id"):
        extra["source_id"] = str(rec["id"])
    if rec.get("categories"):
        extra["categories"] = str(rec["categories"])
    url = rec.get("url") or (f"https://arxiv.org/abs/{rec['id']}" if is_arxiv_record(rec) else None)
    return make_paper(
        title,
        abstract,
        str(path),
        authors=_authors(rec.get("authors")),
        date=_date(rec.get("date") or rec.get("update_date") or rec.get("published")),
        url=str(url) if url else None,
        extra=extra,
    )


def is_arxiv_record(rec: dict[str, Any]) -> bool:
    return "update_date" in rec or ("categories" in rec and "id" in rec)


def _collect(path: Path, rows: Iterable[tuple[int, dict[str, Any]]], problems: list[str]) -> list[Paper]:
    papers = []
    for line, rec in rows:
        try:
            papers.append(_paper(path, line, rec))
        except LoaderError as err:
            problems.append(f"{err}; skipped")
    if not papers:
        raise LoaderError(path, "no usable records (each needs a title and an abstract)")
    return papers


def _json_lines(
    path: Path, lines: Iterable[str], problems: list[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            problems.append(f"{path}:{n}: not valid JSON ({str(err)[:80]}); skipped")
            continue
        if not isinstance(rec, dict):
            problems.append(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}; skipped")
            continue
        yield n, rec


def load_jsonl(path: Path, lines: Iterable[str], problems: list[str]) -> list[Paper]:
    return _collect(path, _json_lines(path, lines, problems), problems)


def load_csv(path: Path, lines: Iterable[str], problems: list[str]) -> list[Paper]:
    reader = csv.DictReader(lines)
    fields = {(f or "").strip().casefold() for f in reader.fieldnames or []}
    missing = {"title", "abstract"} - fields
    if missing:
        raise LoaderError(path, f"CSV header lacks column(s) {', '.join(sorted(missing))}", 1)

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for row in reader:
            clean = {(k or "").strip().casefold(): v for k, v in row.items()}
            yield reader.line_num, clean

    try:
        return _collect(path, rows(), problems)
    except csv.Error as err:
        raise LoaderError(path, f"malformed CSV: {err}", reader.line_num) from err
