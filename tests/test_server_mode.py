"""Chroma server mode against a real `chroma run` on a free loopback port.

Libraries with different data directories play machines sharing one server: "a"
ingests, "b" only reads. b has no docstore; its BM25 copy is built from the shared
collection and then follows a's later ingests by reading only the newer chunks. "c"
takes over ingesting from a fresh data directory without embedding anything again.
"""

from __future__ import annotations

import pytest

from index import store
from rag.errors import RagError
from tests.conftest import make_library, write_jsonl
from tests.servers import chroma_server, free_port


def records(papers, start: int, n: int) -> list[dict]:
    return [{"title": p.title, "abstract": p.abstract, "date": p.date} for p in papers[start : start + n]]


def test_two_machines_share_one_server(tmp_path, shared_embedder, corpus_papers) -> None:
    with chroma_server(tmp_path / "server") as (port, _):
        server = {"chroma_host": "127.0.0.1", "chroma_port": port}
        a = make_library(tmp_path / "a", shared_embedder, **server)
        b = make_library(tmp_path / "b", shared_embedder, **server)
        first = write_jsonl(tmp_path / "first.jsonl", records(corpus_papers, 0, 16))
        report = a.ingest([first])
        assert report.added == 16 and report.chunks_embedded >= 16
        assert not (tmp_path / "a" / "chroma").exists()  # nothing embedded-mode on the ingesting side
        assert a.status().papers == 16 and "server" in a.status().store

        target = corpus_papers[5]
        hits = a.find(target.title, k=3).papers
        assert hits[0].paper.id == target.id
        answer = a.ask(f"What does {target.title} propose?")
        assert answer.sources and answer.answer

        # Machine b never ingested: it has no docstore and builds its own BM25 copy from the server.
        for mode in ("hybrid", "lexical", "dense"):
            assert [h.paper.id for h in b.find(target.title, k=5, mode=mode).papers] == [
                h.paper.id for h in a.find(target.title, k=5, mode=mode).papers
            ]
        # Filters reach the server as the ids b's BM25 copy selects (as `where` past FILTER_IDS_MAX).
        dated = [p for p in corpus_papers[:16] if p.date and p.date >= "2023"]
        filtered = b.find(target.title, k=16, mode="dense", date_from="2023").papers
        assert {h.paper.id for h in filtered} == {p.id for p in dated}
        assert not (tmp_path / "b" / "docstore.sqlite").exists()
        assert (tmp_path / "b" / "bm25" / "index.npz").exists()
        assert b.indexer.paper_count() == 16
        assert b.ask(f"What does {target.title} propose?").sources

        # a adds papers, rewrites one and drops a file; b follows through the generation.
        changed = records(corpus_papers, 0, 16)
        changed[0]["abstract"] = "A rewritten abstract about quantum gardening with tomato qubits. " * 3
        write_jsonl(first, changed)
        second = write_jsonl(tmp_path / "second.jsonl", records(corpus_papers, 16, 4))
        update = a.ingest([first, second])
        assert (update.added, update.updated, update.unchanged) == (4, 1, 15)
        new = corpus_papers[17]
        assert b.find(new.title, k=1, mode="lexical").papers[0].paper.id == new.id
        top = b.find("quantum gardening tomato qubits", k=1, mode="lexical").papers[0]
        assert top.paper.id == corpus_papers[0].id and "quantum gardening" in top.chunks[0].text

        second.unlink()
        pruned = a.ingest([first], prune=True)
        assert pruned.removed == 4
        lexical = b.retriever().lex
        col = store.open_collection(b.settings, create=False)
        assert len(lexical) == col.count()
        assert {c.paper_id for c in lexical.chunks} == {p.id for p in corpus_papers[:16]}
        assert b.indexer.paper_count() == 16

        # The ingesting machine is replaced: a new data directory ingests the same file. Its
        # docstore is rebuilt from the chunks' metadata, so nothing is embedded again.
        c = make_library(tmp_path / "c", shared_embedder, **server)
        again = c.ingest([first])
        assert (again.added, again.updated, again.unchanged, again.chunks_embedded) == (0, 0, 16, 0)
        assert c.status().papers == 16


def test_server_down_is_a_clear_error(tmp_path, shared_embedder, corpus_papers) -> None:
    nobody = make_library(tmp_path / "x", shared_embedder, chroma_host="127.0.0.1", chroma_port=free_port())
    with pytest.raises(RagError, match="cannot reach the Chroma server at 127.0.0.1"):
        nobody.find("anything")
    with pytest.raises(RagError, match="cannot reach the Chroma server"):
        nobody.ingest([write_jsonl(tmp_path / "one.jsonl", records(corpus_papers, 0, 1))])

    with chroma_server(tmp_path / "server") as (port, proc):
        lib = make_library(tmp_path / "y", shared_embedder, chroma_host="127.0.0.1", chroma_port=port)
        lib.ingest([write_jsonl(tmp_path / "two.jsonl", records(corpus_papers, 0, 2))])
        assert lib.find(corpus_papers[1].title, k=1).papers[0].paper.id == corpus_papers[1].id
        proc.kill()
        proc.wait()
        with pytest.raises(RagError, match=f"chroma server 127.0.0.1:{port}"):
            lib.find(corpus_papers[1].title, k=1)
