"""The web app: a Gradio UI over `Library` (ask with streamed, cited answers; find papers;
summarize; add papers to the index).

Every call goes through one `Library` per process, so the embedding model stays
loaded. The UI never talks to Chroma or the LLM itself.

Safety: all paper and user text is rendered through `text_html`, which escapes HTML
*and* every character Markdown gives meaning to (as numeric entities), so an abstract
containing `<script>` or `[x](javascript:...)` shows as those characters and nothing
else. Only the markup written in this module is live.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import hashlib
import html
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

# Before gradio is imported: no analytics, no version check, no hub calls.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import gradio as gr  # noqa: E402

from rag.bibtex import paper_ids as bib_paper_ids  # noqa: E402
from rag.bibtex import to_bibtex  # noqa: E402
from rag.citations import MARKER  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.library import Library  # noqa: E402
from rag.types import Answer, FindResult, PaperHit, Status  # noqa: E402

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".jsonl", ".csv", ".txt", ".json", ".bib")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
HF_SEARCH = "https://huggingface.co/papers?q="
SUMMARY_PAPERS = 8  # "Summarize the top N" in Find papers
STREAM_INTERVAL = 0.05  # seconds between UI updates while an answer streams
M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
HISTORY_MESSAGES = 20  # conversation kept per session for follow-ups (the answerer reads the last few)

EXAMPLE_QUESTIONS = [
    "How does parameter-efficient fine-tuning compare with full fine-tuning?",
    "How can a model detect out-of-distribution or misclassified inputs?",
    "How are retrieval-augmented generation systems evaluated?",
    "Which semi-supervised methods work best for audio classification?",
]
EXAMPLE_SEARCHES = [
    "dataset distillation",
    "scaling laws for language models",
    "continual learning without exemplars",
    "video-text retrieval",
]
EXAMPLE_TOPICS = [
    "parameter-efficient fine-tuning",
    "evaluation of retrieval-augmented generation",
    "object-centric learning",
]


# --- safe text ---------------------------------------------------------------------------
# HTML specials plus every character Markdown (and GFM autolinks, tables, strikethrough,
# LaTeX) gives meaning to, as numeric entities: entities never count as syntax.
_ENTITIES = {c: f"&#{ord(c)};" for c in "&<>\"'\\`*_{}[]()#+-.!|~$:=/^@%"}
_ENTITY_TABLE = str.maketrans(_ENTITIES)


def text_html(text: str | None) -> str:
    """Untrusted text as inert HTML: no tags, no Markdown, no links; newlines kept."""
    if not text:
        return ""
    return text.translate(_ENTITY_TABLE).replace("\r\n", "\n").replace("\n", "<br>")


def attr(value: str) -> str:
    return html.escape(value, quote=True)


def hf_link(title: str) -> str:
    return HF_SEARCH + quote(title, safe="")


def _cite_html(group: str, numbers: Sequence[int], titles: dict[int, str]) -> str:
    """A [n] marker; hovering shows the cited titles."""
    cls = "rag-cite" if all(n in titles for n in numbers) else "rag-cite rag-cite-bad"
    tip = " · ".join(f"[{n}] {titles[n]}" for n in numbers if n in titles)
    tip_attr = f' title="{attr(tip)}"' if tip else ""
    return f'<span class="{cls}"{tip_attr}>[{text_html(group)}]</span>'


def _with_citations(text: str, titles: dict[int, str]) -> str:
    """Escape text, styling its [n] markers (`titles`: the sources' titles by number)."""
    from rag.citations import numbers_in

    out: list[str] = []
    pos = 0
    for m in MARKER.finditer(text):
        out.append(text_html(text[pos : m.start()]))
        out.append(_cite_html(m.group(1), numbers_in(m.group(1)), titles))
        pos = m.end()
    out.append(text_html(text[pos:]))
    return "".join(out)


def cited_numbers(text: str) -> list[int]:
    from rag.citations import numbers_in

    return list(dict.fromkeys(n for g in MARKER.findall(text) for n in numbers_in(g)))


# --- rendering ---------------------------------------------------------------------------
def _answer_body(answer: Answer) -> str:
    """The answer's paragraphs, citation markers styled, unsupported sentences marked."""
    from rag.citations import with_markers

    known = {s.n: s.title for s in answer.sources}
    flagged = [with_markers(s.text, s.citations) for s in answer.sentences if s.supported is False]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", answer.answer) if p.strip()]
    out = []
    for par in paragraphs:
        spans: list[tuple[int, int]] = []
        for sent in flagged:
            at = par.find(sent)
            if at >= 0 and not any(a < at + len(sent) and at < b for a, b in spans):
                spans.append((at, at + len(sent)))
        pos, parts = 0, []
        for a, b in sorted(spans):
            parts.append(_with_citations(par[pos:a], known))
            parts.append(
                '<span class="rag-unsupported" title="The cited sources do not support this sentence">'
                f'<span class="rag-warn">⚠</span> {_with_citations(par[a:b], known)}</span>'
            )
            pos = b
        parts.append(_with_citations(par[pos:], known))
        out.append(f"<p>{''.join(parts)}</p>")
    return f'<div class="rag-text">{"".join(out)}</div>'


def _sources_html(answer: Answer, cited: set[int], label: str = "Sources") -> str:
    if not answer.sources:
        return ""
    rows = []
    for s in answer.sources:
        muted = "" if s.n in cited or not cited else " rag-src-uncited"
        rows.append(
            f'<div class="rag-src{muted}">'
            f'<span class="rag-src-n">{s.n}</span>'
            f'<div class="rag-src-body">'
            f'<a class="rag-src-title" href="{attr(hf_link(s.title))}" target="_blank" '
            f'rel="noopener noreferrer">{text_html(s.title)}</a>'
            f'<span class="rag-date">{text_html(s.date or "undated")}</span>'
            f'<div class="rag-snippet">{text_html(s.snippet)}</div>'
            "</div></div>"
        )
    return f'<details class="rag-sources" open><summary>{label} ({len(answer.sources)})</summary>{"".join(rows)}</details>'


def _nearest_html(hits: Sequence[PaperHit]) -> str:
    if not hits:
        return ""
    rows = "".join(
        f'<div class="rag-src"><span class="rag-src-n">{i}</span><div class="rag-src-body">'
        f'<a class="rag-src-title" href="{attr(hf_link(h.paper.title))}" target="_blank" '
        f'rel="noopener noreferrer">{text_html(h.paper.title)}</a>'
        f'<span class="rag-date">{text_html(h.paper.date or "undated")}</span>'
        f'<div class="rag-snippet">{text_html(h.why)}</div></div></div>'
        for i, h in enumerate(hits, start=1)
    )
    return (
        f'<details class="rag-sources" open><summary>Nearest papers ({len(hits)})</summary>{rows}</details>'
    )


def backend_label(backend: str) -> str:
    if backend == "extractive":
        return "extractive (sentences quoted from the abstracts)"
    if backend.startswith("llm:"):
        return f"LLM {backend[4:]}"
    return backend


def render_answer(answer: Answer, nearest: Sequence[PaperHit] = (), scope: str = "") -> str:
    """One assistant message: notice, answer (unsupported sentences marked), sources, backend.
    `scope` names the date filter in force, if any."""
    out = ['<div class="rag-answer">']
    if answer.notice:
        out.append(f'<div class="rag-notice">⚠ {text_html(answer.notice)}</div>')
    if answer.abstained:
        out.append(f'<div class="rag-abstain">{_answer_body(answer)}</div>')
        out.append(_nearest_html(nearest) if nearest else _sources_html(answer, set(), "Nearest papers"))
    else:
        out.append(_answer_body(answer))
        cited = {n for s in answer.sentences for n in s.citations} or set(cited_numbers(answer.answer))
        unsupported = sum(1 for s in answer.sentences if s.supported is False)
        if unsupported:
            out.append(
                f'<div class="rag-hint"><span class="rag-warn">⚠</span> {unsupported} sentence'
                f"{'s are' if unsupported > 1 else ' is'} not supported by the cited sources (greyed out)."
                "</div>"
            )
        out.append(_sources_html(answer, cited))
    total = answer.timings.get("total_ms")
    took = f" · {total / 1000:.1f} s" if total else ""
    dropped = (
        f" · {answer.invalid_citations} invalid citation{'s' if answer.invalid_citations > 1 else ''} removed"
        if answer.invalid_citations
        else ""
    )
    where = f" · papers {text_html(scope)}" if scope else ""
    out.append(
        f'<div class="rag-backend">answered by {text_html(backend_label(answer.backend))}'
        f"{where}{took}{dropped}</div>"
    )
    out.append("</div>")
    return "".join(out)


def render_partial(text: str) -> str:
    body = _with_citations(text, {}) if text else '<span class="rag-muted">Searching the abstracts…</span>'
    return f'<div class="rag-answer rag-streaming"><div class="rag-text">{body}<span class="rag-cursor"></span></div></div>'


def render_error(message: str) -> str:
    return f'<div class="rag-error">⚠ {text_html(message)}</div>'


def render_user(text: str) -> str:
    return text_html(text)


def _highlight(text: str, query: str) -> str:
    """Escaped text with the query's words (3+ letters, any suffix) in <mark>."""
    words = [re.escape(w) for w in re.findall(r"\w{3,}", query)]
    if not words:
        return text_html(text)
    pattern = re.compile(rf"\b(?:{'|'.join(words)})\w*", re.IGNORECASE)
    out, pos = [], 0
    for m in pattern.finditer(text):
        out.append(text_html(text[pos : m.start()]))
        out.append(f"<mark>{text_html(m.group(0))}</mark>")
        pos = m.end()
    out.append(text_html(text[pos:]))
    return "".join(out)


def render_find(result: FindResult, filters_note: str = "") -> str:
    if not result.papers:
        return (
            '<div class="rag-empty">No matching papers'
            + (f" {text_html(filters_note)}" if filters_note else "")
            + ". Try other words or a wider date range.</div>"
        )
    took = result.timings.get("total_ms")
    head = (
        f'<div class="rag-find-head">{len(result.papers)} papers for “{text_html(result.query)}”'
        + (f" {text_html(filters_note)}" if filters_note else "")
        + (f' <span class="rag-muted">· {took:.0f} ms</span>' if took else "")
        + "</div>"
    )
    top = result.papers[0].score or 1.0
    items = []
    for rank, hit in enumerate(result.papers, start=1):
        p = hit.paper
        authors = ", ".join(p.authors[:4]) + (" et al." if len(p.authors) > 4 else "")
        rel = max(0.0, min(1.0, hit.score / top)) if top else 0.0
        excerpt = hit.chunks[0].text if hit.chunks else ""
        items.append(
            '<li class="rag-hit">'
            f'<div class="rag-hit-rank">{rank}</div>'
            '<div class="rag-hit-body">'
            f'<a class="rag-hit-title" href="{attr(hf_link(p.title))}" target="_blank" '
            f'rel="noopener noreferrer">{text_html(p.title)}</a>'
            '<div class="rag-hit-meta">'
            f'<span class="rag-date">{text_html(p.date or "undated")}</span>'
            f'<span class="rag-score" title="fused rank score (reciprocal rank fusion)">'
            f'<span class="rag-bar"><span style="width:{rel * 100:.0f}%"></span></span>'
            f"score {hit.score:.4f}</span>"
            + (f'<span class="rag-authors">{text_html(authors)}</span>' if authors else "")
            + "</div>"
            f'<div class="rag-why">{_highlight(hit.why, result.query)}</div>'
            + (
                f'<details class="rag-excerpt"><summary>Abstract excerpt</summary>'
                f"<div>{_highlight(excerpt, result.query)}</div></details>"
                if excerpt
                else ""
            )
            + "</div></li>"
        )
    return f'<div class="rag-find">{head}<ol class="rag-hits">{"".join(items)}</ol></div>'


def render_status(st: Status | None, settings: Any, error: str | None = None) -> str:
    if error:
        return f'<div class="rag-status">{render_error(error)}</div>'
    assert st is not None
    if settings.llm_base_url:
        answers = f"LLM {text_html(settings.llm_model)} (extractive fallback)"
    else:
        answers = "extractive (no LLM configured)"
    last = text_html((st.last_ingest or "never").replace("T", " ")[:19])
    return (
        '<div class="rag-status">'
        f'<div class="rag-stat"><b>{st.papers:,}</b> papers</div>'
        f'<div class="rag-stat"><b>{st.chunks:,}</b> chunks</div>'
        '<dl class="rag-kv">'
        f"<dt>Embedding</dt><dd>{text_html(st.embed_model)}</dd>"
        f"<dt>Chunk size</dt><dd>{st.chunk_size} word pieces</dd>"
        f"<dt>Answers</dt><dd>{answers}</dd>"
        f"<dt>Last ingest</dt><dd>{last}</dd>"
        "</dl></div>"
    )


# --- uploads -----------------------------------------------------------------------------
def safe_upload_name(name: str) -> str:
    """A basename with only [A-Za-z0-9._-], no leading dots, at most 100 characters."""
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = stem.strip("._-")[:90] or "upload"
    return f"{stem}.{suffix.lower()}" if suffix else stem


def save_upload(src: Path, original_name: str, uploads_dir: Path) -> tuple[Path, bool]:
    """Copy an uploaded file into `uploads_dir` under a sanitised name that never overwrites
    another file; returns the path and whether it is new (False: the same bytes were there)."""
    name = safe_upload_name(original_name)
    if not name.endswith(UPLOAD_SUFFIXES):
        raise RagError(f"{name}: only {', '.join(UPLOAD_SUFFIXES)} files can be added")
    size = src.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise RagError(f"{name}: {size / 1e6:.0f} MB is over the {MAX_UPLOAD_BYTES // 1_000_000} MB limit")
    if size == 0:
        raise RagError(f"{name}: the file is empty")
    uploads_dir.mkdir(parents=True, exist_ok=True)
    stem, _, suffix = name.rpartition(".")
    target = uploads_dir / name
    n = 2
    while target.exists():
        if target.stat().st_size == size and target.read_bytes() == src.read_bytes():
            return target, False  # the same file again: ingest is idempotent
        target = uploads_dir / f"{stem}-{n}.{suffix}"
        n += 1
    tmp = target.with_name(f".{target.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)
    return target, True


# --- the app -----------------------------------------------------------------------------
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def _date(value: str | None) -> str | None:
    """A filter box's value: None when empty; RagError (shown as one line) when not a date."""
    value = (value or "").strip()
    if value and not _DATE.match(value):
        raise RagError(f"“{value}” is not a date: type YYYY, YYYY-MM or YYYY-MM-DD in the date filter")
    return value or None


def _filters_note(date_from: str | None, date_to: str | None) -> str:
    if date_from and date_to:
        return f"from {date_from} to {date_to}"
    if date_from:
        return f"from {date_from} on"
    if date_to:
        return f"up to {date_to}"
    return ""


class WebApp:
    """The handlers, bound to one Library."""

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self._exports: Path | None = None

    # --- BibTeX downloads --------------------------------------------------------------
    def bibtex_download(self, paper_ids: list[str]) -> Any:
        """The papers as a `.bib` download button, hidden when there are none.

        The file goes to a per-process temporary folder (Gradio serves files from the
        temp dir and copies them into its own cache); its name is a hash of the content,
        so asking the same thing twice writes one file, and the folder goes at exit.
        """
        hidden = gr.DownloadButton(value=None, visible=False)
        if not paper_ids:
            return hidden
        try:
            text = to_bibtex(self.lib.get_paper(pid) for pid in paper_ids)
        except RagError as err:  # a paper pruned since the search: no download, not an error page
            log.warning("no BibTeX download: %s", err)
            return hidden
        if self._exports is None:
            self._exports = Path(tempfile.mkdtemp(prefix="rag-bib-"))
            atexit.register(shutil.rmtree, self._exports, True)
        path = self._exports / f"sources-{hashlib.sha1(text.encode()).hexdigest()[:12]}.bib"
        path.write_text(text, encoding="utf-8")
        n = len(paper_ids)
        return gr.DownloadButton(
            value=str(path), visible=True, label=f"Download {n} source{'s' * (n != 1)} (.bib)"
        )

    # --- ask ---------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        chat: list[dict[str, Any]],
        history: list[dict[str, str]],
        date_from: str,
        date_to: str,
    ) -> Iterator[tuple[Any, list[dict[str, Any]], list[dict[str, str]], list[str]]]:
        """Stream the answer into the chat; the last item is the ids of the papers it cites."""
        question = (question or "").strip()
        if not question:
            yield "", chat, history, []
            return
        chat = [*chat, {"role": "user", "content": render_user(question)}]
        chat.append({"role": "assistant", "content": render_partial("")})
        yield "", chat, history, []
        cited: list[str] = []
        try:
            answer: Answer | None = None
            text, last = "", 0.0
            stream = self.lib.ask_stream(
                question, history=list(history), date_from=_date(date_from), date_to=_date(date_to)
            )
            for item in stream:
                if isinstance(item, Answer):
                    answer = item
                    continue
                text += item
                now = time.monotonic()
                if now - last >= STREAM_INTERVAL:
                    last = now
                    chat[-1] = {"role": "assistant", "content": render_partial(text)}
                    yield "", chat, history, []
            if answer is None:
                raise RagError("the answerer finished without an answer")
            nearest: list[PaperHit] = []
            if answer.abstained and not answer.sources:
                nearest = self._nearest(question, date_from, date_to)
            scope = _filters_note(_date(date_from), _date(date_to))
            chat[-1] = {"role": "assistant", "content": render_answer(answer, nearest, scope)}
            cited = bib_paper_ids(answer)
            history = [
                *history,
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer.answer},
            ][-HISTORY_MESSAGES:]
        except RagError as err:
            chat[-1] = {"role": "assistant", "content": render_error(str(err))}
        except Exception as err:  # a bug must not leave the chat hanging
            log.exception("ask failed")
            chat[-1] = {"role": "assistant", "content": render_error(_internal(err))}
        yield "", chat, history, cited

    def _nearest(self, query: str, date_from: str, date_to: str) -> list[PaperHit]:
        try:
            return self.lib.find(query, k=5, date_from=_date(date_from), date_to=_date(date_to)).papers
        except RagError:
            return []

    # --- find --------------------------------------------------------------------------
    def find(self, query: str, k: float, date_from: str, date_to: str) -> tuple[str, list[str]]:
        query = (query or "").strip()
        try:
            df, dt = _date(date_from), _date(date_to)
            result = self.lib.find(query, k=int(k), date_from=df, date_to=dt)
        except RagError as err:
            return render_error(str(err)), []
        except Exception as err:
            log.exception("find failed")
            return render_error(_internal(err)), []
        return render_find(result, _filters_note(df, dt)), [h.paper.id for h in result.papers]

    # --- summarize ---------------------------------------------------------------------
    def summarize(self, topic: str, date_from: str, date_to: str) -> str:
        topic = (topic or "").strip()
        if not topic:
            return render_error("type a topic to summarize, e.g. “dataset distillation”")
        return self._summarize(topic=topic, paper_ids=None, date_from=date_from, date_to=date_to)

    def summarize_ids(self, paper_ids: list[str], date_from: str, date_to: str) -> str:
        if not paper_ids:
            return render_error("search for papers first, then summarize them")
        return self._summarize(
            topic=None, paper_ids=paper_ids[:SUMMARY_PAPERS], date_from=date_from, date_to=date_to
        )

    def _summarize(self, topic: str | None, paper_ids: list[str] | None, date_from: str, date_to: str) -> str:
        try:
            answer = self.lib.summarize(
                topic=topic, paper_ids=paper_ids, date_from=_date(date_from), date_to=_date(date_to)
            )
        except RagError as err:
            return render_error(str(err))
        except Exception as err:
            log.exception("summarize failed")
            return render_error(_internal(err))
        nearest = self._nearest(topic, date_from, date_to) if answer.abstained and topic else []
        scope = "" if paper_ids else _filters_note(_date(date_from), _date(date_to))
        return render_answer(answer, nearest, scope)

    # --- index -------------------------------------------------------------------------
    def status(self) -> str:
        try:
            return render_status(self.lib.status(), self.lib.settings)
        except RagError as err:
            return render_status(None, self.lib.settings, str(err))
        except Exception as err:
            log.exception("status failed")
            return render_status(None, self.lib.settings, _internal(err))

    def upload(self, file: Any, progress: gr.Progress = gr.Progress()) -> tuple[str, str, None]:  # noqa: B008
        """Save an uploaded file under data_dir/uploads and ingest it; never raises."""
        if not file:
            return "", self.status(), None
        src = Path(file if isinstance(file, str) else getattr(file, "name", str(file)))

        def report_progress(done: int, total: int, label: str) -> None:
            if progress is not None:
                progress((done, total) if total else None, desc=label)

        saved: Path | None = None
        created = False

        def fail(message: str) -> tuple[str, str, None]:
            if saved is not None and created:
                saved.unlink(missing_ok=True)  # a file that added nothing is not kept
            return render_error(f"Nothing added: {message}"), self.status(), None

        try:
            saved, created = save_upload(src, src.name, Path(self.lib.settings.data_dir) / "uploads")
            report = self.lib.ingest([saved], progress=report_progress)
        except RagError as err:
            return fail(self._hide_paths(str(err), saved))
        except Exception as err:
            log.exception("ingest of %s failed", src)
            return fail(_internal(err))
        problems = [self._hide_paths(p, saved) for p in report.problems]
        if report.papers_read == 0:
            return fail("; ".join(problems[:3]) or "no papers in the file")
        parts = [
            f"<b>{text_html(saved.name)}</b>: {report.papers_unique} paper"
            f"{'' if report.papers_unique == 1 else 's'} read · {report.added} added · "
            f"{report.updated} updated · {report.unchanged} unchanged · {report.seconds:.1f} s"
        ]
        if problems:
            shown = "".join(f"<li>{text_html(p)}</li>" for p in problems[:8])
            more = f"<li>… and {len(problems) - 8} more</li>" if len(problems) > 8 else ""
            parts.append(f'<div class="rag-label">Skipped</div><ul class="rag-problems">{shown}{more}</ul>')
        return f'<div class="rag-ingest-ok">{"".join(parts)}</div>', self.status(), None

    @staticmethod
    def _hide_paths(message: str, saved: Path | None) -> str:
        """Messages name the uploaded file, not where the server keeps it."""
        if saved is None:
            return message
        for form in {str(saved.resolve()), str(saved)}:
            message = message.replace(form, saved.name)
        return message


