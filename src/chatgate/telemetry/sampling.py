"""Which traces the gateway records: a parent-based ratio sampler, as the SDK's
``ParentBased(TraceIdRatioBased(rate))``, chosen the way the SDK reads it.

A span with a parent follows the parent's sampled flag (a caller that sampled its trace gets
ours, one that did not gets none); a new trace is kept when the low 64 bits of its id fall
under ``rate * 2**64``, the SDK's rule, so every service that samples by ratio keeps the same
traces. ``general_settings.otel.sample_rate``, when it is written, wins; otherwise the standard
``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` variables; otherwise every trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.trace import SpanContext

__all__ = ["Sampler", "from_settings"]

log = logging.getLogger("chatgate.telemetry")

_BOUND = 1 << 64
_LOW_64 = _BOUND - 1


@dataclass(frozen=True, slots=True)
class Sampler:
    """``rate``: the share of new traces kept; ``parent_based``: a span with a parent follows
    it (False: only the ratio decides, as the plain ``traceidratio`` / ``always_*``)."""

    rate: float = 1.0
    parent_based: bool = True

    @property
    def bound(self) -> int:
        return round(self.rate * _BOUND)

    def sampled(self, trace_id: int, parent: SpanContext | None, bound: int) -> bool:
        """``bound``: ``self.bound``, computed once by the caller, not per span."""
        if self.parent_based and parent is not None and parent.is_valid:
            return bool(parent.trace_flags & 1)
        return (trace_id & _LOW_64) < bound

    def describe(self) -> str:
        kind = "parentbased_traceidratio" if self.parent_based else "traceidratio"
        return f"{kind}({self.rate})"


_BY_NAME = {
    "always_on": (1.0, False),
    "always_off": (0.0, False),
    "traceidratio": (None, False),
    "parentbased_always_on": (1.0, True),
    "parentbased_always_off": (0.0, True),
    "parentbased_traceidratio": (None, True),
}


def from_settings(sample_rate: float | None, env: Mapping[str, str]) -> Sampler:
    """``sample_rate``: the configured rate, None when the config leaves it out."""
    if sample_rate is not None:
        return Sampler(sample_rate)
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if not name:
        return Sampler()
    if name not in _BY_NAME:
        # The SDK's behaviour for a sampler it does not know: warn and keep the default.
        log.warning("OTEL_TRACES_SAMPLER=%r is not a sampler chatgate knows: sampling all", name)
        return Sampler()
    rate, parent_based = _BY_NAME[name]
    if rate is None:
        rate = _ratio(env.get("OTEL_TRACES_SAMPLER_ARG"))
    return Sampler(rate, parent_based)


def _ratio(arg: str | None) -> float:
    try:
        rate = float(arg) if arg is not None else 1.0
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a ratio in [0, 1]: using 1.0", arg)
        return 1.0
    return rate
