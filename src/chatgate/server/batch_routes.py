"""OpenAI's Files and Batches API on the gateway, so ``client.files.create(purpose="batch")``
and ``client.batches.create/retrieve/list`` of the openai SDK work against it:

- ``POST /v1/files`` (multipart: ``file``, ``purpose=batch``), ``GET /v1/files/{id}`` and
  ``GET /v1/files/{id}/content``;
- ``POST /v1/batches`` (``endpoint`` ``/v1/chat/completions``, ``completion_window`` ``24h``),
  ``GET /v1/batches/{id}``, ``GET /v1/batches``.

Every line is checked when the batch is created (a bad line, a model this gateway does not
serve or the key may not use: 400 listing the lines), and the budgets a live request of the
key would be held on (its key's, user's, team's, global and tag budgets, the key's tags
first: serving.payer_of) hold the batch's worst case, refused as a live request is (402
``budget_exceeded``). The batch then runs in the background (batch_runner):
on the provider's batch API at the batch price where the model has one, by the gateway at the
normal price otherwise. Answers go to ``output_file_id``, failed lines to ``error_file_id``.
"""

from __future__ import annotations

import time
from decimal import Decimal
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

from chatgate.batching.input import BatchInputError, BatchItem, read_items
from chatgate.batching.provider.plan import plan_one
from chatgate.batching.route_tags import carrying, untagged_problem
from chatgate.cost.budgets import Reservation
from chatgate.errors import ChatgateError, InvalidRequestError
from chatgate.router import guarded
from chatgate.router.budgeting import routed_worst_case
from chatgate.router.fallbacks import Allowed
from chatgate.router.guarded import Payer
from chatgate.server.asgi import Scope, Send, header, read_body, send_json
from chatgate.server.batch_runner import ROUTE_TAGS, batchable, start_batch
from chatgate.server.batch_store import (
    KEY_FIELD,
    OWNER_FIELD,
    TRACE_FIELD,
    BatchStore,
    batch_dir,
    new_id,
    owner_of,
    public,
)
from chatgate.server.body_tags import take_metadata_tags
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError
from chatgate.server.openai_routes import parse_json_body
from chatgate.server.request import GatewayRequest
from chatgate.server.request_tags import charged
from chatgate.server.services import database_url
from chatgate.server.serving import add_body_tags, allowed_groups, payer_of
from chatgate.server.state import GatewayState
from chatgate.telemetry import steps
from chatgate.telemetry.propagation import traceparent_of

__all__ = ["PREFIXES", "batch_route"]

PREFIXES = ("/v1/files", "/v1/batches")
# The routes batch_route serves, by the path's parts after /v1: their templates, for the
# request span's name and ``http.route`` and the metrics' route label (never the raw path,
# which carries ids).
_TEMPLATES = {
    ("files",): "/v1/files",
    ("files", "{id}"): "/v1/files/{id}",
    ("files", "{id}", "content"): "/v1/files/{id}/content",
    ("batches",): "/v1/batches",
    ("batches", "{id}"): "/v1/batches/{id}",
}


def _parts(path: str) -> list[str]:
    """A files or batches path's parts after /v1: ["files", id, "content"], ["batches", id]."""
    return path.strip("/").split("/")[1:]


def route_template(path: str) -> str | None:
    """The template of a files or batches route this module serves, else None."""
    parts = _parts(path)
    if len(parts) >= 2 and parts[1]:
        parts[1] = "{id}"
    return _TEMPLATES.get(tuple(parts))


_RUNNING = ("validating", "in_progress", "finalizing")


def _store(state: GatewayState) -> BatchStore:
    return BatchStore(batch_dir(database_url(state.config.general_settings)))


