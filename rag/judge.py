"""Support judges: does the cited source text support this sentence?

One interface, `supports(sentence, sources) -> Verdict`, used at answer time to mark
unsupported sentences and by the eval harness for citation precision and recall.
`get_judge(name, embedder, llm)` makes one: "trained" (the default), "lexical", "llm".

`trained` (the offline default) computes the features of `rag.judge_features` (MiniLM
similarity to the best source sentences, content-word coverage, numbers missing or next
to other words, names missing, negations and antonyms that differ, quantifiers and
superlatives the source lacks, names exchanged across a comparison) and combines them with
the sign-constrained logistic regression stored in `rag/judge_model.json` (fitted by
`python -m evals.judge_train` on synthetic and hand-written pairs from the train half of the
corpus; its threshold chosen by cross-validation on the hand-written pairs of
`evals/datasets/judge_hand_pairs.jsonl`). To that logit it adds a weighted logit of a small
cross-encoder that reads the claim with its three closest source sentences (`rag.judge_cross`,
fitted by `python -m evals.judge_cross_train`, which also chooses the weight and the threshold):
words and embeddings alone miss roles exchanged inside one abstract and findings reversed in
plain words. Its score is the probability that the source supports the sentence, 0.5 at the
decision threshold. Source sentences and their embeddings are cached, so judging many
sentences against the same sources costs one claim embedding and one cross-encoder pass each.

`lexical` (the word-overlap baseline) combines two signals, both computed on the source
sentence that best matches the claim and on the sources as a whole:
* coverage: share of the sentence's content words (stemmed, stop words removed)
  found in the cited text; every number in the sentence must appear there too;
* similarity: MiniLM cosine between the sentence and its best-matching source sentence.
score = 0.5 * coverage + 0.5 * similarity, and a sentence is supported when all its
numbers occur in the sources and score >= THRESHOLD. The threshold and weights are
measured on `evals/datasets/judge_pairs.jsonl` (see the eval report).

`llm` asks the configured OpenAI-compatible endpoint with `prompts/judge.md`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from index.lexical import tokenize
from rag import judge_cross
from rag.judge_cross import CROSS_PATH
from rag.prompts import render
from rag.retrieve import sentences

if TYPE_CHECKING:
    from index.embedding import Embedder
    from rag.llm import LLM

THRESHOLD = 0.62
MODEL_PATH = Path(__file__).with_name("judge_model.json")
JUDGES = ("trained", "lexical", "llm")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class Verdict:
    supported: bool
    score: float


class Judge(Protocol):
    name: str

    def supports(self, sentence: str, sources: list[str]) -> Verdict: ...


def numbers(text: str) -> set[str]:
    """Numbers normalised (thousands separators dropped, trailing .0 removed) for comparison."""
    out = set()
    for raw in _NUMBER.findall(text):
        n = raw.replace(",", "")
        out.add(n[:-2] if n.endswith(".0") else n)
    return out


class LexicalJudge:
    name = "lexical"

    def __init__(self, embedder: Embedder, threshold: float = THRESHOLD) -> None:
        self.embedder = embedder
        self.threshold = threshold

    def supports(self, sentence: str, sources: list[str]) -> Verdict:
        if not sources:
            return Verdict(False, 0.0)
        text = "\n".join(sources)
        words = set(tokenize([sentence])[0])
        coverage = len(words & set(tokenize([text])[0])) / len(words) if words else 1.0
        numbers_ok = numbers(sentence) <= numbers(text)
        candidates = [s for src in sources for s in sentences(src)] or sources
        vecs = self.embedder.encode([sentence, *candidates])
        similarity = float(np.max(vecs[1:] @ vecs[0]))
        score = 0.5 * coverage + 0.5 * max(similarity, 0.0)
        if not numbers_ok:
            score *= 0.5
        return Verdict(numbers_ok and score >= self.threshold, round(score, 4))


class LLMJudge:
    name = "llm"

    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    def supports(self, sentence: str, sources: list[str]) -> Verdict:
        prompt = render("judge", claim=sentence, sources="\n\n".join(sources))
        yes = parse_verdict(self.llm.complete([{"role": "user", "content": prompt}]))
        return Verdict(yes, 1.0 if yes else 0.0)


def parse_verdict(reply: str) -> bool:
    """The LLM judge's reply as a verdict: its first word must be "yes" or "no" (case, markup and
    punctuation aside). Anything else (an empty reply, "maybe", an essay) is an LLMError of kind
    "malformed", not a "no": callers count it as an error instead of an unsupported claim."""
    from rag.llm import LLMError

    first = re.match(r"\W*([A-Za-z]+)", reply or "")
    word = first.group(1).lower() if first else ""
    if word in ("yes", "no"):
        return word == "yes"
    shown = " ".join(reply.split())[:80] if reply else ""
    raise LLMError(f"the LLM judge answered neither yes nor no: {shown!r}", kind="malformed")


class TrainedJudge:
    """Features of the claim against its sources, combined by a fitted logistic regression, plus
    a weighted cross-encoder logit (`rag.judge_cross`) when its model file is given."""

    name = "trained"

    def __init__(
        self,
        embedder: Embedder,
        model_path: Path = MODEL_PATH,
        threshold: float | None = None,
        cross_path: Path | None = CROSS_PATH,
    ) -> None:
        from rag.errors import RagError
        from rag.judge_features import FEATURES, FeatureExtractor

        try:
            model = json.loads(Path(model_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RagError(
                f"cannot load the judge model {model_path}: {e}; rebuild it with `python -m evals.judge_train`"
            ) from e
        if model.get("features") != FEATURES:
            raise RagError(
                f"{model_path} was fitted on other features; rebuild it with `python -m evals.judge_train`"
            )
        self.mean = np.array(model["mean"], dtype=np.float64)
        self.scale = np.array(model["scale"], dtype=np.float64)
        self.coef = np.array(model["coef"], dtype=np.float64)
        self.intercept = float(model["intercept"]) - _logit(float(model["threshold"]))
        self.extractor = FeatureExtractor(embedder)
        self.cross = None
        self.weight = self.offset = 0.0
        if cross_path is not None:
            self.cross = judge_cross.Scorer(cross_path)
            self.weight, self.offset = float(self.cross.info["weight"]), float(self.cross.info["threshold"])
        self.threshold = 0.5 if threshold is None else threshold

    def feature_logit(self, sentence: str, sources: list[str]) -> float:
        """The logistic regression's logit, 0 at its own threshold."""
        x = self.extractor.features(sentence, sources)
        return float(((x - self.mean) / self.scale) @ self.coef + self.intercept)

    def probability(self, sentence: str, sources: list[str]) -> float:
        """Support probability, 0.5 at the stacked decision threshold."""
        z = self.feature_logit(sentence, sources)
        if self.cross is not None:
            pair = (sentence, judge_cross.evidence(self.extractor, sentence, sources))
            z += self.weight * float(self.cross.logits([pair])[0]) - self.offset
        return 1.0 / (1.0 + float(np.exp(-z)))

    def supports(self, sentence: str, sources: list[str]) -> Verdict:
        sources = [s for s in sources if s and s.strip()]
        if not sources or not sentence.strip():
            return Verdict(False, 0.0)
        p = self.probability(sentence, sources)
        return Verdict(p >= self.threshold, round(p, 4))


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def get_judge(name: str, embedder: Embedder, llm: LLM | None = None) -> Judge:
    """The judge called `name`: "trained" (default), "lexical" or "llm" (needs a configured LLM)."""
    from rag.errors import RagError

    if name == "trained":
        return TrainedJudge(embedder)
    if name == "lexical":
        return LexicalJudge(embedder)
    if name == "llm":
        if llm is None:
            raise RagError("the llm judge needs a configured LLM endpoint (RAG_LLM_BASE_URL)")
        return LLMJudge(llm)
    raise RagError(f"unknown judge {name!r}: use one of {', '.join(JUDGES)}")


