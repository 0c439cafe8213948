"""The classifier's cheap half: what features a prompt shows and how they order prompts."""

from __future__ import annotations

import pytest

from chatgate.chat_request import chat_request
from chatgate.tiering.classifier import default_thresholds
from chatgate.tiering.features import Prompt, extract, feature_score, prompt_of


def score(text: str, **kw: object) -> float:
    return feature_score(extract(Prompt(text, **kw)))  # type: ignore[arg-type]


def test_code_maths_and_steps_are_seen() -> None:
    f = extract(Prompt("```python\ndef f(x):\n    return x\n```\nFirst, then: prove x^2 = 4"))
    assert f.code >= 3
    assert f.math >= 2
    assert f.steps >= 1
    plain = extract(Prompt("What is the capital of France?"))
    assert (plain.code, plain.code_words, plain.math, plain.steps) == (0, 0, 0, 0)


def test_scores_order_chat_below_a_coding_ask_below_real_code() -> None:
    chat = score("hi, how are you?")
    ask = score("Write a Python function that reverses a string.")
    code = score("Fix the bug:\n```python\nclass Pool:\n    def get(self):\n        return 1\n```")
    cut_low, cut_high = default_thresholds(3)
    assert chat < cut_low <= ask < cut_high <= code


def test_conversation_depth_tools_and_a_schema_raise_the_score() -> None:
    base = score("Look up the order")
    assert score("Look up the order", turns=6) > base
    assert score("Look up the order", tools=2) > base
    assert score("Look up the order", structured=True) > base


def test_prompt_of_a_request_reads_the_last_user_turn_and_counts_turns() -> None:
    request = chat_request(
        "auto",
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ],
        {
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
        },
    )
    assert prompt_of(request) == Prompt("second", turns=2, tools=1, structured=True)


@pytest.mark.parametrize(("n", "cuts"), [(2, [0.35]), (3, [0.2, 0.45]), (4, [0.2, 0.325, 0.45])])
def test_default_thresholds(n: int, cuts: list[float]) -> None:
    assert default_thresholds(n) == pytest.approx(cuts)
