"""Incremental, I/O-free Server-Sent Events decoder.

Implements the WHATWG HTML Living Standard, section 9.2.6 "Interpreting an event
stream" (https://html.spec.whatwg.org/multipage/server-sent-events.html):
CRLF / LF / CR line endings (also when CR and LF arrive in different chunks), one
leading UTF-8 BOM skipped, ``:`` comments, one space after the colon stripped,
``data`` lines joined with LF, blank line dispatches, blocks with no ``data``
not dispatched, ``id`` persisting across events (ignored if it contains NUL),
``retry`` only when all ASCII digits, unknown fields ignored, and an unterminated
trailing block discarded at end of stream. Bytes are decoded as UTF-8 with
replacement characters, one run of complete lines at a time, so multi-byte
characters split across chunks decode correctly.
"""

# Hand-written: httpx-sse / aiohttp-sse-client own the HTTP client and sseclient-py
# only pulls from a sync iterator; none offers a push-style feed(bytes) decoder.

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):  # a tuple: built 3x faster than a frozen dataclass, ~20 a stream
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed raw bytes in any chunking; get back the events completed so far."""

    __slots__ = ("_bom_pending", "_buf", "_cr_pending", "_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._buf = bytearray()  # bytes of the current, still unterminated line
        self._bom_pending = True  # stream start: a BOM may still be (partly) ahead
        self._cr_pending = False  # previous chunk ended in CR: skip a leading LF
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None  # the spec's "last event ID buffer"
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed (possibly none)."""
        if self._bom_pending:
            if self._buf:
                chunk = bytes(self._buf) + chunk
                self._buf.clear()
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._buf += chunk  # may still turn out to be a BOM
                return []
            self._bom_pending = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._cr_pending and chunk:
            self._cr_pending = False
            if chunk[0] == 0x0A:  # LF completing a CRLF split across chunks
                chunk = chunk[1:]
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if cut < 0:
            self._buf += chunk
            return []
        # A trailing CR ends a line now; remember it in case an LF comes next.
        self._cr_pending = cut == len(chunk) - 1 and chunk[cut] == 0x0D
        if self._buf:
            self._buf += chunk[: cut + 1]
            text = self._buf.decode("utf-8", "replace")
            self._buf.clear()
        else:
            text = chunk[: cut + 1].decode("utf-8", "replace")
        self._buf += chunk[cut + 1 :]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        lines.pop()  # text ends with a line break, so the last item is ""
        return self._process(lines)

    def flush(self) -> list[SSEEvent]:
        """Signal end of stream.

        Per spec an unterminated trailing event is discarded, so this always returns
        ``[]``. The decoder is reset for a new stream but keeps the last event ID,
        as the spec does across reconnections.
        """
        self._buf.clear()
        self._bom_pending = True
        self._cr_pending = False
        self._data = []
        self._event = ""
        self._retry = None
        return []

    def _process(self, lines: list[str]) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        data, event, retry = self._data, self._event, self._retry
        for line in lines:
            if line[:6] == "data: ":  # the common line, ahead of the general parse below
                data.append(line[6:])
                continue
            if not line:  # blank line: dispatch
                if data:
                    text = data[0] if len(data) == 1 else "\n".join(data)
                    out.append(SSEEvent(text, event or "message", self._id, retry))
                    data = []
                event, retry = "", None
                continue
            name, colon, value = line.partition(":")  # comment lines give name ""
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                if "\0" not in value:
                    self._id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                retry = int(value)
        self._data, self._event, self._retry = data, event, retry
        return out
