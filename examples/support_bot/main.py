"""The support bot: FAQ-style questions go to the cheap tier and complex ones to the premium
tier (chatgate's classifier), answers are cached in Redis and streamed, each user has a daily
budget with an alert, each conversation stays under 4,000 input tokens (recent turns plus a
summary), and an outage of the primary provider falls back to another. See README.md.

    OPENAI_API_KEY=... ANTHROPIC_API_KEY=... python examples/support_bot/main.py [--day DAY.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import chatgate
from chatgate.cost.budgets import BudgetAlert
from chatgate.cost.calc import cost_of
from chatgate.types import ChatResponse

AUTO, CHEAP, PREMIUM = "auto", "cheap", "premium"
CHEAP_BACKUP, PREMIUM_BACKUP = "cheap-backup", "premium-backup"
SYSTEM = "You are the support assistant of Acme Cloud. Answer briefly and precisely."
SAMPLE_DAY = (
    ("ada", "How do I reset my password?"),
    ("bob", "how do I reset my   password??"),
    ("ada", "What are your opening hours?"),
    ("cy", "Our deploy fails with this trace:\n```\nTraceback (most recent call last):\n"
           "  File \"app.py\", line 3, in <module>\n    import acme\n"
           "ImportError: libssl.so.3\n```\n"
           "We use the python:3.12-slim image, then pip install acme-sdk. Walk me through "
           "diagnosing it step by step, then propose a Dockerfile fix."),
    ("dee", "How do I reset my password?"),
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    cheap_model: str = "openai/gpt-4o-mini"
    premium_model: str = "openai/gpt-4o"
    cheap_backup_model: str = "anthropic/claude-haiku-4-5"
    premium_backup_model: str = "anthropic/claude-sonnet-4-5"
    # None: each provider's env var (OPENAI_BASE_URL, ANTHROPIC_BASE_URL) or its default URL
    cheap_base: str | None = None
    premium_base: str | None = None
    backup_base: str | None = None
    summary_base: str | None = None  # the summarizer (cheap_model); None: cheap_base
    redis_url: str = "redis://127.0.0.1:6379/0"
    daily_budget: Decimal = Decimal("0.50")
    alert_at: Decimal = Decimal("0.8")
    max_input_tokens: int = 4000
    max_tokens: int = 400  # per answer
    summary_tokens: int = 300
    router_settings: Mapping[str, Any] = field(
        default_factory=lambda: {"num_retries": 2, "timeout": 60, "cooldown_time": 30}
    )


def normalise(text: str) -> str:
    """One spelling per question, so the cache sees one: Unicode NFKC, spaces collapsed, one
    final punctuation mark, and a one-line question in lower case (a FAQ's case means nothing;
    a pasted log's or code's may, so text of several lines keeps its case and line breaks)."""
    lines = [" ".join(line.split()) for line in unicodedata.normalize("NFKC", text).splitlines()]
    text = "\n".join(line for line in lines if line) if len(lines) > 1 else "".join(lines)
    if "\n" not in text:
        text = text.lower()
    return re.sub(r"\s*([?!.])[?!.\s]*$", r"\1", text)


def build_router(s: Settings, cache: chatgate.Cache) -> chatgate.Router:
    """``auto`` is a tiered name: chatgate's classifier sends each request to the cheap or the
    premium group, and a user (``request.user``) who reached the premium tier stays there for
    the session (docs/routing.md, *Tiered routing*). Each group falls back to its backup
    provider. Every call goes through the Redis response cache first: its key is chatgate's
    normalised request (the messages, normalised by ``normalise`` before they got here, the
    model name and parameters); ``user`` is not part of it, so two users who open with the same
    question share one answer."""

    def deployment(name: str, model: str, base: str | None) -> dict[str, Any]:
        params = {"model": model, **({"api_base": base} if base else {})}
        return {"model_name": name, "params": params}

    return chatgate.Router(
        model_list=[
            deployment(CHEAP, s.cheap_model, s.cheap_base),
            deployment(PREMIUM, s.premium_model, s.premium_base),
            deployment(CHEAP_BACKUP, s.cheap_backup_model, s.backup_base),
            deployment(PREMIUM_BACKUP, s.premium_backup_model, s.backup_base),
        ],
        fallbacks=[{CHEAP: [CHEAP_BACKUP]}, {PREMIUM: [PREMIUM_BACKUP]}],
        tiers=[{"model_name": AUTO, "tiers": [CHEAP, PREMIUM]}],
        cache=cache,
        **s.router_settings,
    )


@dataclass
class Turn:
    user: str
    question: str
    answer: str = ""
    group: str | None = None  # the model group that answered; None: cache hit or refused
    cache_hit: bool = False
    refused: bool = False  # by the user's daily budget, before anything was sent
    failed: bool = False  # every provider of its tier failed
    cost: Decimal = Decimal(0)  # answer + any summary written for it
    premium_cost: Decimal = Decimal(0)  # the same tokens at the premium model's price

    @property
    def tier(self) -> str | None:
        return {CHEAP: CHEAP, CHEAP_BACKUP: CHEAP, PREMIUM: PREMIUM, PREMIUM_BACKUP: PREMIUM}.get(
            self.group or ""
        )


class SupportBot:
    def __init__(self, settings: Settings, cache: chatgate.Cache, out: TextIO) -> None:
        self.settings = settings
        self.router = build_router(settings, cache)
        self.alerts: list[BudgetAlert] = []
        self.budgets = chatgate.Budgets(
            [chatgate.Budget("user", settings.daily_budget, "daily", alerts=(settings.alert_at,))],
            on_alert=self.alerts.append,
        )
        self.out = out
        self.turns: list[Turn] = []
        self._conversations: dict[str, chatgate.Conversation] = {}
        # premium-only: what a cheap group's answer would have cost on its provider's premium
        self._premium_for = {
            CHEAP: chatgate.lookup_price(settings.premium_model),
            CHEAP_BACKUP: chatgate.lookup_price(settings.premium_backup_model),
        }
        self._hold = self._worst_case()

    def _worst_case(self) -> Decimal:
        """The most one question can cost: the prompt's cap on the dearest deployment it can
        reach, plus a summary (whose prompt, the old summary and the turns it folds, is held
        at twice the cap)."""
        s = self.settings
        answer = max(
            chatgate.upper_bound(price, s.max_input_tokens, s.max_tokens)
            for group in self.router.reachable(AUTO)
            for routed in self.router.groups[group]
            if (price := chatgate.price_of(routed.deployment)) is not None
        )
        summary_price = chatgate.lookup_price(s.cheap_model)
        assert summary_price is not None, f"{s.cheap_model} has no price"
        summary = chatgate.upper_bound(summary_price, 2 * s.max_input_tokens, s.summary_tokens)
        return answer + summary

    def conversation(self, user: str) -> chatgate.Conversation:
        if user not in self._conversations:
            s = self.settings
            self._conversations[user] = chatgate.Conversation(
                model=AUTO,
                router=self.router,
                system=SYSTEM,
                policy=chatgate.Summarize(
                    max_tokens=s.max_input_tokens,
                    model=s.cheap_model,
                    summary_max_tokens=s.summary_tokens,
                ),
                summarizer={"api_base": s.summary_base or s.cheap_base} if s.cheap_base else {},
                persist=False,
                max_tokens=s.max_tokens,
                temperature=0,  # repeatable, so the cache may serve it
                user=user,  # the tier's session key; not part of the cache key
            )
        return self._conversations[user]

    async def ask(self, user: str, question: str) -> Turn:
        turn = Turn(user, normalise(question))
        self.turns.append(turn)
        self.out.write(f"\n[{user}] {question}\n")
        try:
            hold = await self.budgets.reserve_amount(self._hold, model=AUTO, user=user)
        except chatgate.BudgetExceededError as exc:
            turn.refused = True
            self.out.write(f"  (refused: today's budget is spent; ${exc.remaining:.4f} left)\n")
            return turn
        chat = self.conversation(user)
        before = chat.cost or Decimal(0)
        try:
            stream = await chat.astream(turn.question)
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    self.out.write(chunk.choices[0].delta.content)
            final = await stream.afinal()
        except chatgate.ChatgateError as exc:
            turn.failed = True
            self.out.write(f"  (sorry, no answer now: {type(exc).__name__})\n")
            return turn
        finally:  # a summary written before a failure was paid for too
            turn.cost = (chat.cost or Decimal(0)) - before
            await self.budgets.settle(hold, turn.cost if chat.cost is not None else None)
        self._account(turn, final)
        return turn

    def _account(self, turn: Turn, final: ChatResponse) -> None:
        turn.answer = final.content or ""
        turn.cache_hit = final.meta.cache_hit
        turn.group = None if turn.cache_hit else final.meta.model_name
        answer_cost = final.meta.cost or Decimal(0)
        premium = self._premium_for.get(turn.group or "")
        at_premium = cost_of(final.usage, premium) if final.usage and premium else answer_cost
        turn.premium_cost = turn.cost - answer_cost + at_premium
        how = "cache hit" if turn.cache_hit else f"{turn.group}, {final.meta.model}"
        self.out.write(f"\n  ({how}; ${turn.cost:f})\n")


@dataclass(frozen=True)
class Report:
    questions: int
    answered: int
    refused: int
    cache_hits: int
    routed: int  # answered by a model (not the cache)
    cheap: int  # of those, by the cheap tier
    fallbacks: int  # answered by a backup provider
    alerts: list[BudgetAlert]
    cost: Decimal
    premium_only_cost: Decimal

    @property
    def cheap_share(self) -> float:
        return self.cheap / self.routed if self.routed else 0.0

    def lines(self) -> list[str]:
        saved = 1 - self.cost / self.premium_only_cost if self.premium_only_cost else 0
        return [
            f"questions   {self.questions}: {self.answered} answered, {self.refused} refused "
            f"by a daily budget",
            f"routing     {self.cheap} of {self.routed} to the cheap tier "
            f"({self.cheap_share:.0%}), {self.fallbacks} by a backup provider",
            f"cache       {self.cache_hits} of {self.answered} answers from the Redis cache",
            f"alerts      {', '.join(a.budget_id for a in self.alerts) or 'none'}",
            f"cost        ${self.cost:.6f} today against ${self.premium_only_cost:.6f} "
            f"premium-only ({saved:.0%} saved)",
        ]


def close_day(bot: SupportBot) -> Report:
    """The day's figures, printed after the answers."""
    turns = bot.turns
    answered = [t for t in turns if not (t.refused or t.failed)]
    routed = [t for t in answered if not t.cache_hit]
    result = Report(
        questions=len(turns),
        answered=len(answered),
        refused=sum(t.refused for t in turns),
        cache_hits=sum(t.cache_hit for t in answered),
        routed=len(routed),
        cheap=sum(t.tier == CHEAP for t in routed),
        fallbacks=sum(t.group in (CHEAP_BACKUP, PREMIUM_BACKUP) for t in routed),
        alerts=list(bot.alerts),
        cost=sum((t.cost for t in turns), Decimal(0)),
        premium_only_cost=sum((t.premium_cost for t in turns), Decimal(0)),
    )
    bot.out.write("\n" + "\n".join(result.lines()) + "\n")
    return result


async def run(bot: SupportBot, questions: Iterable[tuple[str, str]]) -> None:
    for user, question in questions:
        await bot.ask(user, question)


def read_day(path: Path) -> list[tuple[str, str]]:
    """JSON Lines: {"user": ..., "question": ...}."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(row["user"], row["question"]) for row in rows]


async def amain(settings: Settings, day: Sequence[tuple[str, str]], out: TextIO) -> Report:
    cache = chatgate.Cache(
        "redis", url=settings.redis_url, namespace="support-bot",
        policy=chatgate.CachePolicy(ttl=24 * 3600),
    )  # fmt: skip
    bot = SupportBot(settings, cache, out)
    try:
        await run(bot, day)
    finally:
        await cache.aclose()
    return close_day(bot)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A day of support questions.")
    parser.add_argument("--day", type=Path, help="JSON Lines of {user, question}")
    parser.add_argument("--redis", default=Settings.redis_url)
    parser.add_argument("--budget", type=Decimal, default=Settings.daily_budget, help="USD/user")
    args = parser.parse_args(argv)
    day = read_day(args.day) if args.day else list(SAMPLE_DAY)
    settings = Settings(redis_url=args.redis, daily_budget=args.budget)
    asyncio.run(amain(settings, day, sys.stdout))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
