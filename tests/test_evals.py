"""The eval harness: its metric functions, and its invariants on a real 10-question run.

The run uses the real index (`corpus_lib`) and the extractive backend; the tests check
what the harness promises (a result per question, metrics in range, report and plots
written, comparisons between runs), never particular scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals import metrics as M
from evals.harness import DEFAULT_DATASET, JUDGE_PAIRS, load_questions, make_judge, run_eval, stratified
from evals.report import compare
from rag.errors import RagError
from tests.conftest import write_jsonl

PNG = b"\x89PNG\r\n\x1a\n"


# --- metric functions --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fact", "text", "found"),
    [
        ("4 epochs", "up to 4.0 epochs of repeated data", True),
        ("18.02%", "a gain of 18.02 % over the baseline", True),
        ("18.02%", "18.02 percent better", True),
        ("6912 combinations", "6,912 combinations of layers", True),
        ("kNN-MT", "the KNN MT approach", True),
        ("4 epochs", "14 epochs", False),
        ("0.5", "0.55", False),
        ("DCLR", "", False),
    ],
)
def test_fact_matching_normalises_case_punctuation_and_numbers(fact, text, found):
    assert M.fact_found(fact, text) is found


def test_fact_recall_is_share_of_facts_and_none_without_facts():
    assert M.fact_recall(["Hedgehog", "Lightning Attention"], "Hedgehog mimics softmax.") == 0.5
    assert M.fact_recall([], "anything") is None


def _supports(true_sets):
    """A judge that supports a sentence exactly when the cited texts include one of `true_sets`."""

    def supports(sentence, cited):
        return any(set(s) <= set(cited) for s in true_sets)

    return supports


def test_alce_recall_and_precision():
    # A alone supports; B is irrelevant (alone no, and A still supports without it).
    v = M.judge_sentence("s", ["A", "B"], _supports([{"A"}]))
    assert v.supported and v.precise == [True, False]
    # Only A and B together support: both are needed, both precise.
    v = M.judge_sentence("s", ["A", "B"], _supports([{"A", "B"}]))
    assert v.supported and v.precise == [True, True]
    # No joint support: not supported, no citation precise.
    v = M.judge_sentence("s", ["A", "B"], _supports([{"C"}]))
    assert not v.supported and v.precise == [False, False]
    # No citation: unsupported, nothing to be precise about.
    assert M.judge_sentence("s", [], _supports([set()])).precise == []
    scores = M.citation_scores(
        [
            M.SentenceCitations(True, [True, False]),
            M.SentenceCitations(False, [False]),
            M.SentenceCitations(False, []),
        ]
    )
    assert scores == {"citation_recall": pytest.approx(1 / 3), "citation_precision": pytest.approx(1 / 3)}


def test_ir_scores_at_paper_level_with_normalised_titles():
    scores = M.ir_scores(
        {"q1": ["Other", "the GOLD paper!", "x"], "q2": [], "u": ["anything"]},
        {"q1": ["The Gold Paper"], "q2": ["Missing"], "u": []},
    )
    assert set(scores) == {"q1", "q2"}  # no gold titles: no IR metrics
    assert scores["q1"]["mrr"] == pytest.approx(0.5)
    assert scores["q1"]["recall@5"] == 1.0
    assert scores["q2"] == {"recall@5": 0.0, "recall@10": 0.0, "mrr": 0.0, "ndcg@10": 0.0}


def test_abstention_latency_and_invalid_rate():
    assert M.abstention([True, True, False, False], [True, False, True, False]) == {
        "abstention_precision": 0.5,
        "abstention_recall": 0.5,
    }
    assert M.abstention([False], [False]) == {"abstention_precision": None, "abstention_recall": None}
    assert M.latency([10.0, 20.0, 30.0, 40.0]) == {
        "latency_p50_ms": 25.0,
        "latency_p95_ms": pytest.approx(38.5),
    }
    assert M.invalid_citation_rate(valid=3, invalid=1) == 0.25
    assert M.invalid_citation_rate(0, 0) is None


def test_malformed_dataset_lines_are_named_and_skipped(tmp_path):
    good = {"id": "a", "type": "lookup", "question": "Q?", "gold_titles": ["T"], "answer_facts": []}
    path = tmp_path / "qs.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                "{not json",
                json.dumps({**good, "id": "b", "type": "trivia"}),
                json.dumps({**good, "id": "c", "question": "   "}),
                json.dumps([1, 2]),
                json.dumps(good),  # duplicate id
                json.dumps({**good, "id": "d", "type": "unanswerable", "gold_titles": []}),
            ]
        )
        + "\n"
    )
    questions, problems = load_questions(path)
    assert [q.id for q in questions] == ["a", "d"]
    lines = sorted(int(p.split(":")[1]) for p in problems)
    assert lines == [2, 3, 4, 5, 6]
    assert all(p.startswith(f"{path}:") for p in problems)
    with pytest.raises(RagError, match="no such dataset"):
        load_questions(tmp_path / "missing.jsonl")


def test_limit_takes_questions_round_robin_across_types():
    questions, problems = load_questions(DEFAULT_DATASET)
    assert not problems
    picked = stratified(questions, 10)
    counts = {t: sum(q.type == t for q in picked) for t in ("lookup", "topic", "synthesis", "unanswerable")}
    assert len(picked) == 10 and all(counts.values()), counts
    assert stratified(questions, None) == questions


def test_judge_pairs_are_balanced_labelled_and_held_out():
    pairs = [json.loads(line) for line in JUDGE_PAIRS.read_text().splitlines()]
    assert len(pairs) >= 200
    assert sum(p["label"] for p in pairs) * 2 == len(pairs)
    kinds = {p["kind"] for p in pairs}
    assert kinds == {"paraphrase", "number", "swap", "other_paper", "negation", "overclaim"}
    assert all(p["label"] == (p["kind"] == "paraphrase") for p in pairs)
    train = set(Path(JUDGE_PAIRS.parent / "train-papers.txt").read_text().splitlines())
    assert not {p["title"] for p in pairs} & train
    assert len({p["id"] for p in pairs}) == len(pairs)
    # each later set (h2-*, h3-*) is about papers no earlier set used
    sets = [{p["title"] for p in pairs if p["id"].startswith(k)} for k in ("jp-", "h2-", "h3-")]
    assert all(len(s) >= 75 for s in sets[1:])
    assert not sets[0] & sets[1] and not (sets[0] | sets[1]) & sets[2]


def test_judge_calibration_cache_is_keyed_by_both_model_files(tmp_path, monkeypatch):
    """A rebuilt cross-encoder (or logistic regression) must not reuse the old judge's figures."""
    from types import SimpleNamespace

    import rag.judge
    from evals.harness import _judge_key

    lib = SimpleNamespace(settings=SimpleNamespace(embed_model="m"))
    judge = SimpleNamespace(name="trained", threshold=0.5)
    for name in ("MODEL_PATH", "CROSS_PATH"):
        model = tmp_path / name
        model.write_bytes(b"first")
        monkeypatch.setattr(rag.judge, name, model)
        before = _judge_key(judge, lib, JUDGE_PAIRS)  # type: ignore[arg-type]
        model.write_bytes(b"refitted")
        assert _judge_key(judge, lib, JUDGE_PAIRS) != before  # type: ignore[arg-type]


