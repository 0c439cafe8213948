"""Virtual keys: ``sk-cg-…`` secrets the gateway hands out, each with a model allowlist, a
budget, RPM/TPM limits, an expiry and metadata.

Only a SHA-256 of each secret is stored. A slow password hash (bcrypt, argon2) protects
low-entropy secrets people choose; these are 256 random bits, which no one can guess from a
fast hash, and a fast hash lets every request find its key with one indexed lookup. The
secret itself is returned once, by ``create``, and never logged.

``authenticate`` sits on every request's path, so it answers from a small in-process cache
(``cache_ttl_s``): a revocation made through this process takes effect at once, one made
through another worker within ``cache_ttl_s``.
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

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.errors import InvalidRequestError
from chatgate.store.schema.keys import VIRTUAL_KEYS

__all__ = ["PREFIX", "KeyError_", "KeyRecord", "KeyStore", "hash_secret", "parse_duration"]

PREFIX = "sk-cg-"
Period = Literal["daily", "monthly", "lifetime"]
_PERIODS = ("daily", "monthly", "lifetime")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


class KeyError_(InvalidRequestError):
    """A key that cannot be used; ``reason`` is missing | invalid | revoked | expired."""

    status_code = 401

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, param="authorization")
        self.reason = reason


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
    created_at: float = 0.0
    updated_at: float = 0.0
    revoked_at: float | None = None

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
            "created_at": _iso(self.created_at),
            "revoked": self.revoked_at is not None,
        }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '2w', '1y' -> seconds."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _DURATION_UNITS else ""
    number = value[: -1 if unit else None]
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if amount <= 0:
        raise InvalidRequestError(
            f"expires: {text!r} is not a duration; use a number and a unit, e.g. 30d, 12h, 90m",
            param="expires",
        )
    return amount * _DURATION_UNITS[unit or "s"]


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
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        revoked_at=m["revoked_at"],
    )


def _validate(
    models: Sequence[str] | None,
    budget: Decimal | float | str | None,
    period: str | None,
    rpm: int | None,
    tpm: int | None,
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if models is not None:
        if isinstance(models, str) or not all(isinstance(m, str) and m for m in models):
            raise InvalidRequestError("models: a list of model names", param="models")
        changes["models"] = list(models)
    if budget is not None:
        amount = Decimal(str(budget))
        if not amount >= 0:
            raise InvalidRequestError("budget: a non-negative amount in USD", param="budget")
        changes["budget_usd"] = amount
    if period is not None:
        if period not in _PERIODS:
            raise InvalidRequestError(
                f"budget_period: one of {', '.join(_PERIODS)}, not {period!r}",
                param="budget_period",
            )
        changes["budget_period"] = period
    for name, limit in (("rpm", rpm), ("tpm", tpm)):
        if limit is not None:
            if not isinstance(limit, int) or limit <= 0:
                raise InvalidRequestError(f"{name}: a positive integer", param=name)
            changes[name] = limit
    return changes


class KeyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cache_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._cache_ttl_s = cache_ttl_s
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
    ) -> tuple[str, KeyRecord]:
        """A new key: returns the secret (shown this once) and its record."""
        fields = _validate(models, budget, budget_period, rpm, tpm)
        if budget is not None and budget_period is None:
            fields["budget_period"] = "monthly"
        now = self._clock()
        expires_at = None
        if expires is not None:
            expires_at = now + (parse_duration(expires) if isinstance(expires, str) else expires)
        secret = PREFIX + secrets.token_urlsafe(32)
        row = {
            "key_id": "key_" + secrets.token_hex(8),
            "secret_hash": hash_secret(secret),
            "display": f"{PREFIX}…{secret[-4:]}",
            "name": name,
            "models": [],
            "metadata": dict(metadata or {}),
            "expires_at": expires_at,
            "team": team,
            "user_id": user,
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
        """The key's record, or KeyError_ saying why it cannot be used."""
        if not secret:
            raise KeyError_(
                "no API key: send 'Authorization: Bearer sk-cg-…' or 'x-api-key: sk-cg-…'",
                "missing",
            )
        digest = hash_secret(secret)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            async with self._engine.connect() as conn:
                found = (
                    await conn.execute(
                        select(VIRTUAL_KEYS).where(VIRTUAL_KEYS.c.secret_hash == digest)
                    )
                ).first()
            record = None if found is None else _record(found)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._cache_ttl_s, record)
        if record is None:
            raise KeyError_("invalid API key", "invalid")
        if record.revoked_at is not None:
            raise KeyError_(f"API key {record.display} has been revoked", "revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise KeyError_(
                f"API key {record.display} expired at {_iso(record.expires_at)}", "expired"
            )
        return record

    async def get(self, key_id: str) -> KeyRecord | None:
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(select(VIRTUAL_KEYS).where(VIRTUAL_KEYS.c.key_id == key_id))
            ).first()
        return None if found is None else _record(found)

    async def list(
        self, *, team: str | None = None, user: str | None = None, include_revoked: bool = False
    ) -> list[KeyRecord]:
        query = select(VIRTUAL_KEYS).order_by(VIRTUAL_KEYS.c.created_at)
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
        metadata. Unknown fields are an error naming them."""
        allowed = {
            "models",
            "budget",
            "budget_period",
            "rpm",
            "tpm",
            "expires",
            "name",
            "team",
            "user",
            "metadata",
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidRequestError(
                f"cannot update {', '.join(unknown)}; updatable: {', '.join(sorted(allowed))}",
                param=unknown[0],
            )
        values = _validate(
            changes.get("models"),
            changes.get("budget"),
            changes.get("budget_period"),
            changes.get("rpm"),
            changes.get("tpm"),
        )
        now = self._clock()
        if "expires" in changes:
            expires = changes["expires"]
            values["expires_at"] = (
                None
                if expires is None
                else now + (parse_duration(expires) if isinstance(expires, str) else expires)
            )
        for name, column in (("name", "name"), ("team", "team"), ("user", "user_id")):
            if name in changes:
                values[column] = changes[name]
        if "metadata" in changes:
            values["metadata"] = dict(changes["metadata"] or {})
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
            raise InvalidRequestError(f"no key with id {key_id!r}", param="key_id")
        record = await self.get(key_id)
        assert record is not None
        self._forget(record)
        return record

    def _forget(self, record: KeyRecord) -> None:
        """Drop the cached answer for this key so the change applies here at once."""
        for digest, (until, cached) in list(self._cache.items()):
            if cached is not None and cached.key_id == record.key_id:
                self._cache[digest] = (until, replace(record))
