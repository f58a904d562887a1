"""BibTeX files (`.bib`), as reference managers export them, parsed with bibtexparser 2.

The file is parsed in pieces of a few MiB, cut only where an entry starts (a line
beginning with `@`, where bibtexparser itself would end a broken entry), so memory
stays bounded for large libraries; `@string` macros carry over from piece to piece.

LaTeX in titles, abstracts and names (`{\\"o}`, `\\emph{}`, protective braces, math)
becomes plain text through pylatexenc. Title, abstract, authors, date, DOI, arXiv id,
URL, entry type, venue and citation key are kept. An entry with a syntax error is
named with its line and skipped; entries without an abstract are counted in one
summary line naming the file.

The helpers at the bottom (`latex_to_text`, `find_arxiv_id`, `iso_date`,
`missing_abstracts`, `paper_url`) are shared with the CSL-JSON loader.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from index.papers import make_paper
from rag.errors import LoaderError
from rag.types import Paper

#: Characters parsed at once; the piece ends at the next entry start after this many.
PIECE_CHARS = 4 * 1024 * 1024
#: How many skipped entries the "without an abstract" summary line names.
SUMMARY_EXAMPLES = 3

# Both libraries log every problem they recover from; the loader reports those itself, once.
logging.getLogger("bibtexparser").setLevel(logging.ERROR)
logging.getLogger("pylatexenc").setLevel(logging.ERROR)

_MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, start=1)}
#: arXiv identifiers, new style (2101.00001v2) and old style (hep-th/9901001), where a
#: text says they are arXiv ids: `arXiv:`, `arxiv.org/abs/`, DOI 10.48550/arXiv., DBLP's `abs/`.
_ARXIV = re.compile(
    r"(?:arxiv\s*[:.]?\s*|arxiv\.org/(?:abs|pdf)/|10\.48550/arxiv\.|^abs/)"
    r"(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?",
    re.IGNORECASE,
)
_BARE_ARXIV = re.compile(r"^(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?$", re.IGNORECASE)
_ISO = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
#: `%` and `&` typed bare (common in exported abstracts) are text, not a LaTeX comment or column.
_BARE_SPECIAL = re.compile(r"(?<!\\)([%&#])")
_DOLLAR = re.compile(r"(?<!\\)\$")


# --- shared helpers -----------------------------------------------------------------------
@lru_cache(maxsize=1)
def _decoder() -> Any:
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

    db = get_default_latex_context_db()
    db.add_context_category(
        "paper-rag",
        prepend=True,
        macros=[
            MacroTextSpec("url", simplify_repl="%s"),
            MacroTextSpec("href", simplify_repl="%(2)s"),
            MacroTextSpec("textasciicircum", simplify_repl="^"),
            MacroTextSpec("cite", simplify_repl=""),
            MacroTextSpec("citep", simplify_repl=""),
            MacroTextSpec("citet", simplify_repl=""),
        ],
    )
    return LatexNodes2Text(latex_context=db, math_mode="text")


def latex_to_text(value: str) -> str:
    """Plain text of a LaTeX field value: accents, macros, braces and math resolved, spaces collapsed."""
    if not any(c in value for c in "\\{}$%&#~^`'-"):
        return " ".join(value.split())
    value = _BARE_SPECIAL.sub(r"\\\1", value)
    if len(_DOLLAR.findall(value)) % 2:  # an odd number of `$` is a price or a typo, not math
        value = _DOLLAR.sub(r"\\$", value)
    try:
        text = _decoder().latex_to_text(value)
    except Exception:  # pylatexenc is tolerant; this is a last resort, never a lost paper
        text = value.replace("{", "").replace("}", "")
    return " ".join(text.split())


def find_arxiv_id(*texts: str | None) -> str | None:
    """The arXiv id (without version) mentioned in any of these texts, if one is."""
    for text in texts:
        if text and (m := _ARXIV.search(text.strip())):
            return m.group(1)
    return None


def bare_arxiv_id(text: str | None) -> str | None:
    """`text` itself as an arXiv id (an `eprint` field next to archivePrefix = arXiv)."""
    m = _BARE_ARXIV.match((text or "").strip())
    return m.group(1) if m else None


def iso_date(year: Any, month: Any = None, day: Any = None) -> str | None:
    """YYYY, YYYY-MM or YYYY-MM-DD from parts that may be ints, digit strings or month names."""
    y = str(year or "").strip()
    if not re.fullmatch(r"\d{4}", y):
        return None
    m_text = str(month or "").strip().casefold()
    m = int(m_text) if m_text.isdigit() else _MONTHS.get(m_text[:3], 0)
    if not 1 <= m <= 12:
        return y
    d_text = str(day or "").strip()
    d = int(d_text) if d_text.isdigit() else 0
    return f"{y}-{m:02d}-{d:02d}" if 1 <= d <= 31 else f"{y}-{m:02d}"


def date_from_text(text: Any) -> str | None:
    """An ISO date at the start of a text (`2021-02-16`, `2021-2`, `2021`)."""
    m = _ISO.match(str(text or "").strip())
    return iso_date(*m.groups()) if m else None


def paper_url(url: str | None, doi: str | None, arxiv_id: str | None) -> str | None:
    if url:
        return url
    if doi:
        return f"https://doi.org/{doi}"
    if arxiv_id:
        return f"https://arxiv.org/abs/{arxiv_id}"
    return None


def clean_doi(value: str | None) -> str | None:
    doi = (value or "").strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "http://dx.doi.org/"):
        if doi.casefold().startswith(prefix):
            doi = doi[len(prefix) :]
    return doi.removeprefix("doi:").strip() or None


def _count(n: int, what: str) -> str:
    """'1 entry', '3 entries', '1 item', '2 items'."""
    if n == 1:
        return f"1 {what.removesuffix('ies') + 'y' if what.endswith('ies') else what.removesuffix('s')}"
    return f"{n} {what}"


def missing_abstracts(path: Path, skipped: list[tuple[int, str]], what: str = "entries") -> str:
    """The one summary line for records skipped because they have no abstract."""
    shown = ", ".join(f"{name} (line {line})" for line, name in skipped[:SUMMARY_EXAMPLES])
    more = f" and {len(skipped) - SUMMARY_EXAMPLES} more" if len(skipped) > SUMMARY_EXAMPLES else ""
    return f"{path}: {_count(len(skipped), what)} without an abstract skipped: {shown}{more}"


def no_usable(
    path: Path, total: int, skipped: list[tuple[int, str]], problems: list[str], what: str
) -> LoaderError:
    """The file-level error when not one record could be used, with the first reason why."""
    parts = [f"no usable {what}: {total} read"]
    if skipped:
        parts.append(f"{len(skipped)} without an abstract (export the library with abstracts)")
    if problems:
        parts.append(f"{len(problems)} unreadable, the first: {problems[0]}")
    return LoaderError(path, "; ".join(parts))


# --- BibTeX -------------------------------------------------------------------------------
def _pieces(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(0-based line number of the piece's first line, text), cut only before an entry start."""
    buf: list[str] = []
    size = 0
    start = 0
    for n, line in enumerate(lines):
        if size >= PIECE_CHARS and line.lstrip().startswith("@"):
            yield start, "".join(buf)
            buf, size, start = [], 0, n
        buf.append(line)
        size += len(line)
    if buf:
        yield start, "".join(buf)


