"""Cache keys: a SHA-256 of the normalized request.

Two requests share a key exactly when an upstream model would see the same input and the same
output-affecting parameters. Normalization makes the key stable across what does not change
the answer:

- dict key order (keys are sorted at every level);
- number formatting: ``0``, ``0.0``, ``0e0`` and ``1.0``/``1`` are one number each (a float
  that holds an integer is written as that integer; other floats in shortest round-trip form);
- a request or message field given as ``null`` and one left out (both mean "the default");
- fields that never change the answer: ``user``, ``metadata``, ``stream``, ``stream_options``,
  ``store``, ``prompt_cache_key``, ``safety_identifier`` (and timeouts, which are not part of
  the request at all).

Everything else counts, including parameters chatgate does not know (vendor extensions), the
order of messages and of list items, and a ``partition`` string the caller adds (the library
passes the API base URL, so two servers that serve different models under one name never
share answers).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from chatgate.embedding_types import EmbeddingRequest
from chatgate.types import ChatRequest

__all__ = [
    "IGNORED_FIELDS",
    "KEY_VERSION",
    "cache_key",
    "embedding_key",
    "normalize",
    "scope_key",
]

KEY_VERSION = "cg1"

_EXACT = 2**53  # floats below this that hold an integer are that integer, exactly
_INT64 = 2**63

IGNORED_FIELDS = frozenset(
    {
        "user",
        "metadata",
        "stream",
        "stream_options",
        "store",
        "prompt_cache_key",
        "safety_identifier",
    }
)


def normalize(value: Any) -> Any:
    """JSON-ready data with every integral float written as an int."""
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT64:
        return {"$int": str(value)}  # beyond what orjson writes; still one spelling per number
    return value


def _without_nulls(fields: dict[str, Any]) -> dict[str, Any]:
    """``null`` means "not given" for request fields and message fields, but not inside free
    JSON (a tool's schema may say ``"default": null``), so only those two levels drop it."""
    kept = {k: v for k, v in fields.items() if v is not None and k not in IGNORED_FIELDS}
    messages = kept.get("messages")
    if isinstance(messages, list):
        kept["messages"] = [
            {k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m
            for m in messages
        ]
    return kept


def _digest(material: dict[str, Any]) -> str:
    data = orjson.dumps(material, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(data).hexdigest()


def _request_fields(request: ChatRequest) -> dict[str, Any]:
    fields = _without_nulls(request.wire())
    fields.pop("model", None)
    return fields


def cache_key(
    request: ChatRequest, model_name: str, *, namespace: str = "", partition: str = ""
) -> str:
    """The exact-match key: ``model_name`` is what the caller asked for (a router's model group,
    or the library's ``provider/model``); the request's own ``model`` field is left out, so every
    deployment of one group shares answers."""
    fields = _request_fields(request)
    material = {
        "v": KEY_VERSION,
        "model": model_name,
        "ns": namespace,
        "part": partition,
        "req": normalize(fields),
    }
    return _digest(material)


def scope_key(
    request: ChatRequest,
    model_name: str,
    *,
    namespace: str = "",
    partition: str = "",
    last_user_index: int,
) -> str:
    """The semantic scope: the exact key of everything except the text of the last user
    message. Requests in one scope differ only in that question, so a similar question may
    reuse an answer; a different model, system prompt, tool set, parameter or earlier turn is
    a different scope and never shares answers."""
    fields = _request_fields(request)
    messages = list(fields.get("messages") or [])
    messages[last_user_index] = {"role": "user", "content": "<semantic>"}
    fields["messages"] = messages
    material = {
        "v": KEY_VERSION,
        "kind": "semantic-scope",
        "model": model_name,
        "ns": namespace,
        "part": partition,
        "req": normalize(fields),
    }
    return _digest(material)


def embedding_key(
    request: EmbeddingRequest, model_name: str, *, namespace: str = "", partition: str = ""
) -> str:
    """An embeddings request's key: its input and every field but ``user`` and ``model``
    (``model_name`` stands for it), apart from every chat answer's."""
    fields = _without_nulls(request.wire())
    fields.pop("model", None)
    material = {
        "v": KEY_VERSION,
        "kind": "embeddings",
        "model": model_name,
        "ns": namespace,
        "part": partition,
        "req": normalize(fields),
    }
    return _digest(material)
