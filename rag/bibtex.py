"""BibTeX out: found or cited papers as entries a reference manager or LaTeX can use.

Keys are stable: the key a paper came with from a `.bib` file, else first author's
surname + year + first title word (`vaswani2017attention`), or the first two title
words + year when the authors are unknown. Papers of one export that would share a
key get `a`, `b`, ... in paper-id order, so the same set of papers always gets the
same keys, whatever the order. Text fields are LaTeX-encoded by pylatexenc
(`ö` -> `{\\"o}`, `%` -> `\\%`, `{` -> `\\{`), titles are brace-protected, and
`eprint`/`archivePrefix`, `doi` and `url` are written where known. The `.bib`
loader reads the output back to the same titles and abstracts.

`bibtex_for(lib, result)` is what the CLI's `--bibtex` and the app's download call.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.loaders.bibtex import bare_arxiv_id, find_arxiv_id
from rag.errors import RagError
from rag.types import Answer, FindResult, Paper

if TYPE_CHECKING:
    from rag.library import Library

_KEY_OK = re.compile(r"^[A-Za-z0-9_:.+/-]+$")
_STOP = {"a", "an", "the", "on", "of", "in", "for", "to", "and", "with", "towards", "via", "is", "are"}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
#: Entry types written as such (with their venue field); anything else becomes @misc.
_VENUE_FIELD = {"article": "journal", "inproceedings": "booktitle", "incollection": "booktitle"}


@lru_cache(maxsize=1)
def _encoder() -> Any:
    from pylatexenc.latexencode import RULE_REGEX, UnicodeToLatexConversionRule, UnicodeToLatexEncoder

    # `--`, `` ` ` `` and `''` are ligatures in LaTeX (dashes, quotes): break them so they stay as typed.
    # A straight `"` stays one (braced against babel shorthands), not the closing quote `''`.
    ligatures = UnicodeToLatexConversionRule(
        rule_type=RULE_REGEX,
        rule=[
            (re.compile(r"-(?=-)"), r"-{}"),
            (re.compile(r"`(?=`)"), r"`{}"),
            (re.compile(r"'(?=')"), r"'{}"),
            (re.compile(r'"'), r'{"}'),
        ],
    )
    return UnicodeToLatexEncoder(
        conversion_rules=[ligatures, "defaults"],
        non_ascii_only=False,
        replacement_latex_protection="braces-all",
        unknown_char_policy="keep",
        unknown_char_warning=False,
    )


def latex(text: str) -> str:
    """Plain text as a LaTeX field value: specials escaped, non-ASCII as LaTeX macros where they exist."""
    return _encoder().unicode_to_latex(" ".join(text.split()))


def _ascii_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.findall(r"[a-z0-9]+", folded.casefold())


def _surname(author: str) -> str:
    name = author.split(",")[0] if "," in author else (author.split() or [""])[-1]
    return "".join(_ascii_words(name))


def base_key(paper: Paper) -> str:
    """The key before de-duplication: the paper's own `.bib` key, else surname + year + title word."""
    own = paper.extra.get("bibtex_key", "")
    if own and _KEY_OK.match(own):
        return own
    year = (paper.date or "")[:4]
    words = [w for w in _ascii_words(paper.title) if w not in _STOP] or _ascii_words(paper.title) or ["paper"]
    surname = _surname(paper.authors[0]) if paper.authors else ""
    if surname:
        return f"{surname}{year}{words[0]}"
    return f"{''.join(words[:2])}{year}"


def keys(papers: Sequence[Paper]) -> dict[str, str]:
    """Paper id -> key, unique within the export and independent of the papers' order."""
    by_base: dict[str, list[str]] = {}
    for p in papers:
        by_base.setdefault(base_key(p), []).append(p.id)
    out: dict[str, str] = {}
    for base, ids in by_base.items():
        for i, pid in enumerate(sorted(set(ids))):
            out[pid] = base if i == 0 else f"{base}{_suffix(i)}"
    return out


