"""Corpus loaders, picked by content rather than by file name.

`load_paths` is the entry point: it walks files and folders, reads each file with
the loader its first bytes call for, and collects per-file problems as messages
instead of stopping, so one bad file never keeps the others out of the index.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from index.loaders.bibtex import load_bibtex
from index.loaders.csl import load_csl_json, text_pieces
from index.loaders.hf_pages import load_page_dump, looks_like_page_dump
from index.loaders.records import load_csv, load_jsonl
from rag.errors import LoaderError
from rag.types import Paper

log = logging.getLogger(__name__)

SNIFF_BYTES = 64 * 1024
#: Longest line we read: an abstract is a few thousand characters; a 100 MB line is not a corpus.
MAX_LINE_CHARS = 1_000_000
#: Suffixes we look at inside folders; files named directly are always read.
CORPUS_SUFFIXES = {".txt", ".jsonl", ".json", ".csv", ".ndjson", ".bib"}
#: A BibTeX entry start: `@article{`, `@misc (`... (reference managers may put `%` comments before).
_BIB_ENTRY = re.compile(r"^@\s*[A-Za-z]+\s*[{(]")


@dataclass
class LoadResult:
    papers: list[Paper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _text_lines(path: Path) -> Iterator[str]:
    """Stream a file as UTF-8 lines; a decoding error names the line."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    with path.open("rb") as fh:
        pending = ""
        line_no = 1
        while chunk := fh.read(1 << 20):
            try:
                pending += decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise LoaderError(
                    path, "not UTF-8 text (binary or another encoding)", line_no + pending.count("\n")
                ) from err
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
                line_no += 1
            if len(pending) > MAX_LINE_CHARS:
                raise LoaderError(
                    path, f"a line longer than {MAX_LINE_CHARS:,} characters: not a corpus file", line_no
                )
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending


def _first_content_line(head: str) -> str:
    """The first line that is neither blank nor a `%` comment (BibTeX files often open with some)."""
    lines = (ln.strip() for ln in head.splitlines())
    return next((ln for ln in lines if ln and not ln.startswith("%")), "")


def _sniff(path: Path) -> str:
    """Which loader: 'jsonl', 'csl', 'bibtex', 'csv' or 'page'. Raises LoaderError for files that are none."""
    with path.open("rb") as fh:
        head_bytes = fh.read(SNIFF_BYTES)
    if not head_bytes.strip():
        raise LoaderError(path, "file is empty")
    if b"\x00" in head_bytes:
        raise LoaderError(path, "binary file (contains NUL bytes), not a corpus file")
    head = head_bytes.decode("utf-8-sig", errors="replace").lstrip()
    first_line = head.splitlines()[0] if head else ""
    if head.startswith("{"):
        if first_line.strip() == "{":
            raise LoaderError(
                path,
                "a single JSON object spread over lines: CSL-JSON must be a JSON array of items "
                "([{...}, ...]) and JSON lines need one object per line",
                1,
            )
        return "jsonl"
    if head.startswith("["):
        rest = head[1:].lstrip()
        if rest.startswith("]"):
            raise LoaderError(path, "the JSON array is empty: no items")
        if rest and not rest.startswith("{"):
            raise LoaderError(
                path, "a JSON array of something other than objects: CSL-JSON is an array of items [{...}]"
            )
        return "csl"
    if _BIB_ENTRY.match(_first_content_line(head)):
        return "bibtex"
    try:
        header = next(csv.reader(io.StringIO(first_line)), [])
    except csv.Error:  # a stray carriage return or quote: not a CSV header
        header = []
    if {"title", "abstract"} & {h.strip().casefold() for h in header} and len(header) > 1:
        return "csv"
    if looks_like_page_dump(head):
        return "page"
    if path.suffix.lower() == ".bib":
        return "bibtex"  # only comments or stray text: the BibTeX loader says there are no entries
    raise LoaderError(
        path,
        "unrecognised format: expected a Daily Papers page dump, JSON lines, CSV, BibTeX or CSL-JSON",
    )


def load_file(path: Path) -> tuple[list[Paper], list[str]]:
    """Papers of one file and its per-record problems; LoaderError when nothing is usable."""
    problems: list[str] = []
    kind = _sniff(path)
    if kind == "jsonl":
        papers = load_jsonl(path, _text_lines(path), problems)
    elif kind == "csl":
        papers = load_csl_json(path, text_pieces(path), problems)
    elif kind == "bibtex":
        papers = load_bibtex(path, _text_lines(path), problems)
    elif kind == "csv":
        papers = load_csv(path, _text_lines(path), problems)
    else:
        papers = load_page_dump(path, "".join(_text_lines(path)), problems)
    return papers, problems


def expand(paths: Iterable[Path | str]) -> tuple[list[Path], list[str]]:
    """Files named directly, and the corpus files inside folders, sorted for stable order."""
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in CORPUS_SUFFIXES)
            )
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def load_paths(paths: Iterable[Path | str]) -> LoadResult:
    files, problems = expand(paths)
    result = LoadResult(problems=problems, files=files)
    for f in files:
        try:
            papers, file_problems = load_file(f)
        except LoaderError as err:
            result.problems.append(str(err))
            continue
        except OSError as err:
            result.problems.append(f"{f}: cannot read ({err.strerror or err})")
            continue
        result.papers.extend(papers)
        result.problems.extend(file_problems)
        log.info("%s: %d papers", f, len(papers))
    return result


__all__ = ["LoadResult", "load_file", "load_paths", "expand"]
