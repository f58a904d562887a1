"""BibTeX and CSL-JSON in (loaders picked by content), BibTeX out (round trip), `get_paper`,
`--bibtex` on `rag find`/`rag ask`, and bad input that must not cost the index anything."""

from __future__ import annotations

import json
from pathlib import Path

import bibtexparser
import pytest
from typer.testing import CliRunner

from index.loaders import bibtex as bib_loader
from index.loaders import load_file, load_paths
from index.papers import make_paper, merge, paper_id
from rag.bibtex import base_key, keys, paper_ids, to_bibtex
from rag.errors import LoaderError, RagError
from rag.types import Answer

ZOTERO_BIB = r"""% Encoding: UTF-8
@string{icml = "International Conference on Machine Learning"}

@inproceedings{foret2021sharpness,
  title     = {{S}harpness-{A}ware {M}inimization for Efficiently Improving Generalization},
  author    = {Foret, Pierre and Kleiner, Ariel and Mobahi, Hossein and Neyshabur, Behnam},
  booktitle = icml,
  year      = {2021},
  month     = may,
  eprint    = {2010.01412},
  archivePrefix = {arXiv},
  abstract  = {We study the loss \emph{sharpness} of Schr{\"o}dinger's networks: 50\% of the
               minima are flat --- and $\alpha$-smooth, as {M{\"u}ller} showed.},
}

@article{broken2020,
  title = {An entry whose title brace is never closed,
  abstract = {It has an abstract.},

@article{mueller2019,
  title    = "On {\'E}cole Normale Sup{\'e}rieure Models",
  author   = {M{\"u}ller, J{\"o}rg and {Google Brain}},
  journal  = {Journal of Tests},
  date     = {2019-03-04},
  doi      = {https://doi.org/10.1000/test\_doi},
  abstract = {R\&D on models: costs rose 20% and \textbf{bold} claims ``quoted'' here.},
}

@misc{noabstract1, title = {First Entry Without an Abstract}, year = 2020}
@misc{noabstract2, title = {Second Entry Without an Abstract}, year = 2020}
"""

CSL_ITEMS = [
    {
        "id": "http://zotero.org/users/1/items/ABCD",
        "type": "article",
        "title": "Attention <i>Is</i> All You Need",
        "abstract": "<jats:p>The dominant sequence transduction models are based on recurrent &amp; "
        "convolutional networks.</jats:p>",
        "author": [{"family": "Vaswani", "given": "Ashish"}, {"literal": "Google Brain"}],
        "issued": {"date-parts": [["2017", 6, 12]]},
        "number": "arXiv:1706.03762",
        "publisher": "arXiv",
        "URL": "http://arxiv.org/abs/1706.03762",
        "DOI": "10.48550/arXiv.1706.03762",
    },
    {"id": "no-abstract", "type": "book", "title": "A Book Without an Abstract"},
    {"id": "raw-date", "title": "Raw Date Paper", "abstract": "Text.", "issued": {"raw": "2020-11"}},
]

SAM_TITLE = "Sharpness-Aware Minimization for Efficiently Improving Generalization"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- BibTeX in --------------------------------------------------------------------------------
def test_bib_entries_become_plain_text_papers_with_their_metadata(tmp_path: Path) -> None:
    papers, _ = load_file(_write(tmp_path / "refs.bib", ZOTERO_BIB))
    by_title = {p.title: p for p in papers}
    assert set(by_title) == {SAM_TITLE, "On École Normale Supérieure Models"}

    sam = by_title[SAM_TITLE]
    assert sam.abstract == (
        "We study the loss sharpness of Schrödinger's networks: 50% of the minima are flat — "
        "and α-smooth, as Müller showed."
    )
    assert sam.authors == ["Pierre Foret", "Ariel Kleiner", "Hossein Mobahi", "Behnam Neyshabur"]
    assert sam.date == "2021-05"
    assert sam.url == "https://arxiv.org/abs/2010.01412"
    assert sam.extra["arxiv_id"] == "2010.01412"
    assert sam.extra["bibtex_key"] == "foret2021sharpness"
    assert sam.extra["entry_type"] == "inproceedings"
    assert sam.extra["venue"] == "International Conference on Machine Learning"  # @string resolved
    assert sam.extra["line"] == "4"

    ecole = by_title["On École Normale Supérieure Models"]
    assert ecole.authors == ["Jörg Müller", "Google Brain"]
    assert ecole.date == "2019-03-04"
    assert ecole.extra["doi"] == "10.1000/test_doi"
    assert ecole.url == "https://doi.org/10.1000/test_doi"
    # A bare % is text, not a LaTeX comment that would swallow the rest of the line.
    assert ecole.abstract == "R&D on models: costs rose 20% and bold claims “quoted” here."
    assert all(isinstance(v, str) for p in papers for v in p.extra.values())


