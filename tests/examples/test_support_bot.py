"""examples/support_bot: a scripted day against fakes (one OpenAI fake for the cheap model,
one for the premium, an Anthropic fake as the backup provider, one for the summaries) and a
real redis-server. The cheap and the premium primaries fail for a stretch at midday."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import chatgate
from tests.examples.conftest import load_example, run_script
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json
from tests.fakes.redis_server import RedisServer

example = load_example("support_bot")

FAQS = (
    "How do I reset my password?",
    "What are your opening hours?",
    "Where can I download my invoice?",
    "How do I change my email address?",
    "Do you offer a student discount?",
    "How do I cancel my subscription?",
    "Which payment methods do you accept?",
    "Can I export my data?",
    "Is there a free trial?",
    "How do I contact support by phone?",
)
PERSONAL = (
    "When will order {n} arrive?",
    "Please resend the receipt for invoice INV-{n}.",
    "Why was I charged twice on account {n}?",
)
USERS = 50
LOG = (
    "ERROR 2026-12-05T10:{i:02d}:07Z worker-3 job=sync-42 attempt={i} ConnectionResetError: "
    "connection reset by peer while reading s3://acme-logs/part-{i}.gz (read 1048576 of "
    "4194304 bytes)"
)
CHEAP_OUTAGE, PREMIUM_OUTAGE = 4, 3  # 503s each primary answers at midday


def first_questions(users: range) -> list[tuple[str, str]]:
    """Each user opens with one of the FAQs (five users per FAQ), spelled their own way."""
    turns = []
    for n in users:
        question = FAQS[n % len(FAQS)]
        spelled = question.upper() if n % 3 == 0 else f"  {question.lower()}??"
        turns.append((f"user{n}", spelled if n % 2 else question))
    return turns


def follow_ups(users: range) -> list[tuple[str, str]]:
    """Then asks about their own order or invoice: a question nobody else asks."""
    return [(f"user{n}", PERSONAL[k].format(n=1000 + n)) for k in (0, 1) for n in users]


def complex_question(i: int) -> str:
    lines = "\n".join(LOG.format(i=(i + k) % 60) for k in range(24))
    return (
        f"Incident {i}: our nightly sync job fails again. Here is the worker log:\n```\n{lines}\n"
        "```\nFirst analyse the root cause step by step, then write a Python retry wrapper "
        "with exponential backoff and jitter, and explain how to test it."
    )


def outage(status: int = 503) -> Reply:
    return Reply(status=status, json=error_json("The server is overloaded", "server_error"))


def input_tokens(body: dict[str, Any]) -> int:
    """A request's prompt as chatgate counts it (o200k), for either wire format."""
    messages = list(body["messages"])
    if "system" in body:  # Anthropic: the system prompt and text blocks
        system = body["system"]
        text = system if isinstance(system, str) else " ".join(b["text"] for b in system)
        messages = [{"role": "system", "content": text}] + [
            {
                "role": m["role"],
                "content": m["content"]
                if isinstance(m["content"], str)
                else " ".join(b.get("text", "") for b in m["content"]),
            }
            for m in messages
        ]
    return chatgate.count_tokens("openai/gpt-4o", messages).tokens


class Day:
    def __init__(self, redis: RedisServer) -> None:
        self.cheap, self.premium = FakeOpenAI(), FakeOpenAI()
        self.backup, self.summaries = FakeAnthropic(), FakeOpenAI()
        self.redis = redis
        self.out = io.StringIO()

    def __enter__(self) -> Day:
        for fake in (self.cheap, self.premium, self.backup, self.summaries):
            fake.__enter__()
        summary = completion_json(
            "The user reports repeated sync job failures (connection resets reading S3).",
            prompt_tokens=1500,
            completion_tokens=40,
        )
        self.summaries.script(*[Reply(json=summary) for _ in range(200)])
        return self

    def __exit__(self, *exc: object) -> None:
        for fake in (self.cheap, self.premium, self.backup, self.summaries):
            fake.__exit__()

    def settings(self) -> Any:
        return example.Settings(
            cheap_base=self.cheap.base_url,
            premium_base=self.premium.base_url,
            backup_base=self.backup.base_url,
            summary_base=self.summaries.base_url,
            redis_url=self.redis.url,
            # each call tries its primary once, so each scripted 503 is one fallback
            router_settings={"num_retries": 0, "cooldown_time": 0, "timeout": 30},
        )

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.body for f in (self.cheap, self.premium, self.backup) for r in f.requests]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


@pytest.fixture
def day(redis_server: RedisServer, keys: None) -> Iterator[Day]:
    with Day(redis_server) as d:
        yield d


