"""Big inputs never stall the event loop: while 8 requests of 15 MiB each are parsed, counted
and sent upstream (embeddings and chat), /health/liveness keeps answering (p99 under 100 ms).
The parse in pieces that makes it possible is checked against orjson on generated bodies.

The liveness probe runs in a process of its own: in this one the fake upstream's thread (which
parses the same 15 MiB bodies) would hold the GIL and delay the probe's own clock."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.server.json_body import parse_in_pieces
from tests.fakes.openai_server import FakeOpenAI, Reply, embeddings_reply
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

PARALLEL = 8
BODY_MIB = 15
# Liveness while the big requests run: p99 under 100 ms (measured 22-37 ms on a 2-core box at
# load average 6-10, shared with other jobs), and no probe anywhere near a second (before the
# fix: 8.8 s). The slowest probes there (75-370 ms) come and go with the machine's load.
P99_LIMIT_MS = 100.0
WORST_LIMIT_MS = 1000.0

_PROBE = """
import json, sys, time, urllib.request
url, stop_file = sys.argv[1], sys.argv[2]
import os
times = []
deadline = time.monotonic() + 120
while not os.path.exists(stop_file) and time.monotonic() < deadline:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as resp:
        resp.read()
    times.append((time.perf_counter() - began) * 1000.0)
    time.sleep(0.01)
times.sort()
print(json.dumps({"worst_ms": times[-1], "probes": len(times), "top": times[-8:],
                  "p99_ms": times[int(len(times) * 0.99)]}))
