"""Scale benchmark: indexes of 1k, 10k and 100k papers, and how fast this CPU embeds.

    .venv/bin/python benchmarks/scale.py                      # everything, within --budget-min
    .venv/bin/python benchmarks/scale.py --sizes 1000 10000   # a quick run
    .venv/bin/python benchmarks/scale.py --skip-embed          # sizes only

Writes benchmarks/results/scale.json and scale.png, and prints the tables.

Two parts, each in its own process (so peak memory is per part), each killed at the
time budget's end:

* `embed`: the real model on the bundled sample's chunk texts (exactly what ingest
  embeds), with each speed option this CPU can run: llama-index's HuggingFaceEmbedding
  as the pipeline used to call it, length-sorted batches over a whole pipeline batch
  (shipped), one torch thread, two processes, int8 dynamic quantisation (torch), and
  ONNX Runtime fp32 and int8 (exported here from the packaged weights with
  `torch.onnx.export`; needs the `onnx` package, e.g. `pip install --target
  .rag/bench-deps onnx`, and is skipped without it). Quality of each option: mean and
  worst cosine against the shipped fp32 vectors, and dev-set Recall@10 (paper level,
  dense and hybrid) of an index built from that option's vectors.
* one process per corpus size: synthetic papers, ingested with the real pipeline
  (splitting, docstore, Chroma writes, BM25) into a fresh data directory, then a
  further ingest of 200 new papers into that index, then find latency per mode.

The stand-in for embedding at scale: embedding 100k papers with the real model would
take hours on this CPU and measure nothing new, so synthetic papers are random
mixtures of the sample's ~5k sentences, each embedded once with the real model and
cached in .rag/bench-cache/; a chunk's vector is the normalised mean of its
sentences' vectors (a realistic, clustered distribution for the HNSW index, not
random noise). Its cost is excluded from the ingest rate; the real embedding rate is
the `embed` part's, and the "Beyond one machine" figures combine the two. Queries are
the dev-set questions, embedded with the real model at query time.

The machine is shared: timings carry the 1-minute load average seen during each
phase, and rates are also given per CPU-second of this process.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if (ROOT / ".rag" / "bench-deps").is_dir():  # optional extras for the ONNX options (see above)
    sys.path.append(str(ROOT / ".rag" / "bench-deps"))

import numpy as np  # noqa: E402

from rag.config import BUNDLED_CORPUS, PROJECT_ROOT  # noqa: E402

CACHE_DIR = PROJECT_ROOT / ".rag" / "bench-cache"
RESULTS = ROOT / "benchmarks" / "results"
DATASET = ROOT / "evals" / "datasets" / "questions.jsonl"
_PIECES = re.compile(r"(?<=[.!?])\s+")
INCREMENT = 200  # papers added to each built index


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def du_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    if path.is_file():
        return round(path.stat().st_size / 2**20, 1)
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


# --- the corpus -------------------------------------------------------------------------
def sample_papers() -> list:
    from index.loaders import load_paths
    from index.papers import merge

    return merge(load_paths([BUNDLED_CORPUS]).papers)


def sentence_bank(embedder, log: Callable[[str], None] = print) -> tuple[list[str], np.ndarray]:
    """The sample's unique sentences and their real embeddings, computed once and cached."""
    from rag.retrieve import sentences

    sents = list(dict.fromkeys(s for p in sample_papers() for s in sentences(p.abstract)))
    key = hashlib.sha1(("\n".join(sents) + embedder.name).encode()).hexdigest()[:12]
    path = CACHE_DIR / f"sentences-{key}.npz"
    if path.exists():
        return sents, np.load(path)["vectors"]
    t = time.perf_counter()
    vectors = embedder.encode(sents, batch_size=64).astype(np.float32)
    log(f"embedded {len(sents)} sample sentences in {time.perf_counter() - t:.0f}s; cached in {path}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=vectors)
    return sents, vectors


class CachedSentenceEncoder:
    """Stand-in for the model on synthetic papers: a chunk's vector is the normalised mean
    of the cached real vectors of the sample sentences it contains.

    Chunks are matched to sentences by splitting at sentence punctuation; a piece not in
    the bank (the title line, the partial sentence an overlap starts with) is skipped,
    and a chunk with no known piece gets the mean vector of the bank.
    """

    def __init__(self, sents: list[str], vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.lookup: dict[str, int] = {}
        for i, s in enumerate(sents):
            for piece in _PIECES.split(s):
                self.lookup.setdefault(piece, i)
        self.fallback = vectors.mean(0)
        self.fallback /= np.linalg.norm(self.fallback)
        self.hits = 0
        self.misses = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.vectors.shape[1]), dtype=np.float32)
        for row, text in enumerate(texts):
            idx = [self.lookup[p] for p in _PIECES.split(text) if p in self.lookup]
            self.hits += bool(idx)
            self.misses += not idx
            if idx:
                v = self.vectors[idx].mean(0)
                out[row] = v / np.linalg.norm(v)
            else:
                out[row] = self.fallback
        return out