def _internal(err: Exception) -> str:
    return f"something went wrong ({type(err).__name__}); the details are in the server log"


# --- layout ------------------------------------------------------------------------------
CSS = """
.gradio-container { max-width: 1280px !important; margin: 0 auto !important; }
#rag-header { display: flex; align-items: baseline; gap: .75rem; flex-wrap: wrap; padding: .25rem 0 0; }
#rag-header h1 { font-size: 1.5rem; margin: 0; font-weight: 650; letter-spacing: -.01em;
  display: flex; align-items: center; gap: .45rem; }
.rag-logo { color: var(--color-accent); }
#rag-chat .placeholder { text-align: center; color: var(--body-text-color-subdued); }
#rag-chat .examples { display: grid !important; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: .6rem;
  max-width: 720px; margin: 1rem auto 0; }
#rag-chat .examples .example { border: 1px solid var(--border-color-primary); border-radius: .7rem;
  background: var(--background-fill-secondary); padding: .7rem .9rem; text-align: left; width: 100%;
  max-width: none; transition: border-color .15s, background .15s; }
#rag-chat .examples .example:hover { border-color: var(--color-accent); background: var(--color-accent-soft); }
#rag-header .rag-sub { color: var(--body-text-color-subdued); font-size: .95rem; }
.rag-muted { color: var(--body-text-color-subdued); }
.rag-answer { line-height: 1.55; }
.rag-text { margin-bottom: .35rem; }
.rag-text p { margin: 0 0 .6rem; }
.rag-text p:last-child { margin-bottom: 0; }
.rag-cite { display: inline; font-size: .78em; font-weight: 600; padding: 0 .3em; margin: 0 0 0 .1em;
  border-radius: .35em; background: var(--color-accent-soft); color: var(--color-accent);
  vertical-align: .1em; line-height: 1.4; }
.rag-cite-bad { background: var(--neutral-200); color: var(--neutral-600); }
.rag-unsupported { color: var(--body-text-color-subdued); text-decoration: underline dotted;
  text-decoration-color: #d97706; text-underline-offset: 3px; }
.rag-warn { color: #d97706; font-weight: 700; }
.rag-hint { font-size: .85em; color: var(--body-text-color-subdued); margin: .25rem 0; }
.rag-notice { background: #fef3c7; color: #78350f; border: 1px solid #fcd34d; border-radius: .5rem;
  padding: .35rem .6rem; margin-bottom: .5rem; font-size: .9em; }
.rag-abstain { background: var(--background-fill-secondary); border-left: 3px solid #d97706;
  padding: .4rem .7rem; margin-bottom: .5rem; border-radius: .25rem; }
.rag-error { color: #b91c1c; background: #fef2f2; border: 1px solid #fecaca; border-radius: .5rem;
  padding: .4rem .65rem; }
.rag-sources { margin-top: .6rem; border-top: 1px solid var(--border-color-primary); padding-top: .4rem; }
.rag-sources > summary, .rag-excerpt > summary { cursor: pointer; font-size: .85em; font-weight: 600;
  color: var(--body-text-color-subdued); text-transform: uppercase; letter-spacing: .04em; }
.rag-src { display: flex; gap: .6rem; margin: .55rem 0; }
.rag-src-uncited { opacity: .55; }
.rag-src-n { flex: 0 0 auto; min-width: 1.6em; height: 1.6em; border-radius: 50%; text-align: center;
  font-size: .8em; font-weight: 700; line-height: 1.6em; background: var(--color-accent-soft);
  color: var(--color-accent); }
.rag-src-body { flex: 1; min-width: 0; }
.rag-src-title, .rag-hit-title { font-weight: 600; text-decoration: none !important; padding: 0 !important; }
.rag-src-title:hover, .rag-hit-title:hover { text-decoration: underline !important; }
.rag-date { margin-left: .5rem; font-size: .8em; color: var(--body-text-color-subdued);
  font-variant-numeric: tabular-nums; white-space: nowrap; }
.rag-snippet { font-size: .88em; color: var(--body-text-color-subdued); margin-top: .15rem;
  border-left: 2px solid var(--border-color-primary); padding-left: .5rem; }
.rag-backend { font-size: .78em; color: var(--body-text-color-subdued); margin-top: .5rem; }
.rag-cursor { display: inline-block; width: .5em; height: 1em; margin-left: .1em; vertical-align: -.1em;
  background: var(--color-accent); animation: rag-blink 1s steps(2) infinite; }
@keyframes rag-blink { 50% { opacity: 0; } }
.rag-nearest ol, .rag-hits { margin: .25rem 0 0; padding-left: 1.2rem; }
.rag-label { font-size: .8em; font-weight: 600; text-transform: uppercase; letter-spacing: .04em;
  color: var(--body-text-color-subdued); margin-top: .5rem; }
.rag-find-head { font-size: .95em; margin: .25rem 0 .5rem; }
ol.rag-hits { list-style: none; padding: 0; margin: 0; }
.rag-hit { display: flex; gap: .75rem; padding: .7rem .2rem; border-bottom: 1px solid var(--border-color-primary); }
.rag-hit-rank { flex: 0 0 2rem; font-size: 1.05rem; font-weight: 700; color: var(--body-text-color-subdued);
  text-align: right; font-variant-numeric: tabular-nums; }
.rag-hit-body { flex: 1; min-width: 0; }
.rag-hit-title { font-size: 1.02rem; }
.rag-hit-meta { display: flex; flex-wrap: wrap; align-items: center; gap: .2rem .9rem; font-size: .8em;
  color: var(--body-text-color-subdued); margin: .15rem 0 .3rem; }
.rag-hit-meta .rag-date { margin-left: 0; font-size: 1em; }
.rag-score { display: inline-flex; align-items: center; gap: .35rem; font-variant-numeric: tabular-nums; }
.rag-bar { display: inline-block; width: 48px; height: 5px; border-radius: 3px;
  background: var(--border-color-primary); overflow: hidden; }
.rag-bar > span { display: block; height: 100%; background: var(--color-accent); }
.rag-why { font-size: .93em; line-height: 1.5; }
.rag-why mark, .rag-excerpt mark { background: var(--color-accent-soft); color: inherit; padding: 0 .1em;
  border-radius: .2em; }
.rag-excerpt { margin-top: .3rem; }
.rag-excerpt > div { font-size: .88em; color: var(--body-text-color-subdued); margin-top: .25rem; }
.rag-empty { padding: 1rem; color: var(--body-text-color-subdued); }
.rag-status { font-size: .9em; }
.rag-stat { display: inline-block; margin-right: 1rem; }
.rag-stat b { font-size: 1.35rem; font-variant-numeric: tabular-nums; }
.rag-kv { display: grid; grid-template-columns: auto 1fr; gap: .15rem .75rem; margin: .5rem 0 0; }
.rag-kv dt { color: var(--body-text-color-subdued); }
.rag-kv dd { margin: 0; overflow-wrap: anywhere; }
.rag-ingest-ok { font-size: .88em; }
.rag-problems { font-size: .9em; margin: .2rem 0 0; padding-left: 1.1rem; overflow-wrap: anywhere; }
#rag-side .rag-note { font-size: .8em; color: var(--body-text-color-subdued); }
#rag-results { min-height: 4rem; }
#rag-found-summary { border: 1px solid var(--border-color-primary); border-radius: .6rem; padding: .75rem 1rem;
  background: var(--background-fill-primary); }
#rag-chat .message-wrap { font-size: .97rem; }
footer { opacity: .6; }
"""