async def play(day: Day) -> tuple[Any, Any]:
    cache = chatgate.Cache("redis", url=day.redis.url, namespace=uuid.uuid4().hex)
    bot = example.SupportBot(day.settings(), cache, day.out)
    try:
        pat = [("pat", complex_question(i)) for i in range(70)]
        morning = first_questions(range(0, 30)) + pat[:20] + follow_ups(range(0, 15))
        await example.run(bot, morning)
        day.cheap.script(*[outage() for _ in range(CHEAP_OUTAGE)])
        day.premium.script(*[outage() for _ in range(PREMIUM_OUTAGE)])
        midday = follow_ups(range(15, 30)) + pat[20:25]
        await example.run(bot, midday)
        afternoon = first_questions(range(30, USERS)) + follow_ups(range(30, USERS)) + pat[25:]
        await example.run(bot, afternoon)
    finally:
        await cache.aclose()
    return bot, example.close_day(bot)


def test_a_day_of_support(day: Day) -> None:
    bot, report = asyncio.run(play(day))
    faq = [t for t in bot.turns if t.user != "pat"]
    pat = [t for t in bot.turns if t.user == "pat"]

    # tiering: every FAQ answered by a model went to the cheap tier, every incident to premium
    assert {t.tier for t in faq if not t.cache_hit} == {"cheap"}
    assert {t.tier for t in pat if not (t.refused or t.failed)} == {"premium"}
    assert report.cheap == sum(1 for t in faq if not t.cache_hit)
    assert report.cheap_share >= 0.6

    # the cache: every FAQ opens 5 conversations, so 40 of the 50 first questions are served
    # from Redis; the follow-ups are each user's own
    first = {t.user: t for t in reversed(faq)}
    assert report.cache_hits == USERS - len(FAQS)
    assert sum(t.cache_hit for t in first.values()) == USERS - len(FAQS)
    for hit in (t for t in first.values() if t.cache_hit):
        original = next(t for t in faq if t.question == hit.question and not t.cache_hit)
        assert hit.answer == original.answer
        assert hit.cost == 0

    # streaming: every answer request asked for a stream, and the answers were printed
    assert all(body.get("stream") for body in day.chat_requests)
    assert all(t.answer in day.out.getvalue() for t in faq)

    # no request over 4,000 input tokens, summaries included
    assert max(input_tokens(b) for b in day.chat_requests) <= 4000
    assert max(input_tokens(r.body) for r in day.summaries.requests) <= 4000
    assert day.summaries.requests  # pat's long incident thread was summarised

    # the outage: each 503 was answered by the backup provider instead
    assert report.fallbacks == CHEAP_OUTAGE + PREMIUM_OUTAGE
    assert len(day.backup.requests) == CHEAP_OUTAGE + PREMIUM_OUTAGE
    assert not any(t.failed for t in bot.turns)

    # the budget: pat crossed 80 % once, then was refused before the call that could cross it
    assert [(a.budget_id, a.threshold) for a in bot.alerts] == [("user:pat:daily", Decimal("0.8"))]
    assert bot.alerts[0].spent >= Decimal("0.40")
    refused = [t for t in pat if t.refused]
    assert refused
    assert refused == pat[pat.index(refused[0]) :]  # once refused, refused for the day
    pat_spent = sum((t.cost for t in pat), Decimal(0))
    assert pat_spent <= Decimal("0.50")
    (state,) = asyncio.run(bot.budgets.status(user="pat"))
    assert state.spent == pat_spent
    # nothing was sent for a refused question or a cache hit (a fallen-back call: two requests)
    assert len(day.premium.requests) == len(pat) - len(refused)
    assert len(day.cheap.requests) == report.routed - len(pat) + len(refused)

    # the printed costs: the day's total against premium-only, as summed from every answer
    printed = re.search(
        r"cost +\$([\d.]+) today against \$([\d.]+) premium-only", day.out.getvalue()
    )
    assert printed
    total, baseline = (Decimal(x) for x in printed.groups())
    assert total == report.cost.quantize(Decimal("0.000001"))
    assert baseline == report.premium_only_cost.quantize(Decimal("0.000001"))
    assert total < baseline
    on_mini = [t for t in bot.turns if t.group == "cheap"]
    for turn in on_mini:  # gpt-4o costs 50/3 times gpt-4o-mini, input and output alike
        assert turn.premium_cost == turn.cost * Decimal(50) / 3


def test_runs_as_a_script(redis_server: RedisServer) -> None:
    with FakeOpenAI() as openai, FakeAnthropic() as anthropic:
        env = {
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": openai.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test",
            "ANTHROPIC_BASE_URL": anthropic.base_url,
        }
        done = run_script("support_bot", env, "--redis", redis_server.url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "echo: how do i reset my password?" in out  # streamed from the fake
    assert out.count("(cache hit; $0)") == 2  # bob and dee asked ada's question
    assert re.search(r"cost +\$[\d.]+ today against \$[\d.]+ premium-only", out)
    assert "sk-test" not in out + done.stderr