def synthesize(n: int, sents: list[str], seed: int = 0, start: int = 0) -> list[dict]:
    """n papers made of random sample sentences (6 to 12 each, about the sample's length),
    with unique word-salad titles, dates across 2019-2025 and two authors each."""
    rng = np.random.default_rng([seed, start])
    words = sorted({w for s in sents for w in s.split() if w.isalpha() and len(w) > 3})
    records: list[dict] = []
    seen: set[str] = set()
    while len(records) < n:
        title = " ".join(words[j] for j in rng.integers(0, len(words), rng.integers(5, 10))).capitalize()
        if title.lower() in seen:
            continue
        seen.add(title.lower())
        picks = rng.integers(0, len(sents), rng.integers(6, 13))
        year, month, day = rng.integers(2019, 2026), rng.integers(1, 13), rng.integers(1, 29)
        records.append(
            {
                "id": f"synth-{seed}-{start + len(records)}",
                "title": title,
                "abstract": " ".join(sents[j] for j in picks),
                "date": f"{year}-{month:02d}-{day:02d}",
                "authors": [f"Author {rng.integers(0, 5000)}", f"Author {rng.integers(0, 5000)}"],
            }
        )
    return records


def write_shards(records: list[dict], folder: Path, shards: int = 10, prefix: str = "shard") -> list[Path]:
    """JSONL files; ten shards give the source filter something to select (a tenth each)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(shards):
        path = folder / f"{prefix}-{s:02d}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in records[s::shards]:
                f.write(json.dumps(r) + "\n")
        paths.append(path)
    return paths


def questions() -> list[dict]:
    return [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]


# --- part 1: embedding speed and quality ------------------------------------------------
def sample_chunk_texts(embedder, settings) -> list[str]:
    """The sample's chunks exactly as ingest embeds them (title line + chunk text)."""
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode

    from index.ingest import paper_to_document

    splitter = SentenceSplitter(
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        tokenizer=embedder.count_tokens,
        id_func=lambda i, doc: f"{doc.id_}:{i}",
    )
    nodes = splitter([paper_to_document(p) for p in sample_papers()])
    return [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    v = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class OnnxEncoder:
    """The packaged MiniLM exported to ONNX (transformer only; mean pooling and normalising
    done here, as sentence-transformers does), run by ONNX Runtime in length-sorted batches."""

    def __init__(self, st_model, folder: Path, int8: bool, threads: int = 2) -> None:
        import onnxruntime as ort
        import torch

        self.tokenizer = st_model.tokenizer
        self.max_len = st_model.get_max_seq_length() or 256
        fp32 = folder / "minilm.onnx"
        if not fp32.exists():
            bert = copy.deepcopy(st_model[0].auto_model).eval()

            class Wrap(torch.nn.Module):
                def __init__(self, m: Any) -> None:
                    super().__init__()
                    self.m = m

                def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                    return self.m(
                        input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                    ).last_hidden_state

            enc = self.tokenizer(
                ["a first example", "a second, longer example text"], padding=True, return_tensors="pt"
            )
            names = ["input_ids", "attention_mask", "token_type_ids"]
            folder.mkdir(parents=True, exist_ok=True)
            torch.onnx.export(
                Wrap(bert),
                tuple(enc[n] for n in names),
                str(fp32),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        path = fp32
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            path = folder / "minilm-int8.onnx"
            if not path.exists():
                quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shared CPU
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 384), dtype=np.float32)
        for i in range(0, len(texts), batch_size):
            idx = order[i : i + batch_size]
            enc = self.tokenizer(
                [texts[j] for j in idx],
                padding=True,
                truncation=True,
                max_length=self.max_len,
                return_tensors="np",
            )
            feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = self.session.run(None, feeds)[0]
            out[idx] = _mean_pool(hidden, enc["attention_mask"])
        return out


