"""Stop writing before the disk is full.

Chroma cannot even be read once its disk is full (it needs room to compact its write-ahead
log), so running out of space mid-ingest would lock the user out of what was already indexed.
Checking the free space before each batch keeps a reserve, stops with a clear message, and
leaves a store that opens with everything written so far; the next run resumes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rag.errors import RagError

MB = 1024 * 1024


def ensure_room(folder: Path, reserve_mb: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < reserve_mb * MB:
        raise RagError(
            f"only {free / MB:.0f} MB free on the disk holding {folder} (the reserve is {reserve_mb} MB): "
            "ingest stopped before the disk fills up, and the index keeps every paper written so far; "
            "free some space or set RAG_DATA_DIR to a larger disk, then run the same command again"
        )
