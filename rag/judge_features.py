"""Features for the trained support judge: one vector per (claim, sources) pair.

Each feature targets one way a cited sentence goes wrong while still sharing most of
its words with the source:

* similarity  MiniLM cosine between the claim and its best one and two source sentences;
* coverage    share of the claim's content words (stemmed) found in the source, in its
              best-matching sentences, and of its content bigrams (word order);
* numbers     numbers of the claim missing from the source, numbers that occur in
              the source but next to other words ("72% on X" when the source has it on Y)
              or in a sentence sharing none of their claim neighbours, and numbers the claim
              puts together that no source sentence has together;
* names       names, acronyms and model/dataset identifiers of the claim missing from
              the source (a swapped dataset or method name);
* negation    negation cues that differ between the claim and its best source sentences
              ("search-free" and "get rid of" count as the source's), words of the claim
              whose antonym the source (or its best sentence) uses instead ("slower" for
              "faster", "increases" for "reduces"), and names on the winning side of a
              comparison that the source puts on the losing side ("B beats A");
* limitation  words that turn a finding into a limitation ("still requires", "trails", "at the
              cost of") and contrasts ("only X rather than Y", "like" for "unlike") the source lacks;
* overclaim   quantifiers, absolutes and superlatives of the claim the source does not
              have ("all", "every", "always", "no loss", "best"; "every task" is fine
              when the source says "each task"), and hedges of the source the claim
              dropped ("most", "up to", "comparable").

`FeatureExtractor.features` returns them in the order of `FEATURES`; the classifier in
`rag/judge_model.json` was fitted on exactly this order by `evals/judge_train.py`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
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
    "num_rebound",
    "name_missing",
    "name_missing_share",
    "capword_missing",
    "neg_added",
    "neg_removed",
    "antonym",
    "quant_added",
    "quant_scope",
    "superlative_added",
    "hedge_dropped",
    "claim_words",
    "cov_below_0.4",
    "cov_below_0.6",
    "cov_below_0.8",
    "antonym_best",
    "compare_swapped",
    "num_sent_context_bad",
    "num_pair_split",
    "limit_added",
    "contrast_added",
]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-\.+/_]*[A-Za-z0-9%]|[A-Za-z0-9%]")
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100",
    "thousand": "1000", "twice": "2", "double": "2", "doubled": "2", "doubles": "2",
    "triple": "3", "tripled": "3", "pair": "2",
}  # fmt: skip
_MAGNITUDE = {"thousand": "k", "million": "m", "billion": "b", "trillion": "t"}

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
    "guarantees", "guaranteed", "guaranteeing", "perfect", "perfectly", "everything", "everywhere",
    "consistently", "invariably", "certainly", "eliminates", "eliminate", "eliminated", "eliminating",
    "zero", "sota", "surpass", "surpasses", "surpassed", "surpassing", "lossless", "regardless",
    "irrespective", "necessarily", "definitively",
}  # fmt: skip
#: Words of one class stand in for each other ("every" in the claim, "all" in the source).
CLASSES = {
    **dict.fromkeys(["all", "every", "entire", "entirely", "everything"], "ALL"),
    **dict.fromkeys(["always", "consistently", "invariably", "universally", "universal"], "ALWAYS"),
    **dict.fromkeys(["fully", "completely", "totally", "perfectly", "perfect", "lossless"], "FULLY"),
    **dict.fromkeys(["unlimited", "infinite", "arbitrary", "arbitrarily", "any"], "UNLIMITED"),
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
raises lower|raise lowers|help avoid|helps avoids|single separate|slower speed-up|slower speedup|
slow speed-up|reduced increased|reduces increases"""


def _stems(words: list[str]) -> list[str]:
    return [_stem(w) for w in words]


def _antonym_table() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pair in _ANTONYM_PAIRS.replace("\n", "").split("|"):
        a, b = (_stem(w) for w in pair.split())
        if a != b:
            out.setdefault(a, set()).add(b)
            out.setdefault(b, set()).add(a)
    return out


ANTONYMS = _antonym_table()
_NEG_STEMS = set(_stems(sorted(NEGATION)))
_CLASS_STEMS = {_stem(w): c for w, c in CLASSES.items()}


_SOTA = re.compile(r"state[- ]of[- ]the[- ]art|\bsota\b|\bnew records?\b", re.IGNORECASE)
#: What "all" and "every" overclaim over: evaluation settings.
_SCOPE = set(
    _stems(
        """task tasks benchmark benchmarks dataset datasets setting settings language languages domain
        domains model models metric metrics case cases scenario scenarios condition conditions size sizes
        paper papers study studies work works architecture architectures
        scale scales kind kinds type types experiment experiments baseline baselines method methods
        application applications modality modalities""".split()  # noqa: SIM905
    )
)


