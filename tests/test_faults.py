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