HEAD = '<meta name="robots" content="noindex">'
# After an answer is complete, scroll the chat back to its question, so the answer is read from
# its start (the chat follows the stream to the bottom while it arrives).
SHOW_LAST_QUESTION = """() => { setTimeout(() => {
  const rows = document.querySelectorAll('#rag-chat .message-row.user-row');
  if (rows.length) rows[rows.length - 1].scrollIntoView({block: 'nearest'});
}, 300); }"""
LOGO = (
    '<svg class="rag-logo" viewBox="0 0 24 24" width="26" height="26" fill="none" stroke="currentColor" '
    'stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<path d="M4 19.5V5a2 2 0 0 1 2-2h13v16H6a2 2 0 0 0-2 2.5z"/><path d="M8 7h7M8 11h5"/></svg>'
)


def _theme() -> gr.themes.Base:
    # System fonts only: nothing is fetched from a font CDN.
    sans = ["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=sans, font_mono=mono)


def build_app(lib: Library, concurrency: int = 2) -> gr.Blocks:
    app = WebApp(lib)
    # delete_cache: uploaded files in Gradio's cache are removed after an hour (checked hourly).
    with gr.Blocks(title="Paper QA", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.HTML(
            f'<div id="rag-header"><h1>{LOGO}Paper QA</h1>'
            '<span class="rag-sub">Questions answered from research-paper abstracts, '
            "every claim cited.</span></div>"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=480), gr.Tabs(elem_id="rag-tabs"):
                with gr.Tab("Ask", id="ask", elem_id="tab-ask"):
                    chatbot = gr.Chatbot(
                        elem_id="rag-chat",
                        show_label=False,
                        height="62vh",
                        min_height=360,
                        layout="panel",
                        sanitize_html=True,
                        render_markdown=True,
                        allow_tags=False,
                        latex_delimiters=[],
                        feedback_options=None,
                        buttons=[],
                        placeholder=(
                            "<b>Ask a question about the indexed papers.</b><br>"
                            "Answers quote the abstracts and cite them as [1], [2]…; "
                            "follow-up questions keep the conversation."
                        ),
                        examples=[{"text": q} for q in EXAMPLE_QUESTIONS],
                    )
                    history = gr.State([])
                    with gr.Row():
                        question = gr.Textbox(
                            elem_id="rag-question",
                            show_label=False,
                            placeholder="Ask about the papers… (Enter to send)",
                            lines=1,
                            max_lines=6,
                            autofocus=True,
                            submit_btn="Ask",
                            stop_btn=False,
                            scale=8,
                        )
                        clear = gr.Button("New chat", variant="secondary", scale=1, min_width=100)
                    cited_ids = gr.State([])
                    ask_bib = gr.DownloadButton(
                        "Download sources (.bib)",
                        visible=False,
                        size="sm",
                        variant="secondary",
                        elem_id="rag-ask-bib",
                    )
                with gr.Tab("Find papers", id="find", elem_id="tab-find"):
                    with gr.Row(equal_height=True):
                        query = gr.Textbox(
                            elem_id="rag-query",
                            show_label=False,
                            placeholder="Topic, method or phrase… (Enter to search)",
                            scale=6,
                        )
                        k = gr.Dropdown(
                            [(f"{n} papers", n) for n in (5, 10, 20, 50)],
                            value=10,
                            show_label=False,
                            scale=0,
                            min_width=150,
                            elem_id="rag-k",
                        )
                        search = gr.Button("Search", variant="primary", scale=0, min_width=100)
                    gr.Examples(EXAMPLE_SEARCHES, inputs=[query], label="Try")
                    found_ids = gr.State([])
                    with gr.Row():
                        summarize_found = gr.Button(
                            f"Summarize the top {SUMMARY_PAPERS}",
                            size="sm",
                            variant="secondary",
                            visible=False,
                            scale=0,
                            min_width=190,
                            elem_id="rag-summarize-found",
                        )
                        find_bib = gr.DownloadButton(
                            "Download results (.bib)",
                            visible=False,
                            size="sm",
                            variant="secondary",
                            scale=0,
                            min_width=190,
                            elem_id="rag-find-bib",
                        )
                    found_summary = gr.HTML(elem_id="rag-found-summary", visible=False)
                    results = gr.HTML(elem_id="rag-results")
                with gr.Tab("Summarize", id="summarize", elem_id="tab-summarize"):
                    with gr.Row(equal_height=True):
                        topic = gr.Textbox(
                            elem_id="rag-topic",
                            show_label=False,
                            placeholder="A topic to summarize across papers… (Enter)",
                            scale=6,
                        )
                        summarize = gr.Button("Summarize", variant="primary", scale=0, min_width=110)
                    gr.Examples(EXAMPLE_TOPICS, inputs=[topic], label="Try")
                    summary = gr.HTML(elem_id="rag-summary")
            with gr.Column(scale=1, min_width=260, elem_id="rag-side"):
                with gr.Accordion("Filters", open=True):
                    date_from = gr.Textbox(
                        label="From date", placeholder="YYYY[-MM[-DD]]", elem_id="rag-from"
                    )
                    date_to = gr.Textbox(label="To date", placeholder="YYYY[-MM[-DD]]", elem_id="rag-to")
                    gr.HTML(
                        '<div class="rag-note">Applies to every mode. Inclusive; papers without '
                        "a date are left out while a date filter is set.</div>"
                    )
                with gr.Accordion("Index", open=True):
                    status = gr.HTML(elem_id="rag-status")
                    upload = gr.File(
                        label="Add papers (.jsonl, .csv, .txt page dump; ≤ 50 MB)",
                        file_types=list(UPLOAD_SUFFIXES),
                        file_count="single",
                        type="filepath",
                        elem_id="rag-upload",
                    )
                    upload_msg = gr.HTML(elem_id="rag-upload-msg")

        # --- events ----------------------------------------------------------------------
        model_jobs: dict[str, Any] = {"concurrency_limit": concurrency, "concurrency_id": "model"}
        ask_inputs = [question, chatbot, history, date_from, date_to]
        ask_outputs = [question, chatbot, history, cited_ids]
        asking = question.submit(
            lambda: gr.Textbox(submit_btn=False, stop_btn=True), None, [question], queue=False
        )
        ask_event = asking.then(app.ask, ask_inputs, ask_outputs, show_progress="minimal", **model_jobs)
        ask_event.then(
            lambda: gr.Textbox(submit_btn="Ask", stop_btn=False), None, [question], queue=False
        ).then(None, None, None, js=SHOW_LAST_QUESTION).then(app.bibtex_download, [cited_ids], [ask_bib])

        def example_question(evt: gr.SelectData) -> str:
            value = evt.value
            return value.get("text", "") if isinstance(value, dict) else str(value)

        example_event = chatbot.example_select(example_question, None, [question], queue=False).then(
            lambda: gr.Textbox(submit_btn=False, stop_btn=True), None, [question], queue=False
        )
        example_ask = example_event.then(
            app.ask, ask_inputs, ask_outputs, show_progress="minimal", **model_jobs
        )
        example_ask.then(
            lambda: gr.Textbox(submit_btn="Ask", stop_btn=False), None, [question], queue=False
        ).then(None, None, None, js=SHOW_LAST_QUESTION).then(app.bibtex_download, [cited_ids], [ask_bib])
        question.stop(
            lambda: gr.Textbox(submit_btn="Ask", stop_btn=False),
            None,
            [question],
            cancels=[ask_event, example_ask],
        )
        clear.click(
            lambda: ([], [], "", [], gr.DownloadButton(visible=False)),
            None,
            [chatbot, history, question, cited_ids, ask_bib],
            queue=False,
        )
        chatbot.clear(
            lambda: ([], [], gr.DownloadButton(visible=False)),
            None,
            [history, cited_ids, ask_bib],
            queue=False,
        )

        find_inputs = [query, k, date_from, date_to]
        for trigger in (query.submit, search.click):
            trigger(app.find, find_inputs, [results, found_ids], show_progress="minimal", **model_jobs).then(
                lambda ids: (gr.Button(visible=bool(ids)), gr.HTML("", visible=False)),
                [found_ids],
                [summarize_found, found_summary],
                queue=False,
            ).then(app.bibtex_download, [found_ids], [find_bib])
        summarize_found.click(
            lambda: gr.HTML('<div class="rag-muted">Summarizing…</div>', visible=True),
            None,
            [found_summary],
            queue=False,
        ).then(
            app.summarize_ids,
            [found_ids, date_from, date_to],
            [found_summary],
            show_progress="minimal",
            **model_jobs,
        )
        for trigger in (topic.submit, summarize.click):
            trigger(
                app.summarize, [topic, date_from, date_to], [summary], show_progress="minimal", **model_jobs
            )

        upload.upload(
            app.upload, [upload], [upload_msg, status, upload], concurrency_limit=1, concurrency_id="ingest"
        )
        demo.load(app.status, None, [status], queue=False)
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    return demo


# --- start-up ----------------------------------------------------------------------------
def _console_progress() -> Any:
    from rag.cli import progress_bar

    return progress_bar(enabled=True)


def prepare(lib: Library, say: Callable[[str], None]) -> None:
    """Build the index on first start (console progress), then load the models so the first
    question is fast. The server starts only after this: it is never served half-ready."""
    t0 = time.perf_counter()
    if lib.status().chunks == 0:
        say("No index yet: building it from the bundled corpus (first start, a few minutes)…")
        with _console_progress() as bar:
            report = lib.ensure_index(progress=bar)
        if report is not None:
            say(
                f"Indexed {report.papers_unique} papers ({report.chunks_embedded} chunks) "
                f"in {report.seconds:.0f} s."
            )
            for problem in report.problems:
                say(f"skipped: {problem}")
    lib.find("warm up the models", k=1)  # loads the embedder, the BM25 copy and the sentence splitter
    st = lib.status()
    say(f"Ready: {st.papers} papers, {st.chunks} chunks ({time.perf_counter() - t0:.1f} s).")


def parse_args(argv: Sequence[str] | None, lib: Library) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Paper QA web app.")
    parser.add_argument(
        "--host", default=lib.settings.host, help=f"address to listen on (default {lib.settings.host})"
    )
    parser.add_argument(
        "--port", type=int, default=lib.settings.port, help=f"port (default {lib.settings.port})"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="questions answered at the same time (default 2: CPU-bound)",
    )
    parser.add_argument(
        "--open",
        action="store_true",
        help="allow serving on a non-loopback address without RAG_APP_PASSWORD (anyone can use it)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more logging")
    return parser.parse_args(argv)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def access(host: str, settings: Any, open_anyway: bool) -> tuple[tuple[str, str] | None, str | None]:
    """(Gradio auth, refusal): loopback is private; any other address needs a password or --open."""
    if host in LOOPBACK or host.startswith("127."):
        return None, None
    if settings.app_password is not None:
        return (settings.app_user, settings.app_password.get_secret_value()), None
    if open_anyway:
        return None, None
    return None, (
        f"refusing to listen on {host} without a password: set RAG_APP_PASSWORD (user {settings.app_user!r}), "
        "or pass --open to serve it to anyone who can reach it"
    )


def cap_malloc_arenas(arenas: int = 2) -> bool:
    """Limit glibc to a few malloc arenas for this process (unless MALLOC_ARENA_MAX says otherwise).

    glibc gives threads their own arenas (up to 8 per core) and Gradio runs handlers on a
    pool of worker threads, so memory a request frees stays behind in its thread's arena.
    Under the same 8-user load (benchmarks/load.py) the app settled at 2,152 MB without the
    cap and at 1,888 MB with it. Returns whether the cap was set (False off glibc or when
    the user set MALLOC_ARENA_MAX).
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    t_start = time.perf_counter()
    cap_malloc_arenas()  # before any worker thread starts
    try:
        lib = Library()
    except RagError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args = parse_args(argv, lib)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "chromadb", "bm25s", "sentence_transformers", "urllib3", "gradio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    auth, refusal = access(args.host, lib.settings, args.open)
    if refusal:
        say(f"error: {refusal}")
        return 1
    busy = _port_problem(args.host, args.port)
    if busy:  # before indexing or loading anything
        say(f"error: cannot listen on {args.host}:{args.port} ({busy}); pick another with --port")
        return 1
    try:
        prepare(lib, say)
    except RagError as err:
        say(f"error: {err}")
        return 1
    except KeyboardInterrupt:
        say("interrupted: indexing resumes where it stopped on the next start")
        return 130
    if args.host not in LOOPBACK and auth is None:
        say(
            f"WARNING: listening on {args.host} WITHOUT A PASSWORD (--open): anyone who can reach it can ask questions and add papers"
        )
    demo = build_app(lib, concurrency=max(1, args.concurrency))
    try:
        _launch(demo, args.host, args.port, auth)
    except OSError as err:  # taken between the check and now
        say(f"error: cannot listen on {args.host}:{args.port} ({err}); pick another with --port")
        return 1
    say(f"Serving on http://{args.host}:{args.port} (started in {time.perf_counter() - t_start:.1f} s)")
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0


def _port_problem(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, or None when it can."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
    except OSError as err:
        return err.strerror or str(err)
    return None


def _launch(demo: gr.Blocks, host: str, port: int, auth: tuple[str, str] | None = None) -> None:
    demo.launch(
        auth=auth,
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=False,
        quiet=True,
        max_file_size=MAX_UPLOAD_BYTES,
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        run_history=False,
        footer_links=[],
        theme=_theme(),
        css=CSS,
        head=HEAD,
        prevent_thread_lock=True,
    )
