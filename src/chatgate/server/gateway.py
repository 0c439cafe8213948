"""Gateway: the parts of the app that outlive a config reload — the current GatewayState
(swapped whole by ``reload``), metrics, the usage pipeline, readiness checks — and the process
lifecycle: start-up, SIGHUP, draining on SIGTERM, shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from sqlalchemy import text

from chatgate import config as config_module
from chatgate.cost.encodings import encoding_for_model, get_encoding
from chatgate.errors import ChatgateError
from chatgate.providers.registry import prepare_deployment, stop_prepared
from chatgate.server.access_log import ACCESS_LOGGER, AccessLogWriter, access_line
from chatgate.server.context import RequestContext, usage_record
from chatgate.server.health import ReadinessCheck
from chatgate.server.log_secrets import install_gateway_log_filter
from chatgate.server.metrics import Metrics
from chatgate.server.pipeline import UsagePipeline
from chatgate.server.services import Services
from chatgate.server.state import GatewayState
from chatgate.server.tracing import spend_written
from chatgate.telemetry import setup as otel
from chatgate.transport import http

__all__ = ["WORKERS_ENV", "Gateway", "ReloadError"]

log = logging.getLogger("chatgate.server")

# Set by `chatgate serve --workers N` for its workers: reloads then go through the supervisor.
WORKERS_ENV = "CHATGATE_WORKERS"


class ReloadError(Exception):
    """The new config is not usable; the old one stays in force."""


class Gateway:
    def __init__(
        self,
        config: config_module.Config,
        *,
        zero_config: bool | None = None,
        config_path: str | None = None,
        checks: Mapping[str, ReadinessCheck] | None = None,
        access_log: bool = False,
        freeze_heap: bool = False,
    ) -> None:
        self.metrics = Metrics(max_models=config.general_settings.metrics_max_models)
        otel_settings = config.general_settings.otel  # read at start-up: a reload keeps it
        self.telemetry = (
            otel.start(otel_settings, os.environ, on_drop=self.metrics.otel_spans_dropped.inc)
            if otel.wanted(otel_settings, os.environ)
            else None
        )
        self.services = Services(
            on_shared_state_fallback=self.metrics.shared_state_fallbacks.inc,
            on_shared_state_refusal=self.metrics.shared_state_refused,
            spend_hooks=self.metrics.spend_hooks(),
        )
        self.state = GatewayState.build(config, self.services, zero_config=zero_config)
        self.config_path = config_path
        self._zero_config = zero_config
        self._writer = AccessLogWriter(on_drop=self.metrics.log_dropped.inc) if access_log else None
        self.pipeline = UsagePipeline(
            [self.metrics.record, self._log_line],
            lossless=[self._spend_record],
            on_drop=self.metrics.dropped.inc,
            after_drain=self._writer.flush if self._writer is not None else None,
        )
        self.checks: dict[str, ReadinessCheck] = {
            "accepting": self._accepting,
            "database": self._database,
            "cache": self._cache,
            "shared_state": self.services.ping_shared_state,
            "spend_log": self._spend_log,
            **(checks or {}),
        }
        self.draining = False
        self._access = logging.getLogger(ACCESS_LOGGER)
        self._background: set[asyncio.Task[Any]] = set()
        self._freeze_heap = freeze_heap

    # --- per request -----------------------------------------------------------------------

    def _log_line(self, ctx: RequestContext) -> None:
        direct = self._writer.direct() if self._writer is not None else None
        if direct is not None:
            direct.add(access_line(ctx).decode())
        elif self._access.isEnabledFor(logging.INFO):
            self._access.info(access_line(ctx).decode())

    def _spend_record(self, ctx: RequestContext) -> None:
        spend = self.services.spend
        if spend is not None and ctx.requested_model is not None:
            if ctx.span_context is None:  # not traced: no step to record
                spend.emit(usage_record(ctx))
                return
            started = time.time_ns()
            try:
                spend.emit(usage_record(ctx))
            except BaseException as exc:
                spend_written(ctx, started, exc)
                raise
            spend_written(ctx, started)

    async def _database(self) -> None:
        if self.services.engine is not None:
            async with self.services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

    async def _spend_log(self) -> None:
        if self.services.spend is not None:
            self.services.spend.check()  # fails while unsaved records pile up

    async def _cache(self) -> None:
        """A Redis-backed cache must answer (memory and SQLite ones always do)."""
        cache = self.services.cache
        if cache is None:
            return
        from chatgate.cache.redis import RedisBackend

        if isinstance(cache.backend, RedisBackend):
            await cache.backend.client().ping()

    async def _accepting(self) -> None:
        if self.draining:
            raise RuntimeError("shutting down: finishing in-flight requests")

    # --- reload ----------------------------------------------------------------------------

    def load_state(self) -> GatewayState:
        """Build a state from the config file as it is now; ReloadError says why not."""
        try:
            cfg = (
                config_module.load(self.config_path) if self.config_path else config_module.Config()
            )
            return GatewayState.build(cfg, self.services, zero_config=self._zero_config)
        except (ChatgateError, OSError) as exc:
            raise ReloadError(str(getattr(exc, "message", exc))) from None

    def reload(self) -> GatewayState:
        """Swap in the new config. Requests already running finish on the state they began
        with; an invalid config raises ReloadError and changes nothing."""
        state = self.load_state()
        self.services.configure(state.config)
        self.state = state
        install_gateway_log_filter(state)
        self._spawn(_warm_up(state))
        log.warning("config reloaded: %d models", len(state.models.names))
        return state

    def _on_sighup(self) -> None:
        try:
            self.reload()
        except ReloadError as exc:
            log.error("SIGHUP: config not reloaded, the old one stays in force: %s", exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        install_gateway_log_filter(self.state)
        self.metrics.forget_dead_processes()  # a worker replacing a killed one
        if self._writer is not None:
            self._writer.start()
        self.pipeline.start()
        await self.services.open(self.state.config)
        self._spawn(self._keep_budget_holds())
        self._install_signals()
        await _warm_up(self.state)
        if self._freeze_heap:
            _freeze_heap()

    async def _keep_budget_holds(self) -> None:
        """Every process, for as long as it runs: renew the budget holds of its calls still
        running, and release the holds of processes that died mid-call. An unreachable
        database is logged when it starts and when it ends, and tried again next period."""
        failing = False
        while True:
            budgets = self.services.budgets  # the current config's (a reload replaces it)
            try:
                _, released = await budgets.maintain()
            # The top of a background task that must outlive any outage: drivers raise their
            # own errors at connect time, unwrapped (ConnectionRefusedError, asyncpg's
            # CannotConnectNowError while PostgreSQL starts), and the loop must not die of one.
            except Exception as exc:
                if not failing:
                    log.warning("budget holds cannot be renewed or swept: %s", type(exc).__name__)
                failing = True
            else:
                if failing:
                    log.warning("budget holds are renewed and swept again")
                failing = False
                if released:
                    log.warning("released %d budget hold(s) of calls whose process ended", released)
            await asyncio.sleep(budgets.maintain_every_s)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if os.environ.get(WORKERS_ENV) is None:  # with workers, the supervisor owns SIGHUP
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        previous = signal.getsignal(signal.SIGTERM)
        if callable(previous):  # the server's own handler (uvicorn's) still runs after ours

            def draining(sig: int, frame: FrameType | None) -> None:
                self.draining = True
                previous(sig, frame)

            signal.signal(signal.SIGTERM, draining)

    async def shutdown(self) -> None:
        self.draining = True
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)  # out of the database first
        await self.pipeline.stop()  # the last records go to metrics, the log, the spend log
        await self.services.close()
        if self._writer is not None:
            self._writer.stop()
        await stop_prepared()
        await http.aclose()
        if self.telemetry is not None:  # its flush is bounded, and off the loop
            await asyncio.to_thread(self.telemetry.shutdown)
        self.metrics.process_exited()


# A young collection every 10,000 net allocations instead of 700. Under load the default ran
# ~10 collections a second per thousand requests, each walking the in-flight requests' objects:
# 35 µs of every request's CPU went to the collector (measured at 64 concurrent requests; 4 µs
# with this), and a young collection still stays under 2 ms.
_GC_THRESHOLDS = (10_000, 50, 100)


def _freeze_heap() -> None:
    """Move everything built at start-up (modules, the app, pydantic's schemas) out of the
    collector's sight, and collect the young generation less often. Without the freeze every
    full collection walks that whole heap: pauses of 50 ms under load, measured, which were
    the gateway's p99 at 64 concurrent requests."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


async def _warm_up(state: GatewayState) -> None:
    """Start managed upstreams (the local model) now, so the first request is not the slow one.
    A failure is logged, not fatal: the other models keep serving and the request retries it."""
    _load_encodings(state)
    for tiered in state.models.router.tiered.values():  # MiniLM and the examples' embeddings
        await asyncio.to_thread(tiered.classifier.warm)
    for deployment in state.models.deployments():
        try:
            await prepare_deployment(deployment)
        except ChatgateError as exc:
            log.warning(
                "could not start model %s/%s: %s", deployment.provider, deployment.model, exc
            )


def _load_encodings(state: GatewayState) -> None:
    """Build the tokenizers the configured models count with, before serving: building one
    holds the interpreter for up to half a second (o200k_base, measured), which on a request
    would stall every other request that long."""
    names = {encoding_for_model(d.model)[0] for d in state.models.deployments()}
    for name in sorted(names):
        get_encoding(name)
