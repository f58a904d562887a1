"""The `rag` command: parse, make one call into `Library`, render.

Errors a user can act on (`RagError`) are printed as one line and exit with 1.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rag.errors import RagError
from rag.library import Library
from rag.types import Answer, FindResult

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Question answering over paper abstracts.")
out = Console()
err = Console(stderr=True)
T = TypeVar("T")


@app.callback()
def main(
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More logging.")] = 0,
) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "chromadb", "bm25s", "sentence_transformers", "urllib3", "mcp"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def run(call: Callable[[], T]) -> T:
    """Run one library call; a RagError becomes a single line on stderr."""
    try:
        return call()
    except RagError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(1) from None


def print_json(model: BaseModel | dict[str, Any]) -> None:
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[int, int, str], None]]:
    """A rich progress bar fed by the library's (done, total, label) callback."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled,
    )
    task = bar.add_task("papers", total=None)
    with bar:
        yield lambda done, total, label: bar.update(task, completed=done, total=total, description=label)


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders: page dumps, JSONL, CSV, arXiv, .bib, CSL-JSON.")
    ],
    prune: Annotated[bool, typer.Option(help="Remove papers whose source is gone.")] = False,
    rebuild: Annotated[bool, typer.Option(help="Drop the index and build it again.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Add papers to the index (only new or changed ones are embedded)."""
    lib = run(Library)
    with progress_bar(enabled=not as_json) as bar:
        report = run(lambda: lib.ingest(paths, prune=prune, rebuild=rebuild, progress=bar))
    if as_json:
        print_json(report)
    else:
        for problem in report.problems:
            err.print(f"[yellow]skipped:[/yellow] {escape(problem)}")
        rate = report.chunks_embedded / report.seconds if report.seconds else 0.0
        out.print(
            f"{report.papers_unique} papers from {report.files} files ({report.papers_read} records): "
            f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.removed} removed; {report.chunks_embedded} chunks embedded in {report.seconds:.1f}s"
            + (f" ({rate:.1f} chunks/s)" if report.chunks_embedded else "")
        )
    if report.problems and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What is indexed, with which model, and where."""
    st = run(lambda: Library().status())
    if as_json:
        print_json(st)
        return
    table = Table(show_header=False, box=None)
    for key, value in st.model_dump().items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)


def highlight(text: str, query: str) -> str:
    """Rich markup with the query's words in bold (matched case-insensitively, stems included)."""
    words = [re.escape(w) for w in re.findall(r"\w{3,}", query)]
    safe = escape(text)
    if not words:
        return safe
    return re.sub(
        rf"\b({'|'.join(words)})\w*", r"[bold yellow]\g<0>[/bold yellow]", safe, flags=re.IGNORECASE
    )


@app.command()
def find(
    query: Annotated[str, typer.Argument(help="What the papers should be about.")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many papers.")] = 10,
    date_from: Annotated[str | None, typer.Option("--from", help="Earliest date, YYYY[-MM[-DD]].")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Latest date, YYYY[-MM[-DD]].")] = None,
    source: Annotated[str | None, typer.Option(help="Only papers from this source file name.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    bibtex: Annotated[
        Path | None, typer.Option("--bibtex", metavar="FILE", help="Also write the found papers as BibTeX.")
    ] = None,
) -> None:
    """Find papers on a topic, ranked, each with the sentence that matches."""
    lib = run(Library)
    result = run(lambda: lib.find(query, k=k, date_from=date_from, date_to=date_to, source=source))
    if bibtex:
        write_bibtex(lib, result, bibtex)
    if as_json:
        print_json(find_json(result))
        return
    if not result.papers:
        out.print("No matching papers.")
    for rank, hit in enumerate(result.papers, start=1):
        out.print(
            f"[bold]{rank}. {escape(hit.paper.title)}[/bold]  [dim]{hit.paper.date or 'undated'} · {hit.score:.4f}[/dim]"
        )
        out.print(f"   {highlight(hit.why, query)}")


def find_json(result: Any) -> dict[str, Any]:
    """The documented `rag find --json` shape."""
    return {
        "query": result.query,
        "papers": [
            {
                "rank": rank,
                "paper_id": h.paper.id,
                "title": h.paper.title,
                "date": h.paper.date,
                "score": h.score,
                "why": h.why,
            }
            for rank, h in enumerate(result.papers, start=1)
        ],
    }


def write_bibtex(lib: Library, result: FindResult | Answer, path: Path) -> None:
    """`--bibtex FILE`: the found or cited papers as BibTeX; the count goes to stderr, off the JSON."""
    from rag.bibtex import export

    n = run(lambda: export(lib, result, path))
    note = "" if n else " (nothing found or cited)"
    err.print(f"wrote {n} BibTeX entr{'y' if n == 1 else 'ies'} to {escape(str(path))}{note}")


def render_answer(answer: Answer) -> None:
    marks = {s.text: s.supported for s in answer.sentences}
    if answer.notice:
        err.print(f"[yellow]note:[/yellow] {escape(answer.notice)}")
    text = escape(answer.answer)
    for sent, ok in marks.items():
        if ok is False:
            text = text.replace(escape(sent), f"[red]{escape(sent)} (unsupported)[/red]")
    out.print(text)
    if answer.sources:
        out.print("\n[bold]Sources[/bold]")
        for s in answer.sources:
            out.print(f"[{s.n}] {escape(s.title)} [dim]({s.date or 'undated'})[/dim]")
    out.print(f"\n[dim]answered by {answer.backend}[/dim]")


@app.command("judge")
def judge_pairs(
    file: Annotated[
        Path, typer.Argument(help="JSON lines with claim and source; optionally id, label, kind.")
    ],
    judge: Annotated[str, typer.Option("--judge", help="trained (default), lexical or llm.")] = "trained",
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, and a summary object last.")] = False,
) -> None:
    """Does each source support its claim? With labels, accuracy, precision and recall per kind."""
    from rag.judge import judge_file, summary_table

    def line(r: dict[str, Any]) -> None:
        if "error" in r:
            err.print(f"[yellow]{escape(str(file))}: line {r['line']} skipped:[/yellow] {escape(r['error'])}")
        else:
            sys.stdout.write(
                json.dumps(r) + "\n" if as_json else f"{r['id']}\t{r['supported']}\t{r['score']:.4f}\n"
            )

    summary = run(lambda: judge_file(file, judge, on_result=line))
    if summary is not None:
        if as_json:
            sys.stdout.write(json.dumps(summary) + "\n")
        else:
            out.print(summary_table(summary))


def _history(path: Path | None) -> list[dict[str, str]]:
    """A conversation file: a JSON list of {"role", "content"} messages."""
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RagError(f"{path}: cannot read the history ({e})") from e
    if not isinstance(data, list) or not all(
        isinstance(m, dict) and "role" in m and "content" in m for m in data
    ):
        raise RagError(f'{path}: history must be a JSON list of {{"role", "content"}} objects')
    return data


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    history: Annotated[Path | None, typer.Option(help="JSON file with the conversation so far.")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="Earliest date, YYYY[-MM[-DD]].")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Latest date, YYYY[-MM[-DD]].")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    bibtex: Annotated[
        Path | None, typer.Option("--bibtex", metavar="FILE", help="Also write the cited papers as BibTeX.")
    ] = None,
) -> None:
    """Answer a question from the indexed abstracts, every sentence cited."""
    lib = run(Library)
    answer = run(lambda: lib.ask(question, history=_history(history), date_from=date_from, date_to=date_to))
    if bibtex:
        write_bibtex(lib, answer, bibtex)
    if as_json:
        print_json(answer)
    else:
        render_answer(answer)


@app.command()
def summarize(
    topic: Annotated[str | None, typer.Argument(help="The topic to summarise.")] = None,
    papers: Annotated[list[str] | None, typer.Option("--papers", help="Paper ids to summarise.")] = None,
    date_from: Annotated[str | None, typer.Option("--from")] = None,
    date_to: Annotated[str | None, typer.Option("--to")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A cited summary of a topic or of chosen papers."""
    answer = run(lambda: Library().summarize(topic, paper_ids=papers, date_from=date_from, date_to=date_to))
    if as_json:
        print_json(answer)
    else:
        render_answer(answer)


@app.command()
def mcp(
    transport: Annotated[
        str, typer.Option(help="stdio (an editor or assistant starts `rag mcp`) or streamable-http.")
    ] = "stdio",
    port: Annotated[int, typer.Option(help="Port for streamable-http (on 127.0.0.1).")] = 8765,
) -> None:
    """Serve the library to coding and writing assistants over the Model Context Protocol."""
    from rag.mcp_server import serve

    run(lambda: serve(transport, port=port))


from evals.cli import eval_command  # noqa: E402

app.command("eval")(eval_command)

if __name__ == "__main__":
    app()
