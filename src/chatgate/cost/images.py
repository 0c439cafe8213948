"""Image input tokens for OpenAI models, by the formulas in OpenAI's vision guide.

Two schemes exist. Tile models: scale the image to fit 2048x2048, then so its short side is
768 px, and charge ``base + tile x (512 px tiles)``; ``detail: low`` costs ``base`` alone.
Patch models: count 32x32 patches (at most 1536, scaling the image down to fit) and multiply
by a per-model factor. The size comes from the image bytes of a data URL (PNG, JPEG, GIF,
WebP headers); for a remote URL the size is unknown and the largest possible count is used,
marked inexact.
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass

__all__ = ["ImageTokens", "image_size", "image_tokens"]


@dataclass(frozen=True, slots=True)
class _Tiles:
    base: int
    tile: int


@dataclass(frozen=True, slots=True)
class _Patches:
    multiplier: float


_PATCH_MODELS: dict[str, _Patches] = {
    "gpt-5-mini": _Patches(1.62),
    "gpt-5-nano": _Patches(2.46),
    "gpt-4.1-mini": _Patches(1.62),
    "gpt-4.1-nano": _Patches(2.46),
    "o4-mini": _Patches(1.72),
}
_TILE_MODELS: dict[str, _Tiles] = {
    "gpt-4o-mini": _Tiles(2833, 5667),
    "computer-use-preview": _Tiles(65, 129),
    "o1": _Tiles(75, 150),
    "o3": _Tiles(75, 150),
    "gpt-5": _Tiles(70, 140),
}
_DEFAULT = _Tiles(85, 170)  # gpt-4o, gpt-4.1, gpt-4.5, gpt-4-turbo
_MAX_PATCHES = 1536


@dataclass(frozen=True, slots=True)
class ImageTokens:
    tokens: int
    exact: bool


def _scheme(model: str) -> _Tiles | _Patches:
    # Longest prefix first, so "gpt-5-mini" wins over "gpt-5" and "o4-mini" over "o4".
    for prefix in sorted(_PATCH_MODELS, key=len, reverse=True):
        if model.startswith(prefix):
            return _PATCH_MODELS[prefix]
    for prefix in sorted(_TILE_MODELS, key=len, reverse=True):
        if model.startswith(prefix):
            return _TILE_MODELS[prefix]
    return _DEFAULT


def _tile_tokens(scheme: _Tiles, width: int, height: int, detail: str) -> int:
    if detail == "low":
        return scheme.base
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return scheme.base + scheme.tile * tiles


def _patch_tokens(scheme: _Patches, width: int, height: int) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches > _MAX_PATCHES:
        ratio = math.sqrt(32 * 32 * _MAX_PATCHES / (width * height))
        ratio *= min(
            math.floor(width * ratio / 32) / (width * ratio / 32),
            math.floor(height * ratio / 32) / (height * ratio / 32),
        )
        patches = min(_MAX_PATCHES, math.ceil(width * ratio / 32) * math.ceil(height * ratio / 32))
    return math.ceil(patches * scheme.multiplier)


def image_tokens(model: str, url: str, detail: str | None) -> ImageTokens:
    """Tokens one image part costs on ``model`` (an OpenAI model name without prefix)."""
    scheme = _scheme(model)
    size = image_size(url)
    if size is None:  # remote or unreadable image: the largest count the scheme allows
        if isinstance(scheme, _Patches):
            return ImageTokens(math.ceil(_MAX_PATCHES * scheme.multiplier), False)
        return ImageTokens(_tile_tokens(scheme, 768, 2048, detail or "auto"), False)
    if isinstance(scheme, _Patches):
        return ImageTokens(_patch_tokens(scheme, *size), True)
    return ImageTokens(_tile_tokens(scheme, *size, detail or "auto"), True)


def image_size(url: str) -> tuple[int, int] | None:
    """(width, height) read from a base64 data URL's image header; None if not readable."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    encoded = url.split(";base64,", 1)[1]
    try:
        head = base64.b64decode(encoded[:65536] + "=" * (-len(encoded[:65536]) % 4))
    except ValueError:
        return None
    return _sniff(head)


def _sniff(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if kind == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return int(width), int(height)
        at += 2 + length
    return None