#: Verbs that link a number to what it measures and say nothing of what that is ("spanning 32
#: cancer types", "reaches 72.2 AP"): a number next to one of them is not tied to another thing.
_LINKERS = set(
    _stems(
        "span spanning across cover covering reach reaching achieve achieving yield obtain attain get score".split()  # noqa: SIM905
    )
)
#: Words that turn a finding into a limitation ("still requires", "trails", "falls short"): a
#: reversal that needs no antonym of a source word and no "not". Words a faithful rewording uses
#: as often ("less", "cost", "gives", "little") are left out: antonyms and numbers judge those.
LIMITATION = set(
    _stems(
        """still remain remains require requires required requiring cannot tied trail trails trailing
        behind short weak weaker poor poorly limit limited limits limitation suffer suffers suffering
        fail fails failure break breaks struggle struggles lack lacks worse worsen harm harms hurt hurts
        degrade degrades degraded drawback drawbacks unable expensive sacrifice sacrifices
        sacrificing penalty lag lags lagging must inferior burden downside unimportant irrelevant
        insufficient""".split()  # noqa: SIM905
    )
)
#: A price the claim says a gain comes at ("at the cost of", "in exchange for").
_TRADE_OFF = re.compile(
    r"\bat the (?:cost|price|expense) of\b|\bin exchange for\b|\btrade[- ]?offs?\b", re.IGNORECASE
)
#: Contrasts and restrictions a claim adds to turn a finding round ("only X rather than Y",
#: "like prior work" for "unlike prior work").
_CONTRAST = re.compile(
    r"\b(rather than|instead of|as opposed to|unlike|like|whereas|while|but|although|despite|however|"
    r"only|same|also|too|both)\b",
    re.IGNORECASE,
)

#: A claim that a method does as earlier work does, which abstracts mostly say to set it apart.
_LIKE_PRIOR = re.compile(
    r"\b(like|as in|as with|similar to|same as|as)\s+(most\s+|many\s+)?(the\s+)?"
    r"(prior|previous|earlier|existing|conventional|traditional|standard)\b",
    re.IGNORECASE,
)

#: "fully supervised", "completely unsupervised": technical adjectives, not absolutes.
_NOT_CUE_BEFORE = set(
    _stems(
        "supervised unsupervised connected convolutional differentiable fine finetuned trained automated".split()  # noqa: SIM905
    )
)


def _cue_classes(a: Analysed, source: bool = False) -> set[str]:
    """Overclaim cues as classes ("every" in the claim matches "all" in the source; "each" in the
    source stands for "every", but a claim saying "each" claims nothing more). A cue right after a
    negation claims nothing ("without any labels", "not all tasks")."""
    fs = a.flat_stems
    out = {
        CLASSES.get(w, w)
        for i, w in enumerate(a.flat)
        if (w in OVERCLAIM or w in CLASSES)
        and not (i + 1 < len(fs) and fs[i + 1] in _NOT_CUE_BEFORE)
        and not _NEG_STEMS & set(fs[max(0, i - 2) : i])
    }
    if source and "each" in fs:
        out.add("EACH")
    if _SOTA.search(a.text):
        out.add("SOTA")
    return out


def _scoped_all(a: Analysed, source: bool = False) -> set[str]:
    """Evaluation nouns a universal quantifier ranges over: "on all tasks" -> {"task"}."""
    out: set[str] = set()
    fs = a.flat_stems
    for i, w in enumerate(fs):
        if _CLASS_STEMS.get(w) == "ALL" or (source and w == "each"):
            out.update(x for x in fs[i + 1 : i + 5] if x in _SCOPE)
    return out


def _after(a: Analysed, cls: str) -> set[str]:
    """Content stems right after a quantifier of class `cls` ("ALL", or "EACH" for "each")."""
    fs = a.flat_stems
    return {
        x
        for i, w in enumerate(fs)
        if (w == "each" if cls == "EACH" else _CLASS_STEMS.get(w) == cls)
        for x in fs[i + 1 : i + 4]
        if x not in _STOP_STEMS
    }


def _cues_added(pattern: re.Pattern[str], claim: str, source: str) -> int:
    """How many different matches of `pattern` the claim has and the source does not."""
    return len({m.lower() for m in pattern.findall(claim)} - {m.lower() for m in pattern.findall(source)})


def _negations(ws: list[str]) -> int:
    n = 0
    for i, w in enumerate(ws):
        if w in NEGATION and not (w == "not" and i + 1 < len(ws) and ws[i + 1] in {"only", "just", "merely"}):
            n += 1
    return n


