"""Retrieval on the real bundled index: paper-level results, filters, fusion, shapes, edge cases."""

from __future__ import annotations

import json

import pytest

from rag import retrieve
from rag.errors import RagError
from rag.retrieve import Filters, rrf
from tests.conftest import make_library, run_cli, write_jsonl


def test_each_paper_appears_once_with_its_best_chunks(corpus_lib) -> None:
    result = corpus_lib.find("self-supervised speech representation learning", k=10)
    ids = [h.paper.id for h in result.papers]
    assert len(ids) == 10 and len(set(ids)) == 10
    for hit in result.papers:
        assert 1 <= len(hit.chunks) <= corpus_lib.settings.evidence_per_paper
        assert all(c.paper_id == hit.paper.id for c in hit.chunks)
        assert hit.why and hit.why in " ".join(c.text for c in hit.chunks)
    assert [h.score for h in result.papers] == sorted((h.score for h in result.papers), reverse=True)


def test_finds_the_paper_a_lookup_describes(corpus_lib) -> None:
    top = corpus_lib.find("pre-trained model for delivery addresses in logistics", k=3).papers
    assert top[0].paper.title.startswith("G2PTL")


def test_date_filter_goes_to_both_retrievers(corpus_lib) -> None:
    for mode in ("hybrid", "dense", "lexical"):
        hits = corpus_lib.find(
            "style transfer", k=10, date_from="2023-01", date_to="2023-12-31", mode=mode
        ).papers
        assert hits, mode
        assert all(h.paper.date and "2023-01-01" <= h.paper.date <= "2023-12-31" for h in hits), mode


def test_source_filter(corpus_lib) -> None:
    name = "002_e04db66231fa7904.txt"
    for mode in ("dense", "lexical"):
        hits = corpus_lib.find("style transfer", k=10, source=name, mode=mode).papers
        assert hits and all(any(s.endswith(name) for s in h.paper.sources) for h in hits)


@pytest.mark.parametrize(
    "filters", [{"date_from": "2023-01", "date_to": "2023-12-31"}, {"source": "002_e04db66231fa7904.txt"}]
)
def test_filtered_dense_search_by_ids_equals_chromas_where(corpus_lib, monkeypatch, filters) -> None:
    """Filters reach Chroma as the ids the BM25 copy selects (fast at scale); same result as `where`."""
    by_ids = corpus_lib.find("style transfer", k=10, mode="dense", **filters).papers
    # as against a server with more than FILTER_IDS_MAX ids: the filter goes to `where`
    monkeypatch.setattr(retrieve.Retriever, "_allowed_ids", lambda self, filters: None)
    by_where = corpus_lib.find("style transfer", k=10, mode="dense", **filters).papers
    assert by_ids and [h.paper.id for h in by_ids] == [h.paper.id for h in by_where]


def test_filtered_search_survives_a_bm25_copy_naming_a_deleted_chunk(
    tmp_path, shared_embedder, corpus_papers
):
    lib = make_library(tmp_path / "data", shared_embedder)
    rows = [{"title": p.title, "abstract": p.abstract, "date": p.date} for p in corpus_papers[:12]]
    lib.ingest([write_jsonl(tmp_path / "papers.jsonl", rows)])
    retriever = lib.retriever()
    gone = retriever.lex.ids[0]
    retriever.col.delete(ids=[gone])  # behind the BM25 copy's back: it still lists the chunk
    hits = lib.find(corpus_papers[0].title, k=12, mode="dense", date_from="2000").papers
    assert hits and all(c.paper_id + f":{c.position}" != gone for h in hits for c in h.chunks)


def test_bad_date_is_a_clear_error() -> None:
    with pytest.raises(RagError, match="not a date"):
        Filters(date_from="last year")


def test_rrf_rewards_agreement() -> None:
    fused = rrf([(["a", "b", "c"], 1.0), (["b", "c", "a"], 1.0)], k=60)
    assert max(fused, key=fused.get) == "b"
    weighted = rrf([(["a", "b"], 3.0), (["b", "a"], 1.0)], k=60)
    assert weighted["a"] > weighted["b"]


def test_hybrid_puts_a_paper_found_by_both_first(corpus_lib) -> None:
    """The exact-title lexical match and the dense match agree: fusion keeps it first."""
    query = "Hyper-Connections residual connections alternative"
    dense = [h.paper.title for h in corpus_lib.find(query, k=5, mode="dense").papers]
    lexical = [h.paper.title for h in corpus_lib.find(query, k=5, mode="lexical").papers]
    hybrid = [h.paper.title for h in corpus_lib.find(query, k=5).papers]
    assert "Hyper-Connections" in dense and "Hyper-Connections" in lexical
    assert hybrid[0] == "Hyper-Connections"


def test_empty_and_huge_queries(corpus_lib) -> None:
    with pytest.raises(RagError, match="empty"):
        corpus_lib.find("   ")
    huge = ("contrastive learning of sentence embeddings " * 400)[:10_000]
    assert corpus_lib.find(huge, k=3).papers


def test_empty_index_says_to_ingest(empty_lib) -> None:
    with pytest.raises(RagError, match="rag ingest"):
        empty_lib.find("anything")


def test_find_json_shape(corpus_lib) -> None:
    done = run_cli(corpus_lib.settings.data_dir, "find", "co-salient object detection", "--k", "3", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["query"] == "co-salient object detection"
    assert [p["rank"] for p in data["papers"]] == [1, 2, 3]
    assert set(data["papers"][0]) == {"rank", "paper_id", "title", "date", "score", "why"}
    assert "co-salient" in data["papers"][0]["title"].lower()
