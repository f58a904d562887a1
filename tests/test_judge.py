"""The trained support judge on real corpus sentences, its factory, and `rag judge`.

The papers used here are from the half of the corpus the judge was NOT trained on
(`evals/datasets/train-papers.txt` lists the other half), and none of them is in the
hand-labelled held-out pairs either: the claims below were written for these tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.errors import RagError
from rag.judge import (
    JUDGES,
    LexicalJudge,
    TrainedJudge,
    Verdict,
    get_judge,
    judge_lines,
    parse_verdict,
    summarise,
)
from rag.retrieve import sentences
from tests.conftest import write_jsonl

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def judge(shared_embedder) -> TrainedJudge:
    j = get_judge("trained", shared_embedder)
    assert isinstance(j, TrainedJudge)
    return j


@pytest.fixture(scope="module")
def abstract(corpus_papers):
    def find(prefix: str) -> str:
        (paper,) = [p for p in corpus_papers if p.title.startswith(prefix)]
        return paper.abstract

    return find


_ALL_KINDS = {"paraphrase", "number", "swap", "negation", "overclaim", "other_paper"}


def _train_titles() -> set[str]:
    """The normalised titles of `train-papers.txt`, the half of the corpus training may read."""
    from index.papers import normalise_title

    text = (ROOT / "evals" / "datasets" / "train-papers.txt").read_text(encoding="utf-8")
    return {normalise_title(t) for t in text.splitlines() if t.strip()}


@pytest.mark.parametrize(
    ("name", "at_least", "kinds"),
    [
        ("judge_dev_pairs.jsonl", 100, _ALL_KINDS),
        ("judge_hand_pairs.jsonl", 600, _ALL_KINDS),
        ("judge_hard_pairs.jsonl", 2000, _ALL_KINDS - {"other_paper"}),
        ("judge_style_pairs.jsonl", 4500, _ALL_KINDS - {"other_paper"}),
        ("judge_style_r4_pairs.jsonl", 1500, _ALL_KINDS - {"other_paper"}),
        ("judge_subtle_pairs.jsonl", 1100, _ALL_KINDS),
    ],
)
def test_hand_written_pairs_come_from_train_papers_only(name, at_least, kinds):
    """The hand-written pairs the judge is fitted on (hand) or measured on within the train half
    (dev, hard) are about train papers, never held-out ones."""
    from index.papers import normalise_title

    train = _train_titles()
    pairs = [json.loads(line) for line in (ROOT / "evals" / "datasets" / name).open(encoding="utf-8")]
    held_out = {
        json.loads(line)["source"] for line in (ROOT / "evals" / "datasets" / "judge_pairs.jsonl").open()
    }
    assert len(pairs) >= at_least
    assert len({p["id"] for p in pairs}) == len(pairs)
    assert {p["kind"] for p in pairs} == kinds
    assert all(isinstance(p["label"], bool) and p["claim"].strip() for p in pairs)
    for p in pairs:
        assert normalise_title(p["title"]) in train, p["id"]
        assert p["source"] not in held_out, p["id"]


def test_cross_encoder_never_trains_on_a_dev_paper():
    """The stacking threshold is chosen on the dev pairs, so no pair the cross-encoder is trained
    on may be about a dev paper (the hard pairs once were, and the threshold came out too low)."""
    from evals.judge_cross_train import datasets
    from index.papers import normalise_title

    synthetic, written, dev = datasets()
    dev_papers = {normalise_title(p["title"]) for p in dev}
    assert len(dev) >= 600 and len(written) >= 6500 and len(synthetic) >= 3000
    assert not dev_papers & {normalise_title(p["title"]) for p in written}
    assert not dev_papers & {normalise_title(p["paper"]) for p in synthetic}


def test_swap_minimal_pairs_are_about_train_papers_no_dev_pair_is_about():
    """`evals.judge_swap_train` continues the cross-encoder on these, so the dev rule applies."""
    from evals.judge_swap_train import SWAPS
    from evals.judge_train import DEV, read_pairs
    from index.papers import normalise_title

    train = _train_titles()
    dev = {normalise_title(p["title"]) for p in read_pairs(DEV)}
    pairs = [json.loads(line) for line in SWAPS.open(encoding="utf-8")]
    assert len(pairs) >= 700 and len({p["id"] for p in pairs}) == len(pairs)
    for p in pairs:
        title = normalise_title(p["title"])
        assert title in train and title not in dev, p["id"]
        assert p["faithful"].strip() and p["swapped"].strip() and p["faithful"] != p["swapped"], p["id"]


def test_held_out_papers_are_not_training_papers():
    train = (ROOT / "evals" / "datasets" / "train-papers.txt").read_text(encoding="utf-8")
    for prefix in ("Galactic", "Mixed Autoencoder", "HippoRAG", "Unsupervised Data Augmentation"):
        assert prefix not in train


# --- each error kind caught, paraphrases accepted ------------------------------------------
GALACTIC_PARAPHRASES = [
    "On an 8-GPU node, Galactic simulates more than 421,000 steps per second, 54 times faster than Habitat 2.0.",
    "With Galactic, a mobile pick skill can be trained to over 80% accuracy in less than 16 minutes.",
    "The largest rearrangement experiment run with Galactic used 5B steps of experience, equivalent to 20 years of robot experience.",
]
UDA_PARAPHRASES = [
    "Replacing simple noising operations with advanced augmentation such as RandAugment and back-translation "
    "brings substantial improvements on six language and three vision tasks.",
    "With only 20 labeled examples, the method reaches an error rate of 4.20 on IMDb text classification.",
]


@pytest.mark.parametrize("claim", GALACTIC_PARAPHRASES)
def test_paraphrases_accepted(judge, abstract, claim):
    v = judge.supports(claim, [abstract("Galactic")])
    assert v.supported, v


@pytest.mark.parametrize("claim", UDA_PARAPHRASES)
def test_more_paraphrases_accepted(judge, abstract, claim):
    v = judge.supports(claim, [abstract("Unsupervised Data Augmentation")])
    assert v.supported, v


@pytest.mark.parametrize(
    ("prefix", "claim"),
    [
        # a changed number (54x -> 45x; and a figure of the same abstract moved to another result)
        (
            "Galactic",
            "Galactic achieves over 421,000 steps-per-second on an 8-GPU node, which is 45x faster than Habitat 2.0.",
        ),
        ("Galactic", "Galactic can train a mobile pick skill to >80% accuracy in under 46 minutes."),
        # a swapped dataset / method name
        ("Mixed Autoencoder", "MixedAE outperforms MAE by +1.7 mIoU on Cityscapes with a standard ViT-Base."),
        (
            "Galactic",
            "Galactic achieves over 421,000 steps-per-second on an 8-GPU node, 54x faster than Isaac Gym.",
        ),
        # a reversed comparison / negation
        ("Galactic", "In simulation speed, Galactic is 54x slower than Habitat 2.0."),
        # the two sides of a comparison exchanged (missed until session 10's cross-encoder)
        ("Galactic", "Habitat 2.0 simulates 54x faster than Galactic on an 8-GPU node."),
        (
            "Mixed Autoencoder",
            "Naive mixing improves MAE's performance because it reduces mutual information.",
        ),
        # an overclaim
        ("Mixed Autoencoder", "MixedAE outperforms MAE on every downstream task and with every backbone."),
        ("HippoRAG", "HippoRAG always outperforms all existing retrieval methods on every benchmark."),
        # a sentence from another paper
        (
            "HippoRAG",
            "Galactic achieves over 421,000 steps-per-second (SPS) on an 8-GPU node, which is 54x faster than Habitat 2.0.",
        ),
        (
            "Galactic",
            "On the IMDb text classification dataset, with only 20 labeled examples, the method achieves an error rate of 4.20.",
        ),
    ],
)
def test_errors_caught(judge, abstract, prefix, claim):
    v = judge.supports(claim, [abstract(prefix)])
    assert not v.supported, v


@pytest.mark.parametrize(
    ("prefix", "claim"),
    [
        # reversals worded without an antonym of a source word and without "not"
        ("Unsupervised Data Augmentation", "Like prior semi-supervised approaches, the method treats the quality of noising as unimportant."),
        ("Unsupervised Data Augmentation", "The method still requires thousands of labeled examples to be competitive on IMDb text classification."),
        ("HippoRAG", "HippoRAG trails existing RAG methods on multi-hop question answering."),
    ],
)  # fmt: skip
def test_reversals_without_antonyms_caught(judge, abstract, prefix, claim):
    v = judge.supports(claim, [abstract(prefix)])
    assert not v.supported, v


@pytest.mark.parametrize(
    "claim",
    [
        "Advanced augmentation like RandAugment and back-translation, used in place of simple noise, gives large "
        "gains on six language and three vision tasks within the same consistency training framework.",
        # "consists" once matched the overclaim cue "consistently" (same stem)
        "The method consists of consistency training on unlabeled data with advanced data augmentation such as "
        "RandAugment and back-translation.",
    ],
)
def test_rewordings_with_contrast_words_accepted(judge, abstract, claim):
    v = judge.supports(claim, [abstract("Unsupervised Data Augmentation")])
    assert v.supported, v


def test_overclaim_cues_are_words_not_stems():
    from rag.judge_features import Analysed, _cue_classes

    assert _cue_classes(Analysed("The dataset consists of generated pairs.")) == set()
    assert _cue_classes(Analysed("It estimates separability without needing any labels.")) == set()
    assert _cue_classes(Analysed("The fully fine-tuned model is the reference.")) == set()
    assert _cue_classes(Analysed("It wins on every benchmark and consistently beats them.")) == {
        "ALL",
        "ALWAYS",
    }


def test_comparison_sides_crossing_over():
    from rag.judge_features import _comparison_sides, compare_swapped

    source = [
        "On synthetic datasets, simple examples invoke stronger compositionality than hard examples do."
    ]
    assert compare_swapped(
        "On synthetic datasets, hard examples induce stronger compositionality than simple ones.", source
    )
    assert not compare_swapped(
        "Simple examples yield stronger compositionality than hard ones on synthetic data.", source
    )
    # "over 11 datasets" frames no winner: the sides are those of "beats"
    sides = _comparison_sides("Over 11 datasets, CoOp beats prompt engineering.", by_words=True)
    assert sides == ({"coop"}, {"prompt", "engin"})


def test_verbatim_sentences_supported(judge, abstract):
    """Extractive answers quote the source: every sentence of these abstracts must pass."""
    for prefix in ("Galactic", "Mixed Autoencoder", "HippoRAG", "Unsupervised Data Augmentation"):
        text = abstract(prefix)
        for s in sentences(text):
            if len(s.split()) >= 5:
                assert judge.supports(s, [text]).supported, s


def test_several_sources_and_edge_cases(judge, abstract):
    galactic, uda = abstract("Galactic"), abstract("Unsupervised Data Augmentation")
    claim = "Galactic achieves over 108,000 SPS for simulation plus RL, 88x faster than Habitat 2.0."
    assert judge.supports(claim, [uda, galactic]).supported
    assert not judge.supports(claim, [uda]).supported
    assert judge.supports(claim, []) == Verdict(False, 0.0)
    assert judge.supports("", [galactic]) == Verdict(False, 0.0)


def test_score_is_a_probability_and_verdict_follows_it(judge, abstract):
    text = abstract("HippoRAG")
    for claim in [*sentences(text)[:3], "HippoRAG is 100 times slower than IRCoT."]:
        v = judge.supports(claim, [text])
        assert 0.0 <= v.score <= 1.0
        assert v.supported == (v.score >= judge.threshold)


# --- factory ---------------------------------------------------------------------------------
def test_get_judge(shared_embedder):
    assert JUDGES == ("trained", "lexical", "llm")
    assert isinstance(get_judge("lexical", shared_embedder), LexicalJudge)
    assert get_judge("trained", shared_embedder).name == "trained"
    with pytest.raises(RagError, match="unknown judge"):
        get_judge("nope", shared_embedder)
    with pytest.raises(RagError, match="LLM"):
        get_judge("llm", shared_embedder)


def test_answerer_uses_trained_judge():
    src = (ROOT / "rag" / "answer.py").read_text(encoding="utf-8")
    assert 'get_judge("trained", self.embedder)' in src


def test_model_file_is_small_and_matches_features():
    from rag.judge import MODEL_PATH
    from rag.judge_features import FEATURES

    model = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert model["features"] == FEATURES
    assert len(model["coef"]) == len(model["mean"]) == len(model["scale"]) == len(model["features"])
    assert MODEL_PATH.stat().st_size < 100_000


def test_cross_encoder_file_is_int8_and_carries_its_stacking(judge):
    """The cross-encoder ships as int8 ONNX (17.5 MB, not 69) with the weight and threshold chosen
    for those very weights, and the trained judge loads and uses it."""
    import onnx

    from rag.judge import CROSS_PATH

    assert CROSS_PATH.stat().st_size < 20_000_000
    graph = onnx.load(str(CROSS_PATH))
    matrices = {t.data_type for t in graph.graph.initializer if len(t.dims) == 2}
    assert onnx.TensorProto.INT8 in matrices  # the matmuls' weights
    assert matrices <= {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}  # no float matrix left
    info = json.loads({p.key: p.value for p in graph.metadata_props}["info"])
    assert info["weight"] > 0 and info["dev_stacked"]["accuracy"] >= info["dev_features_alone"]["accuracy"]
    assert judge.cross is not None
    assert (judge.weight, judge.offset) == (info["weight"], info["threshold"])


def test_cross_encoder_scores_each_pair_alone(judge):
    """A pair's score must not depend on what else is scored with it: int8 activations are
    quantised per run, and batched dev scores once chose a stacking the judge never ran."""
    pairs = [
        ("The method needs no labels.", "We train without any labelled data. Results improve by 4 points."),
        ("The model is slower.", "It is faster."),
    ]
    together = judge.cross.logits(pairs)
    assert together[0] == judge.cross.logits(pairs[:1])[0]
    assert together[1] == judge.cross.logits(pairs[1:])[0]


def test_cross_encoder_uses_the_cpus_it_may_run_on(judge):
    """One thread per CPU in the process's affinity, not per physical core: on a machine
    shared out core by core, more threads than cores doubled the judge's latency."""
    import os

    assert judge.cross.session.get_session_options().intra_op_num_threads == len(os.sched_getaffinity(0))


