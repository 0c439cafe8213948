"""JSON Schema -> Gemini's OpenAPI subset: kept, rewritten and dropped keywords."""

from __future__ import annotations

from typing import Any

import pytest

from chatgate.errors import InvalidRequestError
from chatgate.providers.gemini.schema import ChatgateSchemaWarning, SchemaConverter


def convert(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    converter = SchemaConverter()
    out = converter.convert(schema, "p")
    return out, converter.dropped


def test_plain_object_keeps_supported_keywords_and_upper_cases_types() -> None:
    out, dropped = convert(
        {
            "type": "object",
            "description": "d",
            "properties": {
                "city": {"type": "string", "minLength": 1, "pattern": "^[A-Z]"},
                "n": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 9},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            },
            "required": ["city"],
        }
    )
    assert out == {
        "type": "OBJECT",
        "description": "d",
        "properties": {
            "city": {"type": "STRING", "minLength": 1, "pattern": "^[A-Z]"},
            "n": {"type": "INTEGER", "format": "int32", "minimum": 0, "maximum": 9},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 3},
        },
        "required": ["city"],
    }
    assert dropped == {}


def test_nullable_type_list_const_and_enum() -> None:
    out, _ = convert(
        {
            "type": "object",
            "properties": {
                "a": {"type": ["string", "null"]},
                "b": {"const": "x"},
                "c": {"type": "string", "enum": ["p", "q"]},
                "d": {"type": ["string", "integer"]},
            },
        }
    )
    assert out["properties"] == {
        "a": {"type": "STRING", "nullable": True},
        "b": {"type": "STRING", "format": "enum", "enum": ["x"]},
        "c": {"type": "STRING", "format": "enum", "enum": ["p", "q"]},
        "d": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
    }


def test_refs_are_inlined_and_defs_removed() -> None:
    out, dropped = convert(
        {
            "$defs": {"Pt": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/Pt", "description": "a point"}},
        }
    )
    assert out == {
        "type": "OBJECT",
        "properties": {
            "p": {
                "type": "OBJECT",
                "description": "a point",
                "properties": {"x": {"type": "NUMBER"}},
            }
        },
    }
    assert dropped == {}


def test_recursive_and_remote_refs_raise_naming_the_place() -> None:
    recursive = {
        "$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
        "$ref": "#/$defs/N",
    }
    with pytest.raises(InvalidRequestError, match="recursive"):
        convert(recursive)
    with pytest.raises(InvalidRequestError, match=r"p\.properties\.a: \$ref"):
        convert({"type": "object", "properties": {"a": {"$ref": "https://x/y.json"}}})


def test_unsupported_keywords_are_dropped_and_listed_with_their_place() -> None:
    out, dropped = convert(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "a": {"type": "string", "default": "z", "examples": ["q"], "format": "email"},
                "b": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "m": {"type": "object", "patternProperties": {".*": {"type": "string"}}},
                "e": {"enum": [1, 2]},
            },
        }
    )
    assert out["properties"]["a"] == {"type": "STRING"}
    assert out["properties"]["b"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}
    assert dropped == {
        "p": ["$schema", "additionalProperties"],
        "p.properties.a": ["default", "examples", "format 'email'"],
        "p.properties.b": ["oneOf (sent as anyOf)"],
        "p.properties.m": ["patternProperties"],
        "p.properties.e": ["enum (non-string)"],
    }


def test_all_of_is_merged() -> None:
    out, _ = convert(
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
            ]
        }
    )
    assert out == {
        "type": "OBJECT",
        "properties": {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}},
        "required": ["a", "b"],
    }


def test_warn_emits_one_named_warning_for_everything() -> None:
    converter = SchemaConverter()
    converter.convert({"type": "object", "additionalProperties": False}, "tools[0]")
    converter.convert({"type": "string", "default": "x"}, "response_format")
    with pytest.warns(ChatgateSchemaWarning) as record:
        converter.warn("gemini")
    assert len(record) == 1
    message = str(record[0].message)
    assert "tools[0]: additionalProperties" in message
    assert "response_format: default" in message


def test_no_warning_when_nothing_dropped() -> None:
    converter = SchemaConverter()
    converter.convert({"type": "string"}, "x")
    converter.warn("gemini")  # filterwarnings=error would fail the test on any warning


def test_non_object_schema_and_unknown_type_raise() -> None:
    with pytest.raises(InvalidRequestError, match="must be a JSON Schema object"):
        convert({"type": "object", "items": 3})
    with pytest.raises(InvalidRequestError, match="unknown type"):
        convert({"type": "str"})
