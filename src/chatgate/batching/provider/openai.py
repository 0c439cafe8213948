"""OpenAI's Batch API: the lines uploaded as a file (``POST /files``, purpose ``batch``), a
batch created on it (``POST /batches``, 24 h window), polled (``GET /batches/{id}``), and its
output and error files read (``GET /files/{id}/content``).

Each line's body is what the OpenAI adapter sends live; each answer is read by the adapter's
``parse_response`` and each error body by its ``map_error``. One batch serves one model
(OpenAI's rule), so lines are grouped by model.
"""

from __future__ import annotations

import uuid
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
from chatgate.batching.provider.wire import fetch, fetch_json, jsonl
from chatgate.errors import APIError
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.openai import ADAPTER
from chatgate.types import ChatRequest

__all__ = ["OpenAIBatches"]

ENDPOINT = "/v1/chat/completions"
_ENDED = {
    "completed": ("batch_missing", "the batch completed without a result for this line"),
    "failed": ("batch_failed", "the batch failed validation"),
    "expired": ("batch_expired", "the batch expired (24 h window) before this line ran"),
    "cancelled": ("batch_cancelled", "the batch was cancelled before this line ran"),
}


def _headers(deployment: Deployment) -> dict[str, str]:
    headers = dict(deployment.headers)
    if deployment.api_key:
        headers["Authorization"] = f"Bearer {deployment.api_key}"
    return headers


def _get(url: str, deployment: Deployment) -> HttpRequest:
    return HttpRequest("GET", url, _headers(deployment), b"")


def multipart(fields: Mapping[str, str], filename: str, content: bytes) -> tuple[str, bytes]:
    """(content type, body) of a form with text ``fields`` and one file. Written here because
    the transport sends bytes and the stdlib has no multipart encoder (aiohttp's FormData
    would bring aiohttp objects out of transport/)."""
    boundary = f"chatgate-{uuid.uuid4().hex}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/jsonl\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def _missing(batch: Mapping[str, Any]) -> tuple[str, str]:
    code, message = _ENDED.get(str(batch.get("status")), _ENDED["completed"])
    errors = batch.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    if isinstance(data, list) and data:
        said = "; ".join(
            f"{e.get('message')}" + (f" (line {e['line']})" if e.get("line") else "")
            for e in data[:5]
            if isinstance(e, dict)
        )
        message = f"{message}: {said}"
    return code, message


class OpenAIBatches(PerModelJobs):
    provider = "openai"
    max_lines = 50_000
    max_bytes = 200 * 1024 * 1024

    def line(self, wire_id: str, request: ChatRequest, deployment: Deployment) -> bytes:
        body = orjson.loads(ADAPTER.build_request(request, deployment).body)
        return orjson.dumps({"custom_id": wire_id, "method": "POST", "url": ENDPOINT, "body": body})

    async def submit(self, deployment: Deployment, lines: list[bytes]) -> str:
        content_type, form = multipart(
            {"purpose": "batch"}, "chatgate-batch.jsonl", b"".join(x + b"\n" for x in lines)
        )
        base, headers = deployment.api_base, _headers(deployment)
        upload = HttpRequest(
            "POST", f"{base}/files", {**headers, "Content-Type": content_type}, form
        )
        uploaded = await fetch_json(ADAPTER, deployment, upload)
        create = {"input_file_id": uploaded["id"], "endpoint": ENDPOINT, "completion_window": "24h"}
        json_headers = {**headers, "Content-Type": "application/json"}
        created = await fetch_json(
            ADAPTER,
            deployment,
            HttpRequest("POST", f"{base}/batches", json_headers, orjson.dumps(create)),
        )
        return str(created["id"])

    async def _batch(self, deployment: Deployment, batch_id: str) -> dict[str, Any]:
        url = f"{deployment.api_base}/batches/{batch_id}"
        return await fetch_json(ADAPTER, deployment, _get(url, deployment))

    async def status(self, deployment: Deployment, batch_id: str) -> Status:
        batch = await self._batch(deployment, batch_id)
        state = str(batch.get("status"))
        return Status(state in _ENDED, state, _missing(batch))

    async def results(
        self, deployment: Deployment, batch_id: str, targets: Mapping[str, LineTarget]
    ) -> list[tuple[str, Outcome]]:
        batch = await self._batch(deployment, batch_id)
        outcomes: list[tuple[str, Outcome]] = []
        for key in ("output_file_id", "error_file_id"):
            file_id = batch.get(key)
            if not file_id:
                continue
            url = f"{deployment.api_base}/files/{file_id}/content"
            raw = await fetch(ADAPTER, deployment, _get(url, deployment))
            for record in jsonl(raw):
                wire_id = record.get("custom_id")
                if isinstance(wire_id, str) and wire_id in targets:
                    outcomes.append((wire_id, _outcome(record, *targets[wire_id])))
        return outcomes


def _outcome(record: Mapping[str, Any], request: ChatRequest, deployment: Deployment) -> Outcome:
    response = record.get("response")
    error = record.get("error")
    if isinstance(response, dict):
        status = response.get("status_code")
        body = orjson.dumps(response.get("body"))
        request_id = response.get("request_id")
        try:
            if status == 200 and not error:
                answer = ADAPTER.parse_response(body, request, deployment)
                answer.meta.request_id = request_id if isinstance(request_id, str) else None
                return answer
            if isinstance(status, int) and status >= 400:
                return ADAPTER.map_error(status, {}, body, deployment)
        except APIError as exc:
            return exc
    error = error if isinstance(error, dict) else {}
    return BatchLineError(
        str(error.get("code") or "batch_error"),
        str(error.get("message") or "the batch API returned an error for this line"),
        provider=deployment.provider,
        model=deployment.model,
    )
