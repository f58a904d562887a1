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

It ships as `rag/judge_cross.onnx`, int8 (17.5 MB instead of 69), and runs with onnxruntime
(`Scorer`); the file's metadata carries the stacking weight and threshold chosen for exactly
these int8 weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers.cross_encoder import CrossEncoder

    from rag.judge_features import FeatureExtractor

CROSS_PATH = Path(__file__).with_name("judge_cross.onnx")
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


class Scorer:
    """The shipped cross-encoder: an int8 ONNX graph run by onnxruntime (already installed with
    chromadb), fed by the packaged MiniLM's tokenizer. Why not torch: onnxruntime's int8
    matmuls take half the time of torch in float (12 against 26 ms per pair, side by side on a
    busy core; 8.5 ms on an idle one, 5.5 ms on two), with the same dev AUC (0.873), and
    torch's own dynamic int8 lost 0.011 AUC."""

    def __init__(self, path: Path = CROSS_PATH, threads: int = 0) -> None:
        """`threads` 0 means one per CPU this process may run on. Not onnxruntime's own default
        (one per physical core): confined to one core of two, its two threads took 22 ms per
        judged pair against 10.8 ms with one."""
        import onnxruntime as ort
        from transformers import AutoTokenizer

        from index.embedding import resolve_model_path
        from rag.config import PACKAGED_MINILM
        from rag.errors import RagError

        options = ort.SessionOptions()
        # sched_getaffinity is Linux only; elsewhere 0 leaves the choice to onnxruntime
        options.intra_op_num_threads = threads or (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        )
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.info: dict[str, Any] = json.loads(self.session.get_modelmeta().custom_metadata_map["info"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise RagError(
                f"cannot load the judge's cross-encoder {path}: {e}; rebuild it with "
                "`python -m evals.judge_cross_train`"
            ) from e
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(PACKAGED_MINILM)))
        self.inputs = [i.name for i in self.session.get_inputs()]

    def logits(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Raw scores of (claim, evidence) pairs; no sigmoid, since they are added to another logit.

        One pair per run, never batched: dynamic int8 quantises activations with one scale per
        run, so in a batch a pair's score depended on its batch-mates (mean shift 0.21, up to
        1.7 on the dev pairs, which moved the stacking chosen on them), and on one core single
        pairs also ran faster than padded batches (9.7 against 16.4 ms per pair in batches of 32).
        """
        out = np.zeros(len(pairs), dtype=np.float32)
        for i, (claim, evidence) in enumerate(pairs):
            enc = self.tokenizer(
                claim, evidence, truncation="longest_first", max_length=int(self.info["max_length"]),
                return_tensors="np",
            )  # fmt: skip
            feed = {name: enc[name].astype(np.int64) for name in self.inputs}
            out[i] = self.session.run(None, feed)[0].item()
        return out


def export(model: CrossEncoder, path: Path, info: dict[str, Any], quantise: bool = True) -> None:
    """Write `model` as int8 ONNX with `info` (at least "max_length"): torch's exporter to a float
    graph, then onnxruntime's dynamic quantisation (int8 weights per output channel, activations
    quantised on the fly). The stacking is then chosen on this file's logits and added to its
    `info` with `set_info`. `quantise=False` keeps the float graph (`evals.judge_swap_train`
    reads its initializer names)."""
    import tempfile

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = ["input_ids", "attention_mask", "token_type_ids"]

    class Scores(torch.nn.Module):  # the exporter wants tensors in and out, not a features dict
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, tensors, strict=True)))["scores"]

    example = model.preprocess([("a claim", "its evidence"), ("another claim", "more evidence here")])
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx" if quantise else path
        # dynamo=False: the TorchScript exporter needs no onnxscript and handles this graph
        torch.onnx.export(
            Scores().eval(), tuple(example[n] for n in names), str(float_path), input_names=names,
            output_names=["scores"], dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names} | {"scores": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
        if quantise:
            quantize_dynamic(
                float_path, path, weight_type=QuantType.QInt8, per_channel=True,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )  # fmt: skip
    set_info(path, info)


def set_info(path: Path, info: dict[str, Any]) -> None:
    """Store `info` (the recipe, the stacking weight and threshold) in the file's metadata, so a
    model file and its decision rule cannot drift apart."""
    import onnx

    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    graph.metadata_props.add(key="info", value=json.dumps(info))
    onnx.save(graph, str(path))


def evidence(extractor: FeatureExtractor, claim: str, sources: list[str], k: int = EVIDENCE) -> str:
    """The `k` source sentences closest to the claim, in source order (cached embeddings)."""
    sents = [s for src in sources for s in extractor.split(src)]
    vecs = extractor.encode([claim, *sents])
    best = np.argsort(-(vecs[1:] @ vecs[0]), kind="stable")[:k]
    return " ".join(sents[i] for i in sorted(best))