# --- `rag judge FILE.jsonl`: labelled or unlabelled (claim, source) pairs -------------------
def judge_lines(judge: Judge, lines: Iterator[str] | list[str]) -> Iterator[dict[str, Any]]:
    """One result per non-blank line: {id, supported, score} (+ label, kind), or {line, error}."""
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            claim, source = rec.get("claim"), rec.get("source")
            if not isinstance(claim, str) or not claim.strip():
                raise ValueError("no 'claim' string")
            sources = [source] if isinstance(source, str) else source
            if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
                raise ValueError("no 'source' string")
            label = rec.get("label")
            if label is not None and not isinstance(label, bool):
                raise ValueError("'label' must be true or false")
        except ValueError as e:
            yield {"line": n, "error": str(e)}
            continue
        v = judge.supports(claim, sources)
        out: dict[str, Any] = {"id": rec.get("id", f"line-{n}"), "supported": v.supported, "score": v.score}
        if label is not None:
            out["label"] = label
        if rec.get("kind") is not None:
            out["kind"] = str(rec["kind"])
        yield out


def _scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(r["supported"] and r["label"] for r in rows)
    fp = sum(r["supported"] and not r["label"] for r in rows)
    fn = sum(r["label"] and not r["supported"] for r in rows)
    return {
        "n": len(rows),
        "accuracy": round(sum(r["supported"] == r["label"] for r in rows) / len(rows), 4) if rows else None,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
    }