def test_stacking_verdicts_are_what_the_judge_scores(judge):
    """The dev verdicts the stacking was chosen on are the judge's as it runs, pair by pair (every
    fifth pair: all 947 took two minutes). The build scores on one thread and the judge on all,
    which may move a logit sitting on the threshold, hence one pair of slack."""
    from evals.judge_train import DEV, read_pairs

    stored = judge.cross.info["dev_supported"]
    dev = read_pairs(DEV)
    assert len(stored) == len(dev)
    right = [bool(p["label"]) == (v == "1") for p, v in zip(dev, stored, strict=True)]
    assert sum(right) / len(right) == pytest.approx(judge.cross.info["dev_stacked"]["accuracy"], abs=0.0005)
    differ = [
        p["id"] for p, v in list(zip(dev, stored, strict=True))[::5]
        if judge.supports(p["claim"], [p["source"]]).supported != (v == "1")
    ]  # fmt: skip
    assert len(differ) <= 1, differ


def test_cross_encoder_file_that_cannot_be_read_names_itself(tmp_path, shared_embedder):
    from rag.errors import RagError
    from rag.judge import TrainedJudge

    bad = tmp_path / "judge_cross.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(RagError, match="judge_cross.onnx.*judge_cross_train"):
        TrainedJudge(shared_embedder, cross_path=bad)


