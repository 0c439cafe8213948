"""The tier classifier's time per request, on the shipped labelled set (913 prompts).

    python bench/tiering.py [--rounds 3]

Each figure is one ``TierClassifier.classify`` (what a tiered call adds before routing), p50,
p99 and max over every prompt of bench/data/route-eval.jsonl, in one process on one core
(BLAS held to one thread), in four modes:

- features: ``embeddings: never`` (regular expressions and a logistic; no model);
- auto, cold: the default; the prompts whose feature score is unsure are embedded (MiniLM's
  static wordpiece embeddings, tiering/static_minilm.py) for the first time (a new prompt);
- auto, warm: the same prompts again (a conversation's retries and repeats hit the cache);
- always, cold: ``embeddings: always``, every prompt embedded for the first time (the
  embedding's own cost, long prompts included).

Target: p99 <= 1 ms. Also printed: the share of prompts that needed the embedding.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from chatgate.cache.semantic.minilm import single_blas_thread
from chatgate.tiering.classifier import TierClassifier
from chatgate.tiering.features import Prompt
from chatgate.tiering.settings import TierClassifierSettings

DATA = Path(__file__).resolve().parent / "data" / "route-eval.jsonl"
TIERS = ["cheap", "standard", "premium"]


def timings(classifier: TierClassifier, prompts: list[Prompt]) -> tuple[list[float], int]:
    out, embedded = [], 0
    for prompt in prompts:
        started = time.perf_counter()
        found = classifier.classify(prompt)
        out.append((time.perf_counter() - started) * 1e6)
        embedded += found.embedded
    return out, embedded


def line(name: str, micros: list[float], embedded: int | None = None) -> str:
    ordered = sorted(micros)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    share = f"  embedded {embedded / len(micros):5.1%}" if embedded is not None else ""
    return f"{name:<14} p50 {p50:8.0f} µs  p99 {p99:8.0f} µs  max {ordered[-1]:8.0f} µs{share}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    prompts = [Prompt(json.loads(row)["prompt"]) for row in DATA.read_text().splitlines()]
    with single_blas_thread():
        features = TierClassifier(TIERS, TierClassifierSettings(embeddings="never"))
        best = min(
            (timings(features, prompts) for _ in range(args.rounds)), key=lambda t: sum(t[0])
        )
        print(line("features", *best))
        auto = TierClassifier(TIERS)
        auto.warm()  # the model and the examples' embeddings: start-up, not per request
        print(line("auto, cold", *timings(auto, prompts)))
        print(line("auto, warm", *timings(auto, prompts)))
        always = TierClassifier(TIERS, TierClassifierSettings(embeddings="always"))
        always.warm()
        print(line("always, cold", *timings(always, prompts)))


if __name__ == "__main__":
    main()