def _suffix(i: int) -> str:
    """1 -> a, 2 -> b, ... 26 -> z, 27 -> aa."""
    s = ""
    while i > 0:
        i, r = divmod(i - 1, 26)
        s = chr(ord("a") + r) + s
    return s


def _verbatim(value: str) -> str:
    """A DOI or URL: kept as typed, but braces (which would end the field) percent-encoded."""
    return value.strip().replace("{", "%7B").replace("}", "%7D").replace("\n", "")


def _author(name: str) -> str:
    encoded = latex(name)
    # A name with a comma or a lowercase " and " would be split or reordered by BibTeX: protect it whole.
    return f"{{{encoded}}}" if "," in name or " and " in name else encoded


def entry(paper: Paper, key: str) -> str:
    """One BibTeX entry."""
    arxiv = bare_arxiv_id(paper.extra.get("arxiv_id")) or find_arxiv_id(paper.url)
    kind = paper.extra.get("entry_type", "")
    venue = paper.extra.get("venue", "")
    if kind not in _VENUE_FIELD or not venue:
        kind = "misc"
    fields: list[tuple[str, str]] = [("title", f"{{{latex(paper.title)}}}")]
    if paper.authors:
        fields.append(("author", " and ".join(_author(a) for a in paper.authors)))
    if kind in _VENUE_FIELD:
        fields.append((_VENUE_FIELD[kind], latex(venue)))
    if paper.date:
        fields.append(("year", paper.date[:4]))
        if len(paper.date) >= 7 and paper.date[5:7].isdigit() and 1 <= int(paper.date[5:7]) <= 12:
            fields.append(("month", _MONTHS[int(paper.date[5:7]) - 1]))
        fields.append(("date", paper.date))
    if doi := paper.extra.get("doi"):
        fields.append(("doi", _verbatim(doi)))
    if arxiv:
        fields += [("eprint", arxiv), ("archivePrefix", "arXiv")]
    if paper.url:
        fields.append(("url", _verbatim(paper.url)))
    if paper.abstract:
        fields.append(("abstract", latex(paper.abstract)))
    width = max(len(name) for name, _ in fields)
    body = ",\n".join(
        f"  {name.ljust(width)} = {value}" if name == "month" else f"  {name.ljust(width)} = {{{value}}}"
        for name, value in fields
    )
    return f"@{kind}{{{key},\n{body}\n}}\n"


def to_bibtex(papers: Iterable[Paper]) -> str:
    """Entries for these papers, in their order, each paper once."""
    unique = list({p.id: p for p in papers}.values())
    key_of = keys(unique)
    return "\n".join(entry(p, key_of[p.id]) for p in unique)


def paper_ids(result: FindResult | Answer) -> list[str]:
    """Ids of the papers a search found, or that an answer's sentences cite (an abstention cites none)."""
    if isinstance(result, FindResult):
        return [h.paper.id for h in result.papers]
    cited = {n for s in result.sentences for n in s.citations}
    return list(dict.fromkeys(s.paper_id for s in result.sources if s.n in cited))


def papers_for(lib: Library, result: FindResult | Answer) -> list[Paper]:
    """Those papers with their whole abstracts and metadata from the index."""
    return [lib.get_paper(pid) for pid in paper_ids(result)]


def bibtex_for(lib: Library, result: FindResult | Answer) -> str:
    """BibTeX of what `lib.find` found or `lib.ask`/`lib.summarize` cited (empty string for nothing)."""
    return to_bibtex(papers_for(lib, result))


def export(lib: Library, result: FindResult | Answer, path: Path | str) -> int:
    """Write `bibtex_for(lib, result)` to `path`; returns the number of entries."""
    papers = papers_for(lib, result)
    write_bibtex(path, to_bibtex(papers))
    return len(papers)


def write_bibtex(path: Path | str, text: str) -> None:
    """Write the entries atomically; an unwritable path is one clear error."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise RagError(f"{path}: cannot write the BibTeX file ({err.strerror or err})") from err
