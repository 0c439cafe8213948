"""Virtual keys: ``sk-cg-…`` secrets the gateway hands out, each with a model allowlist, a
budget, RPM/TPM limits, an expiry, metadata and tags.

Only a SHA-256 of each secret is stored. A slow password hash (bcrypt, argon2) protects
low-entropy secrets people choose; these are 256 random bits, which no one can guess from a
fast hash, and a fast hash lets every request find its key with one indexed lookup. The
secret itself is returned once, by ``create``, and never logged.

``authenticate`` sits on every request's path, so it answers from a small in-process cache
(``cache_ttl_s``): a revocation made through this process takes effect at once, one made
through another worker within ``cache_ttl_s``. While the database is down, keys verified
within ``cache_ttl_s`` keep working and the others get KeyStoreUnavailable (a 503).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Select, and_, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.errors import ChatgateError, InvalidRequestError
from chatgate.server.key_fields import FIELDS, KeyFields, key_fields, parse_duration
from chatgate.server.store_outage import STORE_ERRORS, StoreOutage
from chatgate.server.store_silence import StoreSilence
from chatgate.store.schema.keys import VIRTUAL_KEYS

__all__ = [
    "PREFIX",
    "KeyNotFound",
    "KeyRecord",
    "KeyRejected",
    "KeyStore",
    "KeyStoreUnavailable",
    "hash_secret",
    "parse_duration",
]

PREFIX = "sk-cg-"
Period = Literal["daily", "monthly", "lifetime"]


class KeyRejected(InvalidRequestError):
    """A key that cannot be used; ``reason`` is missing | invalid | revoked | expired."""

    status_code = 401

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, param="authorization")
        self.reason = reason


class KeyStoreUnavailable(ChatgateError):
    """The database holding the keys did not answer; keys verified within ``cache_ttl_s``
    still work. ``retry_after``: when it is tried again."""

    status_code = 503
    retryable = True
    code = "key_store_unavailable"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"the key store (the gateway's database) is unavailable; retry in {retry_after}s",
            retry_after=retry_after,
        )


class KeyNotFound(InvalidRequestError):
    status_code = 404


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    display: str
    name: str | None = None
    models: tuple[str, ...] = ()  # empty: every model
    budget_usd: Decimal | None = None
    budget_period: Period | None = None
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None
    team: str | None = None
    user: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()  # carried by every request made with the key
    created_at: float = 0.0
    updated_at: float = 0.0
    revoked_at: float | None = None

    @property
    def is_admin(self) -> bool:
        """An admin key (metadata ``{"role": "admin"}``): the admin API and the console."""
        return self.metadata.get("role") == "admin"

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models

    def public(self) -> dict[str, Any]:
        """JSON-ready, for the admin API and the CLI (never includes the secret or its hash)."""
        return {
            "key_id": self.key_id,
            "key": self.display,
            "name": self.name,
            "models": list(self.models),
            "budget": None if self.budget_usd is None else str(self.budget_usd),
            "budget_period": self.budget_period,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "expires_at": _iso(self.expires_at),
            "team": self.team,
            "user": self.user,
            "metadata": dict(self.metadata),
            "tags": list(self.tags),
            "created_at": _iso(self.created_at),
            "revoked": self.revoked_at is not None,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
    except (OverflowError, OSError, ValueError):  # a row written before expires was bounded
        return dt.datetime.max.replace(tzinfo=dt.UTC).isoformat() if ts > 0 else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _plain(amount: Decimal) -> Decimal:
    """10.0000000000 (how the column gives it back) -> 10; 2.50 -> 2.5."""
    return amount.quantize(Decimal(1)) if amount == amount.to_integral() else amount.normalize()


def _record(row: Row[Any]) -> KeyRecord:
    m = row._mapping
    return KeyRecord(
        key_id=m["key_id"],
        display=m["display"],
        name=m["name"],
        models=tuple(m["models"] or ()),
        budget_usd=None if m["budget_usd"] is None else _plain(Decimal(str(m["budget_usd"]))),
        budget_period=m["budget_period"],
        rpm=m["rpm"],
        tpm=m["tpm"],
        expires_at=m["expires_at"],
        team=m["team"],
        user=m["user_id"],
        metadata=m["metadata"] or {},
        tags=tuple(m["tags"] or ()),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        revoked_at=m["revoked_at"],
    )


class KeyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cache_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        lookup_timeout_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._cache_ttl_s = cache_ttl_s
        self._silence = StoreSilence(engine, lookup_timeout_s)
        self.outage = StoreOutage("key store (database)")
        self._clock = clock
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}  # hash -> (until, record)

    async def create(
        self,
        *,
        name: str | None = None,
        models: Sequence[str] = (),
        budget: Decimal | float | str | None = None,
        budget_period: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        expires: str | float | None = None,
        team: str | None = None,
        user: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key: returns the secret (shown this once) and its record. Every field is
        checked before anything is written; InvalidRequestError names the wrong one."""
        given = {
            "name": name, "models": models or None, "budget": budget,
            "budget_period": budget_period, "rpm": rpm, "tpm": tpm, "expires": expires,
            "team": team, "user": user, "metadata": metadata, "tags": tags,
        }  # fmt: skip
        return await self.add(key_fields({k: v for k, v in given.items() if v is not None}))

    async def add(self, spec: KeyFields) -> tuple[str, KeyRecord]:
        """``create`` with the fields already validated (the admin API's path)."""
        now = self._clock()
        fields = spec.columns(now)
        if spec.budget is not None and spec.budget_period is None:
            fields["budget_period"] = "monthly"
        secret = PREFIX + secrets.token_urlsafe(32)
        row = {
            "key_id": "key_" + secrets.token_hex(8),
            "secret_hash": hash_secret(secret),
            "display": f"{PREFIX}…{secret[-4:]}",
            "models": [],
            "metadata": {},
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(VIRTUAL_KEYS).values(**row))
        record = await self.get(row["key_id"])
        assert record is not None
        return secret, record

    async def authenticate(self, secret: str | None) -> KeyRecord:
        """The key's record, or KeyRejected saying why it cannot be used."""
        if not secret:
            raise KeyRejected(
                "no API key: send 'Authorization: Bearer sk-cg-…' or 'x-api-key: sk-cg-…'",
                "missing",
            )
        digest = hash_secret(secret)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            record = await self._lookup(digest)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._cache_ttl_s, record)
        if record is None:
            raise KeyRejected("invalid API key", "invalid")
        if record.revoked_at is not None:
            raise KeyRejected(f"API key {record.display} has been revoked", "revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise KeyRejected(
                f"API key {record.display} expired at {_iso(record.expires_at)}", "expired"
            )
        return record

    async def _lookup(self, digest: str) -> KeyRecord | None:
        """The record for a secret's hash, or KeyStoreUnavailable while the database is down
        (one lookup per ``outage.retry_s`` probes it; the others are answered at once)."""
        outage = self.outage
        if outage.skip():
            raise KeyStoreUnavailable(outage.refuse())
        query = select(VIRTUAL_KEYS).where(VIRTUAL_KEYS.c.secret_hash == digest)
        try:
            found = await self._silence.wait(self._fetch(query))
        except STORE_ERRORS as exc:
            outage.failed(exc)
            raise KeyStoreUnavailable(outage.refuse()) from None
        outage.recovered()
        return None if found is None else _record(found)

    async def _fetch(self, query: Select[Any]) -> Row[Any] | None:
        async with self._engine.connect() as conn:
            found: Row[Any] | None = (await conn.execute(query)).first()
        return found

    async def get(self, key_id: str) -> KeyRecord | None:
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(select(VIRTUAL_KEYS).where(VIRTUAL_KEYS.c.key_id == key_id))
            ).first()
        return None if found is None else _record(found)

    async def list(
        self,
        *,
        team: str | None = None,
        user: str | None = None,
        include_revoked: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[KeyRecord]:
        """Oldest first; ``limit`` and ``after`` (the previous page's last key_id) page it."""
        c = VIRTUAL_KEYS.c
        query = select(VIRTUAL_KEYS).order_by(c.created_at, c.key_id).limit(limit)
        if after is not None:
            last = select(c.created_at).where(c.key_id == after).scalar_subquery()
            query = query.where(
                or_(c.created_at > last, and_(c.created_at == last, c.key_id > after))
            )
        if team is not None:
            query = query.where(VIRTUAL_KEYS.c.team == team)
        if user is not None:
            query = query.where(VIRTUAL_KEYS.c.user_id == user)
        if not include_revoked:
            query = query.where(VIRTUAL_KEYS.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            return [_record(row) for row in await conn.execute(query)]

    async def update(self, key_id: str, **changes: Any) -> KeyRecord:
        """Change models, budget, budget_period, rpm, tpm, expires, name, team, user,
        metadata, tags; a null clears the field. Unknown or wrong fields are an error naming them,
        raised before anything is written."""
        unknown = sorted(set(changes) - FIELDS)
        if unknown:
            raise InvalidRequestError(
                f"cannot update {', '.join(unknown)}; updatable: {', '.join(sorted(FIELDS))}",
                param=unknown[0],
            )
        now = self._clock()
        values = key_fields(changes).columns(now)
        return await self._write(key_id, {**values, "updated_at": now})

    async def revoke(self, key_id: str) -> KeyRecord:
        now = self._clock()
        return await self._write(key_id, {"revoked_at": now, "updated_at": now})

    async def _write(self, key_id: str, values: dict[str, Any]) -> KeyRecord:
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(VIRTUAL_KEYS).where(VIRTUAL_KEYS.c.key_id == key_id).values(**values)
            )
        if done.rowcount == 0:
            raise KeyNotFound(f"no key with id {key_id!r}", param="key_id")
        record = await self.get(key_id)
        assert record is not None
        self._forget(record)
        return record

    def _forget(self, record: KeyRecord) -> None:
        """Drop the cached answer for this key so the change applies here at once."""
        for digest, (until, cached) in list(self._cache.items()):
            if cached is not None and cached.key_id == record.key_id:
                self._cache[digest] = (until, replace(record))
