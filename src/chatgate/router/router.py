"""Router: one model name, many deployments; retries, cooldowns, limits and fallbacks.

A call has one deadline (``timeout``) that covers every attempt, wait and fallback together.
Within a model group a retryable failure is retried (preferring another healthy deployment,
else after a full-jitter backoff that honours Retry-After) up to ``num_retries`` times; then
the call moves down the group's ``fallbacks``. A stream is retried only until its first chunk
is ready: after that a failure is raised on the stream, never a silent switch mid-answer.
A caller may say which groups it may use (``allowed``): a fallback of any kind to another group
is then skipped, and logged in the attempt log, never tried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Unpack

from chatgate import config as config_module
from chatgate.cache.default import CacheArg
from chatgate.chat_request import MessageLike
from chatgate.config import Config, ModelEntry, RouterSettings
from chatgate.cost import budget_tags
from chatgate.cost.budgets import Budgets
from chatgate.embedding_types import EmbeddingInput, EmbeddingRequest, EmbeddingResponse
from chatgate.embeddings import build_embedding
from chatgate.errors import InvalidRequestError
from chatgate.router.admission import Admission
from chatgate.router.attempt import GroupRunner, Job
from chatgate.router.call import CallContext
from chatgate.router.chat import ChatJob
from chatgate.router.deployments import RoutedDeployment, build_groups
from chatgate.router.embed import EmbeddingJob
from chatgate.router.fallbacks import Allowed, FallbackTables, everything
from chatgate.router.guarded import (
    Guard,
    Payer,
    RouterBudgetsArg,
    RouterCacheArg,
    router_budgets,
    router_cache,
)
from chatgate.router.options import RoutedCompletionArgs, router_settings
from chatgate.router.runtime import Runtime, state_for
from chatgate.router.state import Health, MemoryState, RouterState
from chatgate.router.strategies import pick_for
from chatgate.router.tiered import build_tiered, tier_sender
from chatgate.router.walk import routed
from chatgate.stream import ChatStream
from chatgate.tiering.route import TieredModel, TierHints
from chatgate.tiering.settings import TieredModelSettings
from chatgate.transport.loop_thread import run_sync
from chatgate.types import ChatRequest, ChatResponse

__all__ = ["Router"]

R = TypeVar("R")


class Router:
    """``Router(model_list=[...], routing_strategy="latency-based", fallbacks=[{"smart":
    ["cheap"]}], num_retries=2, timeout=30)``; then ``await router.acompletion("smart", msgs)``.

    Settings not given take RouterSettings' defaults (see docs/routing.md). ``clock``,
    ``sleep`` and ``rng`` exist so tests can drive time and chance deterministically.
    One Router serves one event loop (or only the sync API, which runs on chatgate's own).
    With ``redis_url`` (or ``redis_host``) in the settings its state is shared through Redis
    by every Router on that namespace (``shared_state_failure``: what calls get while Redis is
    unreachable); ``await router.aclose()`` then closes the connection.
    ``cache``: as ``completion(cache=...)`` takes it, for every call (None: the process default
    of ``configure_cache``; True: one of its own in memory; cache settings; False: none);
    ``budgets``: a Budgets, or Budget objects / budget settings, held and settled on every
    call (docs/routing.md, "Caching and budgets").
    """

    def __init__(
        self,
        model_list: Sequence[ModelEntry | Mapping[str, Any]] = (),
        *,
        routing_strategy: str | None = None,
        num_retries: int | None = None,
        timeout: float | None = None,
        fallbacks: list[dict[str, list[str]]] | None = None,
        context_window_fallbacks: list[dict[str, list[str]]] | None = None,
        content_policy_fallbacks: list[dict[str, list[str]]] | None = None,
        cooldown_time: float | None = None,
        allowed_fails: int | None = None,
        settings: RouterSettings | Mapping[str, Any] | None = None,
        state: RouterState | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: random.Random | None = None,
        env: Mapping[str, str] | None = None,
        tiers: Sequence[TieredModelSettings | Mapping[str, Any]] = (),
        cache: RouterCacheArg = None,
        budgets: RouterBudgetsArg = None,
    ) -> None:
        given = {
            "routing_strategy": routing_strategy,
            "num_retries": num_retries,
            "timeout": timeout,
            "fallbacks": fallbacks,
            "context_window_fallbacks": context_window_fallbacks,
            "content_policy_fallbacks": content_policy_fallbacks,
            "cooldown_time": cooldown_time,
            "allowed_fails": allowed_fails,
        }
        self.settings = router_settings(settings, given)
        self.groups: dict[str, list[RoutedDeployment]] = build_groups(model_list, env)
        s = self.settings
        self.fallbacks = FallbackTables(s, self.groups)
        self._owns_state = state is None
        self.state: RouterState = state or state_for(s, clock)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._admission = Admission(s.max_parallel_requests, s.max_queue)
        self._health = Health(s.allowed_fails, s.failure_window, s.cooldown_time)
        self._runtime = Runtime(s, self.state, self._health, clock, sleep, self._rng)
        self._runners: dict[str, GroupRunner] = {}
        self._env = env
        for name, deployments in self.groups.items():
            self._runners[name] = self._runner(name, deployments)
        # names whose tier a local classifier picks (docs/routing.md, "Tiered routing")
        self.tiered: dict[str, TieredModel] = build_tiered(
            [*s.tiers, *tiers], self.groups, self.state
        )
        self.guard = Guard(router_cache(cache), router_budgets(budgets, s.timeout))

    @property
    def budgets(self) -> Budgets | None:  # what every call of this Router holds and settles
        return self.guard.budgets

    def _runner(self, name: str, deployments: list[RoutedDeployment]) -> GroupRunner:
        s = self.settings
        pick = pick_for(s.routing_strategy, exploration=s.latency_exploration)
        return GroupRunner(name, deployments, pick, self._runtime)

    def add_deployments(self, model_list: Sequence[ModelEntry | Mapping[str, Any]]) -> None:
        """Serve more model names (a gateway adds ``openai/<model>`` names on first use).
        Names already served are an error: groups change only by building a new Router."""
        groups = build_groups(model_list, self._env)
        taken = sorted(set(groups) & set(self.groups))
        if taken:
            raise config_module.ConfigError(f"already served: {', '.join(taken)}", param="model")
        for name, deployments in groups.items():
            self.groups[name] = deployments
            self._runners[name] = self._runner(name, deployments)

    def remove_group(self, name: str) -> None:
        """Stop serving ``name`` (a gateway forgets names it added on first use); calls
        already routed to it finish; what this process kept about its deployments goes."""
        deployments = self.groups.pop(name, [])
        self._runners.pop(name, None)
        if isinstance(self.state, MemoryState):
            self.state.forget([routed.id for routed in deployments])

    @classmethod
    def from_config(
        cls, source: str | Path | Config, *, env: Mapping[str, str] | None = None, **kw: Any
    ) -> Router:
        """From a YAML file (``os.environ/NAME`` values resolved) or a parsed Config."""
        config = source if isinstance(source, Config) else config_module.load(source, env)
        return cls(config.model_list, settings=config.router_settings, env=env, **kw)

    @property
    def model_names(self) -> list[str]:
        return [*self.groups, *self.tiered]

    async def aclose(self) -> None:
        """Close the shared-state connection this Router opened on this loop (a given
        ``state`` is the caller's to close)."""
        await self.guard.drain()
        close = getattr(self.state, "aclose", None)
        if self._owns_state and close is not None:
            await close()
        for tiered in self.tiered.values():  # their sessions' shared floors
            await tiered.aclose()

    def close(self) -> None:
        """``aclose`` for the blocking API's connection (on chatgate's own loop)."""
        run_sync(self.aclose())

    # -- calls ------------------------------------------------------------------------------

    async def acompletion(
        self,
        model: str,
        messages: Sequence[MessageLike],
        *,
        stream: bool = False,
        tier: str | None = None,
        **kw: Unpack[RoutedCompletionArgs],
    ) -> ChatResponse | ChatStream:
        """Like ``chatgate.acompletion`` with ``model`` a model_list name; the keywords are
        OpenAI's request fields (``ChatParams``) and how to route (``RouteArgs``); ``tier``:
        for a tiered name, the tier to use instead of the classifier's."""
        if model not in self.groups and model not in self.tiered:
            raise self._unknown(model)
        return await self.guard.completion(self, model, messages, stream, tier, kw, sync=False)

    def completion(
        self,
        model: str,
        messages: Sequence[MessageLike],
        *,
        stream: bool = False,
        tier: str | None = None,
        **kw: Unpack[RoutedCompletionArgs],
    ) -> ChatResponse | ChatStream:
        """The blocking form of ``acompletion``; runs on chatgate's private loop thread."""
        if model not in self.groups and model not in self.tiered:
            raise self._unknown(model)
        return run_sync(self.guard.completion(self, model, messages, stream, tier, kw, sync=True))

    async def aroute(
        self,
        request: ChatRequest,
        *,
        sync: bool = False,
        tags: Sequence[str] | None = None,
        priority: int = 0,
        timeout: float | None = None,
        num_retries: int | None = None,
        disable_fallbacks: bool = False,
        raise_on_truncation: bool = False,
        download_images: bool = False,
        allowed: Allowed | None = None,
        auto_prompt_cache: bool = False,
        tier: TierHints | None = None,
    ) -> ChatResponse | ChatStream:
        """Route a validated request whose ``model`` is a model_list name (what the gateway
        calls). Returns a ChatResponse, or a ChatStream whose first chunk is already in.
        ``allowed``: the groups the caller may use; a fallback to any other is skipped (and
        logged in the attempt log). The requested group itself is the caller's to check.
        ``auto_prompt_cache``: Claude backends get cache breakpoints (a gateway key's opt-in).
        ``tier``: for a tiered name, the caller's override, session and listener. No cache and
        no budgets here: those are the caller's (``router/guarded.py``)."""
        if request.model in self.tiered:
            send = tier_sender(
                self, timeout or self.settings.timeout, sync=sync, tags=tags, priority=priority,
                num_retries=num_retries, disable_fallbacks=disable_fallbacks,
                raise_on_truncation=raise_on_truncation, download_images=download_images,
                allowed=allowed,
            )  # fmt: skip
            return await self.tiered[request.model].route(request, tier or TierHints(), send)
        call = self._call(
            request.model,
            tags,
            timeout,
            num_retries,
            sync=sync,
            raise_on_truncation=raise_on_truncation,
            download_images=download_images,
        )
        call.auto_prompt_cache = auto_prompt_cache
        return await self._run(ChatJob(request), call, priority, disable_fallbacks, allowed)

    async def aembedding(
        self,
        model: str,
        input: EmbeddingInput,
        *,
        tags: Sequence[str] | None = None,
        priority: int = 0,
        timeout: float | None = None,
        num_retries: int | None = None,
        disable_fallbacks: bool = False,
        key: str | None = None,
        team: str | None = None,
        spend_tags: Sequence[str] | None = None,
        cache: CacheArg = None,
        **params: Any,
    ) -> EmbeddingResponse:
        """Like ``chatgate.aembedding`` with ``model`` a model_list name, routed as chat is:
        strategy, limits, retries, cooldowns and fallbacks, under the Router's budgets
        and through its cache (``key``, ``team``, ``spend_tags``, ``cache``: as for
        ``acompletion``).
        ``params``: the OpenAI fields (``encoding_format``, ``dimensions``, ``user``, ...)."""
        if model not in self.groups:
            raise self._unknown(model)
        request = build_embedding(model, {**params, "input": input})

        async def route() -> EmbeddingResponse:
            return await self.aroute_embedding(
                request, tags=tags, priority=priority, timeout=timeout,
                num_retries=num_retries, disable_fallbacks=disable_fallbacks,
            )  # fmt: skip

        payer = Payer(key, request.user, team, tags=budget_tags.spend_tags(spend_tags))
        return await self.guard.embedding(self, request, route, payer=payer, cache=cache)

    def embedding(self, model: str, input: EmbeddingInput, **kw: Any) -> EmbeddingResponse:
        """The blocking form of ``aembedding``; runs on chatgate's private loop thread."""
        return run_sync(self.aembedding(model, input, **kw))

    async def aroute_embedding(
        self,
        request: EmbeddingRequest,
        *,
        tags: Sequence[str] | None = None,
        priority: int = 0,
        timeout: float | None = None,
        num_retries: int | None = None,
        disable_fallbacks: bool = False,
        allowed: Allowed | None = None,
    ) -> EmbeddingResponse:
        """Route a validated embeddings request whose ``model`` is a model_list name
        (``allowed`` as for ``aroute``)."""
        call = self._call(request.model, tags, timeout, num_retries)
        job = EmbeddingJob(request)
        return await self._run(job, call, priority, disable_fallbacks, allowed)

    def reachable(self, name: str, allowed: Allowed | None = None) -> list[str]:
        """The model groups a call to ``name`` may be served by, in the order they would be
        tried: ``name``, its ``fallbacks``, and the context-window and content-policy
        fallbacks of each group reached, transitively; only groups ``allowed`` (``name``
        always). What a budget hold must cover. A tiered name: every tier's groups."""
        tiered = self.tiered.get(name)
        if tiered is not None:
            found = [g for t in tiered.tiers for g in self.reachable(t, allowed)]
            return list(dict.fromkeys(found))
        return self.fallbacks.reachable(name, allowed or everything)

    def _call(
        self,
        model: str,
        tags: Sequence[str] | None,
        timeout: float | None,
        num_retries: int | None,
        *,
        sync: bool = False,
        raise_on_truncation: bool = False,
        download_images: bool = False,
    ) -> CallContext:
        if model not in self.groups:
            raise self._unknown(model)
        return CallContext.begin(
            self._runtime,
            timeout,
            num_retries,
            tags,
            sync=sync,
            raise_on_truncation=raise_on_truncation,
            download_images=download_images,
        )

    async def _run(
        self,
        job: Job[R],
        call: CallContext,
        priority: int,
        no_fallbacks: bool,
        allowed: Allowed | None = None,
    ) -> R:
        return await routed(
            job, call, priority, no_fallbacks, allowed or everything,
            self._admission, self._runners, self.fallbacks, self._runtime,
        )  # fmt: skip

    def _unknown(self, model: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"model {model!r} is not in the router's model_list; "
            f"known names: {', '.join(self.model_names) or 'none'}",
            param="model",
        )

    def now(self) -> float:
        """The router's clock (the injected one in tests)."""
        return self._clock()
