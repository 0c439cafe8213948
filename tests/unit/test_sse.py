from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.transport.sse import SSEDecoder, SSEEvent


def decode(*chunks: bytes) -> list[SSEEvent]:
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.flush()


def bytewise(stream: bytes) -> list[SSEEvent]:
    return decode(*(stream[i : i + 1] for i in range(len(stream))))


def check(stream: bytes, expected: list[SSEEvent]) -> None:
    assert decode(stream) == expected
    assert bytewise(stream) == expected


# --- examples, one per rule -------------------------------------------------


def test_single_event() -> None:
    check(b"data: hello\n\n", [SSEEvent("hello")])


def test_multi_line_data_joined_with_lf() -> None:
    check(b"data: a\ndata: b\ndata:\n\n", [SSEEvent("a\nb\n")])


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_endings(eol: bytes) -> None:
    stream = b"event: e" + eol + b"data: x" + eol + b"data: y" + eol + eol
    check(stream, [SSEEvent("x\ny", event="e")])


def test_mixed_line_endings() -> None:
    check(b"data: a\r\ndata: b\rdata: c\n\r\n", [SSEEvent("a\nb\nc")])


def test_crlf_split_across_chunks_is_one_line_break() -> None:
    # If the LF were a second line break it would dispatch an extra blank line.
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [SSEEvent("a\nb")]


def test_cr_at_chunk_end_dispatches_without_waiting() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r\r") == [SSEEvent("a")]
    assert dec.feed(b"\ndata: b\n\n") == [SSEEvent("b")]


def test_double_cr_is_two_line_breaks() -> None:
    check(b"data: a\r\rdata: b\r\r", [SSEEvent("a"), SSEEvent("b")])


def test_bom_skipped_at_stream_start_only() -> None:
    check(b"\xef\xbb\xbfdata: a\n\n", [SSEEvent("a")])
    assert decode(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [SSEEvent("a")]
    check(b"data: \xef\xbb\xbfa\n\n", [SSEEvent("\ufeffa")])
    # Only one BOM is skipped; a second one makes the field name unknown.
    check(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n", [])


def test_partial_bom_prefix_is_not_dropped() -> None:
    check(b"\xefdata: a\n\ndata: b\n\n", [SSEEvent("b")])


def test_comments_ignored() -> None:
    check(b": keep-alive\n\n:\ndata: a\n: mid\ndata: b\n\n", [SSEEvent("a\nb")])


def test_only_one_space_after_colon_removed() -> None:
    check(b"data:  two\n\n", [SSEEvent(" two")])


def test_no_space_after_colon() -> None:
    check(b"data:x\nevent:y\n\n", [SSEEvent("x", event="y")])


def test_field_without_colon_has_empty_value() -> None:
    check(b"data\n\n", [SSEEvent("")])
    check(b"data\ndata\n\n", [SSEEvent("\n")])
    check(b"id\ndata: a\n\n", [SSEEvent("a", id="")])


def test_value_may_contain_colons() -> None:
    check(b"data: a: b:c\n\n", [SSEEvent("a: b:c")])


def test_field_names_are_case_sensitive_and_unknown_ignored() -> None:
    check(b"Data: a\nfoo: bar\ndata: b\n\n", [SSEEvent("b")])


def test_event_name_and_reset_after_dispatch() -> None:
    stream = b"event: ping\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"
    check(stream, [SSEEvent("1", event="ping"), SSEEvent("2"), SSEEvent("3")])


def test_empty_data_buffer_not_dispatched_but_id_updates() -> None:
    stream = b"id: 7\n\nevent: x\nretry: 5\n\ndata: a\n\n"
    check(stream, [SSEEvent("a", id="7")])


def test_id_persists_and_can_be_reset() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 2\ndata: d\n\n"
    expected = [
        SSEEvent("a", id="1"),
        SSEEvent("b", id="1"),
        SSEEvent("c", id=""),
        SSEEvent("d", id="2"),
    ]
    check(stream, expected)


def test_id_with_nul_ignored() -> None:
    check(
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", [SSEEvent("a", id="1"), SSEEvent("b", id="1")]
    )


@pytest.mark.parametrize(
    ("line", "retry"),
    [
        (b"retry: 3000", 3000),
        (b"retry:0", 0),
        (b"retry: 12a", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry:", None),
        (b"retry:  10", None),
        ("retry: \u0663".encode(), None),  # non-ASCII digit
    ],
)
def test_retry_parsing(line: bytes, retry: int | None) -> None:
    check(line + b"\ndata: a\n\n", [SSEEvent("a", retry=retry)])


def test_retry_is_per_event_block() -> None:
    check(b"retry: 10\ndata: a\n\ndata: b\n\n", [SSEEvent("a", retry=10), SSEEvent("b")])


def test_incomplete_event_discarded_at_flush() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\n\ndata: b\n") == [SSEEvent("a")]
    assert dec.flush() == []
    assert decode(b"data: a\n\ndata: b") == [SSEEvent("a")]


def test_flush_resets_stream_but_keeps_last_event_id() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"id: 9\ndata: a\n\nevent: x\ndata: partial") == [SSEEvent("a", id="9")]
    assert dec.flush() == []
    assert dec.feed(b"\xef\xbb\xbfdata: b\n\n") == [SSEEvent("b", id="9")]


def test_utf8_split_across_chunks() -> None:
    raw = "data: héllo €😀\n\n".encode()
    for i in range(len(raw)):
        assert decode(raw[:i], raw[i:]) == [SSEEvent("héllo €😀")]


def test_invalid_utf8_replaced() -> None:
    check(b"data: a\xffb\xe2\x82\n\n", [SSEEvent("a\ufffdb\ufffd")])


def test_only_cr_and_lf_break_lines() -> None:
    data = "a\u2028b\x0bc\x1cd\x85e"
    check(f"data: {data}\n\n".encode(), [SSEEvent(data)])


def test_openai_style() -> None:
    payload = {"id": "c1", "choices": [{"delta": {"content": "Hi"}, "index": 0}]}
    stream = f"data: {json.dumps(payload)}\n\ndata: [DONE]\n\n".encode()
    events = decode(stream)
    assert events == [SSEEvent(json.dumps(payload)), SSEEvent("[DONE]")]
    assert json.loads(events[0].data) == payload


def test_anthropic_style() -> None:
    stream = (
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"id":"m1"}}\n\n'
        b"event: ping\n"
        b'data: {"type": "ping"}\n\n'
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","delta":{"text":"Hi"}}\n\n'
        b"event: message_stop\n"
        b'data: {"type":"message_stop"}\n\n'
    )
    events = decode(stream)
    assert [e.event for e in events] == [
        "message_start",
        "ping",
        "content_block_delta",
        "message_stop",
    ]
    assert json.loads(events[2].data)["delta"]["text"] == "Hi"
    assert bytewise(stream) == events


