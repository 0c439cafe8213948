"""A batch output file: OpenAI's Batch API output format, appended one whole line per answer.

Each line is ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}``. An answer has ``error: null`` and the chat.completion as ``body``; a failure has
``error: {"code", "message"}`` and, when the upstream answered with an error status, that
status and its error body in ``response`` (else ``response: null``).

Lines are written in order of completion, each with one write and a flush, so a crash loses
at most the requests in flight; a line cut short by a crash is dropped when the file is
opened again (its request runs again).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from chatgate.errors import ChatgateError, InvalidRequestError
from chatgate.types import ChatResponse

__all__ = [
    "Existing",
    "LineHook",
    "OutputFile",
    "failure_line",
    "load_existing",
    "success_line",
    "write_atomically",
]

# Called with each line's custom_id and outcome once its line is written (e.g. a spend row).
LineHook = Callable[[str, ChatResponse | ChatgateError], None]


@dataclass
class Existing:
    """What an earlier run left in the output file."""

    succeeded: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    repaired: bool = False  # a cut-off last line was removed


def _succeeded(record: Any) -> bool:
    response = record.get("response") if isinstance(record, dict) else None
    return (
        record.get("error") is None
        and isinstance(response, dict)
        and response.get("status_code") == 200
    )


def load_existing(path: Path, *, retry_failed: bool) -> Existing:
    """Read (and repair) an earlier run's output. With ``retry_failed`` the failed lines are
    removed (atomically: a new file replaces the old) so that their requests run again and
    the file keeps one line per custom_id."""
    found = Existing()
    if not path.exists():
        return found
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records: list[tuple[bytes, Any]] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            records.append((raw, orjson.loads(raw)))
        except orjson.JSONDecodeError:
            raise InvalidRequestError(
                f"{path} line {number} is not JSON: not a batch output file? Pass another -o",
                param="output",
            ) from None
    if tail.strip():
        try:
            records.append((tail, orjson.loads(tail)))  # whole, only its newline missing
        except orjson.JSONDecodeError:
            found.repaired = True  # cut off mid-write by a crash: that request runs again
    kept: list[bytes] = []
    for raw, record in records:
        custom_id = record.get("custom_id") if isinstance(record, dict) else None
        if not isinstance(custom_id, str):
            raise InvalidRequestError(
                f"{path} has a line without custom_id: not a batch output file? Pass another -o",
                param="output",
            )
        if _succeeded(record):
            found.succeeded.add(custom_id)
        elif retry_failed:
            continue
        else:
            found.failed.add(custom_id)
        kept.append(raw)
    if found.repaired or retry_failed or tail.strip():
        write_atomically(path, b"".join(raw + b"\n" for raw in kept))
    return found


def write_atomically(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content``: a crash leaves the old file or the new, whole."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:  # a full disk: what was written of it would only fill it more
        temp.unlink(missing_ok=True)
        raise


class OutputFile:
    """Appends whole lines, flushed one by one. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def __enter__(self) -> OutputFile:
        self._file = open(self.path, "ab")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(orjson.dumps(record) + b"\n")
        self._file.flush()


def _line_id() -> str:
    return f"batch_req_{uuid.uuid4().hex}"


def success_line(custom_id: str, response: ChatResponse) -> dict[str, Any]:
    body = orjson.loads(response.__pydantic_serializer__.to_json(response, exclude_unset=True))
    request_id = response.meta.request_id
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": request_id, "body": body},
        "error": None,
    }


def _code(exc: ChatgateError) -> str:
    code = getattr(exc, "code", None)
    body = exc.body if isinstance(exc.body, dict) else {}
    upstream = body.get("error")
    if not code and isinstance(upstream, dict):
        code = upstream.get("code") or upstream.get("type")
    if isinstance(code, str) and code:
        return code
    # RateLimitError -> rate_limit_error
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def failure_line(custom_id: str, exc: ChatgateError) -> dict[str, Any]:
    code = _code(exc)
    response = None
    if exc.status_code:
        # built from the message, which is scrubbed of keys, never from the raw upstream body
        error_body = {"error": {"message": exc.message, "type": code, "param": None, "code": code}}
        response = {
            "status_code": exc.status_code,
            "request_id": exc.request_id,
            "body": error_body,
        }
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": response,
        "error": {"code": code, "message": str(exc)},
    }