def _worker_init(name: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    global _WORKER
    from index.embedding import Embedder

    _WORKER = Embedder(name)


def _worker_encode(texts: list[str]) -> np.ndarray:
    return _WORKER.encode(texts, batch_size=64)  # type: ignore[name-defined]


def embed_part(args: argparse.Namespace) -> dict:
    import torch

    from index.embedding import Embedder
    from rag.config import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    t = time.perf_counter()
    real = Embedder(settings.embed_model)
    load_s = time.perf_counter() - t
    texts = sample_chunk_texts(real, settings)
    if args.embed_texts:
        texts = texts[: args.embed_texts]
    print(f"embedding options on {len(texts)} sample chunk texts", flush=True)
    st = real.model
    batch = 300  # about one pipeline batch of 128 papers

    def llama_path(xs: list[str]) -> np.ndarray:
        return np.asarray(real.llama.get_text_embedding_batch(xs), dtype=np.float32)

    def shipped(xs: list[str]) -> np.ndarray:
        return np.vstack([real.encode(xs[i : i + batch], batch_size=64) for i in range(0, len(xs), batch)])

    def one_thread(xs: list[str]) -> np.ndarray:
        torch.set_num_threads(1)
        try:
            return shipped(xs)
        finally:
            torch.set_num_threads(2)

    options: dict[str, Callable[[list[str]], np.ndarray]] = {
        "fp32, llama-index HuggingFaceEmbedding (64 texts a call, corpus order; before)": llama_path,
        "fp32, one length-sorted call per pipeline batch (shipped)": shipped,
        "fp32, torch 1 thread": one_thread,
    }
    try:
        q8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(st), {torch.nn.Linear}, dtype=torch.qint8)
        options["int8 dynamic quantisation (torch)"] = lambda xs: np.vstack(
            [
                q8.encode(xs[i : i + batch], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
                for i in range(0, len(xs), batch)
            ]
        )
    except Exception as err:  # noqa: BLE001 - report and go on
        print(f"torch int8 unavailable: {err}", flush=True)
    try:
        onnx_dir = CACHE_DIR / "onnx"
        onnx32 = OnnxEncoder(st, onnx_dir, int8=False)
        options["ONNX Runtime fp32 (torch.onnx export)"] = onnx32
        onnx8 = OnnxEncoder(st, onnx_dir, int8=True)
        options["ONNX Runtime int8 (dynamic quantisation)"] = onnx8
    except Exception as err:  # noqa: BLE001
        print(f"ONNX options skipped: {type(err).__name__}: {err}", flush=True)

    import multiprocessing

    def make_pool(processes: int, threads: int, env: dict[str, str]) -> Any:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # spawned workers read it before torch loads OpenMP
        try:
            pool = multiprocessing.get_context("spawn").Pool(
                processes, initializer=_worker_init, initargs=(settings.embed_model, threads)
            )
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        pool.map(_worker_encode, [texts[:8]] * processes)  # models loaded before timing
        return pool

    pools = {
        "two": make_pool(2, 1, {}),
        "passive": make_pool(1, 2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    }

    def pooled(key: str) -> Callable[[list[str]], np.ndarray]:
        def run(xs: list[str]) -> np.ndarray:
            parts = [xs[i : i + batch] for i in range(0, len(xs), batch)]
            return np.vstack(pools[key].map(_worker_encode, parts, chunksize=1))

        return run

    options["fp32, OMP_WAIT_POLICY=PASSIVE, 2 threads (worker process)"] = pooled("passive")
    options["fp32, 2 processes x 1 thread"] = pooled("two")
    in_process = {name: "process" not in name for name in options}

    results: dict[str, dict[str, Any]] = {name: {"runs": [], "cpu_runs": [], "load": []} for name in options}
    vectors: dict[str, np.ndarray] = {}
    for _round in range(args.embed_rounds):
        for name, fn in options.items():
            load = load_avg()
            t, c = time.perf_counter(), time.process_time()
            vecs = fn(texts)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            vectors[name] = np.asarray(vecs, dtype=np.float32)
            results[name]["runs"].append(round(len(texts) / wall, 1))
            results[name]["cpu_runs"].append(round(len(texts) / cpu, 1) if in_process[name] else None)
            results[name]["load"].append(load)
            print(f"  {name}: {len(texts) / wall:.1f} texts/s (load {load})", flush=True)
    for pool in pools.values():
        pool.terminate()

    reference = vectors["fp32, one length-sorted call per pipeline batch (shipped)"]
    recall = {}
    for name in options:
        cos = np.sum(reference * vectors[name], axis=1)
        results[name]["mean_cosine"] = round(float(cos.mean()), 5)
        results[name]["min_cosine"] = round(float(cos.min()), 5)
        results[name]["texts_per_s"] = max(results[name]["runs"])
        query_fn = options[name] if in_process[name] else shipped
        if args.embed_texts:  # a cut-down run: dev-set recall needs every sample chunk
            results[name].update({"recall@10_dense": None, "recall@10_hybrid": None})
            continue
        try:
            recall[name] = dev_recall(real, texts, vectors[name], query_fn)
        except Exception as err:  # noqa: BLE001 - keep the speed figures of the other options
            recall[name] = {"recall@10_dense": float("nan"), "recall@10_hybrid": float("nan")}
            print(f"  {name}: dev-set recall failed: {type(err).__name__}: {err}", flush=True)
        results[name].update(recall[name])
        print(f"  {name}: cosine {cos.mean():.5f} (min {cos.min():.5f}), {recall[name]}", flush=True)
    return {
        "texts": len(texts),
        "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "chunks_per_paper": round(len(texts) / len(sample_papers()), 3),
        "model_load_s": round(load_s, 2),
        "options": results,
        "peak_mb": peak_mb(),
    }


class _OptionEmbedder:
    """The real embedder with queries encoded by one speed option."""

    def __init__(self, real: Any, encode: Callable[[list[str]], np.ndarray]) -> None:
        self._real = real
        self._encode = encode

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return np.asarray(self._encode(texts), dtype=np.float32)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def dev_recall(real: Any, texts: list[str], vectors: np.ndarray, query_fn: Callable) -> dict[str, float]:
    """Paper-level Recall@10 on the dev set, dense and hybrid, of an index holding `vectors`."""
    from index.ingest import Indexer
    from index.papers import normalise_title
    from rag.config import Settings
    from rag.library import Library

    by_text = {t: v for t, v in zip(texts, vectors, strict=True)}

    def chunk_vectors(xs: list[str]) -> np.ndarray:
        missing = [x for x in xs if x not in by_text]  # only when --embed-texts cut the list
        if missing:
            by_text.update(zip(missing, np.asarray(query_fn(missing), dtype=np.float32), strict=True))
        return np.stack([by_text[x] for x in xs])

    with tempfile.TemporaryDirectory(dir=CACHE_DIR.parent) as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp))  # type: ignore[call-arg]
        lib = Library(settings)
        embedder = _OptionEmbedder(real, query_fn)
        lib.__dict__["embedder"] = embedder
        lib.__dict__["indexer"] = Indexer(settings, embedder, encode=chunk_vectors)  # type: ignore[arg-type]
        lib.ingest([BUNDLED_CORPUS])
        out = {}
        for mode in ("dense", "hybrid"):
            scores = []
            for q in questions():
                gold = {normalise_title(t) for t in q["gold_titles"]}
                if not gold:
                    continue
                got = {
                    normalise_title(h.paper.title) for h in lib.find(q["question"], k=10, mode=mode).papers
                }
                scores.append(len(gold & got) / len(gold))
            out[f"recall@10_{mode}"] = round(float(np.mean(scores)), 4)
        return out