def summarise(results: list[dict[str, Any]], judge_name: str) -> dict[str, Any] | None:
    """Accuracy, precision and recall of "supported", overall and per kind (None without labels)."""
    rows = [r for r in results if "label" in r]
    if not rows:
        return None
    kinds = list(dict.fromkeys(r.get("kind", "-") for r in rows))
    return {
        "summary": True,
        "judge": judge_name,
        "overall": _scores(rows),
        "by_kind": {k: _scores([r for r in rows if r.get("kind", "-") == k]) for k in kinds},
        "errors": sum(1 for r in results if "error" in r),
    }


def judge_file(
    path: Path, judge_name: str = "trained", on_result: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any] | None:
    """`rag judge FILE`: every line judged (malformed ones reported and skipped); the summary if labelled."""
    from index.embedding import Embedder
    from rag.config import Settings
    from rag.errors import RagError

    if judge_name not in JUDGES:
        raise RagError(f"unknown judge {judge_name!r}: use one of {', '.join(JUDGES)}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RagError(f"cannot read {path}: {e}") from e
    settings = Settings()
    llm = None
    if judge_name == "llm":
        from rag.llm import LLM

        llm = LLM(settings)
        if not llm.configured:
            raise RagError("--judge llm needs an OpenAI-compatible endpoint: set RAG_LLM_BASE_URL")
    embedder = Embedder(settings.embed_model) if judge_name != "llm" else None
    judge = get_judge(judge_name, embedder, llm)  # type: ignore[arg-type]
    results = []
    for r in judge_lines(judge, lines):
        results.append(r)
        if on_result:
            on_result(r)
    return summarise(results, judge.name)


def summary_table(summary: dict[str, Any]) -> Any:
    """The summary as a rich table: overall, then one row per kind."""
    from rich.table import Table

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    table = Table(title=f"{summary['judge']} judge: 'supported' as the positive class")
    for col in ("kind", "n", "accuracy", "precision", "recall"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    rows = [("overall", summary["overall"]), *summary["by_kind"].items()]
    for name, m in rows:
        table.add_row(name, str(m["n"]), fmt(m["accuracy"]), fmt(m["precision"]), fmt(m["recall"]))
    return table
