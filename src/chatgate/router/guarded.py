"""Budgets and the response cache around a routed call: the one implementation behind both a
library Router's own calls (``Router(cache=..., budgets=...)``) and the gateway
(``server/serving.py``).

Before anything is sent, the call's worst case (over every group it may reach: fallbacks,
``n`` choices, the output cap) is held on every budget that applies, all or none
(``BudgetExceededError`` otherwise); then the call goes through the cache; the hold is settled
with the exact cost of the answer, or of a stream once it is over (what was produced, if it
was cut short). A call that fails is released (nothing was billed); a call cancelled while in
flight is charged its hold: the upstream may bill anything up to it and we never learn what.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

from chatgate.cache.default import CacheArg, resolve_cache
from chatgate.cache.embeddings import embed_through
from chatgate.cache.layer import Cache
from chatgate.cache.policy import CacheControl
from chatgate.cache.settings import cache_from_settings, parse_settings
from chatgate.cache.sources import raise_if_truncated
from chatgate.chat_request import MessageLike, chat_request
from chatgate.config import BudgetSettings, CacheSettings
from chatgate.cost.budget_tags import spend_tags
from chatgate.cost.budgets import Budget, Budgets, Reservation, hold_ttl_for
from chatgate.cost.calc import cost_of, partial_usage, price_of
from chatgate.embedding_types import EmbeddingRequest, EmbeddingResponse
from chatgate.errors import InvalidRequestError
from chatgate.router.budgeting import embedding_worst_case, routed_worst_case
from chatgate.router.fallbacks import Allowed
from chatgate.router.options import RouteArgs, RoutedCompletionArgs, split_routed_args
from chatgate.stream import ChatStream
from chatgate.telemetry import steps
from chatgate.tiering.route import TierHints
from chatgate.types import ChatRequest, ChatResponse, Usage

if TYPE_CHECKING:
    from chatgate.router.router import Router

__all__ = [
    "Guard",
    "Payer",
    "RouterBudgetsArg",
    "RouterCacheArg",
    "answer_cost",
    "budget_of",
    "hold_amount",
    "hold_chat",
    "router_budgets",
    "router_cache",
    "served_by",
    "through_cache",
]

Answer = ChatResponse | ChatStream


@dataclass(slots=True)  # not frozen: built on every gateway request, and frozen's init is slower
class Payer:
    """Who a call is charged to: the subjects its budgets are looked up by, and budgets of
    the caller's own (a gateway key's)."""

    key: str | None = None
    user: str | None = None
    team: str | None = None
    extra: tuple[Budget, ...] = ()
    tags: tuple[str, ...] = ()  # the spend tags: a tag budget applies when its tag is here

    def who(self) -> dict[str, str | None]:
        return {"key": self.key, "user": self.user, "team": self.team}


async def hold_chat(
    budgets: Budgets,
    router: Router,
    request: ChatRequest,
    payer: Payer,
    allowed: Allowed | None = None,
) -> Reservation | None:
    """Hold ``request``'s worst case on every budget that applies (None: none applies)."""
    model, who = request.model, payer.who()
    if not budgets.lines_for(model=model, tags=payer.tags, extra=payer.extra, **who):
        return None
    # The router picks after the hold is taken: hold the worst case over every deployment the
    # call may reach, fallbacks the caller may use included, n choices each.
    amount = routed_worst_case(router, budgets, request, allowed)
    with steps.step("chatgate.budget.hold"):
        return await budgets.reserve_amount(
            amount, model=model, tags=payer.tags, extra=payer.extra, **who
        )


async def hold_amount(
    budgets: Budgets, model: str, amount: Decimal, payer: Payer
) -> Reservation | None:
    """Hold a known amount (embeddings) on every budget that applies (None: none applies)."""
    who = payer.who()
    if not budgets.lines_for(model=model, tags=payer.tags, extra=payer.extra, **who):
        return None
    return await budgets.reserve_amount(
        amount, model=model, tags=payer.tags, extra=payer.extra, **who
    )