# --- the LLM judge's reply -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("yes", True), ("Yes.", True), ("  **YES** - the source says so", True), ("no", False), ("No.", False),
     ('"no"', False), ("NO, the number differs", False)],
)  # fmt: skip
def test_parse_verdict_yes_or_no(reply, verdict):
    assert parse_verdict(reply) is verdict


@pytest.mark.parametrize(
    "reply", ["", "   ", "maybe", "The claim is partly supported.", "nope", "yesterday", "?"]
)
def test_parse_verdict_other_replies_are_errors(reply):
    from rag.llm import LLMError

    with pytest.raises(LLMError, match="neither yes nor no") as err:
        parse_verdict(reply)
    assert err.value.kind == "malformed"


def test_llm_judge_raises_on_an_unclear_reply():
    from rag.judge import LLMJudge
    from rag.llm import LLMError

    class Stub:
        def __init__(self, reply: str) -> None:
            self.reply = reply

        def complete(self, messages):  # noqa: ANN001, ANN201
            return self.reply

    assert LLMJudge(Stub("Yes")).supports("c", ["s"]) == Verdict(True, 1.0)  # type: ignore[arg-type]
    assert LLMJudge(Stub("no")).supports("c", ["s"]) == Verdict(False, 0.0)  # type: ignore[arg-type]
    with pytest.raises(LLMError):
        LLMJudge(Stub("I cannot tell")).supports("c", ["s"])  # type: ignore[arg-type]


