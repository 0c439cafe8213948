"""How the router picks one deployment among the healthy ones of a model group.

Each strategy is a pure function of the candidates, their stats and a random source, so the
choice is reproducible in tests. Candidates arrive in a stable order (config order).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence, Set
from itertools import count

from chatgate.router.deployments import RoutedDeployment
from chatgate.router.state import Stats

__all__ = ["Pick", "pick_for", "warm_first"]

Candidate = tuple[RoutedDeployment, Stats]
Pick = Callable[[Sequence[Candidate], random.Random], Candidate]


def _random_best(
    candidates: Sequence[Candidate], rng: random.Random, key: Callable[[Candidate], float]
) -> Candidate:
    """The candidate with the lowest key; ties broken at random so load spreads."""
    keys = [key(c) for c in candidates]
    best = min(keys)
    tied = [c for c, k in zip(candidates, keys, strict=True) if k == best]
    return tied[0] if len(tied) == 1 else rng.choice(tied)


def simple_shuffle(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    if len(candidates) == 1:  # a group of one (the usual): no draw, no weights list
        return candidates[0]
    weights = [c[0].weight for c in candidates]
    return rng.choices(candidates, weights=weights)[0]


def least_busy(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    return _random_best(candidates, rng, lambda c: c[1].in_flight)


def cost_based(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    return _random_best(candidates, rng, lambda c: c[0].cost if c[0].cost is not None else 1e18)


def usage_based(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    """Most headroom: the smaller of its RPM and TPM fractions left (1.0 when unlimited)."""

    def used(c: Candidate) -> float:
        d, s = c
        left = 1.0
        if d.limits.rpm and s.rpm_left is not None:
            left = min(left, s.rpm_left / d.limits.rpm)
        if d.limits.tpm and s.tpm_left is not None:
            left = min(left, s.tpm_left / d.limits.tpm)
        return -left

    return _random_best(candidates, rng, used)


def latency_based(exploration: float) -> Pick:
    """Lowest EWMA latency. A deployment with no samples yet is tried first, and with
    probability ``exploration`` any candidate is, so one that recovered gets measured again."""

    def pick(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
        unmeasured = [c for c in candidates if c[1].latency_s is None]
        if unmeasured:
            return rng.choice(unmeasured)
        if exploration and rng.random() < exploration:
            return rng.choice(candidates)
        return _random_best(candidates, rng, lambda c: c[1].latency_s or 0.0)

    return pick


def round_robin() -> Pick:
    turn = count()

    def pick(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
        return candidates[next(turn) % len(candidates)]

    return pick


def warm_first(candidates: Sequence[Candidate], warm: Sequence[Set[str]]) -> Sequence[Candidate]:
    """Cache affinity: the candidates warm for the longest prefix any of them is warm for
    (``warm`` holds, per prefix from shortest to longest, the deployments that served it);
    all of them when none is. The strategy then picks among what this returns, so affinity
    never chooses a deployment the strategy could not (cooling, disabled, at a limit)."""
    for ids in reversed(warm):
        if ids:
            hit = [c for c in candidates if c[0].id in ids]
            if hit:
                return hit
    return candidates


def pick_for(strategy: str, *, exploration: float = 0.05) -> Pick:
    """A fresh picker (round-robin keeps its own turn counter, one per model group)."""
    if strategy == "simple-shuffle":
        return simple_shuffle
    if strategy == "round-robin":
        return round_robin()
    if strategy == "least-busy":
        return least_busy
    if strategy == "latency-based":
        return latency_based(exploration)
    if strategy == "cost-based":
        return cost_based
    if strategy == "usage-based":
        return usage_based
    raise ValueError(f"unknown routing strategy {strategy!r}")