# --- part 2: one corpus size ------------------------------------------------------------
def start_server(path: Path) -> tuple[subprocess.Popen, int]:
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).raise_for_status()
            return proc, port
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("chroma run did not start")


def server_peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def size_part(args: argparse.Namespace) -> dict:
    from index.embedding import Embedder
    from index.ingest import Indexer
    from rag.config import Settings
    from rag.library import Library

    n = args.one
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    real = Embedder(Settings(_env_file=None).embed_model)  # type: ignore[call-arg]
    sents, vecs = sentence_bank(real)
    stand_in = CachedSentenceEncoder(sents, vecs)
    corpus = work / "corpus"
    write_shards(synthesize(n, sents), corpus)
    server = None
    overrides: dict[str, Any] = {}
    if args.server:
        server, port = start_server(work / "server")
        overrides = {"chroma_host": "127.0.0.1", "chroma_port": port}
    try:
        settings = Settings(_env_file=None, data_dir=work / "data", **overrides)  # type: ignore[call-arg]
        lib = Library(settings)
        lib.__dict__["embedder"] = real
        lib.__dict__["indexer"] = Indexer(settings, real, encode=stand_in)
        out: dict[str, Any] = {"papers": n, "mode": "server" if args.server else "embedded"}

        def ingest(paths: list[Path], label: str) -> dict:
            load0 = load_avg()
            t, c = time.perf_counter(), time.process_time()
            report = lib.ingest(paths)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            tm = lib.indexer.timings
            without_embed = wall - tm.get("embed_s", 0.0)
            row = {
                "added": report.added,
                "unchanged": report.unchanged,
                "chunks": report.chunks_embedded,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "stand_in_embed_s": round(tm.get("embed_s", 0.0), 1),
                "store_write_s": round(tm.get("store_s", 0.0), 1),
                "pipeline_s": round(tm.get("pipeline_s", 0.0), 1),
                "bm25_s": round(tm.get("bm25_s", 0.0), 1),
                "recover_s": round(tm.get("recover_s", 0.0), 2),
                # Everything but embedding: loading, splitting, docstore, Chroma, BM25.
                "papers_per_s_excl_embedding": round(report.added / without_embed, 1)
                if without_embed
                else None,
                "store_chunks_per_s": round(report.chunks_embedded / tm["store_s"], 1)
                if tm.get("store_s")
                else None,
                "load": [load0, load_avg()],
                "peak_mb": peak_mb(),
            }
            print(f"  {label}: {row}", flush=True)
            return row

        out["build"] = ingest([corpus], "build")
        out["disk_mb"] = {
            "chroma": du_mb(work / "server" if args.server else work / "data" / "chroma"),
            "docstore": du_mb(work / "data" / "docstore.sqlite")
            + du_mb(work / "data" / "docstore.sqlite-wal"),
            "bm25": du_mb(work / "data" / "bm25"),
        }
        out["disk_mb"]["total"] = round(sum(out["disk_mb"].values()), 1)
        out["stand_in_hit_rate"] = round(stand_in.hits / max(stand_in.hits + stand_in.misses, 1), 3)

        new = write_shards(synthesize(INCREMENT, sents, seed=1), work / "new", shards=1, prefix="new")
        out["increment"] = ingest(new, f"+{INCREMENT} papers")
        out["rerun_unchanged"] = ingest([corpus, *new], "re-run over every file (nothing changed)")
        col = lib.retriever().col
        t = time.perf_counter()
        lib.indexer.lexical(col, force=True)
        out["bm25_full_build_s"] = round(time.perf_counter() - t, 1)

        qs = [q["question"] for q in questions()]
        lib.find("warm up the model and the caches", k=10)
        latency: dict[str, Any] = {}
        variants = [
            ("dense", {}),
            ("lexical", {}),
            ("hybrid", {}),
            ("hybrid+filters", {"date_from": "2022", "source": "shard-03.jsonl"}),
        ]
        for name, extra in variants:
            mode = name.split("+")[0]
            times, parts = [], []
            load0 = load_avg()
            for _ in range(args.repeat):
                for q in qs:
                    t = time.perf_counter()
                    res = lib.find(q, k=10, mode=mode, **extra)  # type: ignore[arg-type]
                    times.append((time.perf_counter() - t) * 1000)
                    parts.append(res.timings)
            latency[name] = {
                "p50_ms": pct(times, 50),
                "p95_ms": pct(times, 95),
                "mean_ms": round(float(np.mean(times)), 1),
                "n": len(times),
                "load": [load0, load_avg()],
                **{
                    f"p50_{k}": pct([p[k] for p in parts if k in p], 50)
                    for k in ("embed_ms", "dense_ms", "lexical_ms")
                    if any(k in p for p in parts)
                },
            }
            print(f"  {name}: {latency[name]}", flush=True)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what OMP_WAIT_POLICY=PASSIVE also gives: no spinning under load
        for name, extra in variants:
            if name == "lexical":
                continue
            times, load0 = [], load_avg()
            for _ in range(args.repeat):
                for q in qs:
                    t = time.perf_counter()
                    lib.find(q, k=10, mode=name.split("+")[0], **extra)  # type: ignore[arg-type]
                    times.append((time.perf_counter() - t) * 1000)
            latency[f"{name}, 1 torch thread"] = {
                "p50_ms": pct(times, 50),
                "p95_ms": pct(times, 95),
                "mean_ms": round(float(np.mean(times)), 1),
                "n": len(times),
                "load": [load0, load_avg()],
            }
            print(f"  {name}, 1 torch thread: {latency[f'{name}, 1 torch thread']}", flush=True)
        torch.set_num_threads(threads)
        out["latency"] = latency
        out["chunks_total"] = col.count()
        out["peak_mb"] = peak_mb()
        if server is not None:
            out["server_peak_mb"] = server_peak_mb(server.pid)
        return out
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


