"""Cache-aware routing: send a request to the deployment that already saw its prompt's prefix.

Provider prompt caches live per deployment (an OpenAI organisation, an Azure resource, an
Anthropic workspace, a Bedrock region): a 3,000-token prefix read from cache costs a tenth (or
half) of one sent fresh, but only where it was sent before. So each routed chat request's
prefix is hashed at every message boundary (tools first, then each message in order), and
the router remembers which deployments of the group served each whole prompt (the hash at its
last boundary). A later request whose prompt starts with a remembered one (the next turn of
a conversation, the next round of an agent loop) has a known prefix; the longest known prefix
decides: among the deployments that may take it now (healthy, under their limits, not tried
yet), those warm for that prefix are the candidates, and the group's normal strategy picks
among them. None warm: the strategy picks among all, as without affinity. A prompt shorter
than ``cache_affinity_min_tokens`` (no provider caches those) is not remembered and does not
steer.

Only whole prompts are remembered, not each of their boundaries: the boundary after a system
prompt that every conversation of an application shares would otherwise steer every new
conversation to the deployment that saw it first, the whole application onto one deployment.
New conversations are spread by the strategy instead, at the price of the shared head being
written once on each deployment.

Memory is bounded: an LRU of ``cache_affinity_max_prefixes`` hashes in each process, and
with shared router state a Redis hash per prefix that expires ``cache_affinity_ttl`` after
its last write. A deployment counts as warm for ``cache_affinity_ttl`` after it served the
prefix (providers keep an idle prefix 5 to 60 minutes). While Redis is unavailable the
process's own LRU answers: affinity is an optimisation and never refuses a call.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from chatgate.types import ChatRequest, Message

if TYPE_CHECKING:
    from chatgate.config import RouterSettings
    from chatgate.router.redis_state import RedisState
    from chatgate.router.state import RouterState

__all__ = ["Affinity", "AffinityStore", "MemoryAffinity", "RedisAffinity", "prefix_hashes"]

log = logging.getLogger("chatgate.router")

_BYTES_PER_TOKEN = 4  # the router's token estimate everywhere (router/call.py)
_MAX_HASHES = 16  # boundaries looked up: the last 16 (a turn adds fewer messages) and the first


def prefix_hashes(request: ChatRequest, min_tokens: int) -> list[str]:
    """The hash of the prompt's prefix at each message boundary whose prefix holds at least
    ``min_tokens`` (estimated), shortest first: tools, then messages, in order. Two requests
    share a hash when everything up to that boundary is the same; a plain text message counts
    by its role and text alone (a ``name`` differing is missed: that only costs a cache miss,
    never a wrong answer)."""
    least = min_tokens * _BYTES_PER_TOKEN
    if not request.tools and _most_bytes(request.messages, least) < least:
        return []  # the usual short prompt: too short to steer, known without hashing it
    # SHA-1 for speed (~2 GB/s here, blake2b half that): the hash only steers routing, a
    # collision costs one cache miss. Shared through Redis, so not Python's per-process hash().
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    for tool in request.tools or ():
        fn = tool.function
        data = f"{fn.name}\0{fn.description}\0".encode() + orjson.dumps(fn.parameters)
        digest.update(data)
        size += len(data)
    out: list[str] = []
    for message in request.messages:
        data = _identity(message)
        digest.update(len(data).to_bytes(8, "little"))  # boundaries are part of the identity
        digest.update(data)
        size += len(data)
        if size >= least:
            out.append(digest.copy().hexdigest())
    if len(out) > _MAX_HASHES + 1:
        out = [out[0], *out[-_MAX_HASHES:]]
    return out


def _most_bytes(messages: Sequence[Message], enough: int) -> int:
    """An upper bound of what the messages' identities hold, or a huge number when it is not
    cheap to know (content parts, tool calls): UTF-8 takes at most 4 bytes a character. Stops
    counting at ``enough``."""
    total = 0
    for message in messages:
        fields = message.__dict__
        content = fields.get("content")
        if not isinstance(content, str) or fields.get("tool_calls"):
            return 1 << 62
        total += 4 * (len(content) + len(fields.get("tool_call_id") or "")) + 64
        if total >= enough:
            return total
    return total


def _identity(message: Message) -> bytes:
    """What a message contributes to the prefix: its role and text alone for the common case
    (serialising the whole model costs several times more), the whole message otherwise."""
    fields = message.__dict__  # pydantic's field values; getattr of a missing one is slow
    content = fields.get("content")
    if isinstance(content, str) and not fields.get("tool_calls"):
        call = fields.get("tool_call_id") or ""
        return f"{message.role}\0{call}\0{content}".encode()
    return message.model_dump_json(exclude_unset=True).encode()


class AffinityStore(Protocol):
    async def warm(self, group: str, hashes: Sequence[str], now: float) -> list[frozenset[str]]:
        """Per hash (in the order given), the ids of the deployments warm for it."""
        ...

    async def remember(self, group: str, hashes: Sequence[str], id: str, now: float) -> None:
        """Deployment ``id`` of ``group`` served a prompt with these prefixes at ``now``."""
        ...


class MemoryAffinity:
    """One process's affinity: an LRU of (group, hash) -> {deployment id: last served}."""

    def __init__(self, max_prefixes: int = 10_000, ttl: float = 600.0) -> None:
        self.max_prefixes = max_prefixes
        self.ttl = ttl
        self._seen: OrderedDict[tuple[str, str], dict[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    async def warm(self, group: str, hashes: Sequence[str], now: float) -> list[frozenset[str]]:
        out = []
        for h in hashes:
            served = self._seen.get((group, h))
            alive = frozenset(i for i, at in (served or {}).items() if now - at < self.ttl)
            out.append(alive)
        return out

    async def remember(self, group: str, hashes: Sequence[str], id: str, now: float) -> None:
        self.note(group, hashes, id, now)

    def note(self, group: str, hashes: Sequence[str], id: str, now: float) -> None:
        """``remember`` without awaiting (it never waits)."""
        seen = self._seen
        for h in hashes:
            key = (group, h)
            served = seen.get(key)
            if served is None:
                served = seen[key] = {}
            else:
                seen.move_to_end(key)
            served[id] = now
        while len(seen) > self.max_prefixes:
            seen.popitem(last=False)


class RedisAffinity:
    """Affinity shared by every router on a RedisState's namespace: one Redis hash per
    (group, prefix) holding {deployment id: wall-clock time it last served it}, expiring
    ``ttl`` after its last write. Wall-clock time, because processes on several hosts write
    it; seconds of clock skew only shift when a warm deployment stops counting as warm."""

    def __init__(self, state: RedisState, ttl: float, local: MemoryAffinity) -> None:
        from redis.exceptions import RedisError

        # Any Redis error, not only unavailability: affinity must never fail a call.
        self._errors: tuple[type[BaseException], ...] = (*state.unavailable, RedisError)
        self._state = state
        self._ttl_ms = max(1, round(ttl * 1000))
        self._ttl = ttl
        self._prefix = f"chatgate:rs:{{{state.namespace}}}:pa:"
        self.local = local  # answers while Redis is unavailable
        self.wall: Callable[[], float] = time.time

    def _key(self, group: str, h: str) -> str:
        return f"{self._prefix}{group}:{h}"

    async def warm(self, group: str, hashes: Sequence[str], now: float) -> list[frozenset[str]]:
        state = self._state
        if not hashes:
            return []
        if state.degraded:
            return await self.local.warm(group, hashes, now)
        try:
            pipe = state.redis_client().pipeline(transaction=False)
            for h in hashes:
                pipe.hgetall(self._key(group, h))
            rows = await pipe.execute()
        except self._errors as exc:
            log.debug("cache affinity: Redis unavailable, using this process's: %s", exc)
            return await self.local.warm(group, hashes, now)
        wall = self.wall()
        return [
            frozenset(i.decode() for i, at in row.items() if wall - float(at) < self._ttl)
            for row in rows
        ]

    async def remember(self, group: str, hashes: Sequence[str], id: str, now: float) -> None:
        self.local.note(group, hashes, id, now)
        state = self._state
        if not hashes or state.degraded:
            return
        wall = self.wall()
        try:
            pipe = state.redis_client().pipeline(transaction=False)
            for h in hashes:
                key = self._key(group, h)
                pipe.hset(key, id, repr(wall))
                pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()
        except self._errors as exc:
            log.debug("cache affinity: not shared, Redis unavailable: %s", exc)


class Affinity:
    """What a group runner asks: the prefixes of a job, and the warm deployments for them.
    ``store`` is None when affinity is off."""

    def __init__(self, store: AffinityStore | None, min_tokens: int) -> None:
        self.store = store
        self.min_tokens = min_tokens

    def hashes(self, job: object) -> list[str]:
        request = getattr(job, "request", None)
        if self.store is None or not isinstance(request, ChatRequest):
            return []
        return prefix_hashes(request, self.min_tokens)

    async def warm(self, group: str, hashes: Sequence[str], now: float) -> list[frozenset[str]]:
        if self.store is None or not hashes:
            return []
        return await self.store.warm(group, hashes, now)

    def remember(
        self,
        group: str,
        hashes: Sequence[str],
        id: str,
        now: float,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        """Remember the whole prompt (its last hash) as served by ``id``: at once in memory,
        off the request's path in Redis (a round trip)."""
        if not hashes:  # a short prompt, or affinity off: nothing to remember
            return
        store = self.store
        whole = hashes[-1:]
        if isinstance(store, MemoryAffinity):
            store.note(group, whole, id, now)
        elif store is not None and whole:
            spawn(store.remember(group, whole, id, now))


# One store per router state: the runners of one Router (and Routers sharing a state object)
# share what they learned. Weak, so a discarded Router takes its LRU with it.
_STORES: weakref.WeakKeyDictionary[Any, AffinityStore] = weakref.WeakKeyDictionary()


def affinity_for(settings: RouterSettings, state: RouterState) -> Affinity:
    """The affinity a Router with these settings and this state uses."""
    if not settings.cache_affinity:
        return Affinity(None, settings.cache_affinity_min_tokens)
    try:
        store = _STORES.get(state)
    except TypeError:  # a RouterState of the caller's own that takes no weak reference
        store = None
    if store is None:
        local = MemoryAffinity(settings.cache_affinity_max_prefixes, settings.cache_affinity_ttl)
        store = local
        from chatgate.router.redis_state import RedisState

        if isinstance(state, RedisState):
            store = RedisAffinity(state, settings.cache_affinity_ttl, local)
        with contextlib.suppress(TypeError):  # then this group keeps its own
            _STORES[state] = store
    return Affinity(store, settings.cache_affinity_min_tokens)
