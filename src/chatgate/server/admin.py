"""The admin API (master key only): virtual keys and spend.

POST   /admin/keys             create: {name, models, budget, budget_period, rpm, tpm,
                                expires ("30d" or seconds), team, user, metadata}
                                -> the key's record plus "key": the secret, shown this once
GET    /admin/keys             list (?team=, ?user=, ?include_revoked=true); paged with
                                ?limit=N&after=<next_after>; ?usage=true adds each key's
                                "spent" in its budget's current period
GET    /admin/keys/{key_id}    one key
PATCH  /admin/keys/{key_id}    change any of the create fields
DELETE /admin/keys/{key_id}    revoke (the record stays, for the spend log)
GET    /admin/spend            ?by=model|key|team|user|day&since=7d
GET    /admin/logs             the spend log, filtered and paged (admin_logs.py)
GET    /admin/logs/{request_id} one request's records (admin_logs.py)
GET    /admin/overview         spend and traffic over time (admin_overview.py)
GET    /admin/budgets          every budget with its use (admin_budgets.py)
GET    /admin/models           every deployment's health (admin_models.py)

The master key, an admin virtual key (metadata {"role": "admin"}) or a console session
(docs/console.md) may call it.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from chatgate.cost.report import aspend_report
from chatgate.errors import InvalidRequestError
from chatgate.server.admin_budgets import budgets_status
from chatgate.server.admin_key_usage import key_usage
from chatgate.server.admin_logs import log_detail, log_page
from chatgate.server.admin_models import models_health
from chatgate.server.admin_overview import overview
from chatgate.server.asgi import Receive, Scope, Send, read_body, send_json
from chatgate.server.errors import GatewayError
from chatgate.server.key_fields import key_fields
from chatgate.server.keys import KeyNotFound, KeyStore
from chatgate.server.openai_routes import parse_json_body
from chatgate.server.request import GatewayRequest
from chatgate.server.state import GatewayState

__all__ = ["ADMIN_PREFIX", "admin"]

ADMIN_PREFIX = "/admin/"


def _store(state: GatewayState) -> KeyStore:
    if state.services.keys is None:
        raise GatewayError(503, "the key store is not open yet", type_="server_error")
    return state.services.keys


async def admin(request: GatewayRequest) -> None:
    """The caller was checked by the auth middleware (``/admin/`` is admin-only)."""
    scope, receive, send, state = request.scope, request.receive, request.send, request.state
    method, path = scope["method"], scope["path"]
    query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode()))
    request.answered(200)
    try:
        if path == "/admin/spend" and method == "GET":
            await _spend(send, state, query)
        elif path == "/admin/logs" and method == "GET":
            await send_json(send, 200, await log_page(state, query))
        elif path == "/admin/models" and method == "GET":
            await send_json(send, 200, await models_health(state))
        elif path == "/admin/budgets" and method == "GET":
            await send_json(send, 200, await budgets_status(state))
        elif path == "/admin/overview" and method == "GET":
            await send_json(send, 200, await overview(state, query))
        elif path.startswith("/admin/logs/") and method == "GET":
            await send_json(send, 200, await log_detail(state, path.removeprefix("/admin/logs/")))
        elif path == "/admin/keys":
            await _keys(scope, receive, send, state, method, query)
        elif path.startswith("/admin/keys/"):
            await _key(scope, receive, send, state, method, path.removeprefix("/admin/keys/"))
        else:
            raise GatewayError(404, f"no admin route {method} {path}", code="not_found")
    except KeyNotFound as exc:
        raise GatewayError(404, exc.message, param=exc.param, code="not_found") from None
    except InvalidRequestError as exc:
        raise GatewayError(400, exc.message, param=exc.param) from None


async def _json(scope: Scope, receive: Receive, state: GatewayState) -> dict[str, Any]:
    body = await read_body(receive, state.config.general_settings.max_request_bytes)
    return parse_json_body(body) if body else {}


async def _keys(
    scope: Scope,
    receive: Receive,
    send: Send,
    state: GatewayState,
    method: str,
    query: dict[str, str],
) -> None:
    store = _store(state)
    if method == "POST":
        fields = key_fields(await _json(scope, receive, state))  # all checked before writing
        secret, record = await store.add(fields)
        await send_json(send, 200, {**record.public(), "key": secret})
    elif method == "GET":
        limit = _page_size(query.get("limit"))
        records = await store.list(
            team=query.get("team"),
            user=query.get("user"),
            include_revoked=query.get("include_revoked") == "true",
            limit=limit,
            after=query.get("after"),
        )
        data = [r.public() for r in records]
        if query.get("usage") == "true":  # each key's spend in its budget's current period
            spent = await key_usage(state, records, time.time())
            for row in data:
                row["spent"] = spent.get(row["key_id"], "0")
        page_full = limit is not None and len(records) == limit
        after = records[-1].key_id if page_full else None
        await send_json(send, 200, {"data": data, "next_after": after})
    else:
        raise GatewayError(405, f"{method} is not allowed on /admin/keys")


def _page_size(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise GatewayError(400, "limit: a whole number from 1 to 1000", param="limit")
    return int(text)


async def _key(
    scope: Scope, receive: Receive, send: Send, state: GatewayState, method: str, key_id: str
) -> None:
    store = _store(state)
    if method == "GET":
        record = await store.get(key_id)
        if record is None:
            raise GatewayError(404, f"no key with id {key_id!r}", param="key_id", code="not_found")
    elif method == "PATCH":
        record = await store.update(key_id, **await _json(scope, receive, state))
    elif method == "DELETE":
        record = await store.revoke(key_id)
    else:
        raise GatewayError(405, f"{method} is not allowed on /admin/keys/{{key_id}}")
    await send_json(send, 200, record.public())


async def _spend(send: Send, state: GatewayState, query: dict[str, str]) -> None:
    spend = state.services.spend
    if spend is not None:
        await spend.flush()  # what was served a moment ago is in the report
    rows = await aspend_report(
        query.get("by", "model"),  # type: ignore[arg-type]  # checked by aspend_report
        query.get("since", "7d"),
        engine=state.services.engine,
    )
    await send_json(send, 200, {"data": [row.to_json() for row in rows]})