async def batch_route(request: GatewayRequest) -> None:
    scope, receive, send = request.scope, request.receive, request.send
    state, ctx = request.state, request.ctx
    method, path = scope["method"], request.path
    parts = _parts(path)
    store = _store(state)
    if method == "POST" and parts in (["files"], ["batches"]):
        body = await read_body(receive, state.config.general_settings.max_request_bytes)
        if parts == ["files"]:
            await send_json(send, 200, public(_upload(store, ctx, scope, body)))
        else:
            await send_json(send, 200, public(await _create(store, state, ctx, body)))
    elif method == "GET" and parts == ["batches"]:
        data = [public(r) for r in store.batches(ctx)]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        page = {"object": "list", "data": data, "first_id": first, "last_id": last}
        await send_json(send, 200, {**page, "has_more": False})
    elif method == "GET" and len(parts) == 2 and parts[0] == "batches":
        record = store.batch(parts[1], ctx)
        if record["status"] in _RUNNING:
            start_batch(state, store, record["id"])  # picked up again after a restart
        await send_json(send, 200, public(record))
    elif method == "GET" and len(parts) == 2 and parts[0] == "files":
        await send_json(send, 200, public(store.file(parts[1], ctx)))
    elif method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
        await _send_bytes(send, store.file_bytes(parts[1], ctx))
    else:
        raise GatewayError(404, f"no route {method} {path}", code="not_found")


