"""The in-memory LRU: bounded in bytes, TTL per entry, least recently used goes first."""

from __future__ import annotations

import pytest

from chatgate.cache.memory import ENTRY_OVERHEAD, MemoryBackend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD


async def test_get_set_delete_clear() -> None:
    cache = MemoryBackend(10_000)
    assert await cache.get("k") is None
    await cache.set("k", b"v1", None)
    await cache.set("k", b"v22", None)  # replacing counts the new size only
    assert await cache.get("k") == b"v22"
    assert cache.size_bytes == cost("k", b"v22")
    await cache.delete("k")
    assert await cache.get("k") is None
    assert cache.size_bytes == 0
    await cache.set("a", b"1", None)
    await cache.clear()
    assert len(cache) == 0
    assert cache.size_bytes == 0


async def test_ttl_is_honored() -> None:
    clock = Clock()
    cache = MemoryBackend(10_000, clock=clock)
    await cache.set("short", b"x", 5)
    await cache.set("forever", b"y", None)
    clock.now += 4.9
    assert await cache.get("short") == b"x"
    clock.now += 0.2
    assert await cache.get("short") is None
    assert await cache.get("forever") == b"y"
    assert len(cache) == 1
    assert cache.size_bytes == cost("forever", b"y")


async def test_bound_in_bytes_evicts_least_recently_used() -> None:
    value = b"v" * 100
    per_entry = cost("k0", value)
    cache = MemoryBackend(per_entry * 3)
    for i in range(3):
        await cache.set(f"k{i}", value, None)
    assert await cache.get("k0") == value  # k0 is now the most recently used
    await cache.set("k3", value, None)
    assert await cache.get("k1") is None  # the least recently used went
    assert [await cache.get(k) for k in ("k0", "k2", "k3")] == [value] * 3
    assert cache.size_bytes == per_entry * 3 <= cache.max_bytes
    big = b"b" * (per_entry * 2)
    await cache.set("big", big, None)  # evicts as many as needed
    assert cache.size_bytes <= cache.max_bytes
    assert await cache.get("big") == big
    await cache.set("huge", b"h" * cache.max_bytes, None)  # bigger than the cache: not stored
    assert await cache.get("huge") is None
    assert await cache.get("big") == big


def test_rejects_a_non_positive_bound() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryBackend(0)