_HEDGE_STEMS = set(_stems(sorted(HEDGES)))
#: Negations a source says without a negation word: "search-free", "get rid of", "eliminates".
_IMPLICIT_NEG = re.compile(
    r"\w-free\b|\brid of\b|\beliminat\w+|\bavoid\w*|\bremov\w+|\bfree of\b", re.IGNORECASE
)
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


#: Words that state which side of a comparison wins ("A is faster than B", "A outperforms B").
_WINNER_SAYS = r"than|outperform\w*|surpass\w*|beat\w*|exceed\w*|ahead of|trail\w*|short of|lags?"
#: Where names sit on the two sides: any comparison, "versus", "over" and "compared with" included.
_COMPARATOR = re.compile(
    rf"\b({_WINNER_SAYS}|behind|versus|vs\.?|compared (?:to|with)|over)\b", re.IGNORECASE
)
#: Where clauses are the two sides: only a stated winner ("over 11 datasets" and "compared
#: with" frame a comparison without saying which side wins).
_COMPARATIVE = re.compile(rf"\b({_WINNER_SAYS})\b", re.IGNORECASE)
_INVERSE = re.compile(
    r"\b(trail\w*|worse|lower|less|fewer|slower|underperform\w*|behind|short of|lags?|"
    r"(?:outperform|surpass|beat|exceed)\w* by)\b",
    re.IGNORECASE,
)
_OPENERS = {"the", "a", "an", "this", "these", "our", "we", "in", "on", "with", "for", "its", "their", "it"}


def _names_anywhere(text: str) -> set[str]:
    """Names of a text, the sentence's first word included when it is capitalised."""
    out = set(names_of(text))
    first = re.match(r"\s*([A-Z][A-Za-z0-9\-]+)", text)
    if first and first.group(1).lower() not in _OPENERS:
        out.add(first.group(1).lower())
    return out


def _comparison_sides(sentence: str, by_words: bool = False) -> tuple[set[str], set[str]] | None:
    """Names on the winning and the losing side of the first comparison of a sentence
    ("A beats B", "B trails A", "B is outperformed by A"), or None without a comparison.
    With `by_words`, the content stems of the two sides' clauses instead of names."""
    m = (_COMPARATIVE if by_words else _COMPARATOR).search(sentence)
    if not m:
        return None
    before, after = sentence[: m.start()], sentence[m.end() :]
    if by_words:
        before, after = re.split(r"[,;:]", before)[-1], re.split(r"[,;:.]", after)[0]
        left, right = (set(content(_stems(words(t)))) for t in (before, after))
    else:
        left, right = _names_anywhere(before), _names_anywhere(after)
    window = sentence[max(0, m.start() - 40) : m.end() + 4]
    inverted = bool(_INVERSE.search(window))
    return (right, left) if inverted else (left, right)


def compare_swapped(claim: str, source_sents: list[str]) -> int:
    """1 when the claim puts on the winning side of a comparison a name the source puts on the
    losing side, or the other way round ("Gorilla beats Tryage" for "Tryage surpasses Gorilla"),
    or when words of the two sides cross over both ways ("hard examples induce stronger
    compositionality than simple ones" for "simple examples invoke stronger ... than hard ones")."""
    c, cwords = _comparison_sides(claim), _comparison_sides(claim, by_words=True)
    if c is None or cwords is None:
        return 0
    cw, cl = c
    cww, cwl = cwords[0] - cwords[1], cwords[1] - cwords[0]
    for sent in source_sents:
        s, swords = _comparison_sides(sent), _comparison_sides(sent, by_words=True)
        if s is None or swords is None:
            continue
        sw, sl = s
        if (cw & sl and not cw & sw) or (cl & sw and not cl & sl):
            return 1
        if cww & (swords[1] - swords[0]) and cwl & (swords[0] - swords[1]):
            return 1
    return 0