def test_compare_flags_regressions_by_direction():
    old = {
        "settings_hash": "a",
        "metrics": {"overall": {"ndcg@10": 0.8, "invalid_citation_rate": 0.1, "ask_p50_ms": 100.0}},
    }
    new = {
        "settings_hash": "b",
        "metrics": {"overall": {"ndcg@10": 0.7, "invalid_citation_rate": 0.0, "ask_p50_ms": 101.0}},
    }
    rows = {r["metric"]: r["flag"] for r in compare(old, new)["rows"]}
    assert rows == {"ndcg@10": "regression", "invalid_citation_rate": "improved", "ask_p50_ms": ""}


def test_llm_judge_needs_an_endpoint(corpus_lib):
    assert corpus_lib.settings.llm_base_url is None
    with pytest.raises(RagError, match="RAG_LLM_BASE_URL"):
        make_judge("llm", corpus_lib)


# --- a real run --------------------------------------------------------------------------
def _check_range(block, where=""):
    for key, value in block.items():
        here = f"{where}.{key}"
        if isinstance(value, dict):
            _check_range(value, here)
        elif value is None or key == "n" or key.startswith("n_"):
            continue
        elif key.endswith("_ms"):
            assert value > 0, here
        else:
            assert 0.0 <= value <= 1.0, here


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory):
    """12 judge pairs (two per kind): the full set takes minutes on a loaded 2-core machine."""
    pairs = [json.loads(line) for line in JUDGE_PAIRS.read_text().splitlines()]
    picked = [
        p
        for kind in dict.fromkeys(p["kind"] for p in pairs)
        for p in [q for q in pairs if q["kind"] == kind][:2]
    ]
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", picked)


