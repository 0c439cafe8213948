"""Upstreams that echo the credential they were sent: in their error bodies (before a stream,
and as a mid-stream error event) and in their response headers. Shared by the secrets tests.

The keys have no well-known shape, so only scrubbing by the deployment's own credentials can
catch them; ``FOREIGN`` has one (an Anthropic key), so only the shape pass can catch it.
"""

from __future__ import annotations

from typing import Any

from tests.fakes import anthropic_server as anth
from tests.fakes.openai_server import Reply, chunk_json

__all__ = ["FOREIGN", "KEYS", "broken_stream", "echo_headers", "leaks", "refused"]

KEYS = {
    "openai": "up-7c1e9a4f2b8d6e3a5c0f9b1d7e2a4c6b",
    "anthropic": "up-3b8f0d2e6a9c1f4b7e5d0a8c3f6b9e2d",
}
FOREIGN = "sk-ant-api03-Qm7Vx2Lp9Rt4Wy6Zb1Nc8Kd3Hf5Gj0Ss"


def echo_headers(key: str) -> dict[str, str]:
    """Every request-id header chatgate reads, and a proxy's echo of the auth header."""
    return {
        "x-request-id": key,
        "request-id": key,
        "apim-request-id": key,
        "x-echo-authorization": f"Bearer {key}",
    }


def _text(key: str) -> str:
    return f"Incorrect API key provided: {key}. Header was 'Bearer {key}'; also {FOREIGN}"


def refused(upstream: str, *, status: int = 500, pad: int = 0) -> Reply:
    """An error status whose body and headers echo the key. ``pad`` puts that many characters
    before the key, so that a message cut to a maximum length ends inside the key."""
    key = KEYS[upstream]
    message = "x" * pad + _text(key)
    body: dict[str, Any]
    if upstream == "anthropic":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        body["request_id"] = key
    else:
        error = {"message": message, "type": "server_error", "param": key, "code": key}
        body = {"error": error}
    return Reply(status=status, json=body, headers=echo_headers(key))


def broken_stream(upstream: str) -> Reply:
    """A 200 stream (headers echoing the key) that sends a little text, then an error event
    whose body echoes the key."""
    key = KEYS[upstream]
    if upstream == "anthropic":
        message = anth.message_json("Hi", model="claude-sonnet-4-5")
        events: list[Any] = anth.events_for(message)[:3]  # message_start, block start, "Hi"
        error = {"type": "overloaded_error", "message": _text(key)}
        events.append({"type": "error", "error": error})
        return Reply(chunks=events, headers=echo_headers(key))
    failure = {"message": _text(key), "type": "server_error", "param": key, "code": key}
    chunks: list[Any] = [
        chunk_json({"role": "assistant", "content": ""}),
        chunk_json({"content": "Hi"}),
        {"error": failure},
    ]
    return Reply(chunks=chunks, done=False, headers=echo_headers(key))


def leaks(text: str) -> list[str]:
    """The secrets, or pieces of them (8 characters or more), found in ``text``."""
    found = []
    for secret in [*KEYS.values(), FOREIGN]:
        pieces = {secret[i : i + 8] for i in range(0, len(secret) - 7)}
        if any(piece in text for piece in pieces):
            found.append(secret)
    return found
