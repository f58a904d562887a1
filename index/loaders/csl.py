"""CSL-JSON (Zotero's "CSL JSON" export, citeproc's input): a JSON array of items.

The array is read item by item with `json.JSONDecoder.raw_decode` over a sliding
buffer fed in 1 MiB pieces (not lines: some tools write the whole array on one
line), so a large export is never held whole as text or as one parsed list; each
item keeps its line for messages. Title, abstract, authors, issued date, DOI, URL,
arXiv id (from the URL, DOI, `number` or `note`), type and container are kept. Rich
text markup that CSL allows in titles and abstracts (`<i>`, `<sup>`, JATS `<jats:p>`)
becomes plain text. An array of objects in this project's own record shape
(`title`, `abstract`, `authors`, `date`, `url`) is read too.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from index.loaders.bibtex import (
    clean_doi,
    date_from_text,
    find_arxiv_id,
    iso_date,
    missing_abstracts,
    no_usable,
    paper_url,
)
from index.papers import make_paper
from rag.errors import LoaderError
from rag.types import Paper

#: Text read ahead at a time; an item larger than MAX_ITEM_CHARS is refused, not buffered forever.
READ_CHARS = 1 << 20
MAX_ITEM_CHARS = 64 * 1024 * 1024
_WS = " \t\r\n"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag.split(":")[-1] in ("p", "title", "sec", "br", "div"):
            self.parts.append(" ")


def rich_to_text(value: Any) -> str:
    """Plain text of a CSL rich-text string (HTML-like tags and entities), spaces collapsed."""
    text = str(value or "")
    if "<" in text or "&" in text:
        parser = _Text()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    return " ".join(text.split())


def text_pieces(path: Path) -> Iterator[str]:
    """The file as UTF-8 text in pieces of about READ_CHARS; a decoding error names its line."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    line = 1
    with path.open("rb") as fh:
        while data := fh.read(READ_CHARS):
            try:
                text = decoder.decode(data)
            except UnicodeDecodeError as err:
                bad_line = line + data[: max(err.start, 0)].count(b"\n")
                raise LoaderError(path, "not UTF-8 text (binary or another encoding)", bad_line) from err
            line += text.count("\n")
            yield text
        if tail := decoder.decode(b"", final=True):
            yield tail


class _ArrayReader:
    """Items of a top-level JSON array, each with its 1-based line, read incrementally."""

    def __init__(self, path: Path, pieces: Iterable[str]) -> None:
        self.path = path
        self.pieces = iter(pieces)
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number at self.pos
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self.eof:
            return False
        piece = next(self.pieces, None)
        if piece is None:
            self.eof = True
            return False
        if self.pos > READ_CHARS:  # drop what has been consumed
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += piece
        return True

    def _advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def _peek(self) -> str:
        """The next non-blank character ('' at the end of the file), consuming the blanks."""
        while True:
            end = self.pos
            while end < len(self.buf) and self.buf[end] in _WS:
                end += 1
            self._advance(end)
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        first = self._peek()
        if first != "[":
            kind = "a JSON object" if first == "{" else "not a JSON array"
            raise LoaderError(
                self.path, f"{kind}: CSL-JSON must be a JSON array of items, [{{...}}, {{...}}]", self.line
            )
        self._advance(self.pos + 1)
        expect_item = True
        first_item = True
        while True:
            c = self._peek()
            if c == "":
                raise LoaderError(self.path, "the JSON array is not closed (file cut short?)", self.line)
            if c == "]" and (first_item or not expect_item):
                self._advance(self.pos + 1)
                if self._peek() != "":
                    raise LoaderError(self.path, "text after the end of the JSON array", self.line)
                return
            if not expect_item:
                if c != ",":
                    raise LoaderError(self.path, f"expected ',' or ']' between items, found {c!r}", self.line)
                self._advance(self.pos + 1)
                expect_item = True
                continue
            value, end = self._decode()
            line = self.line
            self._advance(end)
            expect_item, first_item = False, False
            yield line, value

    def _decode(self) -> tuple[Any, int]:
        while True:
            try:
                return self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as err:
                if len(self.buf) - self.pos > MAX_ITEM_CHARS or not self._more():
                    line = self.line + self.buf.count("\n", self.pos, err.pos)
                    raise LoaderError(self.path, f"not valid JSON ({err.msg})", line) from None
            except RecursionError:
                raise LoaderError(self.path, "JSON nested too deeply", self.line) from None