# --- driver -----------------------------------------------------------------------------
def run_child(argv: list[str], timeout: float, label: str) -> dict | None:
    """One part in its own process, killed when its time is up."""
    out = Path(tempfile.mkstemp(suffix=".json", dir=CACHE_DIR)[1])
    cmd = [sys.executable, __file__, *argv, "--json", str(out)]
    print(
        f"[{time.strftime('%H:%M:%S')}] {label} (at most {timeout / 60:.0f} min, load {load_avg()})",
        flush=True,
    )
    try:
        proc = subprocess.run(cmd, timeout=timeout, check=False)
        if proc.returncode != 0:
            print(f"  {label} failed with exit code {proc.returncode}", flush=True)
            return {"error": f"exit code {proc.returncode}"}
        return json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        print(f"  {label} stopped: over its time budget", flush=True)
        return {"error": f"stopped after {timeout / 60:.0f} min (time budget)"}
    finally:
        out.unlink(missing_ok=True)


def table(results: dict) -> str:
    cols = [
        "papers",
        "chunks",
        "ingest papers/s excl. embedding",
        "Chroma writes chunks/s",
        "+200 papers s",
        "re-run, nothing new, s",
        "disk MB (Chroma / docstore / BM25)",
        "peak RSS MB",
        "dense p50/p95 ms",
        "BM25 p50/p95 ms",
        "hybrid p50/p95 ms",
        "hybrid+filters p50/p95 ms",
        "hybrid, 1 torch thread, p50/p95 ms",
        "load (1-min avg)",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for key, r in results.get("sizes", {}).items():
        if "error" in r:
            lines.append(f"| {key} | {r['error']} |")
            continue
        b, d, lat = r["build"], r["disk_mb"], r["latency"]
        loads = [*b["load"], *[x for v in lat.values() for x in v["load"]]]
        cells = [
            key,
            f"{r['chunks_total']:,}",
            str(b["papers_per_s_excl_embedding"]),
            str(b["store_chunks_per_s"]),
            str(r["increment"]["wall_s"]),
            str(r["rerun_unchanged"]["wall_s"]),
            f"{d['total']:,.0f} ({d['chroma']:,.0f} / {d['docstore']:,.0f} / {d['bm25']:,.0f})",
            f"{r['peak_mb']:,.0f}"
            + (f" + server {r['server_peak_mb']:,.0f}" if "server_peak_mb" in r else ""),
            *[
                f"{lat[m]['p50_ms']} / {lat[m]['p95_ms']}" if m in lat else "-"
                for m in ("dense", "lexical", "hybrid", "hybrid+filters", "hybrid, 1 torch thread")
            ],
            f"{min(loads):.1f}-{max(loads):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def embed_table(embed: dict) -> str:
    lines = [
        "| option | texts/s (best of runs) | runs | mean / min cosine vs shipped | Recall@10 dense | Recall@10 hybrid |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in embed.get("options", {}).items():
        lines.append(
            f"| {name} | {r['texts_per_s']} | {', '.join(map(str, r['runs']))} | {r['mean_cosine']} / {r['min_cosine']} | "
            f"{r['recall@10_dense']} | {r['recall@10_hybrid']} |"
        )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = {int(k): v for k, v in results.get("sizes", {}).items() if "error" not in v and k.isdigit()}
    xs = sorted(sizes)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for mode, style in (("dense", "o-"), ("lexical", "s-"), ("hybrid", "^-"), ("hybrid+filters", "v--")):
        ax.plot(xs, [sizes[x]["latency"][mode]["p50_ms"] for x in xs], style, label=f"{mode} p50")
    ax.plot(xs, [sizes[x]["latency"]["hybrid"]["p95_ms"] for x in xs], "^:", label="hybrid p95")
    if all("hybrid, 1 torch thread" in sizes[x]["latency"] for x in xs):
        ax.plot(
            xs,
            [sizes[x]["latency"]["hybrid, 1 torch thread"]["p50_ms"] for x in xs],
            "^-",
            label="hybrid p50, 1 torch thread",
        )
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set(
        xscale="log", yscale="log", xlabel="papers", ylabel="find latency, ms", title="Search latency (k=10)"
    )
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(
        xs,
        [sizes[x]["build"]["papers_per_s_excl_embedding"] for x in xs],
        "o-",
        label="ingest papers/s (excl. embedding)",
    )
    ax.plot(xs, [sizes[x]["build"]["store_chunks_per_s"] for x in xs], "s-", label="Chroma writes, chunks/s")
    embed = results.get("embed", {}).get("options", {})
    shipped = next((v for k, v in embed.items() if "shipped" in k), None)
    if shipped:
        ax.axhline(shipped["texts_per_s"], color="C3", ls="--", label="real embedding, chunks/s")
    ax.set(xscale="log", xlabel="papers", ylabel="per second", title="Ingest rates")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(xs, [sizes[x]["disk_mb"]["total"] for x in xs], "o-", label="index on disk, MB")
    ax.plot(xs, [sizes[x]["peak_mb"] for x in xs], "s-", label="peak RSS, MB")
    ax.set(xscale="log", yscale="log", xlabel="papers", title="Disk and memory")
    ax.legend(fontsize=8)
    fig.suptitle("paper-rag at scale (2 shared CPU cores; see load in scale.json)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument(
        "--server-size", type=int, default=10000, help="Also run this size against a Chroma server (0: no)."
    )
    parser.add_argument("--repeat", type=int, default=3, help="Passes over the dev questions per mode.")
    parser.add_argument("--budget-min", type=float, default=240, help="The whole run stops within this.")
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--embed-rounds", type=int, default=2)
    parser.add_argument(
        "--embed-texts", type=int, default=0, help="Limit the embedding texts (0: all sample chunks)."
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep", action="store_true", help="Keep the built indexes (under .rag/bench-cache/)."
    )
    # internal: one part in a child process
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--embed-part", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.embed_part or args.one:
        result = embed_part(args) if args.embed_part else size_part(args)
        args.json.write_text(json.dumps(result, indent=1))
        return

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_min * 60
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()},
        "sizes": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "scale.json"
    if previous.exists():  # keep parts of an earlier run that this one does not redo
        old = json.loads(previous.read_text())
        results["sizes"] = {k: v for k, v in old.get("sizes", {}).items() if "error" not in v}
        if args.skip_embed and "embed" in old:
            results["embed"] = old["embed"]

    def save() -> None:
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        (args.out / "scale.json").write_text(json.dumps(results, indent=1))

    if not args.skip_embed:
        got = run_child(
            [
                "--embed-part",
                "--embed-rounds",
                str(args.embed_rounds),
                "--embed-texts",
                str(args.embed_texts),
            ],
            deadline - time.monotonic(),
            "embedding options",
        )
        if got:
            results["embed"] = got
        save()
    runs = [(n, False) for n in args.sizes]
    if args.server_size:
        runs.append((args.server_size, True))
    for n, server in runs:
        left = deadline - time.monotonic()
        key = f"{n}{' (server)' if server else ''}"
        if left < 60:
            results["sizes"][key] = {"error": "not run: time budget used up"}
            continue
        work = CACHE_DIR / f"scale-{n}{'-server' if server else ''}"
        argv = ["--one", str(n), "--workdir", str(work), "--repeat", str(args.repeat)]
        argv += ["--server"] if server else []
        argv += ["--keep"] if args.keep else []
        got = run_child(argv, left, f"{n:,} papers{' through a Chroma server' if server else ''}")
        if got:
            results["sizes"][key] = got
        save()
    results["sizes"] = dict(sorted(results["sizes"].items(), key=lambda kv: (int(kv[0].split()[0]), kv[0])))
    save()
    plot(results, args.out / "scale.png")
    print("\n" + table(results))
    if "embed" in results:
        print("\n" + embed_table(results["embed"]))
    print(f"\nwritten: {args.out / 'scale.json'}, {args.out / 'scale.png'}")


if __name__ == "__main__":
    main()
