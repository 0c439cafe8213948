"""The current OpenTelemetry context, read and set directly.

``opentelemetry.context.get_current`` / ``attach`` / ``detach`` cost two Python frames each:
the runtime context is chosen once when the API is imported (OTEL_PYTHON_CONTEXT) and never
replaced, and the default one is a ContextVar, used here directly (several times a request).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _RUNTIME_CONTEXT, Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace.propagation import _SPAN_KEY

__all__ = [
    "IN_REQUEST",
    "attach",
    "context_with",
    "detach",
    "get_context",
]

if type(_RUNTIME_CONTEXT) is ContextVarsRuntimeContext:
    _context_var = _RUNTIME_CONTEXT._current_context
    get_context: Callable[[], Context] = _context_var.get
    attach: Callable[[Context], Token[Context]] = _context_var.set
    _reset: Callable[[Token[Context]], None] = _context_var.reset
else:
    get_context, attach, _reset = (
        _RUNTIME_CONTEXT.get_current,
        otel_context.attach,
        otel_context.detach,
    )


def detach(token: Token[Context]) -> None:
    try:
        _reset(token)
    except (ValueError, RuntimeError):  # a token of another context, or used: the API says why
        otel_context.detach(token)


# Set in the context of a gateway request (its server span's): a routed call inside it is no
# span of its own (telemetry/spans.py ``start_route``).
IN_REQUEST = otel_context.create_key("chatgate-gateway-request")


def context_with(span: trace.Span, *, request: bool = False) -> Context:
    """``trace.set_span_in_context(span)`` over the current context, in one step;
    ``request``: marked as a gateway request's (``IN_REQUEST``)."""
    values = dict(get_context())
    values[_SPAN_KEY] = span
    if request:
        values[IN_REQUEST] = True
    return Context(values)
