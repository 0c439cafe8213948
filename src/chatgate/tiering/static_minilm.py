"""Static sentence embeddings from the bundled all-MiniLM-L6-v2: a prompt's vector is the
normalised sum of its wordpieces' rows of the model's input embedding matrix.

No transformer runs per prompt: tokenizing (the ``tokenizers`` library) and summing a few
hundred rows take tens of microseconds, where MiniLM's forward pass takes ~10 ms. The matrix
(30,522 x 384) is read straight from the model's safetensors file, nothing is derived, so the
first use costs a fraction of a second and needs no cache file.

Measured on bench/data/route-eval.jsonl (docs/routing.md): in the tier classifier's default
``auto`` mode this vote scores 96.2 % against the transformer's 96.5 % (3 prompts of 913).
Distilling the transformer's outputs per wordpiece (the model2vec approach) scored lower
(92 %) and would take minutes on first start; frequency weights (Zipf, SIF) scored lower too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatgate.cache.semantic.minilm import Array

__all__ = ["StaticMiniLM"]

_MATRIX = "embeddings.word_embeddings.weight"


class StaticMiniLM:
    """``embed(texts)`` -> (n, 384) float32 rows of unit length (zero for a text of no
    wordpieces); at most ``max_tokens`` wordpieces of each text are read."""

    def __init__(self, model_dir: str | Path | None = None, max_tokens: int = 256) -> None:
        import numpy as np
        from safetensors import safe_open
        from tokenizers import Tokenizer

        from chatgate.cache.semantic.minilm import bundled_model_dir

        root = Path(model_dir) if model_dir is not None else bundled_model_dir()
        self._tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        with safe_open(str(root / "model.safetensors"), "np") as weights:
            names = set(weights.keys())  # a safe_open handle has no ``in``
            name = _MATRIX if _MATRIX in names else f"bert.{_MATRIX}"
            self._rows: Array = np.ascontiguousarray(weights.get_tensor(name), dtype=np.float32)
        self.dim = int(self._rows.shape[1])

    def embed(self, texts: list[str]) -> Array:
        import numpy as np

        out: Array = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = self._tokenizer.encode(text, add_special_tokens=False).ids
            if not ids:
                continue
            summed = self._rows[ids].sum(0)
            out[i] = summed / max(float(np.linalg.norm(summed)), 1e-12)
        return out
