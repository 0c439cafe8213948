"""A fake Gemini Batch Mode (AI Studio): a real HTTP server on 127.0.0.1 speaking its wire
format (``POST /v1beta/models/{model}:batchGenerateContent`` with inline requests, ``GET
/v1beta/batches/{id}`` answering the batch operation, results in
``metadata.output.inlinedResponses``), proved with the google-genai SDK's types
(tests/integration/test_provider_batch_fakes.py).

A batch is ``BATCH_STATE_RUNNING`` for ``BatchScript.polls`` reads, then ends as the script
says: ``completed`` (``BATCH_STATE_SUCCEEDED``: every line answered, or an error Status for the
keys in ``line_errors``), ``expired`` / ``cancelled`` (the first ``answered`` lines, no result
for the rest) or ``failed`` (no output). Answers echo the last user text.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.gemini_server import candidate_json, error_json, response_json, usage_json
from tests.fakes.openai_batches import BatchFake, BatchScript
from tests.fakes.openai_server import Received

__all__ = ["BatchScript", "FakeGeminiBatches"]

_ids = itertools.count(1)
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_STATE = {
    "completed": "BATCH_STATE_SUCCEEDED",
    "expired": "BATCH_STATE_EXPIRED",
    "cancelled": "BATCH_STATE_CANCELLED",
    "failed": "BATCH_STATE_FAILED",
}
_GRPC = {400: (3, "INVALID_ARGUMENT"), 429: (8, "RESOURCE_EXHAUSTED"), 500: (13, "INTERNAL")}


def _text(request: dict[str, Any]) -> str:
    for content in reversed(request.get("contents") or []):
        if content.get("role", "user") == "user":
            return " ".join(p.get("text", "") for p in content.get("parts") or [])
    return "nothing"


class FakeGeminiBatches(BatchFake):
    """Start with ``with FakeGeminiBatches(BatchScript(...)) as fake:``; ``fake.base_url``."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1beta"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        self.requests.append(Received(request.method, request.path, dict(request.headers), body))
        if not request.headers.get("x-goog-api-key"):
            error = error_json(403, "PERMISSION_DENIED", "an API key is needed")
            return web.json_response(error, status=403)
        path = request.path.removeprefix("/v1beta/")
        if request.method == "POST" and path.endswith(":batchGenerateContent"):
            return self._create(path.removeprefix("models/").split(":")[0], body)
        if request.method == "GET" and path in self.batches:
            return self._retrieve(path)
        error = error_json(404, "NOT_FOUND", f"no such path {request.path}")
        return web.json_response(error, status=404)

    def _create(self, model: str, body: Any) -> web.StreamResponse:
        batch = (body or {}).get("batch") or {}
        requests = (((batch.get("inputConfig") or {}).get("requests")) or {}).get("requests")
        if not isinstance(requests, list) or not all(
            isinstance(r, dict) and isinstance(r.get("request"), dict) for r in requests
        ):
            error = error_json(400, "INVALID_ARGUMENT", "inputConfig.requests.requests needed")
            return web.json_response(error, status=400)
        self.submissions += 1
        name = f"batches/fake{next(_ids):04d}"
        self.inputs[name] = requests
        self.polls[name] = 0
        self.batches[name] = {
            "name": name,
            "metadata": {
                "@type": f"{_TYPE}GenerateContentBatch",
                "model": f"models/{model}",
                "displayName": batch.get("displayName", ""),
                "state": "BATCH_STATE_PENDING",
                "createTime": "2026-12-05T10:00:00Z",
                "updateTime": "2026-12-05T10:00:00Z",
                "name": name,
            },
        }
        return web.json_response(self.batches[name])

    def _retrieve(self, name: str) -> web.StreamResponse:
        operation = self.batches[name]
        self.polls[name] += 1
        metadata = operation["metadata"]
        if metadata["state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
            if self.polls[name] <= self.batch_script.polls:
                metadata["state"] = "BATCH_STATE_RUNNING"
            else:
                self._finish(name, operation)
        return web.json_response(operation)

    def _finish(self, name: str, operation: dict[str, Any]) -> None:
        script = self.batch_script
        metadata = operation["metadata"]
        metadata["state"] = _STATE[script.final]
        metadata["endTime"] = "2026-12-05T11:00:00Z"
        operation["done"] = True
        if script.final == "failed":
            operation["error"] = {"code": 3, "message": "the input is invalid"}
            return
        lines = self.inputs[name]
        ran = lines if script.final == "completed" else lines[: script.answered]
        responses = []
        for line in ran:
            key = (line.get("metadata") or {}).get("key")
            record: dict[str, Any] = {"metadata": line.get("metadata")}
            if key in script.line_errors:
                status, _, message = script.line_errors[key]
                code, word = _GRPC.get(status, (13, "INTERNAL"))
                record["error"] = {"code": code, "message": message, "status": word}
            else:
                part = {"text": f"echo: {_text(line['request'])}"}
                usage = usage_json(script.prompt_tokens, script.completion_tokens)
                record["response"] = response_json(candidate_json(part), usage=usage)
            responses.append(record)
        output = {"inlinedResponses": {"inlinedResponses": responses}}
        metadata["output"] = output
        operation["response"] = {
            "@type": f"{_TYPE}GenerateContentBatchOutput",
            **output,
        }
