"""`rag eval`: run a question set through the library and write a report.

Registered on the `rag` app in rag/cli.py; kept here so the eval code stays in one
package. It does not import rag.cli (which imports this module).
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evals.harness import DEFAULT_DATASET, JUDGE_PAIRS, run_eval
from evals.report import fmt
from rag.errors import RagError

out = Console()
err = Console(stderr=True)
#: Column labels short enough for an 80-column terminal; report.md spells them out.
SHORT = {
    "recall@5": "R@5",
    "recall@10": "R@10",
    "mrr": "MRR",
    "ndcg@10": "nDCG@10",
    "find_p50_ms": "p50 ms",
    "find_p95_ms": "p95 ms",
    "fact_recall": "facts",
    "citation_recall": "cite R",
    "citation_precision": "cite P",
    "invalid_citation_rate": "invalid",
    "abstain_rate": "abstain",
    "abstention_precision": "abst P",
    "abstention_recall": "abst R",
    "ask_p50_ms": "p50 ms",
    "ask_p95_ms": "p95 ms",
}


class JudgeName(StrEnum):
    lexical = "lexical"
    trained = "trained"
    llm = "llm"


def eval_command(
    dataset: Annotated[
        Path,
        typer.Option("--dataset", help="Questions as JSON lines (format of evals/datasets/questions.jsonl)."),
    ] = DEFAULT_DATASET,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for results.jsonl, summary.json, report.md and plots "
            "(default: <data dir>/evals/runs/<date>-<settings hash>).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only N questions, taken round-robin across question types.")
    ] = None,
    retrieval_only: Annotated[
        bool,
        typer.Option("--retrieval-only", help="Skip answering; compare BM25, dense and hybrid retrieval."),
    ] = False,
    judge: Annotated[
        JudgeName,
        typer.Option("--judge", help="Support judge for citation metrics (llm needs RAG_LLM_BASE_URL)."),
    ] = JudgeName.trained,
    compare: Annotated[
        Path | None, typer.Option("--compare", help="An earlier run's --out folder: show what changed.")
    ] = None,
    judge_pairs: Annotated[
        Path, typer.Option("--judge-pairs", help="Labelled claim/source pairs the judge is calibrated on.")
    ] = JUDGE_PAIRS,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json instead of tables.")] = False,
) -> None:
    """Measure retrieval, answers, citations and abstention on a question set."""
    from rag.library import Library

    lib = Library()
    if out_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = Path(lib.settings.data_dir) / "evals" / "runs" / f"{stamp}-{lib.settings.settings_hash()}"
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json,
    )
    task = bar.add_task("questions", total=None)
    try:
        with bar:
            summary = run_eval(
                lib,
                dataset,
                out_dir,
                limit=limit,
                retrieval_only=retrieval_only,
                judge=judge.value,
                compare=compare,
                judge_pairs=judge_pairs,
                progress=lambda done, total, label: bar.update(
                    task, completed=done, total=total, description=label
                ),
            )
    except RagError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(1) from None
    for p in summary.get("problems", []):
        err.print(f"[yellow]skipped:[/yellow] {escape(p)}", soft_wrap=True)
    if as_json:
        print(json.dumps(json.loads((out_dir / "summary.json").read_text()), indent=2))
        return
    print_summary(summary)
    if summary.get("compare"):
        print_compare(summary["compare"])
    out.print(f"\nWrote {escape(str(out_dir))}/report.md, results.jsonl, summary.json and plots.")


def print_summary(summary: dict[str, Any]) -> None:
    from evals.report import ANSWER_COLUMNS, IR_COLUMNS

    title = f"{summary['questions']} questions · {summary['mode']} · backend {summary['backend']} · settings {summary['settings_hash']}"
    table = Table(title=escape(title))
    table.add_column("type")
    table.add_column("retriever")
    for m in IR_COLUMNS:
        table.add_column(SHORT.get(m, m), justify="right")
    for mode, res in summary["retrievers"].items():
        for t, block in [*res["by_type"].items(), ("overall", res["overall"])]:
            table.add_row(t, mode, *(fmt(block.get(m), m) for m in IR_COLUMNS))
    out.print(table)
    if summary["mode"] == "full":
        table = Table(title="answers")
        table.add_column("type")
        for m in ANSWER_COLUMNS:
            table.add_column(SHORT.get(m, m), justify="right")
        metrics = summary["metrics"]
        for t, block in [*metrics["by_type"].items(), ("overall", metrics["overall"])]:
            table.add_row(t, *(fmt(block.get(m), m) for m in ANSWER_COLUMNS))
        out.print(table)
    for name, cal in (summary.get("judge_calibration") or {}).items():
        o = cal.get("overall")
        if o:
            out.print(
                f"{name} judge on {o['n']} labelled pairs: accuracy {fmt(o['accuracy'])}, "
                f"precision {fmt(o['precision'])}, recall {fmt(o['recall'])}"
                + (" (cached)" if cal.get("cached") else "")
            )


def print_compare(diff: dict[str, Any]) -> None:
    table = Table(
        title=f"change {diff['old_settings_hash']} → {diff['new_settings_hash']}: "
        f"{diff['regressions']} regressions, {diff['improvements']} improvements"
    )
    for col in ("scope", "metric", "old", "new", "change", ""):
        table.add_column(col, justify="right" if col in ("old", "new", "change") else "left")
    # Flagged changes, and rates that moved at all; unflagged latency wobble stays in report.md.
    shown = [
        r for r in diff["rows"] if r["flag"] or (abs(r["delta"]) > 1e-9 and not r["metric"].endswith("_ms"))
    ]
    for r in shown:
        style = "red" if r["flag"] == "regression" else "green" if r["flag"] == "improved" else None
        table.add_row(
            escape(r["scope"]),
            r["metric"],
            fmt(r["old"], r["metric"]),
            fmt(r["new"], r["metric"]),
            f"{r['delta']:+.3f}",
            r["flag"],
            style=style,
        )
    out.print(table)
    if len(shown) < len(diff["rows"]):
        out.print(
            f"{len(diff['rows']) - len(shown)} other figures unchanged or within noise (all in report.md)"
        )
    if diff["changed_settings"]:
        out.print(
            "changed settings: "
            + ", ".join(f"{k} {a} → {b}" for k, (a, b) in diff["changed_settings"].items())
        )
