"""Anthropic's Message Batches API: the lines posted as one batch (``POST
/v1/messages/batches``, each ``{"custom_id", "params"}`` with ``params`` the Messages body the
Anthropic adapter sends live), polled (``GET /v1/messages/batches/{id}``) and its results
read as JSONL once ``processing_status`` is ``ended``.

Answers are read by the adapter's ``parse_message``, errors by its ``error_from_payload``.
The results are fetched from the configured base URL (the path ``results_url`` names), so
the key goes to no other host. Anthropic allows only ``[A-Za-z0-9_-]{1,64}`` as a line's id:
other custom_ids are sent as ``_L<line>`` and mapped back through the state file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from chatgate.batching.provider.api import BatchLineError, LineTarget, Outcome, Status
from chatgate.batching.provider.wire import fetch, fetch_json, jsonl
from chatgate.errors import APIError
from chatgate.providers.anthropic.errors import error_from_payload
from chatgate.providers.anthropic.request import ANTHROPIC_VERSION, PATH, build_body
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.registry import get_adapter
from chatgate.types import ChatRequest

__all__ = ["AnthropicBatches"]

BATCHES = PATH + "/batches"
ADAPTER = get_adapter("anthropic")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NOT_RUN = {
    "canceled": ("batch_cancelled", "the batch was cancelled before this line ran"),
    "expired": ("batch_expired", "the batch expired (24 h window) before this line ran"),
}


def _headers(deployment: Deployment) -> dict[str, str]:
    headers = {"anthropic-version": deployment.api_version or ANTHROPIC_VERSION}
    headers.update(deployment.headers)
    if deployment.api_key:
        headers["x-api-key"] = deployment.api_key
    return headers


def _get(url: str, deployment: Deployment) -> HttpRequest:
    return HttpRequest("GET", url, _headers(deployment), b"")


class AnthropicBatches:
    provider = "anthropic"
    max_lines = 100_000
    max_bytes = 256 * 1024 * 1024

    def job_key(self, deployment: Deployment) -> tuple[str | None, ...]:
        return (deployment.provider, deployment.api_base, deployment.api_key)

    def wire_id(self, custom_id: str, line: int) -> str:
        return custom_id if _ID.match(custom_id) and not custom_id.startswith("_L") else f"_L{line}"

    def line(self, wire_id: str, request: ChatRequest, deployment: Deployment) -> bytes:
        return orjson.dumps({"custom_id": wire_id, "params": build_body(request, deployment)})

    async def submit(self, deployment: Deployment, lines: list[bytes]) -> str:
        body = b'{"requests":[' + b",".join(lines) + b"]}"
        headers = {**_headers(deployment), "Content-Type": "application/json"}
        url = deployment.api_base + BATCHES
        created = await fetch_json(ADAPTER, deployment, HttpRequest("POST", url, headers, body))
        return str(created["id"])

    async def status(self, deployment: Deployment, batch_id: str) -> Status:
        url = f"{deployment.api_base}{BATCHES}/{batch_id}"
        batch = await fetch_json(ADAPTER, deployment, _get(url, deployment))
        state = str(batch.get("processing_status"))
        return Status(state == "ended", state)

    async def results(
        self, deployment: Deployment, batch_id: str, targets: Mapping[str, LineTarget]
    ) -> list[tuple[str, Outcome]]:
        url = f"{deployment.api_base}{BATCHES}/{batch_id}/results"
        raw = await fetch(ADAPTER, deployment, _get(url, deployment))
        outcomes: list[tuple[str, Outcome]] = []
        for record in jsonl(raw):
            wire_id = record.get("custom_id")
            if isinstance(wire_id, str) and wire_id in targets:
                outcomes.append((wire_id, _outcome(record.get("result"), *targets[wire_id])))
        return outcomes


def _outcome(result: Any, request: ChatRequest, deployment: Deployment) -> Outcome:
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == "succeeded":
        try:
            return ADAPTER.parse_response(orjson.dumps(result["message"]), request, deployment)
        except APIError as exc:
            return exc
    if kind == "errored" and isinstance(result.get("error"), dict):
        return error_from_payload(result["error"], deployment)
    code, message = _NOT_RUN.get(str(kind), ("batch_error", f"unknown batch result {kind!r}"))
    return BatchLineError(code, message, provider=deployment.provider, model=deployment.model)