async def through_cache(
    cache: Cache | None,
    control: CacheControl | None,
    request: ChatRequest,
    call: Callable[[], Awaitable[Answer]],
    *,
    sync: bool = False,
    raise_on_truncation: bool = False,
    partition: str = "",
) -> Answer:
    """``call()``, or the cache's answer to ``request`` (keyed by its model_list name, and
    ``partition``: what else keeps answers apart)."""
    if cache is None:
        return await call()
    with steps.step("chatgate.cache", holds_calls=True):  # the routed call is its child
        return await cache.get_or_call(
            request,
            request.model,
            call,
            control=control,
            sync=sync,
            raise_on_truncation=raise_on_truncation,
            partition=partition,
        )


def served_by(router: Router, name: str) -> str:
    """Where a call to ``name`` may be served (every deployment it may reach): a Router's cache
    partition, so that two Routers giving one name to different models never share answers
    through the process's cache."""
    return ",".join(
        f"{d.deployment.provider}/{d.deployment.model}@{d.deployment.api_base}"
        for group in router.reachable(name)
        for d in router.groups[group]
    )


def answer_cost(answer: Answer | None, request: ChatRequest) -> tuple[Decimal | None, Usage | None]:
    """What an answer cost (None: unknown, so the hold is charged) and its usage. No answer
    cost nothing; a stream cut short cost what its tokens so far cost (counted here when the
    provider sent no usage)."""
    if answer is None:
        return Decimal(0), None
    if isinstance(answer, ChatResponse):
        return answer.meta.cost, answer.usage
    so_far = answer.snapshot()
    if so_far.meta.cost is not None or so_far.meta.cache_hit:
        return so_far.meta.cost, so_far.usage
    deployment = answer.deployment
    if deployment is None:
        return None, so_far.usage
    usage = partial_usage(f"{deployment.provider}/{deployment.model}", request.messages, so_far)
    price = price_of(deployment, so_far.model)
    return (None if price is None else cost_of(usage, price)), usage


RouterCacheArg = Cache | CacheSettings | Mapping[str, Any] | bool | None
BudgetLike = Budget | BudgetSettings | Mapping[str, Any]
RouterBudgetsArg = Budgets | BudgetLike | Sequence[BudgetLike] | None


def router_cache(value: RouterCacheArg) -> Cache | Literal["default"] | None:
    """``Router(cache=...)``: None, the process default (``configure_cache``), as for
    ``completion``; True, a cache of the Router's own in memory; a Cache; the config's cache
    settings (``{"backend": "sqlite", "path": ...}``, or ``general_settings.cache``); False,
    never."""
    if value is None:
        return "default"
    if value is False:
        return None
    if value is True:
        return Cache()
    if isinstance(value, Cache):
        return value
    if isinstance(value, CacheSettings | Mapping):
        return cache_from_settings(value)
    raise InvalidRequestError(
        "Router(cache=...) takes True, False, a chatgate.Cache or cache settings like "
        f"{{'backend': 'sqlite', 'path': 'cache.db'}}, not {type(value).__name__}",
        param="cache",
    )


def router_budgets(value: RouterBudgetsArg, longest_call_s: float) -> Budgets | None:
    """``Router(budgets=...)``: a Budgets, or the budgets themselves (Budget objects or the
    config's budget settings, ``{"scope": "user", "limit": 5, "window": "daily"}`` or
    ``general_settings.budgets``), counted in this process."""
    if value is None or isinstance(value, Budgets):
        return value
    items = [value] if isinstance(value, Budget | BudgetSettings | Mapping) else list(value)
    budgets = [item if isinstance(item, Budget) else _budget(item) for item in items]
    return Budgets(budgets, reservation_ttl_s=hold_ttl_for(longest_call_s))


def _budget(value: object) -> Budget:
    if isinstance(value, BudgetSettings):
        return budget_of(value)
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            "Router(budgets=...) takes a chatgate.Budgets, Budget objects or budget settings "
            f"like {{'scope': 'user', 'limit': 5}}, not {type(value).__name__}",
            param="budgets",
        )
    return budget_of(parse_settings(BudgetSettings, value, "budgets"))


def budget_of(settings: BudgetSettings) -> Budget:
    """A budget of the config (``general_settings.budgets``) as the Budgets take it."""
    s = settings
    return Budget(s.scope, s.limit, s.window, s.subject, tuple(s.alerts))