@pytest.fixture(scope="module")
def full_run(corpus_lib, small_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run1"
    seen = []
    summary = run_eval(
        corpus_lib,
        DEFAULT_DATASET,
        out,
        limit=10,
        judge="lexical",
        judge_pairs=small_pairs,
        progress=lambda done, total, label: seen.append((done, total)),
    )
    return out, summary, seen


def test_full_run_writes_a_result_per_question(full_run):
    out, summary, seen = full_run
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == summary["questions"] == 10
    assert {r["type"] for r in records} == {"lookup", "topic", "synthesis", "unanswerable"}
    assert (10, 10) in seen
    for r in records:
        assert "error" not in r, r.get("error")
        assert r["answer"] and r["backend"] == "extractive"
        assert isinstance(r["retrieved_titles"], list) and len(r["retrieved_titles"]) <= 10
        assert r["timings"]["ask_ms"] > 0
        for s in r["sentences"]:
            assert set(s) >= {"text", "citations", "supported"}
            assert all(n in {src["n"] for src in r["sources"]} for n in s["citations"])


def test_full_run_metrics_are_in_range(full_run):
    _, summary, _ = full_run
    assert summary["settings_hash"] and summary["backend"] == "extractive" and summary["judge"] == "lexical"
    overall = summary["metrics"]["overall"]
    for name in (
        "recall@5",
        "recall@10",
        "mrr",
        "ndcg@10",
        "fact_recall",
        "citation_recall",
        "citation_precision",
        "abstention_precision",
        "abstention_recall",
        "ask_p50_ms",
        "ask_p95_ms",
    ):
        assert overall[name] is not None, name
    assert set(summary["metrics"]["by_type"]) == {"lookup", "topic", "synthesis", "unanswerable"}
    assert summary["metrics"]["by_type"]["unanswerable"]["ndcg@10"] is None  # no gold papers
    _check_range(summary["metrics"])
    _check_range(summary["retrievers"])
    cal = summary["judge_calibration"]["lexical"]
    assert cal["overall"]["n"] == 12
    _check_range(
        {k: v for k, v in cal.items() if k in ("overall", "by_kind", "by_kind_at_best", "best_threshold")}
    )


def test_full_run_writes_report_and_plots(full_run):
    out, _, _ = full_run
    report = (out / "report.md").read_text()
    for heading in ("## Retrieval", "## Answers", "## Judge calibration"):
        assert heading in report
    for t in ("lookup", "topic", "synthesis", "unanswerable"):
        assert f"| {t} |" in report
    for png in ("metrics.png", "calibration.png"):
        assert (out / png).read_bytes().startswith(PNG), png
    assert json.loads((out / "summary.json").read_text())["questions"] == 10


def test_cli_retrieval_only_run_compares_with_previous_run(full_run, corpus_lib, small_pairs, tmp_path):
    from rag.cli import app

    old_dir = full_run[0]
    dataset = tmp_path / "qs.jsonl"
    dataset.write_text(DEFAULT_DATASET.read_text() + "{broken\n")  # a bad last line is named, not fatal
    out = tmp_path / "run2"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--dataset",
            str(dataset),
            "--out",
            str(out),
            "--limit",
            "10",
            "--retrieval-only",
            "--judge-pairs",
            str(small_pairs),
            "--compare",
            str(old_dir),
        ],
        env={"RAG_DATA_DIR": str(corpus_lib.settings.data_dir)},
    )
    assert result.exit_code == 0, result.output
    assert f"{dataset}:70" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "retrieval-only" and summary["questions"] == 10
    assert set(summary["retrievers"]) == {"lexical", "dense", "hybrid"}
    _check_range(summary["retrievers"])
    for png in ("metrics.png", "retrievers.png", "compare.png"):
        assert (out / png).read_bytes().startswith(PNG), png
    diff = json.loads((out / "compare.json").read_text())
    assert diff["rows"] and all(r["flag"] in ("", "improved", "regression") for r in diff["rows"])
    # Same slice, same retrieval settings: the hybrid IR figures cannot have moved.
    same = [r for r in diff["rows"] if r["scope"] == "overall" and r["metric"] in M.IR_METRICS]
    assert same and all(abs(r["delta"]) < 1e-9 for r in same)
    assert "Compared with" in (out / "report.md").read_text()


def test_cli_rejects_a_missing_dataset(corpus_lib, tmp_path):
    from rag.cli import app

    result = CliRunner().invoke(
        app,
        ["eval", "--dataset", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")],
        env={"RAG_DATA_DIR": str(corpus_lib.settings.data_dir)},
    )
    assert result.exit_code == 1
    assert "no such dataset" in result.output
