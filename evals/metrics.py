"""Eval metrics as plain functions: per question first, then averaged per type and overall.

Every per-question function returns a dict of floats in [0, 1] (or None where the
metric is undefined for that question, e.g. IR metrics of an unanswerable question);
`aggregate` averages them, skipping the Nones, so each figure in a report is the mean
over the questions for which it means something, with its count beside it.

IR metrics come from ranx, at paper level: a run is the ranked list of retrieved
paper titles, the qrels are the gold titles, both keyed by `normalise_title`.
Citation recall and precision follow ALCE (Gao et al. 2023, "Enabling Large Language
Models to Generate Text with Citations"), with one of our judges in place of their
NLI model.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from index.papers import normalise_title

IR_METRICS = ("recall@5", "recall@10", "mrr", "ndcg@10")
_PLACEHOLDER = "__nothing_retrieved__"


# --- retrieval -----------------------------------------------------------------------
def ir_scores(runs: dict[str, Sequence[str]], gold: dict[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """Per question Recall@5, Recall@10, MRR and nDCG@10 of ranked titles against gold titles.

    `runs` maps question id to retrieved titles, best first; `gold` maps question id to
    its gold titles. Questions without gold titles (unanswerable) are left out: they
    have no relevant paper to find. MRR is computed over the list given (top 10 in the
    harness, so it is MRR@10).
    """
    from ranx import Qrels, Run, evaluate

    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for qid, titles in gold.items():
        keys = {normalise_title(t) for t in titles if normalise_title(t)}
        if not keys:
            continue
        qrels[qid] = dict.fromkeys(keys, 1)
        ranked = list(dict.fromkeys(normalise_title(t) for t in runs.get(qid, [])))
        # Strictly decreasing scores keep the ranking exactly as retrieved.
        run[qid] = {t: float(len(ranked) - i) for i, t in enumerate(ranked)} or {_PLACEHOLDER: 0.0}
    if not qrels:
        return {}
    ranx_run = Run(run)
    evaluate(Qrels(qrels), ranx_run, list(IR_METRICS), save_results_in_run=True)
    return {qid: {m: float(ranx_run.scores[m][qid]) for m in IR_METRICS} for qid in qrels}


# --- answer facts ----------------------------------------------------------------------
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_PERCENT = re.compile(r"\s*(?:%|\bper ?cent\b)", re.IGNORECASE)


def _number(raw: str) -> str:
    """'4.0' -> '4', '1,000' -> '1000', '18.020' -> '18.02'."""
    whole, _, frac = raw.replace(",", "").partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def normalise_text(text: str) -> str:
    """Case, accents, punctuation and number formats removed, for fact matching.

    Numbers are normalised ('4.0' and '4' match, '1,000' and '1000' match) and '%' or
    'percent' become the token 'pct', so '18.02%' matches '18.02 %' and '18.02 percent'.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _PERCENT.sub(" pct ", text)
    text = _NUMBER.sub(lambda m: f" {_number(m.group())} ", text)
    # Keep the decimal points we just normalised; everything else that is not a word goes.
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    text = re.sub(r"[^\w.]+|_", " ", text)
    return " ".join(text.split())


def fact_found(fact: str, text: str) -> bool:
    """Whether `fact` occurs in `text` as whole words, after `normalise_text` on both."""
    f = normalise_text(fact)
    return bool(f) and f" {f} " in f" {normalise_text(text)} "


def fact_recall(facts: Sequence[str], answer: str) -> float | None:
    """Share of the expected facts found in the answer text; None when none are expected."""
    if not facts:
        return None
    return sum(fact_found(f, answer) for f in facts) / len(facts)


# --- citations (ALCE) ------------------------------------------------------------------
Supports = Callable[[str, list[str]], bool]


@dataclass
class SentenceCitations:
    """ALCE verdicts for one answer sentence."""

    supported: bool  # the cited sources together support it (citation recall)
    precise: list[bool]  # per citation: relevant (alone supports, or needed for the joint support)


