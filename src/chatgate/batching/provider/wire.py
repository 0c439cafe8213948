"""The HTTP calls of the batch APIs: sent through chatgate's transport, error statuses mapped
by the provider's adapter, exactly as a live call's are."""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.client import attributed, request_id_of
from chatgate.errors import APIConnectionError
from chatgate.providers.base import Adapter, Deployment, HttpRequest
from chatgate.transport import http

__all__ = ["TIMEOUTS", "fetch", "fetch_json", "jsonl"]

# Uploads and result files can be hundreds of MB: a long read and total, a short connect.
TIMEOUTS = http.Timeouts(connect=10.0, read=300.0, total=3600.0)


async def fetch(adapter: Adapter, deployment: Deployment, request: HttpRequest) -> bytes:
    """The response body; an error status raises the adapter's error, keys scrubbed."""
    resp = await http.send(request, TIMEOUTS)
    if resp.status >= 400:
        error = adapter.map_error(resp.status, resp.headers, resp.body, deployment)
        raise attributed(error, deployment, request_id_of(adapter, resp.headers))
    return resp.body


async def fetch_json(
    adapter: Adapter, deployment: Deployment, request: HttpRequest
) -> dict[str, Any]:
    raw = await fetch(adapter, deployment, request)
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise APIConnectionError(
            f"the batch API's answer to {request.method} {request.url} is not a JSON object",
            provider=deployment.provider,
            model=deployment.model,
        )
    return parsed


def jsonl(raw: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (blank lines and non-objects skipped)."""
    out = []
    for line in raw.splitlines():
        if line.strip():
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise APIConnectionError("a line of the batch's result file is not JSON") from None
            if isinstance(obj, dict):
                out.append(obj)
    return out
