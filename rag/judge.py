"""Support judges: does the cited source text support this sentence?

One interface, `supports(sentence, sources) -> Verdict`, used at answer time to mark
unsupported sentences and by the eval harness for citation precision and recall.

`lexical` (the offline default) combines two signals, both computed on the source
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

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.lexical import tokenize
from rag.prompts import render
from rag.retrieve import sentences

if TYPE_CHECKING:
    from index.embedding import Embedder
    from rag.llm import LLM

THRESHOLD = 0.62
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
        reply = self.llm.complete([{"role": "user", "content": prompt}]).strip().lower()
        yes = reply.startswith("yes")
        return Verdict(yes, 1.0 if yes else 0.0)
