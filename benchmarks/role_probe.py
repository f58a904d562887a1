"""Which model on this machine reads roles? The probes behind the judge's missed swap target.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/role_probe.py [--layers 3 6] [--lm]

On the 119 `check` pairs of `evals/datasets/judge_swap_pairs.jsonl` (a faithful claim and the same
claim with two roles exchanged, about train papers, never trained on) it prints how often a model
scores the faithful reading above its swapped twin (chance 0.5), for:

* the shipped cross-encoder, `rag/judge_cross.onnx` (always);
* `--layers N ...`: the packaged MiniLM cut to N layers, trained from its packaged weights on the
  624 other minimal pairs alone (`evals.judge_swap_train.fit`, margin + BCE, 3 epochs, seed 13).
  Whether depth lets it learn roles decides whether a six-layer judge (2.2 hours to build here)
  is worth building; about 8 minutes for 3 layers, 17 for 6;
* `--lm`: gemma-3-270m, the only generative model packaged for this project (the test extra's
  GGUF, through llama-cpp-python): the claim's log-likelihood after "Abstract: <evidence>\\nIn short:".
  That only compares two readings of one claim; a judge must score a claim alone, so it also
  prints the AUC of the same likelihood (its mean and its lowest token) between 60 dev swaps and
  60 dev paraphrases (seed 13), next to the shipped cross-encoder's on the same pairs. About 10 minutes.

Figures go to `benchmarks/results/role_probe.json`, replacing only those of the parts that ran.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from evals.judge_swap_train import fit, minimal_pairs, ordering, prefers_faithful  # noqa: E402
from evals.judge_train import DEV, read_pairs  # noqa: E402
from rag import judge_cross  # noqa: E402
from rag.judge_features import FeatureExtractor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "role_probe.json"
SEED = 13


def shipped_share(check: list[tuple[str, ...]]) -> dict[str, float]:
    scorer = judge_cross.Scorer(threads=2)
    return ordering(*(scorer.logits([(q[i], q[i + 1]) for q in check]) for i in (0, 2)))


def trained_share(layers: int, pairs: list[tuple[str, ...]], check: list[tuple[str, ...]]) -> dict:
    import torch

    torch.manual_seed(SEED)
    model = judge_cross.build_model(layers)
    before = prefers_faithful(model, check)
    t0 = time.perf_counter()
    fit(model, pairs, replay=[], seed=SEED, lr=5e-5, lr_head=1e-3)
    return {
        "before": before,
        "after": prefers_faithful(model, check),
        "train_pairs_after": prefers_faithful(model, pairs[:200]),
        "seconds": round(time.perf_counter() - t0),
    }


class GemmaLikelihood:
    """Per-token log-probabilities of a claim after its evidence, from the packaged gemma-3-270m."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        from tests.fixtures_llm import model_path  # assembles the GGUF from its packages once

        self.llm = Llama(
            model_path=str(model_path()), n_ctx=1024, n_threads=2, logits_all=True, verbose=False
        )

    def token_logprobs(self, evidence: str, claim: str) -> np.ndarray:
        from scipy.special import logsumexp

        p = self.llm.tokenize(f"Abstract: {evidence}\nIn short:".encode(), add_bos=True)
        c = self.llm.tokenize((" " + claim).encode(), add_bos=False)
        self.llm.reset()
        self.llm.eval(p + c)
        rows = (self.llm.scores[len(p) + i - 1] for i in range(len(c)))
        return np.array([row[t] - logsumexp(row) for row, t in zip(rows, c, strict=True)])


def lm_figures(fx: FeatureExtractor, check: list[tuple[str, ...]]) -> dict:
    from sklearn.metrics import roc_auc_score

    lm = GemmaLikelihood()
    t0 = time.perf_counter()
    margins = np.array(
        [lm.token_logprobs(q[1], q[0]).sum() - lm.token_logprobs(q[1], q[2]).sum() for q in check]
    )  # fmt: skip
    ms = (time.perf_counter() - t0) / (2 * len(check)) * 1000
    dev = read_pairs(DEV)
    rng = random.Random(SEED)
    sample = [
        p for kind in ("swap", "paraphrase") for p in rng.sample([p for p in dev if p["kind"] == kind], 60)
    ]
    fx.prime([s for p in sample for s in fx.split(p["source"])] + [p["claim"] for p in sample])
    evidence = [judge_cross.evidence(fx, p["claim"], [p["source"]]) for p in sample]
    lps = [lm.token_logprobs(e, p["claim"]) for p, e in zip(sample, evidence, strict=True)]
    cross = judge_cross.Scorer(threads=2).logits(
        [(p["claim"], e) for p, e in zip(sample, evidence, strict=True)]
    )
    y = [bool(p["label"]) for p in sample]
    return {
        "check_pairs": {"share": round(float((margins > 0).mean()), 3), "mean_margin_nats": round(float(margins.mean()), 2)},
        "ms_per_claim": round(ms),
        "dev_swaps_vs_paraphrases_auc": {
            "lm_mean_logprob": round(float(roc_auc_score(y, [lp.mean() for lp in lps])), 3),
            "lm_lowest_token": round(float(roc_auc_score(y, [lp.min() for lp in lps])), 3),
            "shipped_cross_encoder": round(float(roc_auc_score(y, cross)), 3),
        },
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, nargs="*", default=[])
    ap.add_argument("--lm", action="store_true")
    args = ap.parse_args()

    import torch

    from index.embedding import Embedder
    from rag.config import Settings

    torch.set_num_threads(2)
    fx = FeatureExtractor(Embedder(Settings().embed_model))
    pairs, check = minimal_pairs(fx)
    out: dict = {"check_pairs": len(check), "shipped_cross_encoder": shipped_share(check)}
    print(f"shipped cross-encoder: {out['shipped_cross_encoder']}", flush=True)
    for layers in args.layers:
        out[f"trained_{layers}_layers"] = trained_share(layers, pairs, check)
        print(f"{layers} layers trained on the minimal pairs: {out[f'trained_{layers}_layers']}", flush=True)
    if args.lm:
        out["gemma_270m"] = lm_figures(fx, check)
        print(f"gemma-3-270m: {out['gemma_270m']}", flush=True)
    # a run with fewer options replaces only its own figures, keeping the others already there
    kept = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps(kept | out, indent=1) + "\n", encoding="utf-8")
    print(RESULTS)


if __name__ == "__main__":
    main()
