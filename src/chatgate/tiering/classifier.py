"""The tier classifier: features first, the nearest-neighbour vote only when they are unsure.

The feature score (features.py) costs microseconds; so does the vote, whose embedding is
static (MiniLM's wordpiece rows summed, static_minilm.py) — but it is less sure than the
features away from a threshold (measured in docs/routing.md). So by default (``embeddings:
auto``) the vote is asked only when the feature score lies within ``unsure_margin`` of a
threshold, and its embedding is cached per prompt text. The blended score is
``(1 - knn_weight) * features + knn_weight * vote``; the tier is the number of thresholds at
or below it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import orjson

from chatgate.tiering.features import Prompt, extract, feature_score
from chatgate.tiering.knn import Embed, EmbeddingCache, Example, KnnVote
from chatgate.tiering.settings import TierClassifierSettings

__all__ = [
    "Classification",
    "TierClassifier",
    "builtin_examples",
    "default_thresholds",
    "load_examples",
]

log = logging.getLogger("chatgate.tiering")


@dataclass(frozen=True, slots=True)
class Classification:
    tier: int  # index into the tiers, 0 the cheapest
    score: float  # the blended score in [0, 1]
    embedded: bool  # the nearest-neighbour vote took part


def builtin_examples() -> list[Example]:
    """The starting set shipped with chatgate (levels 0, 0.5 and 1)."""
    text = resources.files("chatgate.tiering").joinpath("examples.jsonl").read_text()
    return [Example(row["text"], float(row["level"])) for row in map(orjson.loads, _lines(text))]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def load_examples(path: str | Path, tiers: Sequence[str]) -> list[Example]:
    """Labelled examples from JSON lines ``{"prompt": ..., "tier": ...}`` (``text`` is
    accepted for ``prompt``); ValueError naming the line for anything else."""
    levels = _levels(tiers)
    out = []
    for number, line in enumerate(_lines(Path(path).read_text()), 1):
        try:
            row = orjson.loads(line)
            text = row.get("prompt", row.get("text"))
            tier = row["tier"]
        except (orjson.JSONDecodeError, KeyError, AttributeError):
            raise ValueError(f"{path}:{number}: want {{'prompt': ..., 'tier': ...}}") from None
        if not isinstance(text, str) or tier not in levels:
            raise ValueError(f"{path}:{number}: 'prompt' must be text and 'tier' one of {tiers}")
        out.append(Example(text, levels[tier]))
    return out


def default_thresholds(n: int) -> list[float]:
    """Where the feature score separates tiers on the built-in examples: one-line chat sits
    under 0.2, a short coding or writing ask between 0.2 and 0.45, real code or a multi-part
    task above."""
    if n == 2:
        return [0.35]
    return [0.2 + 0.25 * i / (n - 2) for i in range(n - 1)]


def _levels(tiers: Sequence[str]) -> dict[str, float]:
    return {name: i / (len(tiers) - 1) for i, name in enumerate(tiers)}


class TierClassifier:
    def __init__(
        self,
        tiers: Sequence[str],
        settings: TierClassifierSettings | None = None,
        *,
        embed: Embed | None = None,
    ) -> None:
        """``embed``: texts -> unit rows (default: the bundled MiniLM's static embeddings,
        loaded on first use)."""
        s = settings or TierClassifierSettings()
        self.tiers = list(tiers)
        n = len(self.tiers)
        self.thresholds = s.thresholds or default_thresholds(n)
        self.settings = s
        levels = _levels(self.tiers)
        self.examples = builtin_examples() if s.builtin_examples else []
        if s.examples_file:
            self.examples += load_examples(s.examples_file, self.tiers)
        self.examples += [Example(e.text, levels[e.tier]) for e in s.examples]
        self._embed = embed
        self._cache: EmbeddingCache | None = None
        self._knn: KnnVote | None = None
        self._lock = threading.Lock()  # sync Router calls classify from many threads
        self._no_model = False  # MiniLM is not installed: features alone decide

    def unsure(self, score: float) -> bool:
        s = self.settings
        if s.embeddings == "never" or not self.examples or self._no_model:
            return False
        if s.embeddings == "always":
            return True
        return any(abs(score - t) < s.unsure_margin for t in self.thresholds)

    def feature_score(self, prompt: Prompt) -> float:
        return feature_score(extract(prompt))

    def classify(self, prompt: Prompt) -> Classification:
        score = self.feature_score(prompt)
        vote = self.vote(prompt.text) if self.unsure(score) else None
        if vote is not None:
            w = self.settings.knn_weight
            score = (1.0 - w) * score + w * vote
        return Classification(self.tier_of(score), score, vote is not None)

    def tier_of(self, score: float) -> int:
        return sum(1 for t in self.thresholds if score >= t)

    def vote(self, text: str) -> float | None:
        """The examples' vote on ``text``; None when the embedding model is not installed."""
        with self._lock:
            knn = self._knn or self._build()
            if knn is None or self._cache is None:
                return None
            return knn.vote(self._cache.embed(text))

    @property
    def warm_needed(self) -> bool:
        """Whether ``warm`` has work left (loading the embeddings: ~0.2 s, once a process)."""
        s = self.settings
        return (
            self._knn is None
            and not self._no_model
            and bool(self.examples)
            and (s.embeddings != "never")
        )

    def warm(self) -> None:
        """Load the model and embed the examples now rather than on the first unsure call."""
        with self._lock:
            if self.warm_needed:
                self._build()

    def _build(self) -> KnnVote | None:
        try:
            embed = self._embed or _minilm()
            cache = EmbeddingCache(embed)
            self._knn = KnnVote.build(self.examples, cache, self.settings.k)
        except ImportError as exc:  # a core install without the semantic-cache extra
            log.warning("tier classifier: features only, no nearest-neighbour vote: %s", exc)
            self._no_model = True
            return None
        self._cache = cache
        return self._knn


@functools.cache
def _minilm() -> Embed:
    """One table per process (47 MB), whatever the number of tiered models."""
    from chatgate.tiering.static_minilm import StaticMiniLM

    return StaticMiniLM().embed