def test_a_broken_entry_is_named_with_its_line_and_the_others_still_load(tmp_path: Path) -> None:
    f = _write(tmp_path / "refs.bib", ZOTERO_BIB)
    papers, problems = load_file(f)
    assert len(papers) == 2
    broken = [p for p in problems if "broken2020" in p]
    assert len(broken) == 1
    assert broken[0].startswith(f"{f}:16: entry 'broken2020' is not valid BibTeX")
    assert broken[0].endswith("; skipped")


def test_entries_without_an_abstract_are_counted_in_one_line_naming_the_file(tmp_path: Path) -> None:
    f = _write(tmp_path / "refs.bib", ZOTERO_BIB)
    _, problems = load_file(f)
    summary = [p for p in problems if "without an abstract" in p]
    assert summary == [
        f"{f}: 2 entries without an abstract skipped: noabstract1 (line 29), noabstract2 (line 30)"
    ]


def test_many_entries_without_abstract_still_one_line(tmp_path: Path) -> None:
    entries = "".join(f"@misc{{k{i}, title = {{Paper {i}}}}}\n" for i in range(40))
    f = _write(tmp_path / "many.bib", entries + "@misc{ok, title={Kept}, abstract={Has one.}}\n")
    papers, problems = load_file(f)
    assert [p.title for p in papers] == ["Kept"]
    assert problems == [
        f"{f}: 40 entries without an abstract skipped: k0 (line 1), k1 (line 2), k2 (line 3) and 37 more"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "file is empty"),
        ("\n\n   \n", "file is empty"),
        ("% just a comment\n% and another\n", "no BibTeX entries found"),
        ("@comment{nothing here}\n", "no BibTeX entries found"),
        ("@misc{a, title={No abstract}}\n", "no usable BibTeX entries: 1 read; 1 without an abstract"),
        ("@article{bad,\n  title = {never closed,\n", "1 unreadable, the first: "),
    ],
    ids=["empty", "blank", "comments-only", "comment-block", "no-abstracts", "only-a-broken-entry"],
)
def test_unusable_bib_files_give_one_clear_error_naming_the_file(
    tmp_path: Path, content: str, message: str
) -> None:
    f = _write(tmp_path / "refs.bib", content)
    with pytest.raises(LoaderError) as err:
        load_file(f)
    assert str(err.value).startswith(str(f)) and message in str(err.value)


def test_a_broken_only_entry_names_its_line_in_the_file_error(tmp_path: Path) -> None:
    f = _write(tmp_path / "refs.bib", "\n\n@article{bad,\n  title = {never closed,\n")
    with pytest.raises(LoaderError, match=r"refs\.bib:3: entry 'bad' is not valid BibTeX"):
        load_file(f)


def test_large_bib_files_are_parsed_in_pieces_with_macros_and_lines_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bib_loader, "PIECE_CHARS", 200)  # every few entries start a new piece
    body = '@string{venue = "Shared Venue"}\n' + "".join(
        f"@article{{key{i},\n  title = {{Paper number {i}}},\n  journal = venue,\n  abstract = {{A{i}.}}\n}}\n"
        for i in range(30)
    )
    pieces = list(bib_loader._pieces(body.splitlines(keepends=True)))
    assert len(pieces) > 5 and all(text.lstrip().startswith("@") for _, text in pieces[1:])
    papers, problems = load_file(_write(tmp_path / "big.bib", body))
    assert problems == []
    assert [p.title for p in papers] == [f"Paper number {i}" for i in range(30)]
    assert {p.extra["venue"] for p in papers} == {"Shared Venue"}
    assert [int(p.extra["line"]) for p in papers] == [2 + 5 * i for i in range(30)]


