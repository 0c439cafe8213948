"""JSON Schema -> the OpenAPI 3.0 subset Gemini accepts for function parameters and
``responseSchema``.

Kept: type (upper-case; ``["x", "null"]`` becomes ``nullable``), format (only the ones Gemini
documents per type), title, description, nullable, enum (string values), items, properties,
required, min/maxItems, min/maxProperties, min/maxLength, pattern, minimum, maximum, anyOf,
propertyOrdering. Rewritten: ``$ref`` inlined from ``$defs`` / ``definitions``, ``const`` ->
a one-value ``enum``, ``oneOf`` -> ``anyOf``, ``allOf`` merged. Everything else is dropped and
every dropped keyword is named in ONE ``ChatgateSchemaWarning`` per request.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from chatgate.errors import InvalidRequestError

__all__ = ["ChatgateSchemaWarning", "SchemaConverter"]


class ChatgateSchemaWarning(UserWarning):
    """A JSON Schema keyword was dropped because the provider cannot express it."""


_KEEP = frozenset(
    {
        "title",
        "description",
        "nullable",
        "required",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "propertyOrdering",
    }
)
_HANDLED = frozenset(
    {"type", "format", "enum", "const", "items", "properties", "anyOf", "oneOf", "allOf", "$ref"}
)
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "INTEGER": frozenset({"int32", "int64"}),
    "NUMBER": frozenset({"float", "double"}),
}
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})


class SchemaConverter:
    """Converts the schemas of one request, collecting what it had to drop; ``warn()`` once
    at the end names all of it."""

    __slots__ = ("_defs", "_stack", "dropped")

    def __init__(self) -> None:
        self.dropped: dict[str, list[str]] = {}  # where -> keywords, in order seen
        self._defs: Mapping[str, Any] = {}
        self._stack: list[str] = []

    def convert(self, schema: Mapping[str, Any], where: str) -> dict[str, Any]:
        """``where`` names the schema in messages, e.g. ``tools[0].function.parameters``."""
        defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
        self._defs = defs
        self._stack = []
        return self._node(schema, where, root=True)

    def warn(self, provider: str) -> None:
        if not self.dropped:
            return
        listed = "; ".join(f"{where}: {', '.join(kws)}" for where, kws in self.dropped.items())
        warnings.warn(
            f"{provider} does not support these JSON Schema keywords, so they were dropped "
            f"(the model is not held to them): {listed}",
            ChatgateSchemaWarning,
            stacklevel=2,
        )

    def _drop(self, where: str, keyword: str) -> None:
        seen = self.dropped.setdefault(where, [])
        if keyword not in seen:
            seen.append(keyword)

    def _node(self, schema: Any, where: str, root: bool = False) -> dict[str, Any]:
        if not isinstance(schema, Mapping):
            raise InvalidRequestError(
                f"{where} must be a JSON Schema object, got {type(schema).__name__}", param=where
            )
        if "$ref" in schema:
            return self._ref(schema, where)
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _KEEP:
                out[key] = value
            elif key not in _HANDLED and not (root and key in ("$defs", "definitions")):
                self._drop(where, key)  # $defs at the root are inlined where referenced
        self._type(schema, out, where)
        self._enum(schema, out, where)
        if "items" in schema:
            out["items"] = self._node(schema["items"], f"{where}.items")
        if "properties" in schema:
            out["properties"] = {
                name: self._node(sub, f"{where}.properties.{name}")
                for name, sub in schema["properties"].items()
            }
        alternatives = schema.get("anyOf") or schema.get("oneOf")
        if "oneOf" in schema:
            self._drop(where, "oneOf (sent as anyOf)")
        if alternatives:
            out["anyOf"] = [
                self._node(sub, f"{where}.anyOf[{i}]") for i, sub in enumerate(alternatives)
            ]
        for i, part in enumerate(schema.get("allOf") or ()):
            merged = self._node(part, f"{where}.allOf[{i}]")
            merged_props = {**merged.pop("properties", {}), **out.get("properties", {})}
            merged_props = {**out.get("properties", {}), **merged_props}  # keep order of parts
            merged_required = [*out.get("required", []), *merged.pop("required", [])]
            out = {**merged, **out}
            if merged_props:
                out["properties"] = merged_props
            if merged_required:
                out["required"] = list(dict.fromkeys(merged_required))
        return out

    def _ref(self, schema: Mapping[str, Any], where: str) -> dict[str, Any]:
        ref = schema["$ref"]
        name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else ""
        local = isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/"))
        if not local or name not in self._defs:
            raise InvalidRequestError(
                f"{where}: $ref {ref!r} cannot be resolved; only local refs into $defs or "
                "definitions are supported: inline the schema",
                param=where,
            )
        if name in self._stack:
            raise InvalidRequestError(
                f"{where}: $ref {ref!r} is recursive, which Gemini schemas cannot express: "
                "give the schema a fixed depth",
                param=where,
            )
        self._stack.append(name)
        try:
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            return self._node({**self._defs[name], **siblings}, where)
        finally:
            self._stack.pop()

    def _type(self, schema: Mapping[str, Any], out: dict[str, Any], where: str) -> None:
        declared = schema.get("type")
        if declared is None:
            return
        types = [declared] if isinstance(declared, str) else list(declared)
        if any(t not in _TYPES for t in types):
            raise InvalidRequestError(f"{where}.type: unknown type {declared!r}", param=where)
        if "null" in types:
            types.remove("null")
            out["nullable"] = True
        if len(types) == 1:
            out["type"] = types[0].upper()
        elif types:
            out["anyOf"] = [{"type": t.upper()} for t in types]
        fmt = schema.get("format")
        if fmt is not None:
            if len(types) == 1 and fmt in _FORMATS.get(out["type"], ()):
                out["format"] = fmt
            else:
                self._drop(where, f"format {fmt!r}")

    def _enum(self, schema: Mapping[str, Any], out: dict[str, Any], where: str) -> None:
        values = [schema["const"]] if "const" in schema else schema.get("enum")
        if values is None:
            return
        if all(isinstance(v, str) for v in values):
            out["enum"] = list(values)
            out.setdefault("type", "STRING")
            if "format" not in out:
                out["format"] = "enum"
        else:
            self._drop(where, "const (not a string)" if "const" in schema else "enum (non-string)")
