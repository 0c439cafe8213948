"""OTLP protobuf encoding of LeanSpans: an ``ExportTraceServiceRequest``, written by hand.

Why not opentelemetry-proto's generated messages: building one message object per span, per
attribute and per value, then serializing them, cost more CPU per span than recording it
(measured with bench/tracing.py; docs/observability.md). The wire format of the few messages a
span export needs is small and frozen (opentelemetry-proto 1.x, field numbers below), and a
test decodes what this writes with opentelemetry-proto and compares it field by field.

Attribute values the protocol cannot carry (None, objects) are left out, as the SDK drops
them; a key=value pair that repeats across spans (``gen_ai.operation.name=chat``) is encoded
once and reused.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from random import getrandbits
from typing import Any

from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext, SpanKind

from chatgate.telemetry.recorder import LeanSpan, Queued, Scope, Step

__all__ = [
    "EncodedSpans",
    "attribute",
    "attribute_once",
    "encode_attributes",
    "encode_request",
    "encode_resource",
    "encode_spans",
    "request_of",
]

# Tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
_SPAN_TRACE_ID = b"\x0a\x10"  # 1: bytes, always 16 long
_SPAN_SPAN_ID = b"\x12\x08"  # 2: bytes, 8
_SPAN_TRACE_STATE = 0x1A  # 3: string
_SPAN_PARENT = b"\x22\x08"  # 4: bytes, 8
_SPAN_NAME = 0x2A  # 5: string
_SPAN_KIND = 0x30  # 6: enum; the API's SpanKind + 1
_SPAN_ATTRIBUTE = 0x4A  # 9: KeyValue
_SPAN_EVENT = 0x5A  # 11: Span.Event
_SPAN_LINK = 0x6A  # 13: Span.Link
_SPAN_STATUS = 0x7A  # 15: Status
_TIMES = struct.Struct("<BQBQ")  # 7 and 8: fixed64 start and end, unix ns
_FLAGS = struct.Struct("<BBI")  # 16: fixed32 (a two-byte tag)
_FLAG_HAS_IS_REMOTE = 0x100
_FLAG_IS_REMOTE = 0x200
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")

_NO_STATE = DEFAULT_TRACE_STATE
_VARINTS = [bytes((n,)) if n < 0x80 else bytes((n & 0x7F | 0x80, n >> 7)) for n in range(1 << 14)]
_MAX_CACHED = 8192  # key=value encodings kept; past it the cache starts over
_CACHEABLE_LEN = 256  # longer string values (prompts, ids) are not worth keeping


def _varint(n: int) -> bytes:
    if n < 16384:
        return _VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return _VARINTS[tag] + _varint(len(payload)) + payload


def _string(tag: int, text: str) -> bytes:
    return _field(tag, text.encode("utf-8", "replace"))


def _any_value(value: Any) -> bytes | None:
    """An AnyValue message's body, or None for a value OTLP has no type for."""
    kind = type(value)
    if kind is str:
        return _string(0x0A, value)  # 1: string_value
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"  # 2: bool_value
    if kind is int:
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # 3: int_value, two's complement
    if kind is float:
        return b"\x21" + _DOUBLE.pack(value)  # 4: double_value
    if isinstance(value, (list, tuple)):
        items = [_any_value(item) for item in value]
        body = b"".join(_field(0x0A, item) for item in items if item is not None)
        return _field(0x2A, body)  # 5: array_value (ArrayValue.values = 1)
    if isinstance(value, Mapping):
        return _field(0x32, encode_attributes(value, 0x0A))  # 6: kvlist_value
    if isinstance(value, bytes):
        return _field(0x3A, value)  # 7: bytes_value
    for base in (bool, str, int, float):  # a subclass (an enum of str, say) as its base
        if isinstance(value, base):
            return _any_value(base(value))
    return None


