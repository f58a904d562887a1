"""Latency of `find` on the indexed sample corpus, with the model already loaded.

    .venv/bin/python benchmarks/find.py [--repeat 3]

Runs every dev-set question through each retriever mode and prints p50/p95 in ms.
Uses the index in RAG_DATA_DIR (default .rag/); build it first with `rag ingest`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rag.library import Library  # noqa: E402

DATASET = Path(__file__).resolve().parent.parent / "evals" / "datasets" / "questions.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in DATASET.read_text().splitlines() if line.strip()]
    lib = Library()
    lib.find("warm up", k=10)
    table = Table(title=f"find latency, {len(questions)} questions x {args.repeat}, k=10 (ms)")
    for col in ("mode", "p50", "p95", "mean"):
        table.add_column(col)
    for mode in ("hybrid", "dense", "lexical"):
        times = []
        for _ in range(args.repeat):
            for q in questions:
                t = time.perf_counter()
                lib.find(q, k=10, mode=mode)  # type: ignore[arg-type]
                times.append((time.perf_counter() - t) * 1000)
        a = np.array(times)
        table.add_row(mode, f"{np.percentile(a, 50):.1f}", f"{np.percentile(a, 95):.1f}", f"{a.mean():.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
