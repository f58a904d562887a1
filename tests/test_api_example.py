"""The README's ten-line Python API example (examples/quickstart.py), run as written.

It runs in a fresh process from a folder holding `data/hf-daily-papers` and a copy of
the session's corpus index as `my-papers`, so its `lib.ingest(...)` finds every paper
unchanged instead of spending minutes embedding the corpus again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from rag.config import BUNDLED_CORPUS, PROJECT_ROOT
from rag.types import IngestReport, Status

EXAMPLE = PROJECT_ROOT / "examples" / "quickstart.py"
SAM_TITLE = "Sharpness-Aware Minimization for Efficiently Improving Generalization"


def test_the_example_is_ten_lines_of_public_api() -> None:
    code = EXAMPLE.read_text(encoding="utf-8")
    assert len(code.splitlines()) == 10
    assert code.startswith("from rag import Library\n")
    assert "import" not in code.split("\n", 1)[1]  # nothing private, nothing else


def test_the_example_runs_as_written(corpus_lib, tmp_path: Path) -> None:
    shutil.copytree(corpus_lib.settings.data_dir, tmp_path / "my-papers")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hf-daily-papers").symlink_to(BUNDLED_CORPUS, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")

    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()

    report = IngestReport.model_validate_json(lines[0])
    assert (report.papers_unique, report.unchanged, report.added, report.chunks_embedded) == (578, 578, 0, 0)

    found = lines[1:4]
    assert re.fullmatch(r"[0-9a-f]{16} .+ \S+ 0\.\d+", found[0]), found[0]
    assert SAM_TITLE in found[0]

    rest = "\n".join(lines[4:])
    assert re.search(r"\[1\]\.?", rest)  # the answer cites
    assert re.search(rf"^\[\d\] {re.escape(SAM_TITLE)}$", rest, re.MULTILINE)  # and lists its sources

    status = Status.model_validate(json.loads(rest[rest.rindex("\n{") + 1 :]))
    assert status.papers == 578 and status.data_dir == "my-papers"


def test_the_readme_shows_the_example_as_written() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks, (
        "README.md must show examples/quickstart.py verbatim in a ```python block"
    )