def test_model_loads_offline_from_a_fresh_setup(tmp_path):
    """A new process with an empty Hugging Face cache and the hub switched off judges a pair."""
    code = (
        "from index.embedding import Embedder\n"
        "from rag.config import Settings\n"
        "from rag.judge import get_judge\n"
        "j = get_judge('trained', Embedder(Settings().embed_model))\n"
        "src = 'We train a model on 5 datasets. It reaches 91% accuracy on CIFAR-10.'\n"
        "print(j.supports('It reaches 91% accuracy on CIFAR-10.', [src]).supported,"
        " j.supports('It reaches 19% accuracy on CIFAR-10.', [src]).supported)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "HF_", "TRANSFORMERS_"))}
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), RAG_DATA_DIR=str(tmp_path)
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "False"]
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").iterdir())


# --- `rag judge FILE.jsonl` ------------------------------------------------------------------
def test_judge_lines_report_malformed_lines(judge):
    src = "We train a model on 5 datasets. It reaches 91% accuracy on CIFAR-10."
    lines = [
        json.dumps(
            {"id": "a", "claim": "It reaches 91% accuracy on CIFAR-10.", "source": src, "label": True}
        ),
        "{not json",
        "",
        json.dumps({"id": "b", "claim": "x"}),
        json.dumps({"id": "c", "claim": "It reaches 91% accuracy.", "source": src, "label": "yes"}),
        json.dumps(
            {"claim": "It reaches 19% accuracy on CIFAR-10.", "source": src, "label": False, "kind": "number"}
        ),
    ]
    results = list(judge_lines(judge, lines))
    assert [r.get("id") or r["line"] for r in results] == ["a", 2, 4, 5, "line-6"]
    assert "source" in results[2]["error"] and "label" in results[3]["error"]
    summary = summarise(results, "trained")
    assert summary is not None
    assert summary["overall"]["n"] == 2 and summary["overall"]["accuracy"] == 1.0
    assert summary["by_kind"]["number"] == {"n": 1, "accuracy": 1.0, "precision": None, "recall": None}
    assert summary["errors"] == 3