_keys: dict[str, bytes] = {}
# Whole KeyValue fields by tag, keyed by ((key, value), type): the type keeps True apart from
# 1. Strings, ints and bools only, the values that repeat (models, ports, token counts).
_fields: dict[int, dict[tuple[tuple[str, Any], type], bytes]] = {}
_CACHED_TYPES = frozenset({str, int, bool})


def _key_value(head: bytes, key: str, value: Any) -> bytes:
    """A KeyValue field (``head``: its tag), or b"" for a value OTLP has no type for."""
    encoded = _any_value(value)
    if encoded is None:
        return b""
    body = (_keys.get(key) or _key_field(key)) + b"\x12" + _varint(len(encoded)) + encoded
    return head + _varint(len(body)) + body


def encode_attributes(attributes: Mapping[str, Any], tag: int) -> bytes:
    """Each pair as a KeyValue in field ``tag`` (its tag byte, wire type 2); a span's
    attributes through ``attribute``, the cache the span records write from."""
    if tag == _SPAN_ATTRIBUTE:
        return b"".join([attribute(key, value) for key, value in attributes.items()])
    head = _VARINTS[tag]
    cache = _fields.get(tag)
    if cache is None:
        cache = _fields[tag] = {}
    out = []
    for item in attributes.items():
        value = item[1]
        kind = type(value)
        if kind in _CACHED_TYPES and (kind is not str or len(value) <= _CACHEABLE_LEN):
            done = cache.get((item, kind))
            if done is None:
                if len(cache) >= _MAX_CACHED:
                    cache.clear()
                done = cache[(item, kind)] = _key_value(head, item[0], value)
            out.append(done)
        else:
            out.append(_key_value(head, item[0], value))
    return b"".join(out)


_SPAN_ATTRIBUTE_HEAD = _VARINTS[_SPAN_ATTRIBUTE]
# A span record's attributes, written pair by pair by the export thread (telemetry/records.py):
# each kind of value has its writer, so that no pair builds a tuple or a dict to be looked up.
_by_value: dict[str, dict[str | int, bytes]] = {}  # key -> str or int value -> KeyValue field
_bools: dict[tuple[str, bool], bytes] = {}
_double_heads: dict[str, bytes] = {}  # key -> a double KeyValue's bytes before its 8 bytes


def attribute(key: str, value: Any) -> bytes:
    """One span attribute (a KeyValue in Span field 9); a str or int value is encoded once
    per key and value, and reused."""
    kind = type(value)
    if kind is int or (kind is str and len(value) <= _CACHEABLE_LEN):
        values = _by_value.get(key)
        if values is None:
            if len(_by_value) >= _MAX_CACHED:
                _by_value.clear()
            values = _by_value[key] = {}
        done = values.get(value)
        if done is None:
            if len(values) >= _MAX_CACHED:
                values.clear()
            done = values[value] = _key_value(_SPAN_ATTRIBUTE_HEAD, key, value)
        return done
    if kind is bool:
        done = _bools.get((key, value))
        if done is None:
            if len(_bools) >= _MAX_CACHED:
                _bools.clear()
            done = _bools[(key, value)] = _key_value(_SPAN_ATTRIBUTE_HEAD, key, value)
        return done
    if kind is float:
        return double_attribute(key, value)
    return _key_value(_SPAN_ATTRIBUTE_HEAD, key, value)


def attribute_once(key: str, value: Any) -> bytes:
    """``attribute`` for a value that does not repeat (a request's id): not cached, so it
    does not push out the values that do."""
    if type(value) is str:
        return string_attribute(key, value)
    return _key_value(_SPAN_ATTRIBUTE_HEAD, key, value)


def _key_field(key: str) -> bytes:
    prefix = _keys.get(key)
    if prefix is None:
        if len(_keys) >= _MAX_CACHED:
            _keys.clear()
        prefix = _keys[key] = _string(0x0A, key)
    return prefix


