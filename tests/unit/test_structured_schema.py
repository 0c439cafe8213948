"""The pure parts of structured outputs, tools and memory: schemas, JSON extraction,
result rendering, trimming and token counting."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from chatgate.errors import MessageTooLargeError
from chatgate.memory.tokens import count_message_tokens
from chatgate.memory.trim import fit_budget, last_turns, message_tokens, turn_starts
from chatgate.structured.modes import extract_json
from chatgate.structured.schema import output_schema
from chatgate.tools.definition import ToolResult
from chatgate.tools.execute import render
from chatgate.types import AssistantMessage, Message, SystemMessage, UserMessage


class Inner(BaseModel):
    n: int = 1


class Outer(BaseModel):
    inner: Inner
    tags: tuple[str, int] | None = None


def test_strict_schema_closes_every_object_and_requires_every_field() -> None:
    class Plain(BaseModel):
        inner: Inner
        maybe: str | None = None
        count: int = 5

    strict = output_schema(Plain).strict
    assert strict is not None
    assert strict["required"] == ["inner", "maybe", "count"]
    assert strict["additionalProperties"] is False
    assert strict["$defs"]["Inner"] == {
        "properties": {"n": {"title": "N", "type": "integer"}},
        "required": ["n"],
        "title": "Inner",
        "type": "object",
        "additionalProperties": False,
    }
    portable = output_schema(Plain).portable
    assert portable["required"] == ["inner"]  # the model may omit defaulted fields there


def test_tuples_cannot_be_strict_and_say_where() -> None:
    schema = output_schema(Outer)
    assert schema.strict is None
    assert schema.strict_problem is not None
    assert schema.strict_problem.startswith("tags: tuples")


def test_scalar_root_is_enveloped() -> None:
    schema = output_schema(int)
    assert schema.enveloped
    assert schema.strict == {
        "type": "object",
        "properties": {"value": {"type": "integer"}},
        "required": ["value"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  [1, 2] ", [1, 2]),
        ('Here:\n```json\n{"a": 2}\n```\nDone.', {"a": 2}),
        ('The answer is {"a": 3} as asked {"b": 4}', {"a": 3}),
        ('broken { then {"a": 5}', {"a": 5}),
    ],
)
def test_extract_json(text: str, expected: object) -> None:
    assert extract_json(text) == expected


def test_extract_json_names_the_problem() -> None:
    with pytest.raises(ValueError, match="no JSON value"):
        extract_json("no json here")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '{"name": "Ada", "age": 3',
            "invalid JSON: EOF while parsing an object at line 1 column 24",
        ),
        ('{"name": "Ad', "invalid JSON: EOF while parsing a string at line 1 column 12"),
        ("[1, 2", "invalid JSON: EOF while parsing a list at line 1 column 5"),
        ('{"a": 1,}', "invalid JSON: trailing comma at line 1 column 9"),
        # prose before it, and a fenced block: the line and column are the answer's own
        ('Sure:\n\n  {"name": "Ada",\n "age": 3', "EOF while parsing an object at line 4 column 9"),
        ('Here:\n```json\n{"a" 1}\n```', "invalid JSON: expected `:` at line 3 column 6"),
        ('```json\n{"a": 1', "invalid JSON: EOF while parsing an object at line 2 column 7"),
    ],
)
def test_extract_json_names_the_error_in_broken_json_and_where(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        extract_json(text)


def test_render_statuses_and_cap() -> None:
    assert render({"a": 1}, 100) == ("ok", '{"status":"ok","result":{"a":1}}')
    assert render(None, 100) == ("empty", '{"status":"empty","result":null}')
    assert render("abcdef", 3) == (
        "partial",
        '{"status":"partial","result":"abc",'
        '"note":"truncated: showing the first 3 of 6 characters"}',
    )
    assert render(ToolResult("no such row", status="error"), 100) == (
        "error",
        '{"status":"error","error":"no such row"}',
    )
    assert render(Inner(n=2), 100) == ("ok", '{"status":"ok","result":{"n":2}}')


def history(n: int) -> list[Message]:
    out: list[Message] = []
    for i in range(n):
        out += [UserMessage(content=f"question {i} " * 5), AssistantMessage(content=f"answer {i}")]
    return out


def test_counts_are_additive() -> None:
    msgs = history(3)
    total = count_message_tokens("openai/gpt-4o", msgs)
    assert total == count_message_tokens("openai/gpt-4o", []) + sum(
        message_tokens("openai/gpt-4o", m) for m in msgs
    )


def test_turns_and_last_turns() -> None:
    msgs = history(3)
    assert turn_starts(msgs) == [0, 2, 4]
    assert last_turns(msgs, 2) == msgs[2:]
    assert last_turns(msgs, 9) == msgs


def test_fit_budget_keeps_the_last_reply_when_its_turn_does_not_fit() -> None:
    model = "openai/gpt-4o"
    head: list[Message] = [SystemMessage(content="sys")]
    msgs = history(2)
    new = UserMessage(content="now")
    need = count_message_tokens(model, [*head, msgs[-1], new])
    kept = fit_budget(model, head, msgs, new, need)
    assert kept == [*head, msgs[-1], new]
    with pytest.raises(MessageTooLargeError, match="the last assistant reply"):
        fit_budget(model, head, msgs, new, need - 1)
    everything = count_message_tokens(model, [*head, *msgs, new])
    assert fit_budget(model, head, msgs, new, everything) == [*head, *msgs, new]
    assert fit_budget(model, head, msgs, new, everything - 1) == [*head, *msgs[2:], new]