def test_rag_judge_command(tmp_path, monkeypatch, shared_embedder, abstract):
    import index.embedding
    from rag.cli import app

    monkeypatch.setattr(index.embedding, "Embedder", lambda name: shared_embedder)
    src = abstract("Galactic")
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "id": "ok",
                "claim": GALACTIC_PARAPHRASES[0],
                "source": src,
                "label": True,
                "kind": "paraphrase",
            },
            {
                "id": "bad",
                "claim": "Galactic is 54x slower than Habitat 2.0.",
                "source": src,
                "label": False,
                "kind": "negation",
            },
        ],
    )
    with path.open("a", encoding="utf-8") as f:
        f.write('{"id": "broken", "claim": \n')
        f.write(json.dumps({"id": "late", "claim": "Galactic is fast.", "source": src}) + "\n")

    res = CliRunner().invoke(app, ["judge", str(path), "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    assert [x.get("id") for x in lines[:3]] == ["ok", "bad", "late"]
    assert lines[0]["supported"] is True and lines[1]["supported"] is False
    assert lines[-1]["summary"] is True and lines[-1]["overall"]["accuracy"] == 1.0
    assert set(lines[-1]["by_kind"]) == {"paraphrase", "negation"}
    assert "line 3" in res.stderr

    res = CliRunner().invoke(app, ["judge", str(path)])
    assert res.exit_code == 0
    assert "ok\tTrue" in res.stdout and "accuracy" in res.stdout and "negation" in res.stdout
    assert "line 3" in res.stderr

    res = CliRunner().invoke(app, ["judge", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 1 and "cannot read" in res.stderr
