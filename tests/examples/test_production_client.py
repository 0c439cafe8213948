"""examples/production_client: 10 threads, a budget that refuses the call that would cross
it, and a report whose numbers add up."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import chatgate
from tests.examples.conftest import load_example, run_script
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json

example = load_example("production_client")
MINI_INPUT, MINI_OUTPUT = Decimal("0.15") / 10**6, Decimal("0.6") / 10**6  # gpt-4o-mini, $/token


def echo_cost(body: Any) -> Decimal:
    """What the fake's echo answer to ``body`` costs: it reports a prompt of (words + 4) per
    message and the echo's words as the completion."""
    messages = body["messages"]
    prompt = sum(len(m["content"].split()) + 4 for m in messages)
    completion = len(f"echo: {messages[-1]['content']}".split())
    return prompt * MINI_INPUT + completion * MINI_OUTPUT


def test_tiny_budget_refuses_before_sending_and_is_never_crossed(fake: FakeOpenAI) -> None:
    # gpt-4o-mini: each hold (prompt + 256 output tokens) is ~$0.00016, each echo ~$0.00001,
    # so $0.0005 covers a few dozen answers, not 120.
    settings = example.Settings(budget_usd=Decimal("0.0005"), calls=120, api_base=fake.base_url,
                                api_key="sk-test")  # fmt: skip
    report = example.run(settings)

    assert report.refused > 0
    assert report.answered > 0
    assert report.failed == 0
    assert report.answered + report.refused == 120
    assert len(fake.requests) == report.answered  # a refused call is never sent
    assert report.spent <= settings.budget_usd
    # ...and only calls that would have crossed it were refused: what is left cannot hold one
    budgets = chatgate.Budgets([])
    worst = max(
        budgets.worst_case(settings.model, [{"role": "user", "content": q}], max_tokens=256)
        for q in example.QUESTIONS
    )
    assert settings.budget_usd - report.spent < worst
    assert report.total_cost == report.spent  # every answer's cost reached the budget
    assert report.total_cost == sum(echo_cost(r.body) for r in fake.requests)
    assert 0 < report.p50_ms <= report.p95_ms
    assert report.calls_per_s == report.answered / report.elapsed_s


def test_ten_threads_call_at_once(fake: FakeOpenAI) -> None:
    # Slow answers: with 10 threads, 10 calls are in flight together, so 20 calls take about
    # two answer times, not twenty.
    fake.script(*[Reply(json=completion_json("ok"), delay_s=0.3) for _ in range(20)])
    settings = example.Settings(calls=20, api_base=fake.base_url, api_key="sk-test")
    report = example.run(settings)
    assert report.answered == 20
    assert report.elapsed_s < 0.3 * 20 / 4


def test_runs_as_a_script(fake: FakeOpenAI) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url}
    done = run_script("production_client", env, "--calls", "30", "--budget", "0.0001")
    assert done.returncode == 0, done.stderr
    answered, refused = map(int, re.search(r"(\d+) answered, (\d+) refused", done.stdout).groups())
    assert answered + refused == 30
    assert refused > 0
    assert len(fake.requests) == answered
    assert re.search(r"p50 [\d.]+ ms, p95 [\d.]+ ms", done.stdout)
    assert "sk-test" not in done.stdout + done.stderr
