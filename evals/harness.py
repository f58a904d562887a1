"""Offline eval runs: a question set in, per-question results, metrics, a report and plots out.

`run_eval` is the whole flow and what `rag eval` calls. Everything goes through
`rag.library.Library` (find, ask), so the numbers are those a user would get with the
same settings; the settings hash is recorded with every run so two runs can be told
apart and compared (`--compare`).

Judge calibration (`calibrate`) runs the chosen judge on the labelled claim/source
pairs in `evals/datasets/judge_pairs.jsonl`, so every report says how far the
citation figures, which that judge produces, can be trusted. Results are cached under
`<data_dir>/evals/judge-cache/`, keyed by judge, settings hash, threshold and the
pairs file's content.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from evals import metrics as M
from index.papers import normalise_title
from rag.answer import cited_text
from rag.errors import RagError
from rag.judge import Judge, LexicalJudge, LLMJudge, numbers
from rag.types import Answer

log = logging.getLogger(__name__)

EVALS_DIR = Path(__file__).resolve().parent
DEFAULT_DATASET = EVALS_DIR / "datasets" / "questions.jsonl"
JUDGE_PAIRS = EVALS_DIR / "datasets" / "judge_pairs.jsonl"
TYPES = ("lookup", "topic", "synthesis", "unanswerable")
MODES = ("lexical", "dense", "hybrid")
JUDGES = ("lexical", "trained", "llm")
OFFLINE_JUDGES = ("lexical", "trained")
#: Judge failures (LLM timeouts) after which a calibration stops and reports the error.
MAX_JUDGE_FAILURES = 5
#: Bumped when what a calibration result holds changes, so stale cache files are ignored.
CALIBRATION_VERSION = 2
K = 10  # papers retrieved per question for the IR metrics

Progress = Callable[[int, int, str], None]


# --- input -----------------------------------------------------------------------------
class Question(BaseModel):
    id: str = Field(min_length=1)
    type: Literal["lookup", "topic", "synthesis", "unanswerable"]
    question: str = Field(min_length=1)
    gold_titles: list[str] = Field(default_factory=list)
    answer_facts: list[str] = Field(default_factory=list)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is blank")
        return v


def load_questions(path: str | Path) -> tuple[list[Question], list[str]]:
    """Questions of a JSONL file, and one problem message (file:line: why) per skipped line.

    A malformed line is named and skipped; a missing or unreadable file is a RagError.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise RagError(f"{path}: no such dataset file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RagError(f"{path}: cannot read the dataset ({err})") from None
    questions: list[Question] = []
    problems: list[str] = []
    seen: set[str] = set()
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{where}: not JSON ({err.msg})")
            continue
        if not isinstance(data, dict):
            problems.append(f"{where}: expected a JSON object, got {type(data).__name__}")
            continue
        try:
            q = Question.model_validate(data)
        except ValidationError as err:
            why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in err.errors())
            problems.append(f"{where}: {why}")
            continue
        if q.id in seen:
            problems.append(f"{where}: duplicate id {q.id!r}")
            continue
        if q.type != "unanswerable" and not q.gold_titles:
            problems.append(f"{where}: {q.type} question {q.id!r} has no gold_titles (kept; no IR metrics)")
        if q.type == "unanswerable" and q.gold_titles:
            problems.append(f"{where}: unanswerable question {q.id!r} lists gold_titles (ignored for IR)")
        seen.add(q.id)
        questions.append(q)
    return questions, problems


def stratified(questions: Sequence[Question], limit: int | None) -> list[Question]:
    """The first `limit` questions taken round-robin across types (each type in file order).

    `--limit 10` on the dev set gives 3 lookup, 3 topic, 2 unanswerable and 2 synthesis
    questions (types in order of first appearance), so a short run still sees every type.
    """
    if limit is None or limit >= len(questions):
        return list(questions)
    queues: dict[str, list[Question]] = {}
    for q in questions:
        queues.setdefault(q.type, []).append(q)
    out: list[Question] = []
    while len(out) < limit:
        for queue in queues.values():
            if queue and len(out) < limit:
                out.append(queue.pop(0))
    return out


