"""Gemini's Batch Mode (AI Studio): the lines sent inline in one call (``POST
{base}/models/{model}:batchGenerateContent``, ``inputConfig.requests.requests``, each a
GenerateContentRequest built by the Gemini adapter with ``metadata.key`` naming the line),
polled (``GET {base}/batches/{id}``: an operation whose ``metadata.state`` ends in
``BATCH_STATE_SUCCEEDED`` / ``FAILED`` / ``CANCELLED`` / ``EXPIRED``) and read from its
``metadata.output.inlinedResponses``.

Inline input is limited to 20 MB per batch, so a job is cut at 19 MB (the run submits as
many jobs as needed); one batch serves one model. Answers are read by the adapter's
``parse_response``; an error Status (gRPC code) is mapped through the adapter's
``map_error`` with the HTTP status Google uses for that code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from chatgate.batching.provider.api import (
    BatchLineError,
    LineTarget,
    Outcome,
    PerModelJobs,
    Status,
)
from chatgate.batching.provider.wire import fetch_json
from chatgate.errors import APIError
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.gemini.request import auth_headers
from chatgate.providers.registry import get_adapter
from chatgate.types import ChatRequest

__all__ = ["GeminiBatches"]

ADAPTER = get_adapter("gemini")
_ENDED = {
    "BATCH_STATE_SUCCEEDED": ("batch_missing", "the batch ended without a result for this line"),
    "BATCH_STATE_FAILED": ("batch_failed", "the batch failed"),
    "BATCH_STATE_CANCELLED": ("batch_cancelled", "the batch was cancelled before this line ran"),
    "BATCH_STATE_EXPIRED": ("batch_expired", "the batch expired (48 h) before this line ran"),
}
# google.rpc.Code -> the HTTP status Google answers with for it
_HTTP = {3: 400, 9: 400, 11: 400, 16: 401, 7: 403, 5: 404, 6: 409, 8: 429, 4: 504, 14: 503}


def _headers(deployment: Deployment) -> dict[str, str]:
    return {**deployment.headers, **auth_headers(deployment)}


class GeminiBatches(PerModelJobs):
    provider = "gemini"
    max_lines = 50_000
    max_bytes = 19 * 1024 * 1024

    def line(self, wire_id: str, request: ChatRequest, deployment: Deployment) -> bytes:
        body = orjson.loads(ADAPTER.build_request(request, deployment).body)
        return orjson.dumps({"request": body, "metadata": {"key": wire_id}})

    async def submit(self, deployment: Deployment, lines: list[bytes]) -> str:
        model = deployment.model.removeprefix("models/")
        url = f"{deployment.api_base}/models/{model}:batchGenerateContent"
        requests = b"[" + b",".join(lines) + b"]"
        body = (
            b'{"batch":{"displayName":"chatgate-batch","inputConfig":{"requests":{"requests":'
            + requests
            + b"}}}}"
        )
        headers = {**_headers(deployment), "Content-Type": "application/json"}
        created = await fetch_json(ADAPTER, deployment, HttpRequest("POST", url, headers, body))
        return str(created["name"])  # "batches/..."

    async def _batch(self, deployment: Deployment, batch_id: str) -> dict[str, Any]:
        url = f"{deployment.api_base}/{batch_id}"
        request = HttpRequest("GET", url, _headers(deployment), b"")
        return await fetch_json(ADAPTER, deployment, request)

    async def status(self, deployment: Deployment, batch_id: str) -> Status:
        operation = await self._batch(deployment, batch_id)
        metadata = operation.get("metadata") or {}
        state = str(metadata.get("state"))
        ended = _ENDED.get(state)
        if ended is None:
            return Status(False, state)
        error = operation.get("error")
        if isinstance(error, dict) and error.get("message"):
            ended = (ended[0], f"{ended[1]}: {error['message']}")
        return Status(True, state, ended)

    async def results(
        self, deployment: Deployment, batch_id: str, targets: Mapping[str, LineTarget]
    ) -> list[tuple[str, Outcome]]:
        operation = await self._batch(deployment, batch_id)
        output = (operation.get("metadata") or {}).get("output") or {}
        inlined = (output.get("inlinedResponses") or {}).get("inlinedResponses") or []
        outcomes: list[tuple[str, Outcome]] = []
        for record in inlined:
            key = (record.get("metadata") or {}).get("key") if isinstance(record, dict) else None
            if isinstance(key, str) and key in targets:
                outcomes.append((key, _outcome(record, *targets[key])))
        return outcomes


def _outcome(record: Mapping[str, Any], request: ChatRequest, deployment: Deployment) -> Outcome:
    response = record.get("response")
    if isinstance(response, dict):
        try:
            return ADAPTER.parse_response(orjson.dumps(response), request, deployment)
        except APIError as exc:
            return exc
    error = record.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        status = _HTTP.get(code, 500) if isinstance(code, int) else 500
        body = orjson.dumps({"error": {**error, "code": status}})
        return ADAPTER.map_error(status, {}, body, deployment)
    return BatchLineError(
        "batch_error", "the batch returned neither a response nor an error for this line",
        provider=deployment.provider, model=deployment.model,
    )  # fmt: skip
