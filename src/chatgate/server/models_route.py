"""GET /v1/models and GET /v1/models/{id}: the model names this gateway serves to the caller.

Only configured names are listed (the config's model_list and, with no config, the embedded
local model), never names added on the fly in zero-config mode, and only those the caller's
key may use: to a key, a name outside its allowlist does not exist (404 on retrieve). The
answer is in OpenAI's shape, or in Anthropic's for an Anthropic client (it sends
``anthropic-version``; ``x-api-key`` with no ``Authorization`` counts too).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from chatgate.server.asgi import Scope, header
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.models import DEFAULT_LOCAL_MODEL
from chatgate.server.request import GatewayRequest
from chatgate.server.state import GatewayState

__all__ = [
    "MODEL_PREFIXES",
    "anthropic_client",
    "list_models",
    "retrieve_model",
    "visible_models",
]

MODEL_PREFIXES = ("/v1/models/", "/models/")
_EPOCH = "1970-01-01T00:00:00Z"  # no creation date is known for a configured name
_LOCAL = frozenset({DEFAULT_LOCAL_MODEL, f"local/{DEFAULT_LOCAL_MODEL}"})
_DEFAULT_LIMIT = 20
_MAX_LIMIT = 1000


def anthropic_client(scope: Scope) -> bool:
    if header(scope, b"anthropic-version") is not None:
        return True
    return header(scope, b"x-api-key") is not None and header(scope, b"authorization") is None


def visible_models(state: GatewayState, ctx: RequestContext) -> list[str]:
    """Configured names the caller may use, in the config's order."""
    configured = {entry.model_name for entry in state.config.model_list} | _LOCAL
    configured |= set(state.models.router.tiered)
    key = ctx.key
    return [
        name
        for name in state.models.names
        if name in configured and (key is None or key.allows(name))
    ]


def _openai(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "chatgate"}


def _anthropic(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": _EPOCH}


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw).items()}


def _page(names: list[str], query: dict[str, str]) -> dict[str, Any]:
    """Anthropic's cursor pagination: ``limit``, and ``after_id`` or ``before_id``."""
    raw = query.get("limit", str(_DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        raise GatewayError(400, f"limit: an integer from 1 to {_MAX_LIMIT}", param="limit")
    limit = int(raw)
    if (after := query.get("after_id")) is not None:
        start = names.index(after) + 1 if after in names else len(names)
        page, more = names[start : start + limit], start + limit < len(names)
    elif (before := query.get("before_id")) is not None:
        end = names.index(before) if before in names else 0
        page, more = names[max(0, end - limit) : end], end - limit > 0
    else:
        page, more = names[:limit], limit < len(names)
    return {
        "data": [_anthropic(n) for n in page],
        "has_more": more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }


async def list_models(request: GatewayRequest) -> None:
    scope = request.scope
    names = visible_models(request.state, request.ctx)
    if anthropic_client(scope):
        body = _page(names, _query(scope))
    else:
        body = {"object": "list", "data": [_openai(n) for n in names]}
    await request.answer(body)


async def retrieve_model(request: GatewayRequest) -> None:
    path = request.path
    name = next(path[len(p) :] for p in MODEL_PREFIXES if path.startswith(p))
    if name not in visible_models(request.state, request.ctx):
        raise GatewayError(
            404, f"model {name!r} is not served here", param="model", code="model_not_found"
        )
    body = _anthropic(name) if anthropic_client(request.scope) else _openai(name)
    await request.answer(body)
