"""Parse a big JSON body in pieces, so no thread holds the interpreter lock for long.

Parsing runs in a worker thread (server/app.py), but building Python objects needs the
interpreter lock, and orjson holds it for the whole document: 15 MiB took 25-100 ms, during
which the event loop (every other request, the health probes) waited. No JSON library
releases it, so this one finds the spans of the top-level members, and of the elements of a
big top-level array, itself, and has orjson parse each span: the lock is free between two
pieces, and a piece is one message or one input, not the whole body.

Hand-written because no library offers this, and kept small: it only locates spans (strings,
brackets, separators); every value is parsed and validated by orjson. Whatever it does not
expect makes it give up (``None``), and the caller parses the body whole as before: the
result is always what ``orjson.loads`` returns, and malformed bodies get orjson's error.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = ["parse_in_pieces"]

# A member whose value is bigger than this is split into its elements (if it is an array).
PIECE_BYTES = 256 * 1024
_BYTES_PER_STEP = 64  # at most one string or bracket per this many bytes, on average
_SPACE = b" \t\n\r"
_STRUCTURE = re.compile(rb'["\[\]{}]')
_SCALAR_END = re.compile(rb"[,\]}\s]|$")


class _Unexpected(Exception):
    pass


def parse_in_pieces(
    body: bytes, piece_bytes: int = PIECE_BYTES, bytes_per_step: int = _BYTES_PER_STEP
) -> dict[str, Any] | None:
    """The JSON object in ``body``, parsed piece by piece; None if ``body`` is not a JSON object
    this can split, or one too dense to split cheaply (the caller then parses it whole)."""
    # Each string and bracket is a step in Python here (~0.5 µs); orjson does them far faster.
    # A body dense with them (`[[],[],...]`: 16 MiB would be seconds here) is left to orjson.
    steps = body.count(b'"') // 2 + body.count(b"[") + body.count(b"{")
    if steps * bytes_per_step > len(body):
        return None
    view = memoryview(body)
    try:
        return _object(body, view, piece_bytes)
    except (_Unexpected, orjson.JSONDecodeError):
        return None


def _object(body: bytes, view: memoryview, piece_bytes: int) -> dict[str, Any]:
    at = _skip(body, 0)
    _expect(body, at, b"{")
    result: dict[str, Any] = {}
    at = _skip(body, at + 1)
    if body[at : at + 1] == b"}":
        return _end(body, at + 1, result)
    while True:
        _expect(body, at, b'"')
        key_end = _string_end(body, at)
        key = orjson.loads(view[at:key_end])
        at = _skip(body, key_end)
        _expect(body, at, b":")
        at = _skip(body, at + 1)
        end = _value_end(body, at)
        if end - at > piece_bytes and body[at : at + 1] == b"[":
            result[key] = _array(body, view, at)
        else:
            result[key] = orjson.loads(view[at:end])
        at = _skip(body, end)
        if body[at : at + 1] == b"}":
            return _end(body, at + 1, result)
        _expect(body, at, b",")
        at = _skip(body, at + 1)


def _array(body: bytes, view: memoryview, at: int) -> list[Any]:
    items: list[Any] = []
    at = _skip(body, at + 1)
    if body[at : at + 1] == b"]":
        return items
    while True:
        end = _value_end(body, at)
        items.append(orjson.loads(view[at:end]))
        at = _skip(body, end)
        if body[at : at + 1] == b"]":
            return items
        _expect(body, at, b",")
        at = _skip(body, at + 1)


def _end(body: bytes, at: int, result: dict[str, Any]) -> dict[str, Any]:
    if _skip(body, at) != len(body):
        raise _Unexpected
    return result


def _skip(body: bytes, at: int) -> int:
    while body[at : at + 1] and body[at] in _SPACE:
        at += 1
    return at


def _expect(body: bytes, at: int, token: bytes) -> None:
    if body[at : at + 1] != token:
        raise _Unexpected


def _string_end(body: bytes, at: int) -> int:
    """The index after the string that starts at ``at`` (a quote)."""
    end = at + 1
    while True:
        end = body.find(b'"', end)
        if end < 0:
            raise _Unexpected
        backslashes = 0
        while body[end - 1 - backslashes] == 0x5C:  # \
            backslashes += 1
        if backslashes % 2 == 0:
            return end + 1
        end += 1


def _value_end(body: bytes, at: int) -> int:
    """The index after the JSON value that starts at ``at``."""
    first = body[at : at + 1]
    if first == b'"':
        return _string_end(body, at)
    if first not in (b"{", b"["):
        found = _SCALAR_END.search(body, at)
        assert found is not None  # the pattern matches at the end at least
        if found.start() == at:
            raise _Unexpected
        return found.start()
    depth = 0
    pos = at
    while True:
        found = _STRUCTURE.search(body, pos)
        if found is None:
            raise _Unexpected
        char = body[found.start()]
        if char == 0x22:  # "
            pos = _string_end(body, found.start())
            continue
        depth += 1 if char in (0x5B, 0x7B) else -1  # [ { or ] }
        pos = found.start() + 1
        if depth == 0:
            return pos