async def _send_bytes(send: Send, data: bytes) -> None:
    headers = [(b"content-type", b"application/octet-stream")]
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _form(scope: Scope, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes). The stdlib's
    MIME parser does this, so no multipart library is added for one route."""
    content_type = header(scope, b"content-type") or ""
    if not content_type.startswith("multipart/form-data"):
        raise GatewayError(400, "send the file as multipart/form-data (file, purpose)")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (part.get_filename(), payload)
    return fields


def _upload(store: BatchStore, ctx: RequestContext, scope: Scope, body: bytes) -> dict[str, Any]:
    fields = _form(scope, body)
    purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
    if purpose != "batch":
        raise GatewayError(
            400, f"purpose must be 'batch' (the only use of files here), got {purpose!r}",
            param="purpose",
        )  # fmt: skip
    if "file" not in fields:
        raise GatewayError(400, "a 'file' field with the JSONL batch input is needed", param="file")
    filename, data = fields["file"]
    return store.add_file(owner_of(ctx), filename or "batch.jsonl", purpose, data)


def _check_items(
    state: GatewayState, ctx: RequestContext, source: Path, tags: frozenset[str]
) -> list[BatchItem]:
    try:
        items = read_items(source)
    except BatchInputError as exc:  # its message names the stored file's path: not shown
        raise GatewayError(400, _listed(exc.problems), param="input_file_id") from None
    groups, problems = state.models.router.groups, []
    for item in items:
        model = item.request.model
        if model not in groups:
            problems.append(f"line {item.line}: model {model!r} is not served here")
        elif ctx.key is not None and not ctx.key.allows(model):
            problems.append(f"line {item.line}: this key may not use model {model!r}")
        elif not carrying(groups[model], tags):
            problems.append(f"line {item.line}: {untagged_problem(model, tags)}")
    if problems:
        raise GatewayError(400, _listed(problems), param="input_file_id")
    return items


def _listed(problems: list[str]) -> str:
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return f"the input file has {len(problems)} problem(s): " + "; ".join(problems[:10]) + more


async def _hold(
    state: GatewayState,
    payer: Payer,
    items: list[BatchItem],
    allowed: Allowed | None,
    tags: frozenset[str],
) -> dict[str, Reservation]:
    """Per model: hold the worst case of its lines (at the batch rate where a provider batch
    API carrying the routing ``tags`` serves it, on that deployment) on every budget that
    applies to ``payer``, as a live request is held; BudgetExceededError (402) when one
    cannot."""
    budgets, router = state.services.budgets, state.models.router
    who = payer.who()
    worst: dict[str, Decimal] = {}
    for item in items:
        model = item.request.model
        if not budgets.lines_for(model=model, tags=payer.tags, extra=payer.extra, **who):
            continue
        try:
            if batchable(state, model, tags):
                amount = plan_one(item, router, budgets, tags).worst
            else:
                amount = routed_worst_case(router, budgets, item.request, allowed)
        except InvalidRequestError as exc:
            raise GatewayError(400, f"line {item.line}: {exc.message}") from None
        worst[model] = worst.get(model, Decimal(0)) + amount
    holds: dict[str, Reservation] = {}
    try:
        for model, amount in worst.items():
            hold = await guarded.hold_amount(budgets, model, amount, payer)
            if hold is not None:
                holds[model] = hold
    except ChatgateError:  # a budget that cannot cover it: release the holds taken
        for hold in holds.values():
            await budgets.settle(hold, Decimal(0))
        raise
    return holds


def _owner(ctx: RequestContext, payer: Payer, own: tuple[str, ...]) -> dict[str, Any]:
    """Who the batch runs for, for its spend rows, budgets and allowlist (ids, no secret).
    ``tags``: what it was held on (the key's tags first), kept so that its spend rows and a
    resumed run's charge name the tags it was submitted with, whatever the key has since.
    ROUTE_TAGS: the submission's ``own`` tags, which pick deployments (the key's only
    count)."""
    key = ctx.key
    return {
        "tags": list(payer.tags),
        ROUTE_TAGS: sorted(own),
        "key_id": ctx.key_id,
        "user_id": ctx.user_id,
        "team_id": ctx.team_id,
        "models": list(key.models) if key is not None else [],
        "budget": str(key.budget_usd) if key is not None and key.budget_usd is not None else None,
        "budget_period": key.budget_period if key is not None else None,
    }


async def _create(
    store: BatchStore, state: GatewayState, ctx: RequestContext, body: bytes
) -> dict[str, Any]:
    data = parse_json_body(body)
    # The submission's own tags, as a chat request's: the header's, then the body's
    # metadata.tags (taken out of the batch's metadata). They route its lines, count, and
    # are the submission's in the access log.
    if "metadata" in data:
        add_body_tags(ctx, take_metadata_tags(data))
    own = ctx.tags
    if data.get("endpoint") != "/v1/chat/completions":
        raise GatewayError(400, "endpoint must be '/v1/chat/completions'", param="endpoint")
    if data.get("completion_window") != "24h":
        raise GatewayError(400, "completion_window must be '24h'", param="completion_window")
    file_id = data.get("input_file_id")
    if not isinstance(file_id, str):
        raise GatewayError(
            400, "input_file_id: the id of an uploaded batch file", param="input_file_id"
        )
    if store.file(file_id, ctx)["purpose"] != "batch":
        raise GatewayError(
            400, f"{file_id} is not a batch input file (purpose 'batch')", param="input_file_id"
        )
    source = store.file_path(file_id, ctx)
    tags = frozenset(own)  # the lines are routed by them, as a live request is
    items = _check_items(state, ctx, source, tags)
    payer = payer_of(ctx)  # the live path's: the key's tags first (request_tags.charged)
    payer.tags = charged(ctx.key, own)
    holds = await _hold(state, payer, items, allowed_groups(ctx), tags)
    batch_id = new_id("batch_")
    folder = store.batch_folder(batch_id)
    folder.mkdir(parents=True)
    (folder / "input.jsonl").write_bytes(source.read_bytes())
    now = int(time.time())
    record: dict[str, Any] = {
        "id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions",
        "errors": None, "input_file_id": file_id, "completion_window": "24h",
        "status": "validating", "output_file_id": None, "error_file_id": None,
        "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
        "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
        "cancelling_at": None, "cancelled_at": None,
        "request_counts": {"total": len(items), "completed": 0, "failed": 0},
        "metadata": data.get("metadata"),
        OWNER_FIELD: owner_of(ctx),
        KEY_FIELD: _owner(ctx, payer, own),
    }  # fmt: skip
    if (submitted := steps.current_link()) is not None:
        record[TRACE_FIELD] = traceparent_of(submitted)
    store.save_batch(record)
    start_batch(state, store, batch_id, holds)
    return record
