"""Loaders: every layout of the bundled page dumps with exact counts, the record formats, bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from index.loaders import load_file, load_paths
from index.papers import merge, normalise_title, paper_id
from rag.config import BUNDLED_CORPUS
from rag.errors import LoaderError
from tests.conftest import write_jsonl

PAGES = sorted(BUNDLED_CORPUS.glob("*.txt"))


@pytest.mark.parametrize(
    ("name", "count", "layout"),
    [
        ("000_9824c7423d9ec090.txt", 47, "blank-line records with metadata"),
        ("001_ab974e794f3519be.txt", 94, "blank-line records without metadata"),
        ("002_e04db66231fa7904.txt", 258, "two lines per record, first title glued to 'Subscribe'"),
        ("003_47dcfe88d537940e.txt", 92, "blank-line records with metadata"),
        ("004_d5613b08e7e35c54.txt", 125, "blank-line records without metadata"),
    ],
)
def test_page_layouts_exact_counts(name: str, count: int, layout: str) -> None:
    papers, problems = load_file(BUNDLED_CORPUS / name)
    assert len(papers) == count, layout
    assert problems == []
    assert all(len(p.abstract) > 80 and len(p.title) < 400 for p in papers)


def test_page_chrome_is_not_a_paper() -> None:
    titles = {p.title for f in PAGES for p in load_file(f)[0]}
    chrome = {"Subscribe", "Daily Papers", "new", "byAK and the research community"}
    assert not titles & chrome
    assert not any(t.startswith(("Subscribe", "Get trending")) for t in titles)
    assert "DurIAN-E: Duration Informed Attention Network For Expressive Text-to-Speech Synthesis" in titles


def test_metadata_lines_are_parsed() -> None:
    papers = {p.title: p for p in load_file(BUNDLED_CORPUS / "000_9824c7423d9ec090.txt")[0]}
    audio = papers["Comparison of semi-supervised deep learning algorithms for audio classification"]
    assert audio.date == "2021-02-16"
    assert audio.extra["n_authors"] == "3"
    ssp = papers["Search Self-play: Pushing the Frontier of Agent Capability without Supervision"]
    assert ssp.extra["organisation"] == "Quark-LLM Quark"
    assert ssp.date == "2025-10-21" and ssp.extra["upvotes"] == "2"


def test_616_records_578_unique_papers_the_difference_is_cross_page_duplicates() -> None:
    result = load_paths([BUNDLED_CORPUS])
    assert len(result.papers) == 616
    merged = merge(result.papers)
    assert len(merged) == 578
    # The 38 extra records are papers listed on more than one page (never twice on one page).
    per_id = Counter(p.id for p in result.papers)
    assert sum(n - 1 for n in per_id.values()) == 38
    for p in merged:
        if per_id[p.id] > 1:
            assert len(set(p.sources)) == per_id[p.id]


def test_ids_are_stable_and_title_normalised() -> None:
    assert paper_id("Hyper-Connections") == paper_id("  hyper connections ")
    assert normalise_title("Café: A Study!") == "cafe a study"
    assert len(paper_id("x")) == 16


def test_jsonl_with_a_broken_line_loads_the_rest(tmp_path: Path) -> None:
    f = tmp_path / "papers.jsonl"
    f.write_text(
        '{"title": "A paper", "abstract": "' + "words " * 30 + '"}\n'
        "{broken json\n"
        '{"title": "Another paper", "abstract": "' + "more words " * 20 + '", "authors": ["X", "Y"]}\n'
    )
    papers, problems = load_file(f)
    assert [p.title for p in papers] == ["A paper", "Another paper"]
    assert papers[1].authors == ["X", "Y"]
    assert len(problems) == 1 and f"{f}:2" in problems[0]


def test_arxiv_snapshot_format(tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "arxiv.json",
        [
            {
                "id": "2101.00001",
                "title": "A Snapshot  Paper",
                "abstract": "  An abstract long enough to count as one. " * 3,
                "authors": "A. One, B. Two and C. Three",
                "update_date": "2021-01-05",
                "categories": "cs.LG cs.CL",
            }
        ],
    )
    (p,), _ = load_file(f)
    assert p.title == "A Snapshot Paper"
    assert p.date == "2021-01-05"
    assert p.url == "https://arxiv.org/abs/2101.00001"
    assert p.extra["categories"] == "cs.LG cs.CL"
    assert p.authors == ["A. One", "B. Two", "C. Three"]


def test_csv_with_quotes_and_newlines_inside_fields(tmp_path: Path) -> None:
    f = tmp_path / "papers.csv"
    f.write_text('id,title,abstract,date\n1,"Quoted, title","First line\nsecond ""quoted"" line",2020-05\n')
    (p,), problems = load_file(f)
    assert p.title == "Quoted, title" and '"quoted"' in p.abstract and p.date == "2020-05"


def test_format_is_picked_by_content_not_name(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "looks-like-a-page.txt", [{"title": "T", "abstract": "An abstract. " * 10}])
    (p,), _ = load_file(f)
    assert p.title == "T"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"Caf\xe9 title\n" + b"x" * 100 + b"\n", "not UTF-8"),
        (b"just a short note\nand another\n", "unrecognised format"),
        (b"title,summary_text\nA,B\n", "lacks column(s) abstract"),
    ],
    ids=["empty", "binary", "latin-1", "no-papers", "csv-without-abstract"],
)
def test_bad_files_give_a_clear_error_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "bad.txt"
    f.write_bytes(content)
    with pytest.raises(LoaderError) as err:
        load_file(f)
    assert message in str(err.value) and str(f) in str(err.value)


def test_missing_path_and_bad_files_do_not_stop_the_good_ones(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [{"title": "Good", "abstract": "A real abstract. " * 8}])
    (tmp_path / "empty.csv").write_text("")
    result = load_paths([good, tmp_path / "empty.csv", tmp_path / "nope.jsonl"])
    assert [p.title for p in result.papers] == ["Good"]
    assert any("empty.csv" in m and "empty" in m for m in result.problems)
    assert any("nope.jsonl" in m and "no such file" in m for m in result.problems)