def test_bib_is_picked_by_content_and_found_in_folders(tmp_path: Path) -> None:
    misnamed = _write(tmp_path / "export.txt", ZOTERO_BIB)
    assert len(load_file(misnamed)[0]) == 2
    folder = tmp_path / "library"
    folder.mkdir()
    _write(folder / "refs.bib", ZOTERO_BIB)
    (folder / "items.json").write_text(json.dumps(CSL_ITEMS), encoding="utf-8")
    result = load_paths([folder])
    assert sorted(f.name for f in result.files) == ["items.json", "refs.bib"]
    assert len(result.papers) == 4


# --- CSL-JSON in ------------------------------------------------------------------------------
def test_csl_json_items_become_papers_with_their_metadata(tmp_path: Path) -> None:
    f = tmp_path / "zotero.json"
    f.write_text(json.dumps(CSL_ITEMS, indent=2), encoding="utf-8")
    papers, problems = load_file(f)
    att, raw = papers
    assert att.title == "Attention Is All You Need"
    assert att.abstract == (
        "The dominant sequence transduction models are based on recurrent & convolutional networks."
    )
    assert att.authors == ["Ashish Vaswani", "Google Brain"]
    assert att.date == "2017-06-12"
    assert att.url == "http://arxiv.org/abs/1706.03762"
    assert att.extra["arxiv_id"] == "1706.03762"
    assert att.extra["doi"] == "10.48550/arXiv.1706.03762"
    assert att.extra["csl_id"] == "http://zotero.org/users/1/items/ABCD"
    assert raw.date == "2020-11"
    assert problems == [f"{f}: 1 item without an abstract skipped: no-abstract (line 30)"]


def test_csl_json_on_one_line_is_read_too(tmp_path: Path) -> None:
    f = tmp_path / "min.json"
    f.write_text(json.dumps(CSL_ITEMS * 300), encoding="utf-8")  # one line, about 150 KB
    papers, problems = load_file(f)
    assert len(papers) == 600 and len(merge(papers)) == 2
    assert problems == [f"{f}: 300 items without an abstract skipped: no-abstract (line 1), "
                        "no-abstract (line 1), no-abstract (line 1) and 297 more"]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{\n  "id": "x",\n  "title": "One item, not a list"\n}\n', "a single JSON object"),
        ('["a", "b"]', "a JSON array of something other than objects"),
        ("[ ]", "the JSON array is empty"),
        ('[{"title": "T"}]', "no usable CSL-JSON items: 1 read; 1 without an abstract"),
        ('[{"title": "T", "abstract": "A"}, {"title": ', "not valid JSON"),
        ('[{"title": oops}]', "not valid JSON"),
    ],
    ids=["object", "array-of-strings", "empty-array", "no-abstract", "truncated-first-only", "bad-json"],
)
def test_csl_json_that_is_not_a_list_of_items_gives_a_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    f = _write(tmp_path / "items.json", content)
    result = load_paths([f])
    if message == "not valid JSON" and "oops" not in content:
        # The items before a cut-off end still load; the cut is named with its line.
        assert [p.title for p in result.papers] == ["T"]
        assert result.problems == [f"{f}:1: not valid JSON (Expecting value); the rest of the file skipped"]
        return
    assert result.papers == []
    assert len(result.problems) == 1
    assert result.problems[0].startswith(str(f)) and message in result.problems[0]


# --- the same paper from two sources ----------------------------------------------------------
def test_a_bib_entry_and_a_page_dump_of_the_same_paper_merge(tmp_path: Path) -> None:
    page = _write(
        tmp_path / "page.txt",
        f"{SAM_TITLE}\n{'A page-dump abstract that is long enough to be read as one. ' * 3}\n",
    )
    bib = _write(tmp_path / "refs.bib", ZOTERO_BIB)
    merged = {p.title: p for p in merge(load_paths([page, bib]).papers)}
    assert len(merged) == 2
    sam = merged[SAM_TITLE]
    assert sam.id == paper_id(SAM_TITLE)
    assert sam.sources == [str(page), str(bib)]
    assert sam.extra["arxiv_id"] == "2010.01412" and sam.date == "2021-05"