def test_empty_chunks_are_harmless() -> None:
    assert decode(b"", b"data: a\r", b"", b"\n", b"", b"\n", b"") == [SSEEvent("a")]


# --- properties ---------------------------------------------------------------

EOLS = st.sampled_from([b"\n", b"\r", b"\r\n"])
# Any UTF-8-encodable text without CR/LF: one field value.
LINE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=12)
DATA = st.lists(LINE, min_size=1, max_size=3).map("\n".join)
EVENT_SPEC = st.tuples(
    DATA,
    st.none() | LINE,  # event name ("" means "message")
    st.none() | LINE,  # new id, if any
    st.none() | st.integers(min_value=0, max_value=10**12),
)


def build_events(specs: list[tuple[str, str | None, str | None, int | None]]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    last_id: str | None = None
    for data, name, new_id, retry in specs:
        if new_id is not None and "\0" not in new_id:
            last_id = new_id
        events.append(SSEEvent(data, name or "message", last_id, retry))
    return events


def encode(events: list[SSEEvent], eols: list[bytes] | None = None) -> bytes:
    lines: list[str] = []
    last_id: str | None = None
    for ev in events:
        lines.append(f"event: {ev.event}")
        if ev.id != last_id:
            lines.append(f"id: {ev.id}")
            last_id = ev.id
        if ev.retry is not None:
            lines.append(f"retry: {ev.retry}")
        lines += [f"data: {part}" for part in ev.data.split("\n")]
        lines.append("")
    eols = eols or [b"\n"]
    out: list[bytes] = []
    prev = b""
    for i, line in enumerate(lines):
        eol = eols[i % len(eols)]
        if prev == b"\r" and not line and eol == b"\n":
            eol = b"\r\n"  # "\r" + "\n" would merge into one CRLF line break
        out += [line.encode(), eol]
        prev = eol
    return b"".join(out)


# A raw line that may be anything (comments, odd fields, invalid UTF-8, NUL ids, ...)
RAW_LINE = st.one_of(
    LINE.map(str.encode),
    st.sampled_from([b"", b":", b": c", b"data", b"data:", b"id", b"id: a\x00", b"retry: 9x"]),
    st.tuples(st.sampled_from([b"data:", b"event:", b"id:", b"retry:", b":"]), LINE).map(
        lambda t: t[0] + t[1].encode()
    ),
    st.binary(max_size=6).map(lambda b: b"data: " + b.replace(b"\r", b"").replace(b"\n", b"")),
)


@st.composite
def messy_streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(RAW_LINE, EOLS), max_size=25))
    stream = b"".join(line + eol for line, eol in lines)
    tail = draw(st.sampled_from([b"", b"data: unterminated", "data: é".encode()]))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return bom + stream + tail


def split_at(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_chunking_matches_whole_stream(data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        specs = data.draw(st.lists(EVENT_SPEC, max_size=6))
        eols = data.draw(st.lists(EOLS, min_size=1, max_size=4))
        stream = encode(build_events(specs), eols)
    else:
        stream = data.draw(messy_streams())
    whole = decode(stream)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=len(stream) + 1))
    assert decode(*split_at(stream, cuts)) == whole
    assert bytewise(stream) == whole


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT_SPEC, max_size=8), st.lists(EOLS, min_size=1, max_size=4))
def test_roundtrip(
    specs: list[tuple[str, str | None, str | None, int | None]], eols: list[bytes]
) -> None:
    events = build_events(specs)
    assert decode(encode(events, eols)) == events