def judge_sentence(sentence: str, cited: list[str], supports: Supports) -> SentenceCitations:
    """ALCE's two checks for one sentence whose cited source texts are `cited` (in citation order).

    Recall: the concatenation of the cited texts supports the sentence (no citation: 0).
    Precision, per citation: if the joint support fails, no citation is precise; with a
    single citation, it is precise exactly when it supports; with several, a citation is
    irrelevant when it alone does not support the sentence AND the others still do
    without it.
    """
    if not cited:
        return SentenceCitations(False, [])
    joint = supports(sentence, cited)
    if not joint:
        return SentenceCitations(False, [False] * len(cited))
    if len(cited) == 1:
        return SentenceCitations(True, [True])
    precise = []
    for i, text in enumerate(cited):
        if supports(sentence, [text]):
            precise.append(True)
            continue
        rest = cited[:i] + cited[i + 1 :]
        precise.append(not supports(sentence, rest))
    return SentenceCitations(True, precise)


def citation_scores(verdicts: Sequence[SentenceCitations]) -> dict[str, float | None]:
    """Citation recall (share of sentences supported by their citations) and precision
    (share of citations that are relevant) of one answer; None when undefined."""
    n_cites = sum(len(v.precise) for v in verdicts)
    return {
        "citation_recall": sum(v.supported for v in verdicts) / len(verdicts) if verdicts else None,
        "citation_precision": sum(sum(v.precise) for v in verdicts) / n_cites if n_cites else None,
    }


def invalid_citation_rate(valid: int, invalid: int) -> float | None:
    """Citations naming no source, over all citations the answer made (valid plus removed ones)."""
    total = valid + invalid
    return invalid / total if total else None


# --- abstention ------------------------------------------------------------------------
def abstention(should: Sequence[bool], did: Sequence[bool]) -> dict[str, float | None]:
    """Precision and recall of abstaining, the positive class being 'should abstain'
    (the question is unanswerable). None when there is nothing to divide by."""
    tp = sum(s and d for s, d in zip(should, did, strict=True))
    predicted = sum(did)
    actual = sum(should)
    return {
        "abstention_precision": tp / predicted if predicted else None,
        "abstention_recall": tp / actual if actual else None,
    }


# --- latency -------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency(ms: Sequence[float], prefix: str = "latency") -> dict[str, float | None]:
    return {f"{prefix}_p50_ms": percentile(ms, 50), f"{prefix}_p95_ms": percentile(ms, 95)}


# --- aggregation ---------------------------------------------------------------------
def mean_metrics(rows: Iterable[dict[str, float | None]], names: Sequence[str]) -> dict[str, Any]:
    """Mean of each metric over the rows where it is defined, with `n_<metric>` counts."""
    rows = list(rows)
    out: dict[str, Any] = {}
    for name in names:
        vals = [r[name] for r in rows if r.get(name) is not None]
        out[name] = sum(vals) / len(vals) if vals else None  # type: ignore[arg-type]
        out[f"n_{name}"] = len(vals)
    return out


def by_type(
    rows: Sequence[tuple[str, dict[str, float | None]]],
    summarise: Callable[[list[dict[str, float | None]]], dict[str, Any]],
) -> dict[str, Any]:
    """`summarise` applied to every question type's rows and to all rows ('overall')."""
    types = list(dict.fromkeys(t for t, _ in rows))
    out = {"overall": summarise([r for _, r in rows])}
    out["by_type"] = {t: summarise([r for tt, r in rows if tt == t]) for t in types}
    return out


# --- judge calibration -----------------------------------------------------------------
def classification(labels: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float | None]:
    """Accuracy, and precision and recall of the 'supported' class."""
    tp = sum(y and p for y, p in zip(labels, predicted, strict=True))
    fp = sum(p and not y for y, p in zip(labels, predicted, strict=True))
    fn = sum(y and not p for y, p in zip(labels, predicted, strict=True))
    n = len(labels)
    return {
        "accuracy": sum(y == p for y, p in zip(labels, predicted, strict=True)) / n if n else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "n": n,
    }


def threshold_curve(
    scores: Sequence[float], labels: Sequence[bool], numbers_ok: Sequence[bool], thresholds: Sequence[float]
) -> list[dict[str, float | None]]:
    """Judge accuracy at each threshold: supported = numbers_ok and score >= threshold."""
    curve = []
    for t in thresholds:
        pred = [ok and s >= t for s, ok in zip(scores, numbers_ok, strict=True)]
        curve.append({"threshold": round(t, 4), **classification(labels, pred)})
    return curve
