"""What the gateway keeps across config reloads: the database (virtual keys, the spend log,
budget counters), the budgets in force, the response cache, per-key rate limits, and the
connections to the shared-state Redis (``router_settings.redis_url``), which holds the router's
state and the per-key limits for every worker and instance.

Opened once at start-up (migrations included) and closed at shutdown, after the last spend
record is flushed. A reload keeps the database and the cache (a new ``database_url`` or cache
backend takes a restart); it does replace the budgets, which are plain config.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from chatgate.config import Config, GeneralSettings, RouterSettings
from chatgate.cost.budgets import Budget, Budgets, hold_ttl_for
from chatgate.router.guarded import budget_of
from chatgate.router.redis_state import RedisState
from chatgate.router.state import MemoryState, RouterState

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from chatgate.cache import Cache
    from chatgate.cost.budgets_sql import SqlBudgetBackend
    from chatgate.cost.usage_sql import SqlSink
    from chatgate.server.keys import KeyStore

__all__ = ["DATABASE_ENV", "Services", "SpendHooks", "database_url", "spend_wal_dir"]

log = logging.getLogger("chatgate.server")

DATABASE_ENV = "CHATGATE_DATABASE_URL"
DEFAULT_DATABASE = "sqlite:///chatgate.db"


def database_url(settings: GeneralSettings) -> str:
    return settings.database_url or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE


class SpendHooks(TypedDict, total=False):
    on_pending: Callable[[int], None]  # records not in the database yet
    on_dropped: Callable[[int], None]  # records lost past the memory cap


def spend_wal_dir(url: str) -> Path:
    """The spend log's write-ahead directory: beside the SQLite file, else the working one."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).parent / "chatgate-spend-wal"
    return Path("chatgate-spend-wal")


def budgets_of(settings: GeneralSettings) -> list[Budget]:
    return [budget_of(b) for b in settings.budgets]


class Services:
    def __init__(
        self,
        on_shared_state_fallback: Callable[[], None] | None = None,
        on_shared_state_refusal: Callable[[str, str], None] | None = None,
        spend_hooks: SpendHooks | None = None,
    ) -> None:
        self.engine: AsyncEngine | None = None
        self.keys: KeyStore | None = None
        self.spend: SqlSink | None = None
        self.budgets: Budgets = Budgets([])
        self.cache: Cache | None = None
        self.key_limits: RouterState = MemoryState()  # per key RPM/TPM: in Redis if configured
        self._memory_limits = self.key_limits
        self._budget_backend: SqlBudgetBackend | None = None
        self._shared: dict[tuple[str, str], RedisState] = {}
        self._on_fallback = on_shared_state_fallback
        self._on_refusal = on_shared_state_refusal  # (scope: router or key, reason)
        self._spend_hooks = spend_hooks or {}

    async def open(self, config: Config) -> None:
        from chatgate.cost.budgets_sql import SqlBudgetBackend
        from chatgate.cost.usage_sql import SqlSink
        from chatgate.server.keys import KeyStore
        from chatgate.store.engine import create_engine
        from chatgate.store.migrations import migrate

        settings = config.general_settings
        url = database_url(settings)
        self.engine = create_engine(url)
        await migrate(self.engine)
        self.keys = KeyStore(self.engine, cache_ttl_s=settings.key_cache_ttl_s)
        # 100-row batches: building a 500-row insert holds the event loop long enough to show
        # in p99 (bench/gateway.py, c=64: 3,100 -> 4,400 req/s and p99 73 -> 42 ms)
        wal_dir = settings.spend_wal_dir or spend_wal_dir(url)
        self.spend = SqlSink(self.engine, batch_size=100, wal_dir=wal_dir, **self._spend_hooks)
        self.spend.start()
        self._budget_backend = SqlBudgetBackend(self.engine)
        self.configure(config)
        self.cache = _cache(config)

    def router_state(self, settings: RouterSettings) -> RouterState | None:
        """The shared state for routers built from ``settings`` (None: each its own memory)."""
        url = settings.shared_state_url()
        if url is None:
            return None
        return self._shared_state(url, settings.redis_namespace, settings, "router")

    def _shared_state(
        self, url: str, namespace: str, settings: RouterSettings, scope: str
    ) -> RedisState:
        state = self._shared.get((url, namespace))
        if state is None:
            refused = None
            if self._on_refusal is not None:
                refused = functools.partial(self._on_refusal, scope)
            state = RedisState(
                url,
                namespace=namespace,
                failure=settings.shared_state_failure,
                on_fallback=self._on_fallback,
                on_refusal=refused,
            )
            self._shared[(url, namespace)] = state
        return state

    async def ping_shared_state(self) -> None:
        """Raise unless the shared-state Redis in use answers (a readiness check)."""
        if isinstance(self.key_limits, RedisState):
            await self.key_limits.ping()

    def configure(self, config: Config) -> None:
        """Apply a (re)loaded config's budgets, where per-key limits live and what shared
        state does while Redis is down; the counters stay where they are."""
        routing = config.router_settings
        url = routing.shared_state_url()
        self.key_limits = (
            self._memory_limits
            if url is None
            else self._shared_state(url, f"{routing.redis_namespace}.keys", routing, "key")
        )
        for state in self._shared.values():
            state.failure = routing.shared_state_failure
        if self._budget_backend is None:
            return
        settings = config.general_settings
        ttl = settings.budget_hold_ttl_s or hold_ttl_for(routing.timeout)
        self.budgets = Budgets(
            budgets_of(settings), backend=self._budget_backend, reservation_ttl_s=ttl
        )

    async def close(self) -> None:
        if self.spend is not None:
            await self.spend.aclose()  # every record written, or spilled to disk
        if self.cache is not None:
            await self.cache.aclose()
        for state in self._shared.values():
            await state.aclose()
        if self.engine is not None:
            await self.engine.dispose()


def _cache(config: Config) -> Cache | None:
    settings = config.general_settings.cache
    if settings is None:
        return None
    from chatgate.cache.settings import cache_from_settings

    return cache_from_settings(settings)