# --- judges ----------------------------------------------------------------------------
class CachedEncoder:
    """The library's embedder with a memory of texts it already encoded.

    A judge re-encodes the same source sentences many times (every claim about one
    abstract, and ALCE's joint, single and leave-one-out checks of one answer); the
    vectors are deterministic, so remembering them changes nothing but the time.
    """

    def __init__(self, embedder: Any, max_texts: int = 100_000) -> None:
        self._embedder = embedder
        self._cache: dict[str, np.ndarray] = {}
        self._max = max_texts

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > self._max:
                self._cache.clear()
            self._cache.update(
                zip(missing, self._embedder.encode(missing, batch_size=batch_size), strict=True)
            )
        if not texts:
            return self._embedder.encode([])
        return np.stack([self._cache[t] for t in texts])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)


def available_judges() -> tuple[str, ...]:
    """The judges this version of rag.judge provides (the trained one is newer)."""
    import rag.judge

    return tuple(n for n in JUDGES if n != "trained" or hasattr(rag.judge, "TrainedJudge"))


def make_judge(name: str, lib: Any) -> Judge:
    """`lexical` and `trained`: offline, on the library's embedder; `llm`: the configured endpoint."""
    if name == "lexical":
        return LexicalJudge(CachedEncoder(lib.embedder))  # type: ignore[arg-type]
    if name == "trained":
        if "trained" not in available_judges():
            raise RagError("this version of rag.judge has no trained judge: use --judge lexical")
        from rag.judge import TrainedJudge  # type: ignore[attr-defined]

        return TrainedJudge(CachedEncoder(lib.embedder))  # type: ignore[arg-type]
    if name == "llm":
        if not lib.settings.llm_base_url:
            raise RagError(
                "--judge llm needs an OpenAI-compatible endpoint: set RAG_LLM_BASE_URL "
                "(and RAG_LLM_MODEL, RAG_LLM_API_KEY if it needs them), or use --judge lexical"
            )
        from rag.llm import LLM

        return LLMJudge(LLM(lib.settings))
    raise RagError(f"unknown judge {name!r}: use one of {', '.join(available_judges())}")


def calibrate_all(
    lib: Any, chosen: Judge | None, pairs_path: Path, progress: Progress | None = None
) -> dict[str, dict[str, Any]]:
    """Calibration of every offline judge, and of the chosen judge when it is another one.

    A judge that cannot be built (a missing model file) is reported with its error.
    """
    out: dict[str, dict[str, Any]] = {}
    names = [n for n in OFFLINE_JUDGES if n in available_judges()]
    if chosen is not None and chosen.name not in names:
        names.append(chosen.name)
    for name in names:
        try:
            judge = chosen if chosen is not None and chosen.name == name else make_judge(name, lib)
            out[name] = calibrate(judge, lib, pairs_path, progress=progress)
        except RagError as err:
            out[name] = {"judge": name, "error": str(err)}
    return out


