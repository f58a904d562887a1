"""Citation markers in generated text: parse, validate against the sources, renumber.

Accepted forms: [1], [1, 3], [1-3] (also with an en dash), [1][2]. A number that is
not among the sources is removed from the text and counted; it is never shown as
a citation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.retrieve import sentences as split_sentences

#: One bracket group of numbers: [1], [1, 3], [1-3], [1–3; 5].
MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*(?:[,;]|[-–])\s*\d{1,3})*)\s*\]")
_LEADING_MARKERS = re.compile(rf"^((?:\s*{MARKER.pattern})+)\s*")
#: Largest range we expand: "[1-999]" is garbage, not 999 citations.
MAX_RANGE = 20


def numbers_in(group: str) -> list[int]:
    """'1, 3-5' -> [1, 3, 4, 5]"""
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group.strip()):
        if not part:
            continue
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2:
            lo, hi = int(bounds[0]), int(bounds[1])
            if lo <= hi and hi - lo < MAX_RANGE:
                out.extend(range(lo, hi + 1))
            else:
                out.extend([lo, hi])
        else:
            out.append(int(bounds[0]))
    return list(dict.fromkeys(out))


@dataclass
class ParsedSentence:
    text: str  # without markers
    citations: list[int] = field(default_factory=list)


def parse(answer: str) -> list[ParsedSentence]:
    """Sentences with their citation numbers; markers that open a sentence belong to the one before."""
    parsed: list[ParsedSentence] = []
    for raw in split_sentences(answer):
        lead = _LEADING_MARKERS.match(raw)
        if lead and parsed:
            parsed[-1].citations.extend(n for g in MARKER.findall(lead.group(1)) for n in numbers_in(g))
            raw = raw[lead.end() :]
        cites = [n for g in MARKER.findall(raw) for n in numbers_in(g)]
        text = " ".join(MARKER.sub("", raw).split())
        text = re.sub(r"\s+([.,;:!?])", r"\1", text)
        if text:
            parsed.append(ParsedSentence(text, list(dict.fromkeys(cites))))
        elif cites and parsed:
            parsed[-1].citations.extend(cites)
    for p in parsed:
        p.citations = list(dict.fromkeys(p.citations))
    return parsed


def renumber(parsed: list[ParsedSentence], valid: set[int]) -> tuple[dict[int, int], int]:
    """Map valid source numbers to 1..m in order of first citation; count invalid citations.

    Invalid numbers are dropped from the sentences in place.
    """
    mapping: dict[int, int] = {}
    invalid = 0
    for p in parsed:
        kept = []
        for n in p.citations:
            if n not in valid:
                invalid += 1
                continue
            mapping.setdefault(n, len(mapping) + 1)
            kept.append(mapping[n])
        p.citations = list(dict.fromkeys(kept))
    return mapping, invalid


def with_markers(text: str, citations: list[int]) -> str:
    """'A result.' + [1, 2] -> 'A result [1][2].'"""
    if not citations:
        return text
    marks = "".join(f"[{n}]" for n in citations)
    stripped = text.rstrip()
    if stripped and stripped[-1] in ".!?":
        return f"{stripped[:-1]} {marks}{stripped[-1]}"
    return f"{stripped} {marks}"