"""


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("fast", upstream),
        deployment("embed", upstream, "openai/text-embedding-3-small"),
        max_request_bytes=20 * 1024 * 1024,
        # a key budget and TPM make the gateway count the prompt: the work under test
        budgets=[{"scope": "global", "limit": "1000000", "window": "monthly"}],
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def _words(n_bytes: int) -> str:
    """Text that tokenizes like prose (not one repeated token), ``n_bytes`` long."""
    pieces = [f"w{i % 9973} lorem ipsum {i} dolor." for i in range(n_bytes // 24 + 1)]
    return " ".join(pieces)[:n_bytes]


def _post(url: str, body: bytes, results: list[tuple[int, str]]) -> None:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            results.append((resp.status, resp.read().decode()))
    except urllib.error.HTTPError as exc:
        results.append((exc.code, exc.read().decode()))


def _under_load(gw: Gateway, path: str, bodies: list[bytes], tmp: Any) -> dict[str, Any]:
    """Send ``bodies`` in parallel while a probe process times liveness; its report. A small
    request of the same kind goes first: a fresh process's first request of a kind imports
    and builds what that route needs, a one-time cost this test is not about."""
    warm: list[tuple[int, str]] = []
    small = json.loads(bodies[0])
    if "input" in small:
        small["input"] = "warm up"
    else:
        small["messages"] = [{"role": "user", "content": "warm up " * 2000}]
    _post(f"{gw.url}{path}", json.dumps(small).encode(), warm)
    assert warm[0][0] == 200, warm
    stop = tmp / "stop"
    probe = subprocess.Popen(
        [sys.executable, "-c", _PROBE, f"{gw.url}/health/liveness", str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    results: list[tuple[int, str]] = []
    threads = [
        threading.Thread(target=_post, args=(f"{gw.url}{path}", body, results)) for body in bodies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    stop.touch()
    out, _ = probe.communicate(timeout=30)
    report: dict[str, Any] = json.loads(out)
    report["statuses"] = results
    return report


def _assert_live(report: dict[str, Any]) -> None:
    report.pop("statuses")
    print(f"liveness under load: {report}")
    assert report["probes"] > 50, report
    assert report["p99_ms"] < P99_LIMIT_MS, report
    assert report["worst_ms"] < WORST_LIMIT_MS, report


def test_big_embeddings_inputs_do_not_stall_liveness(
    gateway: Gateway, upstream: FakeOpenAI, tmp_path: Any
) -> None:
    text = _words(BODY_MIB * 1024 * 1024 // 2048)
    body = json.dumps({"model": "embed", "input": [text] * 2048}).encode()
    assert len(body) > (BODY_MIB - 1) * 1024 * 1024
    small = Reply(json=embeddings_reply({"input": ["x"]}).json)  # the fake answers at once
    upstream.script(*[small] * (PARALLEL + 1))
    report = _under_load(gateway, "/v1/embeddings", [body] * PARALLEL, tmp_path)
    assert [status for status, _ in report["statuses"]] == [200] * PARALLEL
    _assert_live(report)


def test_big_chat_inputs_do_not_stall_liveness(
    gateway: Gateway, upstream: FakeOpenAI, tmp_path: Any
) -> None:
    text = _words(BODY_MIB * 1024 * 1024 // 64)
    messages = [{"role": "user", "content": text} for _ in range(64)]
    body = json.dumps({"model": "fast", "messages": messages, "max_tokens": 16}).encode()
    assert len(body) > (BODY_MIB - 1) * 1024 * 1024
    report = _under_load(gateway, "/v1/chat/completions", [body] * PARALLEL, tmp_path)
    # ~4M tokens: counted (off the loop), then refused for the model's context window
    for status, answer in report["statuses"]:
        assert status == 400, answer
        assert "context window" in answer
    assert len(report["statuses"]) == PARALLEL
    _assert_live(report)


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_a_long_text_counts_the_same_without_the_token_list(encoding: str) -> None:
    """The buffer count (no list of ints, the interpreter lock released) is the list count,
    special-token text included (counted as ordinary text by both)."""
    from chatgate.cost.encodings import get_encoding
    from chatgate.cost.tokens import _count_long

    tiktoken_encoding = get_encoding(encoding)
    text = _words(300_000) + " <|endoftext|> héllo wörld 日本語 " + "\n\n  x" * 100
    expected = len(tiktoken_encoding.encode_ordinary(text))
    assert _count_long(tiktoken_encoding, text) == expected


async def test_precount_counts_once_and_count_tokens_reuses_it() -> None:
    from chatgate.cost import tokens

    text = _words(100_000)
    messages = [{"role": "user", "content": text}]
    plain = tokens.count_tokens("openai/gpt-4o", messages).tokens
    await tokens.precount(["openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4"], messages)
    counted = tokens._COUNTED.get()
    assert counted is not None
    assert {encoding for encoding, _ in counted} == {"o200k_base", "cl100k_base"}
    assert counted[("o200k_base", id(text))][0] is text  # kept with its count: ids stay unique
    assert tokens.count_tokens("openai/gpt-4o", messages).tokens == plain


_JSON_STRINGS = st.text(
    alphabet=st.sampled_from(['"', "\\", "/", "a", "é", "日", "\n", "\t", "\x00", " ", "}", "]"])
)
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _JSON_STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_STRINGS, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_JSON_STRINGS, _JSON_VALUES, max_size=6),
    st.sampled_from([None, 0, 2]),
    st.booleans(),
)
def test_a_body_parsed_in_pieces_is_what_orjson_parses(
    value: dict[str, Any], indent: int | None, ascii_only: bool
) -> None:
    """Any JSON object, however spaced and escaped: the same value as one orjson parse."""
    body = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()
    assert parse_in_pieces(body, 0, bytes_per_step=0) == orjson.loads(body)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(_JSON_STRINGS, _JSON_VALUES, min_size=1, max_size=4),
    st.integers(min_value=0),
    st.sampled_from([b"", b",", b"]", b"}", b'"', b"\\", b" ", b"x", b"\xff", b"[", b"1"]),
    st.booleans(),
)
def test_a_damaged_body_is_never_parsed_into_something_else(
    value: dict[str, Any], where: int, insert: bytes, delete: bool
) -> None:
    """One byte inserted or deleted anywhere: what orjson rejects is never split into a value,
    and what it accepts comes out the same (or is left to the whole parse)."""
    body = json.dumps(value).encode()
    at = where % (len(body) + 1)
    damaged = body[:at] + insert + body[at + (1 if delete else 0) :]
    try:
        expected = orjson.loads(damaged)
    except orjson.JSONDecodeError:
        assert parse_in_pieces(damaged, 0, bytes_per_step=0) is None
        return
    assert parse_in_pieces(damaged, 0, bytes_per_step=0) in (None, expected)


def test_a_body_dense_with_brackets_is_left_to_orjson() -> None:
    """16 MiB of `[],` would be millions of steps in Python: the whole parse is faster."""
    body = b'{"a": [' + b"[]," * 100_000 + b"[]]}"
    assert parse_in_pieces(body, piece_bytes=0) is None
    assert parse_in_pieces(b'{"a": ["' + b"x" * 10_000 + b'"]}', piece_bytes=0) == {
        "a": ["x" * 10_000]
    }


@pytest.mark.parametrize(
    "body",
    [
        b"", b"[1, 2]", b'"x"', b"{", b'{"a": 1,}', b'{"a": [1, 2,]}', b'{"a": 1} x',
        b'{"a" 1}', b'{"a": [1 2]}', b'{"a": "\\"}', b'{"a": [1}', b'{"a": tru}',
        b'{"a": 1}\x0b', b'\xef\xbb\xbf{"a": 1}', b'{"a": "\xff"}', b'{"a":\x0b1}',
    ],
)  # fmt: skip
def test_a_body_it_cannot_split_is_left_to_the_whole_parse(body: bytes) -> None:
    """Malformed (or merely unusual) bodies: None, and the caller's whole parse decides."""
    assert parse_in_pieces(body, 0, bytes_per_step=0) is None
