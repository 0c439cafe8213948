"""The JSON schema of a ``response_model``, in the forms the providers take.

``OutputSchema.portable`` is pydantic's schema cleaned for every provider's translation
(``oneOf`` -> ``anyOf``, ``const`` -> one-value ``enum``, no ``default``, ``discriminator``
or boolean ``additionalProperties``, a root ``$ref`` inlined). ``OutputSchema.strict`` is
that schema made acceptable to OpenAI's ``json_schema`` strict mode: every object closed
(``additionalProperties: false``) and every property required; a field that may be absent
is already typed ``X | None`` by pydantic, so it stays nullable. A field with a non-None
default becomes required: the model must give a value. A type whose schema is not an object
(``list[Item]``, a union, ``int``) is wrapped in an envelope ``{"value": ...}`` that is
unwrapped before validation.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pydantic

__all__ = ["ENVELOPE_KEY", "OutputSchema", "output_schema"]

ENVELOPE_KEY = "value"
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")


@dataclass(frozen=True)
class OutputSchema:
    name: str
    portable: dict[str, Any]
    strict: dict[str, Any] | None  # None when strict mode cannot express the type
    strict_problem: str | None  # why not, naming the field
    enveloped: bool
    recursive: bool
    adapter: pydantic.TypeAdapter[Any]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _refs(node: Any) -> set[str]:
    return {n["$ref"].rsplit("/", 1)[-1] for n in _walk(node) if isinstance(n.get("$ref"), str)}


def _is_recursive(defs: dict[str, Any]) -> bool:
    graph = {name: _refs(body) for name, body in defs.items()}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    return any(reaches(name, name, {name}) for name in graph)


def _clean(node: dict[str, Any]) -> dict[str, Any]:
    """The portable rewrite of one schema node (children are rewritten by the caller)."""
    out = {k: v for k, v in node.items() if k not in ("default", "discriminator")}
    if isinstance(out.get("additionalProperties"), bool):  # validation enforces extra="forbid"
        del out["additionalProperties"]
    if "oneOf" in out:
        out["anyOf"] = out.pop("oneOf")
    if "const" in out:
        out["enum"] = [out.pop("const")]
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        del out["allOf"]
        out = {**all_of[0], **out}
    return out


def _portable(node: Any) -> Any:
    if isinstance(node, list):
        return [_portable(v) for v in node]
    if not isinstance(node, dict):
        return node
    cleaned = _clean(node)
    return {
        k: (
            {name: _portable(sub) for name, sub in v.items()}
            if k in ("properties", "$defs")
            else _portable(v)
        )
        for k, v in cleaned.items()
    }


class _StrictProblem(Exception):
    pass


def _strict(node: Any, path: str, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_strict(v, path, defs) for v in node]  # anyOf branches: same field
    if not isinstance(node, dict):
        return node
    if "$ref" in node and len(node) > 1:  # strict mode takes no keywords beside a $ref
        target = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {n: _strict(s, f"{path}.{n}" if path else n, defs) for n, s in value.items()}
        elif key == "$defs":
            out[key] = {n: _strict(s, n, defs) for n, s in value.items()}
        elif key == "prefixItems":
            raise _StrictProblem(f"{path}: tuples (prefixItems) are not supported in strict mode")
        else:
            out[key] = _strict(value, path, defs)
    extra = out.get("additionalProperties")
    if isinstance(extra, dict):
        raise _StrictProblem(
            f"{path or 'root'}: a dict field (free-form keys) cannot be expressed in strict "
            "mode; use a list of key/value models"
        )
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
        out.setdefault("properties", {})
    return out


def _name(tp: Any) -> str:
    raw = getattr(tp, "__name__", None) or "response"
    return _NAME_CHARS.sub("_", raw)[:64] or "response"


def output_schema(tp: Any) -> OutputSchema:
    """The schemas of a response type, computed once per type."""
    return _build(tp)


@functools.lru_cache(maxsize=256)
def _build(tp: Any) -> OutputSchema:
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(tp)
    raw = copy.deepcopy(adapter.json_schema())
    defs: dict[str, Any] = raw.pop("$defs", {})
    ref = raw.get("$ref")
    if isinstance(ref, str) and len(raw) == 1:  # a recursive model: its body lives in $defs
        raw = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
    enveloped = raw.get("type") != "object"
    if enveloped:
        raw = {"type": "object", "properties": {ENVELOPE_KEY: raw}, "required": [ENVELOPE_KEY]}
    if defs:
        raw["$defs"] = defs
    portable = _portable(raw)
    strict: dict[str, Any] | None = None
    problem: str | None = None
    try:
        strict = _strict(portable, "", portable.get("$defs", {}))
    except _StrictProblem as exc:
        problem = str(exc)
    return OutputSchema(
        name=_name(tp),
        portable=portable,
        strict=strict,
        strict_problem=problem,
        enveloped=enveloped,
        recursive=_is_recursive(defs),
        adapter=adapter,
    )
