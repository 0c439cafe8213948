"""What a cache stores for one key, as bytes: a JSON header line, then the response JSON.

The header keeps what the answer's meta said when it was made (provider, model, deployment,
cost), so a hit can report the cost it saved. A stored error (only with ``store_errors``) has
a header and no body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from chatgate import errors
from chatgate.errors import APIStatusError
from chatgate.types import ChatResponse

__all__ = ["Entry", "decode", "encode_error", "encode_response"]

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Entry:
    response: ChatResponse | None
    error: APIStatusError | None
    created: float
    cost: Decimal | None  # what the answer cost when it was made

    def age_s(self, now: float | None = None) -> float:
        return max((time.time() if now is None else now) - self.created, 0.0)


def encode_response(response: ChatResponse, now: float | None = None) -> bytes:
    meta = response.meta
    header = {
        "v": _FORMAT,
        "at": time.time() if now is None else now,
        "provider": meta.provider,
        "model": meta.model,
        "deployment": meta.deployment,
        "model_name": meta.model_name,
        "cost": None if meta.cost is None else str(meta.cost),
    }
    body = response.__pydantic_serializer__.to_json(response, exclude_unset=True)
    return orjson.dumps(header) + b"\n" + body


def encode_error(exc: APIStatusError, now: float | None = None) -> bytes:
    header = {
        "v": _FORMAT,
        "at": time.time() if now is None else now,
        "error": {
            "type": type(exc).__name__,
            "message": exc.message,
            "status_code": exc.status_code,
            "body": exc.body,
            "provider": exc.provider,
            "model": exc.model,
        },
    }
    return orjson.dumps(header, default=str)


def _error(data: dict[str, Any]) -> APIStatusError:
    cls = getattr(errors, str(data.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, APIStatusError)):
        cls = APIStatusError
    return cls(
        str(data.get("message", "")),
        status_code=data.get("status_code"),
        body=data.get("body"),
        provider=data.get("provider"),
        model=data.get("model"),
    )


def decode(raw: bytes) -> Entry | None:
    """The stored entry, or None for bytes this version cannot read (treated as a miss)."""
    head, _, body = raw.partition(b"\n")
    try:
        header = orjson.loads(head)
        if header.get("v") != _FORMAT:
            return None
        cost = None if header.get("cost") is None else Decimal(header["cost"])
        created = float(header["at"])
        if "error" in header:
            return Entry(None, _error(header["error"]), created, None)
        response = ChatResponse.model_validate_json(body)
    except (ValueError, KeyError, ArithmeticError):
        return None
    meta = response.meta
    meta.provider = header.get("provider") or ""
    meta.model = header.get("model") or response.model
    meta.deployment = header.get("deployment")
    meta.model_name = header.get("model_name")
    return Entry(response, None, created, cost)