class Guard:
    """A Router's cache and budgets, around each of its own calls. ``cache``: a Cache,
    "default" (the process default, ``chatgate.configure_cache``) or None (never)."""

    def __init__(self, cache: Cache | Literal["default"] | None, budgets: Budgets | None) -> None:
        self.cache = cache
        self.budgets = budgets
        self._settling: set[asyncio.Task[None]] = set()

    async def completion(
        self,
        router: Router,
        model: str,
        messages: Sequence[MessageLike],
        stream: bool,
        tier: str | None,
        kw: RoutedCompletionArgs,
        *,
        sync: bool,
    ) -> Answer:
        """``Router.acompletion``: the request built from the caller's keywords, routed under
        the budgets, through the cache."""
        params, options, guard = split_routed_args(kw)
        if stream:
            params["stream"] = True
        request = chat_request(model, messages, params, strict=False)  # names checked above
        hints = TierHints(tier=tier) if tier is not None else None

        async def route(sync: bool, raise_on_truncation: bool) -> Answer:
            how = cast(RouteArgs, {**options, "raise_on_truncation": raise_on_truncation})
            return await router.aroute(request, sync=sync, tier=hints, **how)

        payer = Payer(
            guard.get("key"), request.user, guard.get("team"),
            tags=spend_tags(guard.get("spend_tags")),
        )  # fmt: skip
        return await self.chat(
            router, request, route, payer=payer, cache=guard.get("cache"), sync=sync,
            raise_on_truncation=options.get("raise_on_truncation", False),
        )  # fmt: skip

    async def chat(
        self,
        router: Router,
        request: ChatRequest,
        route: Callable[[bool, bool], Awaitable[Answer]],
        *,
        payer: Payer,
        cache: CacheArg = None,
        sync: bool = False,
        raise_on_truncation: bool = False,
    ) -> Answer:
        """``route(sync, raise_on_truncation)`` under the budgets, through the cache."""
        cached = resolve_cache(cache, self.cache)
        hold = None
        if self.budgets is not None:
            hold = await hold_chat(self.budgets, router, request, payer)
        stream_raises = raise_on_truncation and bool(request.stream)
        try:
            if cached is None:
                answer = await route(sync, stream_raises)
            else:
                answer = await through_cache(
                    *cached,
                    request,
                    lambda: route(False, False),
                    sync=sync,
                    raise_on_truncation=stream_raises,
                    partition=served_by(router, request.model),
                )
        except BaseException as exc:
            await self._unwind(hold, exc)
            raise
        if isinstance(answer, ChatStream):
            if hold is not None:
                stream = answer
                stream.add_done_callback(lambda *_: self._settle_stream(hold, stream, request))
            return answer
        await self.settle(hold, answer.meta.cost)
        raise_if_truncated(answer, raise_on_truncation)  # after settling: it was paid for
        return answer

    async def embedding(
        self,
        router: Router,
        request: EmbeddingRequest,
        route: Callable[[], Awaitable[EmbeddingResponse]],
        *,
        payer: Payer,
        cache: CacheArg = None,
    ) -> EmbeddingResponse:
        """``route()`` under the budgets (the input at the dearest price it may reach), through
        the cache."""
        cached = resolve_cache(cache, self.cache)
        hold = None
        if self.budgets is not None:
            amount = embedding_worst_case(router, request)
            if amount is not None:
                hold = await hold_amount(self.budgets, request.model, amount, payer)
        try:
            if cached is None:
                response = await route()
            else:
                layer, control = cached
                where = served_by(router, request.model)
                response = await embed_through(
                    layer, request, request.model, route, control=control, partition=where
                )
        except BaseException as exc:
            await self._unwind(hold, exc)
            raise
        await self.settle(hold, response.meta.cost)
        return response

    async def settle(self, hold: Reservation | None, cost: Decimal | None) -> None:
        if hold is not None and self.budgets is not None:
            await self.budgets.settle(hold, cost)

    async def _unwind(self, hold: Reservation | None, exc: BaseException) -> None:
        cancelled = isinstance(exc, asyncio.CancelledError)
        await self.settle(hold, None if cancelled else Decimal(0))

    def _settle_stream(self, hold: Reservation, stream: ChatStream, request: ChatRequest) -> None:
        cost, _ = answer_cost(stream, request)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to settle on: the hold expires (Budgets.maintain)
            return
        task = loop.create_task(self.settle(hold, cost))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def drain(self) -> None:
        """Wait for the settlements of streams that have ended (a Router's ``aclose``)."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
