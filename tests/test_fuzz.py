"""Hostile input: loaders and the citation parser give records or their own clear error, nothing else.

Each case is bounded in time (hypothesis deadline) and large files are streamed, not read whole.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.loaders import load_file
from rag.citations import MARKER, parse, renumber
from rag.errors import LoaderError

parse("Warm up the sentence splitter [1].")  # its first call loads punkt: not part of any case's time
FUZZ = settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
SUFFIXES = [".txt", ".jsonl", ".csv", ".json"]


def only_records_or_loader_error(path: Path) -> None:
    try:
        papers, problems = load_file(path)
    except LoaderError as err:
        assert str(path) in str(err)
        return
    assert all(p.title and p.abstract for p in papers)
    assert all(isinstance(m, str) for m in problems)


@FUZZ
@given(data=st.binary(max_size=4000), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(tmp_path_factory, data: bytes, suffix: str) -> None:
    f = tmp_path_factory.mktemp("fuzz") / f"x{suffix}"
    f.write_bytes(data)
    only_records_or_loader_error(f)


@FUZZ
@given(text=st.text(max_size=3000), encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_random_text_in_several_encodings(tmp_path_factory, text: str, encoding: str) -> None:
    f = tmp_path_factory.mktemp("fuzz") / "x.txt"
    f.write_bytes(text.encode(encoding, errors="replace"))
    only_records_or_loader_error(f)


RECORD = {
    "title": "A title",
    "abstract": "An abstract with enough words to be one. " * 4,
    "authors": ["A", "B"],
}


@FUZZ
@given(cut=st.integers(min_value=1, max_value=400), fmt=st.sampled_from(["jsonl", "csv", "page"]))
def test_truncated_files(tmp_path_factory, cut: int, fmt: str) -> None:
    if fmt == "jsonl":
        body = "".join(json.dumps(RECORD) + "\n" for _ in range(3))
    elif fmt == "csv":
        body = 'title,abstract\n"Quoted, ""title""","Line one\nline two, with comma"\n' * 3
    else:
        body = (
            "Get trending papers in your email inbox!\n\nSubscribe\n\n"
            + f"A title\n\n{RECORD['abstract']}\n\n" * 3
        )
    f = tmp_path_factory.mktemp("fuzz") / f"x.{fmt}"
    f.write_text(body[: max(1, len(body) - cut)], encoding="utf-8")
    only_records_or_loader_error(f)


@FUZZ
@given(rows=st.lists(st.tuples(st.text(max_size=60), st.text(max_size=300)), min_size=1, max_size=8))
def test_csv_with_arbitrary_fields(tmp_path_factory, rows) -> None:
    import csv

    f = tmp_path_factory.mktemp("fuzz") / "x.csv"
    with f.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["title", "abstract"])
        writer.writerows(rows)
    only_records_or_loader_error(f)


def test_deeply_nested_json(tmp_path) -> None:
    f = tmp_path / "nested.jsonl"
    f.write_text("[" * 100_000 + "]" * 100_000 + "\n" + json.dumps(RECORD) + "\n")
    only_records_or_loader_error(f)
    f.write_text(json.dumps(RECORD) + "\n" + '{"a":' * 50_000 + "1" + "}" * 50_000 + "\n")
    papers, problems = load_file(f)
    assert len(papers) == 1 and "nested.jsonl:2" in problems[0]


def test_nul_bytes_after_the_sniffed_head(tmp_path) -> None:
    f = tmp_path / "late-nul.csv"
    f.write_bytes(b"title,abstract\n" + b"T,An abstract of some length.\n" * 5000 + b"T,\x00\x00\n")
    only_records_or_loader_error(f)


@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
def test_a_100_mb_single_line_is_refused_without_reading_it_whole(tmp_path, suffix) -> None:
    f = tmp_path / f"huge{suffix}"
    with f.open("wb") as fh:
        fh.write(b'{"title": "x", "abstract": "' if suffix == ".jsonl" else b"A title\n")
        chunk = b"word " * 200_000  # 1 MB
        for _ in range(100):
            fh.write(chunk)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(LoaderError, match="longer than"):
        load_file(f)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50


@FUZZ
@given(text=st.text(alphabet=st.sampled_from("ab .[]-,;0123456789\n–"), max_size=400))
def test_citation_parser_never_fails(text: str) -> None:
    parsed = parse(text)
    _, invalid = renumber(parsed, valid={1, 2, 3})
    assert invalid >= 0
    for sentence in parsed:
        assert all(1 <= n <= 3 for n in sentence.citations)
        assert not MARKER.search(sentence.text)  # every marker was taken out of the text
