"""Bodies for the malformed-input tests: a valid body per route (its schema by example), a
hypothesis strategy that mutates one, and a gateway to send them to."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests import gateway_harness as harness
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config

MASTER = "sk-master-malformed-7"
TIMEOUT_S = 10.0

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "model": "fast",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        "max_tokens": 5,
        "temperature": 0.5,
        "stream": False,
        "stream_options": {"include_usage": True},
        "tools": [TOOL],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "stop": ["x"],
        "n": 1,
        "user": "u",
        "metadata": {"a": "b"},
        "seed": 1,
    },
    "/v1/responses": {
        "model": "fast",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "instructions": "be brief",
        "max_output_tokens": 16,
        "temperature": 0.5,
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "text": {"format": {"type": "text"}},
        "stream": False,
    },
    "/v1/embeddings": {"model": "emb", "input": ["hi", "there"], "encoding_format": "float"},
    "/admin/keys": {
        "name": "n",
        "models": ["fast"],
        "budget": "1.5",
        "budget_period": "daily",
        "rpm": 10,
        "tpm": 1000,
        "expires": "30d",
        "team": "t",
        "user": "u",
        "metadata": {"env": "prod"},
    },
}

JUNK_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, -5, 1e308, -1e308, 1e-300, 2**31, 2**63, 2**64 - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "abc", "NaN", "Infinity", "-Infinity", "1e400", "1e400d", "-5", "0"]),
    st.text(max_size=12),
)
CHAT = VALID["/v1/chat/completions"]


def nest(depth: int, key: str | None = "a") -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if key is None else {key: value}
    return value


DEEP = st.builds(nest, st.integers(50, 400), st.sampled_from(["a", None]))
JUNK = st.one_of(
    st.recursive(
        JUNK_SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    DEEP,
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here] if here else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*here, index))
    return out


def _containers(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _containers(item, (*here, index))]
    if not isinstance(value, dict):
        return []
    return [here] + [p for key, item in value.items() for p in _containers(item, (*here, key))]


def _at(body: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        body = body[step]
    return body


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any], keep: frozenset[str] = frozenset()) -> Any:
    """``valid`` with 1-3 mutations; fields in ``keep`` stay as they are (the model name)."""
    body = json.loads(json.dumps(valid))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if kind == "add":
            where = draw(st.sampled_from(_containers(body)))
            _at(body, where)[draw(st.text(min_size=1, max_size=8))] = draw(JUNK)
            continue
        paths = [p for p in _paths(body) if p[0] not in keep]
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        parent = _at(body, path[:-1])
        if kind == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JUNK)
    return body


def call(
    gw: Gateway, method: str, path: str, body: Any = None, key: str = MASTER
) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON body or raw text, headers); a timeout fails the test (a hang)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(gw.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            status, raw, headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw, headers = exc.code, exc.read(), dict(exc.headers)
    try:
        return status, json.loads(raw), headers
    except ValueError:
        return status, raw.decode(), headers  # an SSE stream


def assert_sound(status: int, body: Any, sent: Any) -> None:
    """Not a 5xx; a refusal names a field; a stream carries no server error."""
    shown = json.dumps(sent)[:2000]
    assert status < 500, f"{status} for {shown}: {body}"
    if isinstance(body, str):
        assert '"server_error"' not in body, f"stream error for {shown}: {body[:500]}"
    elif status >= 400:
        error = body["error"]
        assert error.get("param"), f"{status} names no field for {shown}: {error}"


@contextlib.contextmanager
def serve(tmp: Path) -> Iterator[Gateway]:
    """`chatgate serve` with a chat model (fast) and an embedding model (emb) on a fake
    OpenAI upstream, a master key and a SQLite database in ``tmp``."""
    with FakeOpenAI() as upstream:
        config = gateway_config(
            deployment("fast", upstream),
            deployment("emb", upstream, "openai/text-embedding-3-small"),
            master_key=MASTER,
            database=SQLITE,
        )
        with harness.serve(config, tmp) as gw:
            yield gw