def double_attribute(key: str, value: float) -> bytes:
    """A span attribute with a double value: a KeyValue of fixed length, all of it but the
    8 bytes of the value encoded once per key."""
    head = _double_heads.get(key)
    if head is None:
        key_field = _key_field(key)
        # KeyValue: key, then value (field 2) = AnyValue of 9 bytes: double_value (field 4)
        body_head = key_field + b"\x12\x09\x21"
        head = _SPAN_ATTRIBUTE_HEAD + _varint(len(body_head) + 8) + body_head
        if len(_double_heads) >= _MAX_CACHED:
            _double_heads.clear()
        _double_heads[key] = head
    return head + _DOUBLE.pack(value)


def string_attribute(key: str, text: str) -> bytes:
    """A span attribute with a string value that does not repeat, in one call."""
    data = text.encode("utf-8", "replace")
    size = len(data)
    value = b"\x0a" + (_VARINTS[size] if size < 16384 else _varint(size)) + data
    body = (_keys.get(key) or _key_field(key)) + b"\x12" + _varint(len(value)) + value
    return _SPAN_ATTRIBUTE_HEAD + _varint(len(body)) + body


def encode_resource(attributes: Mapping[str, Any]) -> bytes:
    """ResourceSpans.resource (field 1), encoded once per exporter."""
    return _field(0x0A, encode_attributes(attributes, 0x0A))


def _scope(scope: Scope) -> bytes:
    name, version = scope
    body = _string(0x0A, name) + (_string(0x12, version) if version else b"")
    return _field(0x0A, body)  # ScopeSpans.scope


# A span's name and kind fields, by name (they repeat): the kind is compared, not hashed (an
# enum's hash is a Python call).
_heads: dict[str, tuple[SpanKind, bytes]] = {}


def _head(name: str, kind: SpanKind) -> bytes:
    found = _heads.get(name)
    if found is not None and found[0] is kind:
        return found[1]
    if len(_heads) >= _MAX_CACHED:
        _heads.clear()
    head = _string(_SPAN_NAME, name) + bytes((_SPAN_KIND, kind.value + 1))
    _heads[name] = (kind, head)
    return head


_flag_fields: dict[int, bytes] = {}  # Span.flags (field 16) by value: a handful


def _flags(flags: int) -> bytes:
    field = _flag_fields.get(flags)
    if field is None:
        field = _flag_fields[flags] = _FLAGS.pack(0x85, 0x01, flags)
    return field


def _span(span: LeanSpan) -> bytes:
    # A SpanContext is a tuple (trace id, span id, is remote, flags, trace state, valid):
    # unpacked, not read through its properties (Python functions).
    trace_id, span_id, _, trace_flags, state, _ = span.context
    name, kind = span.name, span.kind
    head = _heads.get(name)
    parts = [
        _SPAN_TRACE_ID + trace_id.to_bytes(16, "big") + _SPAN_SPAN_ID + span_id.to_bytes(8, "big")
    ]
    flags: int = trace_flags | _FLAG_HAS_IS_REMOTE
    if state is not _NO_STATE and state:  # a TraceState's truth is a Python call
        parts.append(_string(_SPAN_TRACE_STATE, state.to_header()))
    parent = span.parent
    if parent is not None:
        parts.append(_SPAN_PARENT + parent[1].to_bytes(8, "big"))
        if parent[2]:
            flags |= _FLAG_IS_REMOTE
    parts.append(head[1] if head is not None and head[0] is kind else _head(name, kind))
    parts.append(_TIMES.pack(0x39, span.start_ns, 0x41, span.end_ns))
    if span.facts is not None:  # first: what was set through the API comes after, and wins
        parts.append(span.facts.encode())
    if span.attributes:
        parts.append(encode_attributes(span.attributes, _SPAN_ATTRIBUTE))
    if span.events:
        parts += (_field(_SPAN_EVENT, _event(*event)) for event in span.events)
    if span.links:
        parts += (_field(_SPAN_LINK, _link(*link)) for link in span.links)
    status = span.status
    if status is not None:
        message = _string(0x12, status.description) if status.description else b""
        parts.append(_field(_SPAN_STATUS, message + bytes((0x18, status.status_code.value))))
    parts.append(_flag_fields.get(flags) or _flags(flags))
    return b"".join(parts)