# --- BibTeX out -------------------------------------------------------------------------------
def test_export_round_trips_every_corpus_paper_through_the_bib_loader(tmp_path: Path, corpus_papers) -> None:
    text = to_bibtex(corpus_papers)
    parsed = bibtexparser.parse_string(text)
    assert parsed.failed_blocks == []
    assert len(parsed.entries) == len(corpus_papers) == 578
    assert len({e.key for e in parsed.entries}) == 578  # unique keys

    back, problems = load_file(_write(tmp_path / "corpus.bib", text))
    assert problems == []
    assert [p.title for p in back] == [p.title for p in corpus_papers]
    assert [" ".join(p.abstract.split()) for p in back] == [
        " ".join(p.abstract.split()) for p in corpus_papers
    ]
    assert [p.date for p in back] == [p.date for p in corpus_papers]


TRICKY = [
    "50% of R&D_{x} costs $5 #1 ~ ^ \\ {braces}",
    "Schrödinger’s “Naïve” α-divergence — über 中文",
    "Dashes -- and --- and ``ticks'' and \"straight\" quotes",
    "\\emph{not a macro} and $not math$",
]


def test_special_characters_are_escaped_and_come_back_unchanged(tmp_path: Path) -> None:
    papers = [
        make_paper(
            title,
            f"Abstract of: {title}",
            "x",
            authors=["Jörg Müller", "Smith, Jr., John", "Barnes and Noble"],
            date="2021-02-16",
            url="https://example.org/a_b%20c",
            extra={"doi": "10.1000/a_b", "arxiv_id": "2101.00001"},
        )
        for title in TRICKY
    ]
    text = to_bibtex(papers)
    first = text.split("\n@")[0]
    for escaped in ("50{\\%}", "R{\\&}D", "{\\_}", "{\\{}", "{\\$}5", "{\\#}1", "{\\textbackslash}"):
        assert escaped in first
    assert "eprint        = {2101.00001}" in text and "archivePrefix = {arXiv}" in text
    assert "doi           = {10.1000/a_b}" in text and "url           = {https://example.org/a_b%20c}" in text
    assert "month         = feb," in text
    assert bibtexparser.parse_string(text).failed_blocks == []

    back, problems = load_file(_write(tmp_path / "tricky.bib", text))
    assert problems == []
    assert [p.title for p in back] == TRICKY
    assert [p.abstract for p in back] == [f"Abstract of: {t}" for t in TRICKY]
    assert all(p.authors == ["Jörg Müller", "Smith, Jr., John", "Barnes and Noble"] for p in back)
    assert all(p.date == "2021-02-16" and p.extra["doi"] == "10.1000/a_b" for p in back)
    assert all(p.extra["arxiv_id"] == "2101.00001" for p in back)


def test_keys_are_stable_unique_and_reuse_the_bib_key() -> None:
    vaswani = make_paper("Attention Is All You Need", "A.", "x", authors=["Ashish Vaswani"], date="2017-06")
    assert base_key(vaswani) == "vaswani2017attention"
    anonymous = make_paper("The Sharpness of Minima", "A.", "x", date="2021")
    assert base_key(anonymous) == "sharpnessminima2021"
    own = make_paper("Anything", "A.", "x", extra={"bibtex_key": "foret2021sharpness"})
    assert base_key(own) == "foret2021sharpness"

    twins = [make_paper(f"Attention {w}", "A.", "x", authors=["A. Vaswani"], date="2017") for w in "xyz"]
    forward, backward = keys(twins), keys(list(reversed(twins)))
    assert forward == backward  # the order of the papers does not change anyone's key
    assert sorted(forward.values()) == [
        "vaswani2017attention",
        "vaswani2017attentiona",
        "vaswani2017attentionb",
    ]
    assert to_bibtex(twins) == to_bibtex(twins)


def test_an_answer_exports_only_the_papers_its_sentences_cite() -> None:
    answer = Answer.model_validate(
        {
            "question": "q",
            "answer": "a [2]",
            "backend": "extractive",
            "sources": [
                {"n": 1, "paper_id": "p1", "title": "One", "snippet": ""},
                {"n": 2, "paper_id": "p2", "title": "Two", "snippet": ""},
            ],
            "sentences": [{"text": "a [2]", "citations": [2]}],
        }
    )
    assert paper_ids(answer) == ["p2"]
    assert paper_ids(answer.model_copy(update={"sentences": [], "abstained": True})) == []