def _authors(item: dict[str, Any]) -> list[str]:
    value = item.get("author", item.get("authors"))
    if isinstance(value, str):
        return [a.strip() for a in value.replace(";", ",").split(",") if a.strip()]
    if not isinstance(value, list):
        return []
    out = []
    for a in value:
        if isinstance(a, dict):
            if a.get("literal"):
                name = str(a["literal"])
            else:
                parts = [a.get(k) for k in ("given", "dropping-particle", "non-dropping-particle", "family")]
                name = " ".join(str(p) for p in parts if p)
                if a.get("suffix"):
                    name += f", {a['suffix']}"
        else:
            name = str(a)
        if name := " ".join(name.split()):
            out.append(name)
    return out


def _date(item: dict[str, Any]) -> str | None:
    for key in ("issued", "published-print", "published-online", "created"):
        value = item.get(key)
        if isinstance(value, dict):
            parts = value.get("date-parts")
            if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
                return iso_date(*(parts[0] + [None, None])[:3])
            if value.get("raw") or value.get("literal"):
                return date_from_text(value.get("raw") or value.get("literal"))
        elif isinstance(value, str | int):
            return date_from_text(value)
    return date_from_text(item.get("date"))


def _item_paper(path: Path, line: int, item: dict[str, Any]) -> Paper | None:
    """A Paper, or None when the item has no abstract; LoaderError when it has no title."""
    title = rich_to_text(item.get("title"))
    if not title:
        raise LoaderError(path, f"item {str(item.get('id', ''))!r} has no title", line)
    abstract = rich_to_text(item.get("abstract"))
    if not abstract:
        return None
    doi = clean_doi(str(item.get("DOI") or item.get("doi") or ""))
    url = str(item.get("URL") or item.get("url") or "").strip() or None
    number = str(item.get("number") or "")
    arxiv = find_arxiv_id(
        url, doi, number, str(item.get("note") or ""), str(item.get("archive_location") or "")
    )
    if (
        arxiv is None
        and "arxiv" in str(item.get("publisher") or item.get("container-title") or "").casefold()
    ):
        arxiv = find_arxiv_id(f"arXiv:{number}")
    extra = {"line": str(line)}
    if item.get("id") is not None:
        extra["csl_id"] = str(item["id"])
    if item.get("type"):
        extra["csl_type"] = str(item["type"])
    if doi:
        extra["doi"] = doi
    if arxiv:
        extra["arxiv_id"] = arxiv
    if venue := rich_to_text(item.get("container-title")):
        extra["venue"] = venue
    return make_paper(
        title,
        abstract,
        str(path),
        authors=_authors(item),
        date=_date(item),
        url=paper_url(url, doi, arxiv),
        extra=extra,
    )


def load_csl_json(path: Path, pieces: Iterable[str], problems: list[str]) -> list[Paper]:
    """Papers of a CSL-JSON file given as text pieces (`text_pieces(path)`)."""
    papers: list[Paper] = []
    skipped: list[tuple[int, str]] = []
    bad: list[str] = []
    items = 0
    try:
        for line, item in _ArrayReader(path, pieces):
            items += 1
            if not isinstance(item, dict):
                bad.append(f"{path}:{line}: expected a JSON object, got {type(item).__name__}; skipped")
                continue
            try:
                paper = _item_paper(path, line, item)
            except LoaderError as err:
                bad.append(f"{err}; skipped")
                continue
            if paper is None:
                skipped.append((line, str(item.get("id") or rich_to_text(item.get("title"))[:40])))
            else:
                papers.append(paper)
    except LoaderError as err:
        if not papers:
            raise
        bad.append(f"{err}; the rest of the file skipped")
    if not items:
        raise LoaderError(path, "the JSON array is empty: no items")
    if not papers:
        raise no_usable(path, items, skipped, bad, "CSL-JSON items")
    problems.extend(bad)
    if skipped:
        problems.append(missing_abstracts(path, skipped, "items"))
    return papers
