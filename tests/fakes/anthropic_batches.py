"""A fake Anthropic Message Batches API: a real HTTP server on 127.0.0.1 speaking its wire
format (``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``, the JSONL at
``results_url``), proved with the anthropic SDK's types
(tests/integration/test_provider_batch_fakes.py).

A batch is ``in_progress`` for ``BatchScript.polls`` status reads, then ``ended``; its
results follow the script: ``completed`` (every line ``succeeded``, or ``errored`` for the
custom_ids in ``line_errors``), ``expired`` / ``cancelled`` (the first ``answered`` lines
succeeded, the rest ``expired`` / ``canceled``). Answers echo the last user text.
``submissions`` counts created batches.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.anthropic_server import error_body, message_json, usage_json
from tests.fakes.openai_batches import BatchFake, BatchScript, echo_text
from tests.fakes.openai_server import Received

__all__ = ["BatchScript", "FakeAnthropicBatches"]

_ids = itertools.count(1)
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PREFIX = "/v1/messages/batches"


class FakeAnthropicBatches(BatchFake):
    """Start with ``with FakeAnthropicBatches(BatchScript(...)) as fake:``."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        self.requests.append(Received(request.method, request.path, dict(request.headers), body))
        # The SDK (2.x) authenticates with a bearer token, chatgate with x-api-key: both work.
        keyed = request.headers.get("x-api-key") or request.headers.get("Authorization")
        if not keyed or not request.headers.get("anthropic-version"):
            error = error_body("authentication_error", "an API key and anthropic-version needed")
            return web.json_response(error, status=401)
        rest = request.path.removeprefix(_PREFIX).strip("/").split("/")
        if request.method == "POST" and request.path == _PREFIX:
            return self._create(body)
        if request.method == "GET" and request.path.startswith(_PREFIX) and rest[0] in self.batches:
            if len(rest) == 1:
                return self._retrieve(rest[0])
            if rest[1:] == ["results"] and self.batches[rest[0]]["results_url"]:
                return web.Response(body=self._results(rest[0]), content_type="application/binary")
        error = error_body("not_found_error", f"Not found: {request.path}")
        return web.json_response(error, status=404)

    def _create(self, body: Any) -> web.StreamResponse:
        requests = body.get("requests") if isinstance(body, dict) else None
        problem = None if isinstance(requests, list) and requests else "requests: a non-empty list"
        for n, line in enumerate(requests or []):
            params = line.get("params") or {}
            if not _CUSTOM_ID.match(str(line.get("custom_id"))):
                problem = f"requests.{n}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
            elif not {"model", "max_tokens", "messages"} <= set(params) or params.get("stream"):
                problem = f"requests.{n}.params: model, max_tokens and messages, no stream"
        if problem:
            return web.json_response(error_body("invalid_request_error", problem), status=400)
        self.submissions += 1
        batch_id = f"msgbatch_{next(_ids):04d}"
        self.inputs[batch_id] = requests or []
        self.polls[batch_id] = 0
        self.batches[batch_id] = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(self.inputs[batch_id]),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "ended_at": None,
            "created_at": "2026-12-05T10:00:00Z",
            "expires_at": "2026-12-06T10:00:00Z",
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": None,
        }
        return web.json_response(self.batches[batch_id])

    def _retrieve(self, batch_id: str) -> web.StreamResponse:
        batch = self.batches[batch_id]
        self.polls[batch_id] += 1
        if batch["processing_status"] == "in_progress" and (
            self.polls[batch_id] > self.batch_script.polls
        ):
            batch["processing_status"] = "ended"
            batch["ended_at"] = "2026-12-05T11:00:00Z"
            batch["results_url"] = f"{self.base_url}{_PREFIX}/{batch_id}/results"
            counts = batch["request_counts"]
            counts["processing"] = 0
            for record in self._records(batch_id):
                counts[record["result"]["type"]] += 1
        return web.json_response(batch)

    def _records(self, batch_id: str) -> list[dict[str, Any]]:
        script = self.batch_script
        ran = len(self.inputs[batch_id]) if script.final == "completed" else script.answered
        left = {"expired": "expired", "cancelled": "canceled"}.get(script.final, "expired")
        records = []
        for n, line in enumerate(self.inputs[batch_id]):
            params, custom_id = line["params"], line["custom_id"]
            result: dict[str, Any]
            if n >= ran:
                result = {"type": left}
            elif custom_id in script.line_errors:
                _, kind, message = script.line_errors[custom_id]
                result = {"type": "errored", "error": error_body(kind, message)}
            else:
                usage = usage_json(script.prompt_tokens, script.completion_tokens)
                answer = message_json(echo_text(params), model=params["model"], usage=usage)
                result = {"type": "succeeded", "message": answer}
            records.append({"custom_id": custom_id, "result": result})
        return records

    def _results(self, batch_id: str) -> bytes:
        return b"".join(orjson.dumps(r) + b"\n" for r in self._records(batch_id))
