"""What the transport sends: an HTTP request that a provider adapter built."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["HttpRequest"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)  # repr=False: they carry the credentials
    body: bytes = field(repr=False)