class Analysed:
    """A text broken down once: words, stems, content stems, numbers, names."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = words(text)
        self.stems = _stems(self.words)
        self.content = content(self.stems)
        self.contentset = set(self.content)
        self.numbers = numbers_of(self.words)
        flat = [p for w in self.words for p in re.split(r"[-/]", w) if p]
        # "8k context-length" has the claim's "8k-context", "three billion" its "3B"
        scaled = {
            _NUMBER_WORDS.get(a, a) + _MAGNITUDE[b]
            for a, b in zip(flat, flat[1:], strict=False)
            if b in _MAGNITUDE
        }
        self.wordset = set(self.words) | set(flat) | scaled
        self.stemset = set(self.stems)
        self.alnums = {re.sub(r"[^a-z0-9]", "", w) for w in self.words} | scaled
        self.flat = flat
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


def _antonyms(claim: Analysed, absent_from: Analysed, opposite_in: Analysed) -> int:
    """Claim words that `absent_from` lacks while `opposite_in` has one of their antonyms."""
    return sum(
        1
        for w in set(claim.stems) | set(claim.content)
        if not (w in absent_from.stemset or w in absent_from.contentset)
        and ANTONYMS.get(w, set()) & opposite_in.stemset
    )


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
            mine = {
                w for w in _window(c, pos, 2) if len(w) >= 3 and freq.get(w, 0) <= 2 and w not in _LINKERS
            }
            if any(tight_other.get(w, set()) - {n} and w not in loose for w in mine):
                num_rebound += 1
        names = list(dict.fromkeys(names_of(claim)))
        missing = [n for n in names if not _name_found(n, s, src_lower)]
        ids = ids_of(claim)
        name_missing = len(missing)
        name_missing_share = len(missing) / len(names) if names else 0.0
        capword_missing = sum(1 for n in missing if n not in ids)

        neg_c = _negations(c.words)
        neg_b = _negations(best.words) + len(_IMPLICIT_NEG.findall(best.text))
        neg_s = _negations(s.words) + len(_IMPLICIT_NEG.findall(src_text))
        neg_added = max(0, neg_c - neg_b) if neg_c > neg_s else min(max(0, neg_c - neg_b), 1) * 0.5
        top1 = self.analyse(sents[order[0]])
        # a negation of the claim's own sentence dropped ("not immune" -> "immune")
        neg_removed = max(0, _negations(top1.words) - neg_c - len(_IMPLICIT_NEG.findall(claim)))

        antonym = _antonyms(c, absent_from=s, opposite_in=best)
        antonym_best = _antonyms(c, absent_from=top1, opposite_in=top1)
        swapped = compare_swapped(claim, sents)
        num_sent_bad = 0
        for pos, n in c.numbers:
            mine = _window(c, pos, 4)
            holders = [self.analyse(x) for x in sents if n in {m for _, m in self.analyse(x).numbers}]
            if len(mine) >= 2 and holders and not any(mine & h.contentset for h in holders):
                num_sent_bad += 1
        num_pair_split = 0
        present = {n for _, n in c.numbers if n in src_nums}
        if len(present) >= 2:
            sent_nums = [{m for _, m in self.analyse(x).numbers} for x in sents]
            num_pair_split = int(not any(present <= ns for ns in sent_nums))
        src_cues = _cue_classes(s, source=True)
        claim_cues = _cue_classes(c)
        if "ALL" in claim_cues and "EACH" in src_cues and _after(c, "ALL") & _after(s, "EACH"):
            claim_cues.discard("ALL")  # "every new task" for "each new task"
        quant_added = len(claim_cues - src_cues)
        quant_scope = len(_scoped_all(c) - _scoped_all(s, source=True)) if "ALL" in claim_cues else 0

        def superlatives(ws: list[str]) -> set[str]:
            return {
                w
                for i, w in enumerate(ws)
                if ((w.endswith("est") and len(w) > 5) or w in SUPERLATIVE_EXTRA)
                and not (w == "top" and ws[i + 1 : i + 2] == ["of"])
            }

        # on hyphen parts: "largest-scale" has a superlative
        superl = superlatives(c.flat)
        src_flat = set(s.flat)
        best_ranks = superlatives(best.flat) or {"superior", "optimal"} & best.wordset
        superlative_added = sum(1 for w in superl if w not in src_flat) if not best_ranks else 0
        hedge_dropped = sum(1 for w in set(best.stems) if w in _HEDGE_STEMS and w not in c.stemset)
        limit_added = sum(1 for w in set(c.stems) if w in LIMITATION and w not in s.stemset) + _cues_added(
            _TRADE_OFF, claim, src_text
        )
        contrast_added = _cues_added(_CONTRAST, claim, src_text) + int(
            bool(_LIKE_PRIOR.search(claim)) and not _LIKE_PRIOR.search(src_text)
        )

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
                min(num_rebound, 2),
                min(name_missing, 3),
                name_missing_share,
                min(capword_missing, 3),
                min(neg_added, 2),
                min(neg_removed, 2),
                min(antonym, 3),
                min(quant_added, 3),
                min(quant_scope, 2),
                min(superlative_added, 2),
                min(hedge_dropped, 3),
                np.log1p(len(ccontent)),
                max(0.0, 0.4 - cov_source),
                max(0.0, 0.6 - cov_source),
                max(0.0, 0.8 - cov_source),
                min(antonym_best, 2),
                swapped,
                min(num_sent_bad, 2),
                num_pair_split,
                min(limit_added, 3),
                min(contrast_added, 3),
            ],
            dtype=np.float64,
        )
