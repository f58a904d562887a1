"""Turning an eval run into report.md, PNG plots and a comparison with an earlier run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

from evals.metrics import IR_METRICS  # noqa: E402
from rag.errors import RagError  # noqa: E402

ANSWER_COLUMNS = (
    "fact_recall",
    "citation_recall",
    "citation_precision",
    "invalid_citation_rate",
    "abstain_rate",
    "abstention_precision",
    "abstention_recall",
    "ask_p50_ms",
    "ask_p95_ms",
)
IR_COLUMNS = (*IR_METRICS, "find_p50_ms", "find_p95_ms")
LOWER_IS_BETTER = ("invalid_citation_rate",)
#: A rate that moved by less than this is noise, not a change; latency needs 20% and 5 ms.
RATE_TOLERANCE = 0.005
LATENCY_TOLERANCE = (0.20, 5.0)


# --- loading and comparing -----------------------------------------------------------
def load_summary(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RagError(
            f"--compare {run_dir}: no summary.json there (give the --out folder of an earlier run)"
        ) from None
    except (OSError, ValueError) as err:
        raise RagError(f"--compare {run_dir}: cannot read summary.json ({err})") from None


def flatten(summary: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(scope, metric) -> value for every figure a run reports."""
    flat: dict[tuple[str, str], float] = {}

    def add(scope: str, block: dict[str, Any] | None) -> None:
        for metric, value in (block or {}).items():
            counts = metric == "n" or metric.startswith("n_")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not counts:
                flat[(scope, metric)] = float(value)

    metrics = summary.get("metrics") or {}
    add("overall", metrics.get("overall"))
    for t, block in (metrics.get("by_type") or {}).items():
        add(t, block)
    if summary.get("mode") == "retrieval-only":
        for mode, res in (summary.get("retrievers") or {}).items():
            if mode == "hybrid":
                continue  # the same figures as `metrics`
            add(f"{mode} retriever", res.get("overall"))
            for t, block in (res.get("by_type") or {}).items():
                add(f"{mode} retriever · {t}", block)
    for name, cal in (summary.get("judge_calibration") or {}).items():
        add(f"{name} judge calibration", cal.get("overall"))
    return flat


