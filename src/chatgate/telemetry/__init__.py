"""OpenTelemetry for chatgate: GenAI spans and metrics through the API package, and (for the
gateway, with the ``server`` extra) the SDK set up to export them over OTLP.

A library user who has set up an OpenTelemetry SDK gets a ``chat {model}`` span per attempt
with no further step; ``capture_content(True)`` adds prompts and answers (scrubbed). See
docs/observability.md.
"""

from __future__ import annotations

from chatgate.telemetry.metrics import set_meter_provider
from chatgate.telemetry.spans import capture_content, set_tracer_provider

__all__ = ["capture_content", "set_meter_provider", "set_tracer_provider"]
