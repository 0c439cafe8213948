"""The backend's reasoning, carried through a stateless gateway in ``encrypted_content``.

A Responses client that asks for ``include: ["reasoning.encrypted_content"]`` and ``store:
false`` (Codex) hands every reasoning item back on its next request. What a backend needs back
to continue a turn with its reasoning intact (Anthropic thinking blocks with their signatures,
Gemini thought signatures on tool calls, a reasoning text the backend wants replayed) is sealed
into one such item with AES-256-GCM under a key derived from the master key (or, without one,
a random key per process), and restored onto the assistant turn it came from when the item
comes back. An envelope that does not open (another key, tampered, another gateway's or
OpenAI's own) is ignored: the turn is sent without it, never with client-made content."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chatgate.providers.anthropic.messages import THINKING_BLOCKS
from chatgate.providers.gemini.messages import THOUGHT_SIGNATURE_KEY

__all__ = ["Carry", "Sealer", "restore", "sealer_for"]

Wire = dict[str, Any]

_PREFIX = "cgr1."
_AAD = b"chatgate responses reasoning v1"
_NONCE = 12


@dataclass(slots=True)
class Carry:
    """One assistant turn's reasoning that must go back to the backend that produced it."""

    family: str  # the backend's wire format (adapter name): restored only to the same
    reasoning: str = ""
    blocks: list[Wire] = field(default_factory=list)  # Anthropic thinking blocks
    signatures: dict[str, str] = field(default_factory=dict)  # call id -> Gemini signature
    calls: list[str] = field(default_factory=list)  # the turn's tool call ids

    def empty(self) -> bool:
        return not (self.reasoning or self.blocks or self.signatures)

    def take_message(self, message: Any) -> None:
        """Collect from a whole canonical message (ResponseMessage)."""
        self.reasoning += message.reasoning_content or ""
        self.take_blocks(message.model_extra)
        for call in message.tool_calls or ():
            self.take_call(call.id, call.model_extra)

    def take_blocks(self, extra: Mapping[str, Any] | None) -> None:
        self.blocks += [dict(b) for b in (extra or {}).get(THINKING_BLOCKS) or ()]

    def take_call(self, call_id: str | None, extra: Mapping[str, Any] | None) -> None:
        if call_id and call_id not in self.calls:
            self.calls.append(call_id)
        google = ((extra or {}).get("extra_content") or {}).get("google")
        if call_id and isinstance(google, Mapping):
            signature = google.get(THOUGHT_SIGNATURE_KEY)
            if isinstance(signature, str):
                self.signatures[call_id] = signature

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"f": self.family, "r": self.reasoning, "b": self.blocks, "s": self.signatures,
             "c": self.calls}
        )  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Carry | None:
        if not isinstance(data, dict) or not isinstance(data.get("f"), str):
            return None
        return cls(data["f"], data.get("r") or "", data.get("b") or [], data.get("s") or {},
                   data.get("c") or [])  # fmt: skip


class Sealer:
    """AES-256-GCM over a Carry; the key is HKDF-SHA256 of the gateway's secret."""

    __slots__ = ("_aead",)

    def __init__(self, secret: bytes) -> None:
        info = b"chatgate responses reasoning envelope"
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
        self._aead = AESGCM(key)

    def seal(self, carry: Carry) -> str:
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, carry.to_json(), _AAD)
        return _PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, token: Any) -> Carry | None:
        """The Carry sealed in ``token``; None for anything this gateway did not seal."""
        if not isinstance(token, str) or not token.startswith(_PREFIX):
            return None
        try:
            sealed = base64.urlsafe_b64decode(token[len(_PREFIX) :])
            plain = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _AAD)
            return Carry.from_json(orjson.loads(plain))
        except (binascii.Error, ValueError, InvalidTag):
            return None


_PROCESS_SECRET = os.urandom(32)


@lru_cache(maxsize=4)
def sealer_for(master_key: str | None) -> Sealer:
    """The gateway's Sealer: keyed from the master key, so every instance sharing it opens the
    others' envelopes; without one, from a random secret of this process."""
    secret = master_key.encode() if master_key else _PROCESS_SECRET
    return Sealer(secret)


def _turn_for(messages: list[Wire], carry: Carry, position: int) -> Wire | None:
    """The assistant message the carry belongs to: the one holding its tool calls, else the
    last assistant message before the envelope's place."""
    if carry.calls:
        for message in messages:
            ids = {c.get("id") for c in message.get("tool_calls") or ()}
            if message.get("role") == "assistant" and carry.calls[0] in ids:
                return message
        return None
    for message in reversed(messages[:position]):
        if message.get("role") == "assistant":
            return message
        if message.get("role") == "user":
            return None
    return None


def restore(messages: list[Wire], found: list[tuple[int, Carry]], family: str) -> None:
    """Put each opened Carry back on its assistant turn (only for the backend kind that made
    it: another one would reject foreign signatures)."""
    for position, carry in found:
        if carry.family != family:
            continue
        message = _turn_for(messages, carry, position)
        if message is None:
            continue
        if carry.blocks:
            message[THINKING_BLOCKS] = carry.blocks
        elif carry.reasoning:
            message["reasoning_content"] = carry.reasoning
        for call in message.get("tool_calls") or ():
            signature = carry.signatures.get(call.get("id"))
            if signature is not None:
                call["extra_content"] = {"google": {THOUGHT_SIGNATURE_KEY: signature}}
