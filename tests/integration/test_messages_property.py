"""Property: no body makes /v1/messages (or /v1/messages/count_tokens) answer 5xx or hang.

Valid bodies (a Claude Code capture among them) are mutated by hypothesis — a value anywhere
replaced by any JSON value, a key removed, a key added — and sent to a real `chatgate serve`
in front of an echoing OpenAI-format fake. Every answer must come within the timeout, with a
status below 500; a 4xx must be Anthropic's error envelope naming where the body is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.messages_support import (
    MASTER,
    Backends,
    call,
    fresh_gateway,
    module_gateway,
)

backends = pytest.fixture(scope="module")(module_gateway)
fresh = pytest.fixture(fresh_gateway)

CAPTURED = Path(__file__).parents[1] / "fixtures/clients/claude-code-2.1.332/bash-tool-result.json"
SMALL_VALID: list[dict[str, Any]] = [
    {"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
    {
        "model": "gpt",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "run it"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
            },
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "output_config": {"effort": "high"},
        "stream": True,
    },
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON value (the root excluded)."""
    found: list[tuple[Any, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        here = (*prefix, key)
        found.append(here)
        found += _paths(child, here)
    return found


def _mutate(body: Any, path: tuple[Any, ...], how: str, new: Any) -> Any:
    copy = json.loads(json.dumps(body))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "replace":
        parent[last] = new
    elif how == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"x_{len(parent)}"] = new
    else:
        parent.insert(last, new)
    return copy


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    body = draw(st.sampled_from(SMALL_VALID))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(body)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "delete", "add"]))
        body = _mutate(body, path, how, draw(json_values))
    return body


def _check(backends: Backends, path: str, body: Any) -> None:
    resp = backends.post(path, body)  # urllib with a timeout: a hang fails the test
    assert resp.status_code < 500, (body, resp.text)
    if resp.status_code >= 400:
        error = resp.json()
        assert error["type"] == "error", resp.text
        assert error["error"]["message"], resp.text


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=mutated())
def test_mutated_bodies_never_5xx(fresh: Backends, body: Any) -> None:
    _check(fresh, "/v1/messages", body)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=mutated())
def test_mutated_count_bodies_never_5xx(fresh: Backends, body: Any) -> None:
    _check(fresh, "/v1/messages/count_tokens", body)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_claude_code_bodies_never_5xx(fresh: Backends, data: st.DataObject) -> None:
    captured = json.loads(CAPTURED.read_text())["body"]
    captured["model"] = "gpt"
    top = [(k,) for k in captured] + [("messages", i) for i in range(len(captured["messages"]))]
    path = data.draw(st.sampled_from(top))
    how = data.draw(st.sampled_from(["replace", "delete"]))
    _check(fresh, "/v1/messages", _mutate(captured, path, how, data.draw(json_values)))


def test_non_json_and_non_object_bodies(fresh: Backends) -> None:
    headers = {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
    for raw in (b"", b"{", b"[]", b"5", b'"x"', b"null", b"\xff\xfe"):
        resp = call("POST", f"{fresh.url}/v1/messages", raw, headers)
        assert resp.status_code == 400, (raw, resp.text)
        assert resp.json()["type"] == "error"