# --- get_paper and the CLI --------------------------------------------------------------------
def test_get_paper_puts_the_whole_abstract_back_together(corpus_lib, corpus_papers) -> None:
    metas = corpus_lib.retriever().col.get(include=["metadatas"])["metadatas"]
    n_chunks = {m["paper_id"]: int(m["n_chunks"]) for m in metas}
    by_id = {p.id: p for p in corpus_papers}
    multi = sorted((pid for pid, n in n_chunks.items() if n >= 2), key=lambda pid: (-n_chunks[pid], pid))
    sample = multi[:25] + [pid for pid, n in sorted(n_chunks.items()) if n == 1][:5]
    assert n_chunks[sample[0]] >= 3
    for pid in sample:
        paper = corpus_lib.get_paper(pid)
        assert paper.title == by_id[pid].title
        assert " ".join(paper.abstract.split()) == " ".join(by_id[pid].abstract.split()), paper.title
    with pytest.raises(RagError, match="no paper with id 'nope'"):
        corpus_lib.get_paper("nope")
    with pytest.raises(RagError, match="empty"):
        corpus_lib.get_paper("  ")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, corpus_lib):
    from rag import cli as cli_module

    monkeypatch.setattr(cli_module, "Library", lambda: corpus_lib)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli_module.app, list(args))


def test_find_bibtex_writes_the_found_papers_and_keeps_the_json_clean(cli, tmp_path: Path) -> None:
    out = tmp_path / "found.bib"
    result = cli("find", "sharpness-aware minimization", "-k", "4", "--json", "--bibtex", str(out))
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["papers"][0]["title"] == SAM_TITLE
    assert "wrote 4 BibTeX entries" in result.stderr
    back, problems = load_file(out)
    assert problems == []
    assert [p.title for p in back] == [p["title"] for p in found["papers"]]
    assert [p.id for p in back] == [p["paper_id"] for p in found["papers"]]
    assert all(len(p.abstract) > 200 for p in back)  # whole abstracts, not the matching chunk


def test_ask_bibtex_writes_the_cited_papers(cli, tmp_path: Path) -> None:
    out = tmp_path / "cited.bib"
    result = cli("ask", "How does sharpness-aware minimization improve generalization?", "--json",
                 "--bibtex", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    answer = Answer.model_validate_json(result.stdout)
    assert not answer.abstained and answer.sources
    cited = {n for s in answer.sentences for n in s.citations}
    expected = [s.title for s in answer.sources if s.n in cited]
    back, _ = load_file(out)
    assert [p.title for p in back] == expected


def test_bibtex_to_an_unwritable_path_is_one_clear_error(cli, tmp_path: Path) -> None:
    result = cli("find", "sharpness", "--bibtex", str(tmp_path / "no-such-dir" / "x.bib"))
    assert result.exit_code == 1
    assert "cannot write the BibTeX file" in result.stderr
    assert "Traceback" not in result.output


# --- bad input never costs the index anything -------------------------------------------------
def test_bad_reference_files_leave_the_index_as_it_was(empty_lib, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    _write(good / "refs.bib", ZOTERO_BIB)
    (good / "items.json").write_text(json.dumps(CSL_ITEMS), encoding="utf-8")
    first = empty_lib.ingest([good])
    assert (first.added, first.papers_unique) == (4, 4)
    assert any("broken2020" in p and ":16:" in p for p in first.problems)

    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad / "empty.bib", "")
    _write(bad / "object.json", '{\n  "title": "not a list"\n}\n')
    _write(bad / "broken.bib", "@article{bad,\n  title = {never closed,\n")
    _write(bad / "refs.bib", ZOTERO_BIB.replace("Efficiently", "Efficiently (changed)"))
    second = empty_lib.ingest([bad])
    problems = "\n".join(second.problems)
    for name, message in [
        ("empty.bib", "file is empty"),
        ("object.json", "a single JSON object"),
        ("broken.bib", "broken.bib:1: entry 'bad' is not valid BibTeX"),
    ]:
        assert f"{bad / name}" in problems and message in problems, name
    assert second.added == 1  # the changed title is a new paper; nothing was removed
    assert empty_lib.status().papers == 5
    titles = [h.paper.title for h in empty_lib.find("sharpness-aware minimization", k=5).papers]
    assert SAM_TITLE in titles
    assert empty_lib.get_paper(paper_id(SAM_TITLE)).extra["arxiv_id"] == "2010.01412"
