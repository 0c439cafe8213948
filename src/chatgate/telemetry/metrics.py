"""GenAI client metrics by the conventions, plus ours, through the OpenTelemetry API.

``gen_ai.client.operation.duration`` (s) and ``gen_ai.client.token.usage`` ({token}) with the
conventions' explicit bucket boundaries; ``chatgate.cost`` (USD), ``chatgate.cache.requests``
(by ``chatgate.cache.status``) and ``chatgate.budget.utilization`` (spent / limit, per
budget). Recorded only when a meter provider from an SDK is in place: the API's own no-op and
proxy providers mean nobody collects, and nothing is recorded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider
from opentelemetry.metrics import _Gauge as Gauge  # the synchronous gauge, exported underscored
from opentelemetry.metrics import _internal as otel_metrics_internal

from chatgate.telemetry import semconv
from chatgate.telemetry.meters import FrozenAttributes, Later, LeanMeterProvider

if TYPE_CHECKING:
    from chatgate.providers.base import Deployment

__all__ = [
    "DURATION_BUCKETS",
    "TOKEN_BUCKETS",
    "Instruments",
    "enabled",
    "lean",
    "measure_attempt",
    "record_attempt",
    "record_budget",
    "record_cache",
    "set_meter_provider",
]

DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Instruments:
    duration: Histogram
    tokens: Histogram
    cost: Counter
    cache: Counter
    budget: Gauge

    @classmethod
    def of(cls, meter: Meter) -> Instruments:
        return cls(
            duration=meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            ),
            tokens=meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used",
                explicit_bucket_boundaries_advisory=[float(b) for b in TOKEN_BUCKETS],
            ),
            cost=meter.create_counter("chatgate.cost", unit="USD", description="Spend in USD"),
            cache=meter.create_counter(
                "chatgate.cache.requests", unit="{request}", description="Response cache lookups"
            ),
            budget=meter.create_gauge(
                "chatgate.budget.utilization", unit="1", description="Budget spent / limit"
            ),
        )


_PROVIDER_FROM_ENV = "OTEL_PYTHON_METER_PROVIDER" in os.environ
_provider: MeterProvider | None = None
_instruments: Instruments | None = None
# The lean provider's: an attempt's and a cache lookup's measurements are left there for its
# export thread (a tuple of references on the request path). Past _MAX_LATER waiting (an
# export thread held up by its collector) they are made on the spot, as with any other SDK.
_later: Later | None = None
_MAX_LATER = 8192


def set_meter_provider(provider: MeterProvider | None) -> None:
    """Use ``provider`` for chatgate's metrics (None: the application's global one)."""
    global _provider, _instruments, _later
    _provider, _instruments = provider, None
    _later = provider.later if isinstance(provider, LeanMeterProvider) else None


def enabled() -> bool:
    if _provider is not None:
        return True
    # As spans.off: the module global first (get_meter_provider reads os.environ each call).
    if otel_metrics_internal._METER_PROVIDER is None and not _PROVIDER_FROM_ENV:
        return False
    # The API's own providers (the default proxy, the no-op one) mean no SDK is set up.
    return not type(otel_metrics.get_meter_provider()).__module__.startswith(
        "opentelemetry.metrics"
    )


def _get() -> Instruments | None:
    global _instruments
    if not enabled():
        return None
    if _instruments is None:
        source = _provider or otel_metrics.get_meter_provider()
        _instruments = Instruments.of(source.get_meter("chatgate"))
    return _instruments


# (operation, provider, model, error class, response model) -> the attribute sets of one
# attempt's measurements: built once per deployment and outcome, not per request. Bounded,
# since the response model is the upstream's word.
_AttemptSets = tuple[FrozenAttributes, FrozenAttributes, FrozenAttributes]
_attempt_sets: dict[tuple[str, str, str, str | None, str | None], _AttemptSets] = {}
_cache_sets: dict[tuple[str, str], FrozenAttributes] = {}
_MAX_SETS = 1024


def _attempt_attributes(
    operation: str, provider: str, model: str, error: str | None, response_model: str | None
) -> _AttemptSets:
    key = (operation, provider, model, error, response_model)
    found = _attempt_sets.get(key)
    if found is None:
        attrs: dict[str, str] = {
            semconv.OPERATION: operation,
            semconv.PROVIDER: semconv.provider_name(provider),
            semconv.REQUEST_MODEL: model,
        }
        if error is not None:
            attrs[semconv.ERROR_TYPE] = error
        elif response_model:
            attrs[semconv.RESPONSE_MODEL] = response_model
        found = (
            FrozenAttributes(attrs),
            FrozenAttributes({**attrs, "gen_ai.token.type": "input"}),
            FrozenAttributes({**attrs, "gen_ai.token.type": "output"}),
        )
        if len(_attempt_sets) >= _MAX_SETS:
            _attempt_sets.clear()
        _attempt_sets[key] = found
    return found


def record_attempt(
    deployment: Deployment,
    operation: str,
    started: float,
    response: Any = None,
    error: BaseException | None = None,
) -> None:
    # enabled()'s first answer inline: with no SDK anywhere, no call (once per attempt)
    if (
        _provider is None
        and otel_metrics_internal._METER_PROVIDER is None
        and not _PROVIDER_FROM_ENV
    ):
        return
    instruments = _get()
    if instruments is None:
        return
    seconds = time.perf_counter() - started
    # What the measurements need, read now: neither the answer nor the error (its traceback
    # holds the request's frames) is kept for the export thread. Keeping the objects of the
    # last second's requests alive made every request slower (~60 us CPU each, measured:
    # docs/observability.md "What held objects cost").
    key = (
        operation,
        deployment.provider,
        deployment.model,
        type(error).__name__ if error is not None else None,
        response.model if error is None and response is not None else None,
    )
    usage = getattr(response, "usage", None)
    prompt = completion = None
    if usage is not None:
        prompt, completion = usage.prompt_tokens, getattr(usage, "completion_tokens", None)
    cost = response.meta.cost if response is not None else None
    measured = (instruments, key, seconds, prompt, completion, cost)
    later = _later
    if later is not None and len(later) < _MAX_LATER:
        later.append((_measure_attempt, measured))
        return
    _measure_attempt(*measured)


def lean() -> Instruments | None:
    """The instruments when the lean meters record (the gateway's): an attempt span of the
    lean recorder then carries its measurements to the export thread, which makes them
    (``measure_attempt``), and the request path makes none."""
    if _later is None:
        return None
    return _instruments or _get()  # made once, at the first measurement


def measure_attempt(
    instruments: Instruments,
    deployment: Deployment,
    seconds: float,
    error: str | None,
    response_model: str | None,
    prompt: int | None = None,
    completion: int | None = None,
    cost: Decimal | None = None,
) -> None:
    """``record_attempt``'s measurements from what an attempt span recorded (export thread)."""
    key = ("chat", deployment.provider, deployment.model, error, response_model)
    _measure_attempt(instruments, key, seconds, prompt, completion, cost)


def _measure_attempt(
    instruments: Instruments,
    key: tuple[str, str, str, str | None, str | None],
    seconds: float,
    prompt: int | None,
    completion: int | None,
    cost: Decimal | None,
) -> None:
    attrs, input_attrs, output_attrs = _attempt_attributes(*key)
    instruments.duration.record(seconds, attrs)
    if prompt is not None:
        instruments.tokens.record(prompt, input_attrs)
    if completion is not None:
        instruments.tokens.record(completion, output_attrs)
    if cost:
        instruments.cost.add(float(cost), attrs)


def record_cache(status: str, model: str) -> None:
    instruments = _get()
    if instruments is None:
        return
    later = _later
    if later is not None and len(later) < _MAX_LATER:
        later.append((_count_cache, (instruments, status, model)))
        return
    _count_cache(instruments, status, model)


def _count_cache(instruments: Instruments, status: str, model: str) -> None:
    attrs = _cache_sets.get((status, model))
    if attrs is None:
        if len(_cache_sets) >= _MAX_SETS:
            _cache_sets.clear()
        attrs = _cache_sets[(status, model)] = FrozenAttributes(
            {semconv.CACHE_STATUS: status, "chatgate.model": model}
        )
    instruments.cache.add(1, attrs)


def record_budget(budget_id: str, period: str, spent: Decimal, limit: Decimal) -> None:
    instruments = _get()
    if instruments is not None and limit > 0:
        instruments.budget.set(
            float(spent / limit),
            {"chatgate.budget.id": budget_id, "chatgate.budget.period": period},
        )
