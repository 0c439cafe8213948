"""A fake OpenAI Batch API: a real HTTP server on 127.0.0.1 speaking the Files and Batches
wire formats (``POST /v1/files`` multipart with purpose ``batch``, ``POST /v1/batches``,
``GET /v1/batches/{id}``, ``GET /v1/files/{id}/content``), proved with the openai SDK's types
(tests/integration/test_provider_batch_fakes.py).

A batch answers ``in_progress`` for ``BatchScript.polls`` status reads, then ends as the
script says: ``completed`` (every line answered, or an error for the custom_ids in
``line_errors``), ``expired`` (the first ``answered`` lines in the output file, the rest as
``batch_expired`` lines in the error file), ``cancelled`` (the first ``answered`` lines, the
rest with no result at all) or ``failed`` (validation errors, no files). Answers echo the
last user text. ``submissions`` counts created batches: a resumed run must not add one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_server import FakeOpenAI, Received, completion_json, error_json

__all__ = ["BatchFake", "BatchScript", "FakeOpenAIBatches", "echo_text"]

_ids = itertools.count(1)
EXPIRED = "This request could not be executed before the completion window expired."


@dataclass
class BatchScript:
    polls: int = 1  # "in progress" answers before the batch ends
    final: str = "completed"  # completed | expired | cancelled | failed (OpenAI's words)
    answered: int = 0  # with expired / cancelled: how many lines were answered first
    line_errors: dict[str, tuple[int, str, str]] = field(
        default_factory=dict
    )  # id: status, type, message
    prompt_tokens: int = 9
    completion_tokens: int = 3


def echo_text(body: Any) -> str:
    """What the fakes answer to a Chat Completions or Messages body: the last user text."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return f"echo: {content}"
    return "echo: nothing"


class BatchFake(FakeOpenAI):
    """What the batch fakes share: the script, the batches by id, the lines each was given,
    status reads per batch and the count of batches created."""

    def __init__(self, script: BatchScript | None = None) -> None:
        super().__init__()
        self.batch_script = script or BatchScript()
        self.batches: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, list[dict[str, Any]]] = {}
        self.polls: dict[str, int] = {}
        self.submissions = 0


class FakeOpenAIBatches(BatchFake):
    """Start with ``with FakeOpenAIBatches(BatchScript(...)) as fake:``; ``fake.base_url``."""

    def __init__(self, script: BatchScript | None = None) -> None:
        super().__init__(script)
        self.uploads: dict[str, bytes] = {}
        self.failing_reads = 0  # the next status reads answer 500 (a passing outage)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            body = error_json("missing API key", "invalid_request_error", "invalid_api_key")
            return web.json_response(body, status=401)
        if method == "POST" and path == "/v1/files":
            return await self._upload(request)
        self.requests.append(Received(method, path, dict(request.headers), None))
        if method == "POST" and path == "/v1/batches":
            return self._create(orjson.loads(await request.read()))
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 3 and parts[1] == "batches":
            if self.failing_reads:
                self.failing_reads -= 1
                return web.json_response(error_json("try again", "server_error"), status=500)
            return self._retrieve(parts[2])
        content = len(parts) == 4 and parts[1] == "files" and parts[3] == "content"
        if method == "GET" and content and parts[2] in self.uploads:
            return web.Response(body=self.uploads[parts[2]], content_type="application/jsonl")
        return web.json_response(error_json(f"no such path {path}", "not_found"), status=404)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
            error = error_json("purpose must be batch, with a file", "invalid_request_error")
            return web.json_response(error, status=400)
        data = upload.file.read()
        self.requests.append(Received("POST", "/v1/files", dict(request.headers), data))
        for line in data.splitlines():
            record = orjson.loads(line)
            wrong = set(record) != {"custom_id", "method", "url", "body"} or (
                record["url"],
                record["method"],
            ) != ("/v1/chat/completions", "POST")
            if wrong:
                error = error_json(f"bad batch line {line[:80]!r}", "invalid_request_error")
                return web.json_response(error, status=400)
        file_id = f"file-{next(_ids)}"
        self.uploads[file_id] = data
        return web.json_response(
            {"id": file_id, "object": "file", "bytes": len(data), "created_at": 1732000000,
             "filename": upload.filename, "purpose": "batch", "status": "processed"}
        )  # fmt: skip

    def _create(self, body: dict[str, Any]) -> web.StreamResponse:
        if body.get("input_file_id") not in self.uploads:
            return web.json_response(
                error_json("no such file", "invalid_request_error"), status=400
            )
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return web.json_response(
                error_json("bad endpoint", "invalid_request_error"), status=400
            )
        self.submissions += 1
        batch_id = f"batch_{next(_ids)}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h",
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": 1732000000, "in_progress_at": None, "expires_at": 1732086400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }  # fmt: skip
        self.polls[batch_id] = 0
        return web.json_response(self.batches[batch_id])

    def _retrieve(self, batch_id: str) -> web.StreamResponse:
        batch = self.batches.get(batch_id)
        if batch is None:
            return web.json_response(error_json("no such batch", "not_found"), status=404)
        self.polls[batch_id] += 1
        if batch["status"] in ("validating", "in_progress"):
            if self.polls[batch_id] <= self.batch_script.polls:
                batch["status"], batch["in_progress_at"] = "in_progress", 1732000001
            else:
                self._finish(batch)
        return web.json_response(batch)

    def _finish(self, batch: dict[str, Any]) -> None:
        script = self.batch_script
        lines = [orjson.loads(x) for x in self.uploads[batch["input_file_id"]].splitlines()]
        batch["request_counts"]["total"] = len(lines)
        batch["status"] = script.final
        if script.final == "failed":
            error = {
                "code": "invalid_request",
                "message": "the model does not exist",
                "param": "body.model",
                "line": 1,
            }
            batch["errors"] = {"object": "list", "data": [error]}
            return
        ran = lines if script.final == "completed" else lines[: script.answered]
        output, errors = [], []
        for n, line in enumerate(lines):
            record: dict[str, Any] = {"id": f"batch_req_{n}", "custom_id": line["custom_id"]}
            if line in ran and line["custom_id"] in script.line_errors:
                status, kind, message = script.line_errors[line["custom_id"]]
                record["response"] = {"status_code": status, "request_id": f"req_{n}",
                                      "body": error_json(message, kind, kind)}  # fmt: skip
                record["error"] = None
                errors.append(record)
            elif line in ran:
                answer = completion_json(
                    echo_text(line["body"]), model=line["body"]["model"],
                    prompt_tokens=script.prompt_tokens, completion_tokens=script.completion_tokens,
                )  # fmt: skip
                record["response"] = {"status_code": 200, "request_id": f"req_{n}", "body": answer}
                record["error"] = None
                output.append(record)
            elif script.final == "expired":
                record["response"] = None
                record["error"] = {"code": "batch_expired", "message": EXPIRED}
                errors.append(record)
        batch["request_counts"]["completed"] = len(output)
        batch["request_counts"]["failed"] = len(errors)
        for key, records in (("output_file_id", output), ("error_file_id", errors)):
            if records:
                file_id = f"file-{next(_ids)}"
                self.uploads[file_id] = b"".join(orjson.dumps(r) + b"\n" for r in records)
                batch[key] = file_id
        batch[f"{script.final}_at"] = 1732000100