def load_pairs(path: Path = JUDGE_PAIRS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _judge_key(judge: Judge, lib: Any, pairs_path: Path) -> str:
    """Judge name, what its verdicts depend on, and the pairs file's content.

    The offline judges depend only on the embedding model, their threshold and (trained)
    their fitted weights (both model files), so a retrieval setting change does not re-run them; the LLM
    judge is keyed by the whole settings hash (endpoint, model, sampling settings).
    """
    if judge.name in OFFLINE_JUDGES:
        basis = [lib.settings.embed_model, getattr(judge, "threshold", None)]
        if judge.name == "trained":  # its fitted weights live in files that get refitted
            import rag.judge

            for model in (Path(rag.judge.MODEL_PATH), Path(rag.judge.CROSS_PATH)):
                basis.append(hashlib.sha1(model.read_bytes()).hexdigest() if model.is_file() else "")
        settings = hashlib.sha1(json.dumps(basis).encode()).hexdigest()[:10]
    else:
        settings = lib.settings.settings_hash()
    digest = hashlib.sha1(pairs_path.read_bytes()).hexdigest()[:10]
    return f"{judge.name}-{settings}-{digest}-v{CALIBRATION_VERSION}"


def calibrate(
    judge: Judge,
    lib: Any,
    pairs_path: Path = JUDGE_PAIRS,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The judge's accuracy, precision and recall on the labelled pairs, overall and per kind.

    For the lexical judge also the accuracy curve over thresholds, the best threshold
    on all pairs, and a 5-fold cross-validated estimate (folds by source paper) of the
    accuracy a threshold tuned this way reaches on papers it was not tuned on.
    """
    if not pairs_path.exists():
        return {"judge": judge.name, "error": f"{pairs_path} is missing"}
    cache_dir = cache_dir or Path(lib.settings.data_dir) / "evals" / "judge-cache"
    cache = cache_dir / f"{_judge_key(judge, lib, pairs_path)}.json"
    if cache.exists():
        try:
            return {**json.loads(cache.read_text()), "cached": True}
        except ValueError:
            pass
    pairs = load_pairs(pairs_path)
    rows = []
    failed: list[str] = []
    for i, p in enumerate(pairs):
        try:
            verdict = judge.supports(p["claim"], [p["source"]])
        except RagError as err:  # an LLM judge timing out on one pair
            failed.append(f"{p['id']}: {err}")
            if len(failed) >= MAX_JUDGE_FAILURES:
                return {"judge": judge.name, "error": f"gave up after {len(failed)} failed pairs ({err})"}
            continue
        rows.append(
            {
                "id": p["id"],
                "kind": p["kind"],
                "label": bool(p["label"]),
                "predicted": verdict.supported,
                "score": verdict.score,
                "numbers_ok": numbers(p["claim"]) <= numbers(p["source"]),
                "title": p.get("title", ""),
            }
        )
        if progress:
            progress(i + 1, len(pairs), f"calibrating {judge.name} judge")
    result = summarise_calibration(judge.name, rows, getattr(judge, "threshold", None))
    if failed:  # measured on fewer pairs: say so, and do not cache a partial result
        return {**result, "failed_pairs": failed, "cached": False}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=1))
    return {**result, "cached": False}


def _by_kind(rows: list[dict[str, Any]], predicted: list[bool]) -> dict[str, dict[str, Any]]:
    """Per kind; a kind with only unsupported pairs reports accuracy (share rejected) alone."""
    out = {}
    for kind in dict.fromkeys(r["kind"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        labels = [rows[i]["label"] for i in idx]
        scores = M.classification(labels, [predicted[i] for i in idx])
        if not any(labels):
            scores.update(precision=None, recall=None)
        out[kind] = scores
    return out


def summarise_calibration(name: str, rows: list[dict[str, Any]], threshold: float | None) -> dict[str, Any]:
    labels = [r["label"] for r in rows]
    pred = [r["predicted"] for r in rows]
    out: dict[str, Any] = {
        "judge": name,
        "threshold": threshold,
        "overall": M.classification(labels, pred),
        "by_kind": _by_kind(rows, pred),
        "rows": rows,
    }
    if threshold is not None:  # a score-and-threshold judge: show what other thresholds would do
        grid = [round(0.05 + 0.01 * i, 2) for i in range(91)]
        scores = [r["score"] for r in rows]
        if name == "lexical":
            # The lexical judge rejects a claim whose numbers the source lacks, whatever its
            # score, and halves that score; undo the halving for the curve, keep the gate.
            gate = [r["numbers_ok"] for r in rows]
            raw = [s if o else s * 2 for s, o in zip(scores, gate, strict=True)]
        else:
            gate, raw = [True] * len(rows), scores
        curve = M.threshold_curve(raw, labels, gate, grid)
        out["curve"] = curve
        best = best_threshold(curve)
        out["best_threshold"] = best
        at_best = [o and r >= best["threshold"] for r, o in zip(raw, gate, strict=True)]
        out["by_kind_at_best"] = _by_kind(rows, at_best)
        out["cv"] = cross_validated_threshold(rows, raw, gate, grid)
    return out


def best_threshold(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """The middle of the widest run of thresholds sharing the best accuracy (stable to noise)."""
    top = max(c["accuracy"] or 0 for c in curve)
    best = [c for c in curve if (c["accuracy"] or 0) >= top - 1e-9]
    return best[len(best) // 2]


def cross_validated_threshold(
    rows: list[dict[str, Any]], raw: list[float], gate: list[bool], grid: list[float], folds: int = 5
) -> dict[str, Any]:
    """Tune the threshold on 4/5 of the source papers, measure on the rest, 5 times.

    The accuracy is an honest estimate of a tuned threshold on papers it was not tuned
    on; the best threshold on all pairs (reported beside it) is optimistic.
    """
    papers = sorted({r["title"] for r in rows})
    rng = random.Random(13)
    rng.shuffle(papers)
    fold_of = {p: i % folds for i, p in enumerate(papers)}
    correct = 0
    chosen = []
    for f in range(folds):
        train = [i for i, r in enumerate(rows) if fold_of[r["title"]] != f]
        test = [i for i, r in enumerate(rows) if fold_of[r["title"]] == f]
        if not train or not test:
            continue
        curve = M.threshold_curve(
            [raw[i] for i in train], [rows[i]["label"] for i in train], [gate[i] for i in train], grid
        )
        t = best_threshold(curve)["threshold"]
        chosen.append(t)
        correct += sum((gate[i] and raw[i] >= t) == rows[i]["label"] for i in test)
    return {
        "accuracy": correct / len(rows) if rows else None,
        "thresholds": chosen,
        "median_threshold": statistics.median(chosen) if chosen else None,
    }


# --- running ---------------------------------------------------------------------------
def _titles(result: Any) -> list[str]:
    return [h.paper.title for h in result.papers]


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = call()
    return value, (time.perf_counter() - t0) * 1000


def _cited_texts(lib: Any, question: str, answer: Answer) -> dict[int, str]:
    """The text each source number stood for when the answer was written.

    The answerer gives the model each retrieved paper's best chunks; the same search
    (`find` with `answer_papers`) gives the same chunks. A source not among them (the
    answerer's query differed) falls back to the paper's whole stored text.
    """
    if not answer.sources:
        return {}
    hits = {h.paper.id: h for h in lib.find(question, k=lib.settings.answer_papers).papers}
    out = {}
    for s in answer.sources:
        hit = hits.get(s.paper_id)
        chunks = hit.chunks if hit else lib.retriever().paper_chunks(s.paper_id)
        out[s.n] = cited_text(s.title, chunks) if chunks else s.snippet
    return out


def judge_answer(
    lib: Any, judge: Judge, question: str, answer: Answer
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sentences with the judge's ALCE verdicts, and the answer's citation metrics.

    A sentence counts when it cites something or the answerer marked it as needing
    support (supported is not None); uncited claims count as unsupported. Abstentions
    have no claims to check.
    """
    texts = _cited_texts(lib, question, answer)

    def supports(sentence: str, cited: list[str]) -> bool:
        return judge.supports(sentence, cited).supported

    out, verdicts = [], []
    for s in answer.sentences:
        row: dict[str, Any] = {"text": s.text, "citations": s.citations, "answerer_supported": s.supported}
        if not answer.abstained and (s.citations or s.supported is not None):
            v = M.judge_sentence(s.text, [texts[n] for n in s.citations if n in texts], supports)
            verdicts.append(v)
            row.update(supported=v.supported, citations_precise=v.precise)
        else:
            row.update(supported=None, citations_precise=[])
        out.append(row)
    valid = sum(len(s.citations) for s in answer.sentences)
    scores = (
        M.citation_scores(verdicts) if verdicts else {"citation_recall": None, "citation_precision": None}
    )
    return out, {**scores, "citations": valid, "invalid_citations": answer.invalid_citations}


def _record(q: Question) -> dict[str, Any]:
    return {
        "id": q.id,
        "type": q.type,
        "question": q.question,
        "gold_titles": q.gold_titles,
        "answer_facts": q.answer_facts,
    }


def _gold_ranks(titles: Sequence[str], gold: Sequence[str]) -> dict[str, int | None]:
    ranked = [normalise_title(t) for t in titles]
    return {g: (ranked.index(normalise_title(g)) + 1 if normalise_title(g) in ranked else None) for g in gold}


def run_eval(
    lib: Any,
    dataset: str | Path = DEFAULT_DATASET,
    out_dir: str | Path = "eval-run",  # the CLI defaults to <data_dir>/evals/runs/<date>-<hash>
    *,
    limit: int | None = None,
    retrieval_only: bool = False,
    judge: str = "trained",
    compare: str | Path | None = None,
    progress: Progress | None = None,
    calibration: bool = True,
    judge_pairs: str | Path = JUDGE_PAIRS,
) -> dict[str, Any]:
    """Run the question set, write results.jsonl, summary.json, report.md and plots to `out_dir`.

    Returns the summary (also written as summary.json). With `compare`, the previous
    run's summary.json is diffed against this one (also in the report and a plot).
    """
    from evals import report

    if limit is not None and limit < 1:
        raise RagError(f"--limit {limit}: give at least 1")
    questions, problems = load_questions(dataset)
    for p in problems:
        log.warning("%s", p)
    if not questions:
        raise RagError(f"{dataset}: no valid questions" + (f" ({problems[0]})" if problems else ""))
    old = report.load_summary(compare) if compare else None
    questions = stratified(questions, limit)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    judge_obj = None if retrieval_only else make_judge(judge, lib)

    lib.find("warm up", k=1)  # loads the model and the BM25 copy outside the timings
    records: list[dict[str, Any]] = []
    total = len(questions)
    for i, q in enumerate(questions):
        if progress:
            progress(i, total, f"{q.type} {q.id}")
        rec = _record(q)
        try:
            if retrieval_only:
                rec["retrieved"], rec["find_ms"] = {}, {}
                for mode in MODES:
                    res, ms = _timed(partial(lib.find, q.question, k=K, mode=mode))
                    rec["retrieved"][mode] = _titles(res)
                    rec["find_ms"][mode] = ms
                rec["retrieved_titles"] = rec["retrieved"]["hybrid"]
            else:
                res, ms = _timed(partial(lib.find, q.question, k=K))
                rec["retrieved_titles"] = _titles(res)
                rec["find_ms"] = {"hybrid": ms}
                ans, ask_ms = _timed(partial(lib.ask, q.question))
                assert judge_obj is not None
                sentences, cite = judge_answer(lib, judge_obj, q.question, ans)
                rec.update(
                    answer=ans.answer,
                    abstained=ans.abstained,
                    backend=ans.backend,
                    notice=ans.notice,
                    sentences=sentences,
                    sources=[s.model_dump() for s in ans.sources],
                    invalid_citations=ans.invalid_citations,
                    citation_metrics=cite,
                    timings={
                        "ask_ms": ask_ms,
                        "find_ms": ms,
                        **{f"answer_{k}": v for k, v in ans.timings.items()},
                    },
                )
        except RagError as err:
            rec["error"] = str(err)
            log.warning("%s: %s", q.id, err)
        rec["gold_ranks"] = _gold_ranks(rec.get("retrieved_titles", []), q.gold_titles)
        if "retrieved" in rec:
            rec["gold_ranks_by_mode"] = {
                m: _gold_ranks(t, q.gold_titles) for m, t in rec["retrieved"].items()
            }
        records.append(rec)
    if progress:
        progress(total, total, "scoring")

    summary = summarise(records, retrieval_only)
    backends = sorted({r["backend"] for r in records if r.get("backend")})
    summary.update(
        dataset=str(dataset),
        questions=len(records),
        limit=limit,
        mode="retrieval-only" if retrieval_only else "full",
        judge=None if retrieval_only else judge,
        backend=", ".join(backends) if backends else "none (retrieval only)",
        settings_hash=lib.settings.settings_hash(),
        settings=lib.settings.model_dump(mode="json", exclude={"llm_api_key", "data_dir", "host", "port"}),
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        errors=sum(1 for r in records if "error" in r),
        problems=problems,
    )
    if calibration:
        summary["judge_calibration"] = calibrate_all(lib, judge_obj, Path(judge_pairs), progress)
        summary["judge_pairs"] = str(judge_pairs)

    with (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(
        json.dumps(_without_rows(summary), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    diff = report.compare(old, summary) if old is not None else None
    report.write_all(out, summary, records, diff, compare_dir=str(compare) if compare else None)
    if diff is not None:
        summary["compare"] = diff
    return summary


def _without_rows(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without the per-pair calibration rows (those stay in the cache)."""
    cal = summary.get("judge_calibration")
    if not cal:
        return summary
    slim = {name: {k: v for k, v in c.items() if k != "rows"} for name, c in cal.items()}
    return {**summary, "judge_calibration": slim}


# --- metrics over records ---------------------------------------------------------------------
ANSWER_METRICS = ("fact_recall", "citation_recall", "citation_precision", "abstain_rate")


def summarise(records: list[dict[str, Any]], retrieval_only: bool) -> dict[str, Any]:
    """Metrics per type and overall (see evals.metrics for each definition)."""
    scoring = [r for r in records if "error" not in r]
    out: dict[str, Any] = {}
    modes = MODES if retrieval_only else ("hybrid",)
    retrievers = {}
    for mode in modes:
        runs = {r["id"]: (r["retrieved"][mode] if retrieval_only else r["retrieved_titles"]) for r in scoring}
        gold = {r["id"]: r["gold_titles"] for r in scoring if r["type"] != "unanswerable"}
        ir = M.ir_scores(runs, gold)
        rows = [
            (r["type"], {**dict.fromkeys(M.IR_METRICS), **ir.get(r["id"], {}), "_ms": r["find_ms"][mode]})
            for r in scoring
        ]

        def summarise_ir(rs: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                **M.mean_metrics(rs, M.IR_METRICS),
                **M.latency([x["_ms"] for x in rs], "find"),
                "n": len(rs),
            }

        retrievers[mode] = M.by_type(rows, summarise_ir)
        for r in scoring:
            r.setdefault("metrics", {})[mode if retrieval_only else "ir"] = ir.get(r["id"])
    out["retrievers"] = retrievers
    if retrieval_only:
        out["metrics"] = retrievers["hybrid"]
        return out

    rows = []
    for r in scoring:
        cite = r["citation_metrics"]
        per_q = {
            **dict.fromkeys(M.IR_METRICS),
            **(r["metrics"].get("ir") or {}),
            "fact_recall": M.fact_recall(r["answer_facts"], r["answer"])
            if r["type"] != "unanswerable"
            else None,
            "citation_recall": cite["citation_recall"],
            "citation_precision": cite["citation_precision"],
            "abstain_rate": 1.0 if r["abstained"] else 0.0,
            "_valid": cite["citations"],
            "_invalid": cite["invalid_citations"],
            "_ask_ms": r["timings"]["ask_ms"],
            "_should": r["type"] == "unanswerable",
            "_did": bool(r["abstained"]),
        }
        r["metrics"].update({k: v for k, v in per_q.items() if not k.startswith("_")})
        rows.append((r["type"], per_q))

    def summarise_all(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            **M.mean_metrics(rs, M.IR_METRICS + ANSWER_METRICS),
            "invalid_citation_rate": M.invalid_citation_rate(
                sum(x["_valid"] for x in rs), sum(x["_invalid"] for x in rs)
            ),
            # Precision and recall of abstaining need both kinds of question in the group:
            # they are given overall, and each type reports its abstain_rate instead.
            **(
                M.abstention([x["_should"] for x in rs], [x["_did"] for x in rs])
                if len({x["_should"] for x in rs}) == 2
                else {"abstention_precision": None, "abstention_recall": None}
            ),
            **M.latency([x["_ask_ms"] for x in rs], "ask"),
            "n": len(rs),
        }

    out["metrics"] = M.by_type(rows, summarise_all)
    return out