def _parse_stack() -> list[Any]:
    from bibtexparser.middlewares import SeparateCoAuthors, default_parse_stack

    return [*default_parse_stack(), SeparateCoAuthors()]


def _blocks(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """Every block of the file with its 1-based line, macros resolved across pieces."""
    import bibtexparser
    from bibtexparser.model import String

    strings: list[Any] = []
    for offset, text in _pieces(lines):
        seed = bibtexparser.Library(strings, fail_on_duplicate_key=False)
        seeded = {id(s) for s in seed.blocks}
        parsed = bibtexparser.parse_string(text, parse_stack=_parse_stack(), library=seed)
        for block in parsed.blocks:
            if id(block) in seeded:
                continue
            if isinstance(block, String):
                strings.append(block)
            yield offset + (block.start_line or 0) + 1, block


def _field(entry: Any, *keys: str) -> str:
    for key in keys:
        for f in entry.fields:
            if f.key.casefold() == key and isinstance(f.value, str) and f.value.strip():
                return f.value.strip()
    return ""


def _names(entry: Any) -> list[str]:
    from bibtexparser.middlewares.names import parse_single_name_into_parts

    value: Any = next((f.value for f in entry.fields if f.key.casefold() == "author"), [])
    names = value if isinstance(value, list) else [value]
    out = []
    for raw in names:
        raw = str(raw).strip()
        if not raw or raw.casefold() == "others":
            continue
        try:
            merged = parse_single_name_into_parts(raw, strict=False).merge_first_name_first
        except Exception:
            merged = raw
        if name := latex_to_text(merged):
            out.append(name)
    return out


def _plain(value: str) -> str:
    """An identifier or URL field: braces and `\\url{}` dropped, escaped specials unescaped."""
    if value.startswith("\\url{") and value.endswith("}"):
        value = value[5:-1]
    for escaped, char in (("\\_", "_"), ("\\%", "%"), ("\\&", "&"), ("\\#", "#"), ("\\~", "~")):
        value = value.replace(escaped, char)
    return value.replace("{", "").replace("}", "").strip()


def _entry_paper(path: Path, line: int, entry: Any) -> Paper | None:
    """A Paper, or None when the entry has no abstract; LoaderError when it has no title."""
    title = latex_to_text(_field(entry, "title"))
    if not title:
        raise LoaderError(path, f"entry {entry.key!r} has no title", line)
    abstract = latex_to_text(_field(entry, "abstract"))
    if not abstract:
        return None
    doi = clean_doi(_plain(_field(entry, "doi")))
    eprint = _plain(_field(entry, "eprint"))
    prefix = _field(entry, "archiveprefix", "eprinttype").casefold()
    url = _plain(_field(entry, "url"))
    arxiv = (bare_arxiv_id(eprint) if prefix in ("", "arxiv") else None) or find_arxiv_id(
        url,
        doi,
        _field(entry, "journal"),
        _field(entry, "volume"),
        _field(entry, "note"),
        _field(entry, "howpublished"),
    )
    date = date_from_text(_field(entry, "date")) or iso_date(
        _field(entry, "year"), _field(entry, "month"), _field(entry, "day")
    )
    extra = {"line": str(line), "bibtex_key": entry.key, "entry_type": entry.entry_type.casefold()}
    if doi:
        extra["doi"] = doi
    if arxiv:
        extra["arxiv_id"] = arxiv
    if venue := latex_to_text(_field(entry, "journal", "booktitle", "journaltitle")):
        extra["venue"] = venue
    return make_paper(
        title,
        abstract,
        str(path),
        authors=_names(entry),
        date=date,
        url=paper_url(url or None, doi, arxiv),
        extra=extra,
    )


def _failure(block: Any) -> str:
    """What went wrong with a block bibtexparser could not read, in one line."""
    reason = getattr(block.error, "abort_reason", None) or str(block.error) or type(block.error).__name__
    return " ".join(str(reason).split())[:160]


def _failed_key(block: Any) -> str:
    head = (block.raw or "").split(",", 1)[0]
    key = head.split("{", 1)[-1].split("(", 1)[-1].strip()
    return key if key and len(key) < 80 and "\n" not in key else "?"


def load_bibtex(path: Path, lines: Iterable[str], problems: list[str]) -> list[Paper]:
    from bibtexparser.model import DuplicateBlockKeyBlock, DuplicateFieldKeyBlock, Entry, ParsingFailedBlock

    papers: list[Paper] = []
    skipped: list[tuple[int, str]] = []
    bad: list[str] = []
    entries = 0
    for line, block in _blocks(lines):
        if isinstance(block, DuplicateBlockKeyBlock | DuplicateFieldKeyBlock) and isinstance(
            block.ignore_error_block, Entry
        ):
            block = block.ignore_error_block  # a repeated key is the reference manager's business
        if isinstance(block, ParsingFailedBlock):
            entries += 1
            bad.append(
                f"{path}:{line}: entry {_failed_key(block)!r} is not valid BibTeX ({_failure(block)}); skipped"
            )
            continue
        if not isinstance(block, Entry):
            continue  # @string, @preamble, @comment and text between entries
        entries += 1
        try:
            paper = _entry_paper(path, line, block)
        except LoaderError as err:
            bad.append(f"{err}; skipped")
            continue
        if paper is None:
            skipped.append((line, block.key))
        else:
            papers.append(paper)
    if not entries:
        raise LoaderError(path, "no BibTeX entries found (expected @article{...}, @misc{...}, ...)")
    if not papers:
        raise no_usable(path, entries, skipped, bad, "BibTeX entries")
    problems.extend(bad)
    if skipped:
        problems.append(missing_abstracts(path, skipped))
    return papers
