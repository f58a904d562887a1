"""Ingest throughput on the bundled corpus: cold and incremental, plus embedding options.

    .venv/bin/python benchmarks/ingest.py [--skip-options]

Prints abstracts/s, chunks/s and peak memory (max RSS of this process) for a cold
build in a fresh data directory and for a second, incremental run; then the raw
embedding rate of the chunk texts with the options that run on this CPU (fp32 as
shipped, fp32 without length sorting, int8 dynamic quantisation), with the cosine
agreement of each option's vectors against fp32, so speed is never bought with
silently different embeddings.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rag.config import BUNDLED_CORPUS, Settings  # noqa: E402
from rag.library import Library  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def embedding_options(lib: Library, texts: list[str]) -> list[tuple[str, float, float]]:
    import torch

    model = lib.embedder.model
    t = time.perf_counter()
    base = model.encode(texts, batch_size=64, normalize_embeddings=True)
    rows = [("fp32, length-sorted batches (shipped)", len(texts) / (time.perf_counter() - t), 1.0)]

    # sentence-transformers sorts by length inside encode; undo it to show what sorting buys.
    t = time.perf_counter()
    unsorted = np.vstack(
        [
            model.encode(texts[i : i + 64], batch_size=64, normalize_embeddings=True)
            for i in range(0, len(texts), 64)
        ]
    )
    rows.append(
        (
            "fp32, batches in corpus order",
            len(texts) / (time.perf_counter() - t),
            float(np.mean(np.sum(base * unsorted, 1))),
        )
    )

    quantised = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    t = time.perf_counter()
    q = quantised.encode(texts, batch_size=64, normalize_embeddings=True)
    rows.append(
        (
            "int8 dynamic quantisation (torch)",
            len(texts) / (time.perf_counter() - t),
            float(np.mean(np.sum(base * q, 1))),
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-options", action="store_true", help="Only the ingest figures.")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Settings(_env_file=None, data_dir=Path(tmp)))  # type: ignore[call-arg]
        t = time.perf_counter()
        lib.embedder  # noqa: B018 - load the model outside the timed ingest
        load_s = time.perf_counter() - t
        cold = lib.ingest([BUNDLED_CORPUS])
        warm = lib.ingest([BUNDLED_CORPUS])
        table = Table(
            title=f"Ingest of the bundled corpus ({cold.papers_unique} papers, {cold.chunks_embedded} chunks)"
        )
        for col in ("run", "seconds", "abstracts/s", "chunks/s", "embedded"):
            table.add_column(col)
        for name, r in (("cold", cold), ("incremental", warm)):
            table.add_row(
                name,
                f"{r.seconds:.1f}",
                f"{r.papers_unique / r.seconds:.1f}",
                f"{cold.chunks_embedded / r.seconds:.1f}" if name == "cold" else "-",
                str(r.chunks_embedded),
            )
        console.print(table)
        console.print(f"model load {load_s:.1f}s; peak memory (max RSS) {peak_mb():.0f} MB")
        if not args.skip_options:
            col = lib.retriever().col
            got = col.get(include=["documents", "metadatas"])
            texts = [
                f"title: {m['title']}\n\n{d}" for d, m in zip(got["documents"], got["metadatas"], strict=True)
            ]
            options = Table(title=f"Embedding {len(texts)} chunk texts on this CPU")
            for col_name in ("option", "texts/s", "mean cosine vs shipped"):
                options.add_column(col_name)
            for name, rate, cos in embedding_options(lib, texts):
                options.add_row(name, f"{rate:.1f}", f"{cos:.4f}")
            console.print(options)


if __name__ == "__main__":
    main()
