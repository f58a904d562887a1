"""The cross-encoder half of the trained judge: it reads the claim and its evidence together.

Why it exists: the features of `rag.judge_features` look at the claim's words and embedding
one at a time, so a claim that keeps the abstract's words but exchanges the roles of two
methods, or reverses a finding in plain words, passes them (the features alone caught 11% of
such swaps among the hard pairs). A cross-encoder attends across claim and evidence and
ranks these errors better; its logit is added, with a weight, to the features' logit.

The model is the packaged MiniLM cut to its first `LAYERS` layers, mean-pooled, with one
linear scorer: no weights beyond the ones already installed are needed to build it, and
`python -m evals.judge_cross_train` fits it. Its input is the claim and the `EVIDENCE`
source sentences most similar to it (MiniLM cosine, kept in source order), so it sees the
sentences a claim rests on and not a whole abstract cut at the length limit.

Weights live in `rag/judge_cross.safetensors` as int8 per row with float16 scales, 17.5 MB
instead of 67 (logits within 0.12 of float), dequantised with torch at load. The file's
metadata carries the stacking weight and threshold fitted with it, so a model file and its
decision rule cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from rag.judge_features import FeatureExtractor

CROSS_PATH = Path(__file__).with_name("judge_cross.safetensors")
LAYERS = 3
EVIDENCE = 3
MAX_LENGTH = 192


def build_model(layers: int = LAYERS) -> CrossEncoder:
    """The architecture with the packaged MiniLM's weights: first `layers` layers, mean pooling,
    a linear scorer. Mean pooling, not [CLS]: this MiniLM was trained for mean pooling and its
    [CLS] state after 3 layers is the same for every input, so a [CLS] head cannot learn."""
    import torch
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.cross_encoder import CrossEncoder
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    from index.embedding import resolve_model_path
    from rag.config import PACKAGED_MINILM

    encoder = Transformer(
        str(resolve_model_path(PACKAGED_MINILM)),
        transformer_task="feature-extraction",
        max_seq_length=MAX_LENGTH,
    )
    bert = encoder.auto_model
    bert.encoder.layer = torch.nn.ModuleList(list(bert.encoder.layer)[:layers])
    bert.config.num_hidden_layers = layers
    dim = bert.config.hidden_size
    scorer = Dense(dim, 1, activation_function=None, module_output_name="scores")
    return CrossEncoder(modules=[encoder, Pooling(dim, "mean"), scorer], device="cpu")


def quantise(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Large matrices as int8 rows plus one float16 scale per row; everything else float16."""
    import torch

    out = {}
    for name, value in state.items():
        value = value.detach().float()
        if value.ndim == 2 and value.numel() > 10_000:
            scale = value.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127
            out[name + ".q"] = torch.round(value / scale).to(torch.int8)
            out[name + ".s"] = scale.to(torch.float16)
        else:
            out[name] = value.to(torch.float16)
    return out


def dequantise(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in tensors.items():
        if name.endswith(".s"):
            continue
        if name.endswith(".q"):
            out[name[:-2]] = value.float() * tensors[name[:-2] + ".s"].float()
        else:
            out[name] = value.float()
    return out


def save(model: CrossEncoder, path: Path, info: dict[str, Any]) -> None:
    """Quantised weights and `info` (the recipe, the stacking weight and threshold) as metadata."""
    from safetensors.torch import save_file

    save_file(quantise(model.state_dict()), str(path), metadata={"info": json.dumps(info)})


def load(path: Path = CROSS_PATH) -> tuple[CrossEncoder, dict[str, Any]]:
    """The model as saved by `save`, in eval mode, and its `info`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from rag.errors import RagError

    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {})["info"])
        tensors = load_file(str(path))
    except (OSError, KeyError, ValueError) as e:
        raise RagError(
            f"cannot load the judge's cross-encoder {path}: {e}; rebuild it with "
            "`python -m evals.judge_cross_train`"
        ) from e
    model = build_model(int(info["layers"]))
    model.load_state_dict(dequantise(tensors), strict=True)
    model.eval()
    return model, info


def evidence(extractor: FeatureExtractor, claim: str, sources: list[str], k: int = EVIDENCE) -> str:
    """The `k` source sentences closest to the claim, in source order (cached embeddings)."""
    sents = [s for src in sources for s in extractor.split(src)]
    vecs = extractor.encode([claim, *sents])
    best = np.argsort(-(vecs[1:] @ vecs[0]), kind="stable")[:k]
    return " ".join(sents[i] for i in sorted(best))


def logits(model: CrossEncoder, pairs: list[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
    """Raw scores of (claim, evidence) pairs; no sigmoid, since they are added to another logit."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(pairs), batch_size):
            features = model.preprocess(pairs[i : i + batch_size])
            out.append(model(features)["scores"].view(-1).float().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