def direction(scope: str, metric: str) -> int:
    """+1 when higher is better, -1 when lower is, 0 when neither (abstaining overall)."""
    if metric.endswith("_ms") or metric in LOWER_IS_BETTER:
        return -1
    if metric == "abstain_rate":
        if scope.endswith("unanswerable"):
            return 1
        return 0 if scope == "overall" else -1
    return 1


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Every figure in both runs with its change, flagged 'regression' or 'improved'."""
    a, b = flatten(old), flatten(new)
    rows = []
    for key in [k for k in b if k in a]:
        scope, metric = key
        before, after = a[key], b[key]
        delta = after - before
        sign = direction(scope, metric)
        if metric.endswith("_ms"):
            moved = abs(delta) > max(LATENCY_TOLERANCE[0] * before, LATENCY_TOLERANCE[1])
        else:
            moved = abs(delta) > RATE_TOLERANCE
        flag = "" if not moved or sign == 0 else ("improved" if delta * sign > 0 else "regression")
        rows.append(
            {"scope": scope, "metric": metric, "old": before, "new": after, "delta": delta, "flag": flag}
        )
    return {
        "old_settings_hash": old.get("settings_hash"),
        "new_settings_hash": new.get("settings_hash"),
        "old_date": old.get("date"),
        "changed_settings": {
            k: [old.get("settings", {}).get(k), v]
            for k, v in (new.get("settings") or {}).items()
            if old.get("settings", {}).get(k) != v
        },
        "rows": rows,
        "regressions": sum(r["flag"] == "regression" for r in rows),
        "improvements": sum(r["flag"] == "improved" for r in rows),
    }


# --- formatting ----------------------------------------------------------------------
def fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if metric.endswith("_ms") else f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _scopes(block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [*block.get("by_type", {}).items(), ("overall", block.get("overall", {}))]


def _calibration_lines(cal: dict[str, dict[str, Any]], pairs: str) -> list[str]:
    lines = [
        "## Judge calibration",
        "",
        f"Each judge on the labelled claim/source pairs of `{pairs}` "
        "(bundled set: papers not in `train-papers.txt`). Precision and recall are of the *supported* class; "
        "the perturbed kinds have no supported pairs, so only their accuracy (share rejected) is defined. "
        "Citation recall and precision above are only as good as these figures.",
        "",
    ]
    for name, c in cal.items():
        if "error" in c:
            lines += [f"- {name}: {c['error']}", ""]
            continue
        extra = f", threshold {c['threshold']}" if c.get("threshold") is not None else ""
        lines += [f"### {name} judge{extra}", ""]
        if c.get("failed_pairs"):
            lines += [f"{len(c['failed_pairs'])} pairs could not be judged and are left out.", ""]
        cols = ("accuracy", "precision", "recall")
        at_best = c.get("by_kind_at_best")
        best_all = c.get("best_threshold") or {}
        rows = [
            ["all", *(fmt(c["overall"].get(m)) for m in cols), str(c["overall"]["n"])]
            + ([*(fmt(best_all.get(m)) for m in cols)] if at_best else [])
        ]
        rows += [
            [k, *(fmt(v.get(m)) for m in cols), str(v["n"])]
            + ([*(fmt(at_best[k].get(m)) for m in cols)] if at_best else [])
            for k, v in c["by_kind"].items()
        ]
        header = ["kind", *cols, "pairs"]
        if at_best:
            header += [f"{m} at {best_all['threshold']}" for m in cols]
        lines += _table(header, rows) + [""]
        if c.get("best_threshold"):
            b, cv = c["best_threshold"], c.get("cv", {})
            lines += [
                f"Best threshold on these pairs: **{b['threshold']}** (accuracy {fmt(b['accuracy'])}, "
                f"precision {fmt(b['precision'])}, recall {fmt(b['recall'])}). Tuned on 4/5 of the source "
                f"papers and measured on the rest (5 folds), the accuracy is {fmt(cv.get('accuracy'))} "
                f"(thresholds chosen: {', '.join(str(t) for t in cv.get('thresholds', []))}). "
                "The curve is in `calibration.png`.",
                "",
            ]
    return lines


def markdown(
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    diff: dict[str, Any] | None,
    compare_dir: str | None,
) -> str:
    full = summary["mode"] == "full"
    lines = [
        f"# Eval run {summary['date']}",
        "",
        *_table(
            ["setting", "value"],
            [
                ["dataset", f"`{summary['dataset']}`"],
                [
                    "questions",
                    f"{summary['questions']}"
                    + (f" (--limit {summary['limit']})" if summary.get("limit") else ""),
                ],
                ["mode", summary["mode"]],
                ["backend", summary["backend"]],
                ["judge", summary.get("judge") or "–"],
                ["settings hash", f"`{summary['settings_hash']}`"],
                *[
                    [k, str(summary["settings"].get(k))]
                    for k in (
                        "embed_model",
                        "candidates",
                        "rrf_k",
                        "weight_dense",
                        "weight_lexical",
                        "answer_papers",
                        "abstain_below",
                        "llm_model",
                    )
                    if k in summary.get("settings", {})
                    and (k != "llm_model" or summary["settings"].get("llm_base_url"))
                ],
                ["errors", str(summary.get("errors", 0))],
            ],
        ),
        "",
    ]
    counts = {t: v.get("n") for t, v in summary["metrics"].get("by_type", {}).items()}
    lines += [
        "Questions per type: " + ", ".join(f"{t} {n}" for t, n in counts.items()) + ". "
        "IR metrics are at paper level over the top 10 (MRR is MRR@10), unanswerable questions excluded; "
        "each figure is a mean over the questions where it is defined.",
        "",
        "## Retrieval",
        "",
    ]
    retrievers = summary.get("retrievers", {})
    header = ["type", "retriever", *IR_COLUMNS]
    rows = []
    for t, _ in _scopes(summary["metrics"]):
        for mode, res in retrievers.items():
            block = res["overall"] if t == "overall" else res["by_type"].get(t, {})
            if t == "unanswerable":
                cells = ["–"] * len(IR_METRICS) + [
                    fmt(block.get(m), m) for m in IR_COLUMNS[len(IR_METRICS) :]
                ]
            else:
                cells = [fmt(block.get(m), m) for m in IR_COLUMNS]
            rows.append([f"**{t}**" if t == "overall" else t, mode, *cells])
    lines += _table(header, rows) + [""]
    if len(retrievers) > 1:
        nd = {m: (r["overall"].get("ndcg@10") or 0.0) for m, r in retrievers.items()}
        best_single = max((m for m in nd if m != "hybrid"), key=lambda m: nd[m])
        verdict = "beats" if nd["hybrid"] > nd[best_single] else "does NOT beat"
        lines += [
            f"Hybrid nDCG@10 {nd['hybrid']:.3f} {verdict} the better single retriever "
            f"({best_single}, {nd[best_single]:.3f}). Plot: `retrievers.png`.",
            "",
        ]
    if full:
        lines += ["## Answers", ""]
        rows = [
            [
                f"**{t}**" if t == "overall" else t,
                *(fmt(b.get(m), m) for m in ANSWER_COLUMNS),
                str(b.get("n")),
            ]
            for t, b in _scopes(summary["metrics"])
        ]
        lines += _table(["type", *ANSWER_COLUMNS, "n"], rows) + [""]
        lines += [
            "fact_recall: share of a question's answer_facts found in the answer (case, punctuation and number "
            "format normalised). citation_recall / citation_precision: ALCE (Gao et al. 2023) with the "
            f"`{summary.get('judge')}` judge on the cited sources' evidence; abstentions excluded. "
            "invalid_citation_rate: citation numbers naming no source over all citations made. "
            "abstention precision/recall: positive class = unanswerable question. Plot: `metrics.png`.",
            "",
        ]
    lines += _misses(records, summary)
    if summary.get("judge_calibration"):
        lines += _calibration_lines(
            summary["judge_calibration"], summary.get("judge_pairs", "judge_pairs.jsonl")
        )
    if diff is not None:
        lines += _compare_lines(diff, compare_dir)
    if summary.get("problems"):
        lines += ["## Skipped or suspicious dataset lines", "", *(f"- {p}" for p in summary["problems"]), ""]
    return "\n".join(lines) + "\n"


def _misses(records: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    lines = ["## Questions to look at", ""]
    modes = list(summary.get("retrievers", {}))
    full = summary["mode"] == "full"
    missed = []
    for r in records:
        if r["type"] == "unanswerable" or not r["gold_titles"] or "error" in r:
            continue
        per_mode = r.get("metrics") or {}
        ndcg = {m: (per_mode.get("ir" if full else m) or {}).get("ndcg@10") for m in modes}
        if (ndcg.get("hybrid") or 0.0) < 0.5:
            missed.append((r, ndcg))
    if missed:
        lines += [
            "Answerable questions with hybrid nDCG@10 below 0.5, with each gold paper's rank "
            "in each retriever's top 10 (– = not there):",
            "",
        ]
        rows = []
        for r, ndcg in missed:
            ranks = r.get("gold_ranks_by_mode") or {"hybrid": r.get("gold_ranks", {})}
            cells = [fmt(ndcg[m]) for m in modes]
            cells += [" ".join(fmt(v) for v in ranks.get(m, {}).values()) for m in modes]
            rows.append([r["id"], r["type"], *cells, r["question"][:90]])
        lines += _table(
            ["id", "type", *(f"nDCG@10 {m}" for m in modes), *(f"ranks {m}" for m in modes), "question"], rows
        ) + [""]
    if summary["mode"] == "full":
        wrong = [r for r in records if "abstained" in r and r["abstained"] != (r["type"] == "unanswerable")]
        if wrong:
            lines += ["Abstention mistakes:", ""]
            lines += [
                f"- {r['id']} ({r['type']}): {'abstained' if r['abstained'] else 'answered'} — {r['question'][:100]}"
                for r in wrong
            ] + [""]
    errors = [r for r in records if "error" in r]
    if errors:
        lines += ["Errors:", "", *(f"- {r['id']}: {r['error']}" for r in errors), ""]
    if len(lines) == 2:
        lines += ["Nothing stands out.", ""]
    return lines


def _compare_lines(diff: dict[str, Any], compare_dir: str | None) -> list[str]:
    lines = [
        f"## Compared with `{compare_dir}`",
        "",
        f"Settings hash {diff['old_settings_hash']} → {diff['new_settings_hash']}; "
        f"{diff['regressions']} regressions, {diff['improvements']} improvements "
        f"(changes under {RATE_TOLERANCE} for rates, or under 20% / 5 ms for latency, are not flagged).",
        "",
    ]
    if diff["changed_settings"]:
        lines += [
            "Changed settings: "
            + ", ".join(f"{k} {a} → {b}" for k, (a, b) in diff["changed_settings"].items()),
            "",
        ]
    rows = [
        [
            r["scope"],
            r["metric"],
            fmt(r["old"], r["metric"]),
            fmt(r["new"], r["metric"]),
            f"{r['delta']:+.3f}",
            r["flag"],
        ]
        for r in diff["rows"]
    ]
    lines += _table(["scope", "metric", "old", "new", "change", "flag"], rows) + [
        "",
        "Plot: `compare.png`.",
        "",
    ]
    return lines


# --- plots ---------------------------------------------------------------------------
def _bars(ax: Any, groups: list[str], series: dict[str, list[float | None]], title: str) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [v if v is not None else 0 for v in values], width, label=name)
    ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)


def plot_metrics(summary: dict[str, Any], path: Path) -> Path:
    """Metrics per question type (bars) for this run."""
    scopes = _scopes(summary["metrics"])
    metric_names = list(IR_METRICS) + (
        ["fact_recall", "citation_recall", "citation_precision", "abstain_rate"]
        if summary["mode"] == "full"
        else []
    )
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(metric_names)), 4))
    _bars(
        ax,
        metric_names,
        {t: [b.get(m) for m in metric_names] for t, b in scopes},
        f"Metrics per question type ({summary['settings_hash']})",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_retrievers(summary: dict[str, Any], path: Path) -> Path:
    """IR metrics of each retriever per question type, one panel per metric."""
    retrievers = summary["retrievers"]
    types = [t for t in next(iter(retrievers.values()))["by_type"] if t != "unanswerable"] + ["overall"]
    fig, axes = plt.subplots(1, len(IR_METRICS), figsize=(4 * len(IR_METRICS), 3.8), sharey=True)
    for ax, metric in zip(axes, IR_METRICS, strict=True):
        series = {
            mode: [(res["overall"] if t == "overall" else res["by_type"][t]).get(metric) for t in types]
            for mode, res in retrievers.items()
        }
        _bars(ax, types, series, metric)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_calibration(cal: dict[str, Any], path: Path) -> Path | None:
    """Accuracy (and precision, recall) of each score-and-threshold judge over thresholds."""
    judged = {name: c for name, c in cal.items() if c.get("curve")}
    if not judged:
        return None
    fig, axes = plt.subplots(1, len(judged), figsize=(6 * len(judged), 3.8), squeeze=False)
    for ax, (name, c) in zip(axes[0], judged.items(), strict=True):
        xs = [p["threshold"] for p in c["curve"]]
        for m in ("accuracy", "precision", "recall"):
            ax.plot(xs, [p[m] if p[m] is not None else float("nan") for p in c["curve"]], label=m)
        ax.axvline(c["threshold"], color="grey", ls="--", lw=1, label=f"current {c['threshold']}")
        best = c["best_threshold"]["threshold"]
        ax.axvline(best, color="black", ls=":", lw=1, label=f"best {best}")
        ax.set_xlabel("threshold")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{name} judge on the labelled pairs")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_compare(diff: dict[str, Any], path: Path) -> Path:
    """Change of every overall rate (and per-type nDCG@10) against the earlier run."""
    rows = [
        r
        for r in diff["rows"]
        if not r["metric"].endswith("_ms") and (r["scope"] == "overall" or r["metric"] == "ndcg@10")
    ]
    rows = rows or diff["rows"]
    labels = [f"{r['scope']} · {r['metric']}" for r in rows]
    colours = [
        "tab:red" if r["flag"] == "regression" else "tab:green" if r["flag"] == "improved" else "tab:grey"
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(rows) + 1)))
    ax.barh(range(len(rows)), [r["delta"] for r in rows], color=colours)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("new − old (red: regression, green: improvement)")
    ax.set_title(f"{diff['old_settings_hash']} → {diff['new_settings_hash']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(
    out: Path,
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    diff: dict[str, Any] | None,
    compare_dir: str | None = None,
) -> list[Path]:
    """report.md and the plots; compare.json too when comparing."""
    written = [plot_metrics(summary, out / "metrics.png")]
    if len(summary.get("retrievers", {})) > 1:
        written.append(plot_retrievers(summary, out / "retrievers.png"))
    if summary.get("judge_calibration"):
        cal_png = plot_calibration(summary["judge_calibration"], out / "calibration.png")
        if cal_png:
            written.append(cal_png)
    if diff is not None:
        written.append(plot_compare(diff, out / "compare.png"))
        (out / "compare.json").write_text(json.dumps(diff, indent=2), encoding="utf-8")
    report = out / "report.md"
    report.write_text(markdown(summary, records, diff, compare_dir), encoding="utf-8")
    return [report, *written]
