"""Faults injected for real: a full disk during ingest."""

from __future__ import annotations

import os
import subprocess

import pytest

from rag.config import BUNDLED_CORPUS
from rag.errors import RagError
from tests.conftest import make_library


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs: the bundled corpus needs about 25 MB of index."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_filling_up_during_ingest(small_disk, shared_embedder) -> None:
    lib = make_library(small_disk / "data", shared_embedder, min_free_mb=6)
    before = lib.ingest([BUNDLED_CORPUS / "000_9824c7423d9ec090.txt"])
    assert before.added == 47
    with pytest.raises(RagError, match="ingest stopped before the disk fills up"):
        lib.ingest([BUNDLED_CORPUS])
    # The store still opens, with at least what it had before, and answers queries.
    reopened = make_library(small_disk / "data", shared_embedder)
    assert reopened.status().chunks >= 112
    hits = reopened.find("semi-supervised audio classification", k=3).papers
    assert hits and any("audio" in h.paper.title.lower() for h in hits)


def test_ingest_killed_20_times_then_finished_equals_a_clean_build(
    tmp_path, corpus_lib, shared_embedder
) -> None:
    """SIGKILL at random moments, 20 times in a row, then a run to the end."""
    import random
    import signal
    import sys
    import time
    from collections import Counter

    from index import store
    from rag.config import PROJECT_ROOT

    data = tmp_path / "data"
    env = {**os.environ, "RAG_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "rag.cli", "ingest", str(BUNDLED_CORPUS)]
    rng = random.Random(20)
    for _ in range(20):
        proc = subprocess.Popen(
            cmd, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(2.0, 9.0))  # from model loading to mid-batch writes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr

    lib = make_library(data, shared_embedder)
    col = store.open_collection(lib.settings, create=False)
    metas = col.get(include=["metadatas"])["metadatas"]
    per_paper = Counter(m["paper_id"] for m in metas)
    clean = store.open_collection(corpus_lib.settings, create=False).get(include=["metadatas"])["metadatas"]
    assert len(per_paper) == 578
    assert per_paper == Counter(m["paper_id"] for m in clean)  # each paper with exactly its chunks
    lexical = lib.retriever().lex
    assert Counter(c.paper_id for c in lexical.chunks) == per_paper  # dense and lexical agree
    # HNSW is approximate and its graph depends on insertion order, which the kills change; BM25 does
    # not. So: the same BM25 top 10, and the same best paper for the hybrid ranking.
    for query in ("sharpness-aware minimization", "speech recognition with self-supervised pre-training"):
        ours = lib.find(query, k=10, mode="lexical").papers
        clean_hits = corpus_lib.find(query, k=10, mode="lexical").papers
        assert {h.paper.id for h in ours} == {h.paper.id for h in clean_hits}
        assert lib.find(query, k=1).papers[0].paper.id == corpus_lib.find(query, k=1).papers[0].paper.id
