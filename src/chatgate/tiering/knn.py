"""The nearest-neighbour half of the tier classifier: a vote of the labelled examples most
like the prompt, each embedded once with the bundled MiniLM (cache/semantic/minilm.py).

Examples carry a level in [0, 1] (the tier's place between the cheapest, 0, and the premium,
1); the vote is the similarity-weighted mean level of the ``k`` closest. Brute force over a
(n, 384) matrix: for the few thousand examples a user labels, one matrix-vector product
(~10 µs) beats any index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy comes with the semantic extra; the core imports this module
    import numpy as np
    import numpy.typing as npt

    Array = npt.NDArray[np.float32]

__all__ = ["Embed", "EmbeddingCache", "Example", "KnnVote"]

Embed = Callable[[list[str]], "Array"]

# Long prompts are cut before embedding: MiniLM reads 256 tokens at most anyway, and the
# cost of tokenizing the rest would be wasted.
_MAX_CHARS = 1200


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    level: float  # 0: the cheapest tier suffices ... 1: needs the premium tier


class EmbeddingCache:
    """The last ``size`` prompts' embeddings: a conversation's turns, retries and repeated
    questions are embedded once."""

    def __init__(self, embed: Embed, size: int = 4096) -> None:
        self._embed = embed
        self._size = size
        self._rows: OrderedDict[str, Array] = OrderedDict()

    def __contains__(self, text: str) -> bool:
        """Whether ``text`` is cached; reorders nothing, so safe beside a worker thread."""
        return text[:_MAX_CHARS] in self._rows

    def get(self, text: str) -> Array | None:
        row = self._rows.get(text[:_MAX_CHARS])
        if row is not None:
            self._rows.move_to_end(text[:_MAX_CHARS])
        return row

    def embed(self, text: str) -> Array:
        key = text[:_MAX_CHARS]
        row = self.get(key)
        if row is None:
            row = self._embed([key])[0]
            self._rows[key] = row
            while len(self._rows) > self._size:
                self._rows.popitem(last=False)
        return row

    def embed_many(self, texts: Sequence[str]) -> Array:
        return self._embed([t[:_MAX_CHARS] for t in texts])


class KnnVote:
    def __init__(self, examples: Sequence[Example], vectors: Array, k: int = 7) -> None:
        import numpy as np

        if len(examples) != len(vectors):
            raise ValueError("one vector per example")
        self.examples = list(examples)
        self._matrix = vectors.astype(np.float32)
        self._levels = np.array([e.level for e in examples], dtype=np.float32)
        self.k = max(1, min(k, len(examples)))

    @classmethod
    def build(cls, examples: Sequence[Example], cache: EmbeddingCache, k: int = 7) -> KnnVote:
        import numpy as np

        vectors = cache.embed_many([e.text for e in examples]) if examples else np.zeros((0, 1))
        return cls(examples, vectors.astype(np.float32), k)

    def __len__(self) -> int:
        return len(self.examples)

    def vote(self, vector: Array) -> float:
        """The weighted mean level of the ``k`` nearest examples (cosine; rows are unit)."""
        import numpy as np

        sims = self._matrix @ vector
        k = self.k
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        weights = np.clip(sims[top], 1e-3, None) ** 4  # the closest dominate
        return float((weights * self._levels[top]).sum() / weights.sum())