def _event(name: str, at_ns: int, attributes: Mapping[str, Any] | None) -> bytes:
    return (
        b"\x09"
        + _FIXED64.pack(at_ns)
        + _string(0x12, name)
        + encode_attributes(attributes or {}, 0x1A)
    )


def _link(context: SpanContext, attributes: Mapping[str, Any] | None) -> bytes:
    body = b"\x0a\x10" + context.trace_id.to_bytes(16, "big")
    body += b"\x12\x08" + context.span_id.to_bytes(8, "big")
    if context.trace_state:
        body += _string(0x1A, context.trace_state.to_header())
    flags = (
        int(context.trace_flags)
        | _FLAG_HAS_IS_REMOTE
        | (_FLAG_IS_REMOTE if context.is_remote else 0)
    )
    return body + encode_attributes(attributes or {}, 0x22) + b"\x35" + _FIXED32.pack(flags)


def _step(parent: SpanContext, step: Step) -> bytes:
    """A step recorded under the span of context ``parent`` (spans.step, or a LateStep: no
    span object on the request path) as an INTERNAL child span of its own, with an id made
    here."""
    name, start_ns, end_ns, error = step
    trace_id, span_id, _, trace_flags, state, _ = parent
    parts = [
        _SPAN_TRACE_ID + trace_id.to_bytes(16, "big") + _SPAN_SPAN_ID,
        (getrandbits(64) or 1).to_bytes(8, "big"),
    ]
    if state is not _NO_STATE and state:
        parts.append(_string(_SPAN_TRACE_STATE, state.to_header()))
    parts += (
        _SPAN_PARENT + span_id.to_bytes(8, "big"),
        _head(name, SpanKind.INTERNAL),
        _TIMES.pack(0x39, start_ns, 0x41, end_ns),
    )
    if error is not None:  # as spans._fail: the class as error.type and the status message
        parts.append(attribute("error.type", error))
        parts.append(_field(_SPAN_STATUS, _string(0x12, error) + b"\x18\x02"))
    parts.append(_flags(trace_flags | _FLAG_HAS_IS_REMOTE))
    return b"".join(parts)


def encode_request(resource: bytes, spans: Iterable[Queued]) -> bytes:
    """ExportTraceServiceRequest: one ResourceSpans (``resource`` from encode_resource), one
    ScopeSpans per instrumentation scope."""
    return request_of(resource, encode_spans(spans, {}))


EncodedSpans = dict[Scope, list[bytes]]  # each scope's spans, encoded as ScopeSpans.spans


def encode_spans(spans: Iterable[Queued], into: EncodedSpans) -> EncodedSpans:
    """``spans`` (and their steps' child spans) encoded and added to ``into`` by scope: the
    span objects can go, their bytes wait for ``request_of``."""
    scope: Scope | None = None
    scoped: list[bytes] = []
    for span in spans:
        steps: list[Step] | None = None
        if isinstance(span, LeanSpan):
            span_scope, context = span.scope, span.context
            encoded = _span(span)
            steps = getattr(span.facts, "steps", None)
        else:  # a LateStep
            span_scope, parent, late = span
            encoded = _step(parent, late)
        if span_scope is not scope:  # a run of spans of one scope: one look-up
            scope = span_scope
            found = into.get(scope)
            scoped = into[scope] = [] if found is None else found
        size = len(encoded)
        scoped.append(b"\x12" + (_VARINTS[size] if size < 16384 else _varint(size)) + encoded)
        if steps:
            for step in steps:
                encoded = _step(context, step)
                scoped.append(b"\x12" + _varint(len(encoded)) + encoded)
    return into


def request_of(resource: bytes, encoded: EncodedSpans) -> bytes:
    """The ExportTraceServiceRequest of spans ``encode_spans`` gathered."""
    scopes = [_field(0x12, _scope(scope) + b"".join(spans)) for scope, spans in encoded.items()]
    return _field(0x0A, resource + b"".join(scopes))
