"""Virtual keys on SQLite and PostgreSQL: hashed at rest, shown once, every way a key fails."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.errors import InvalidRequestError
from chatgate.server.keys import PREFIX, KeyRejected, KeyStore, hash_secret, parse_duration
from chatgate.store.schema.keys import VIRTUAL_KEYS


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_create_shows_the_secret_once_and_stores_only_its_hash(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    secret, record = await store.create(
        name="search bot", models=["gpt-4o-mini", "smart"], budget="10", rpm=60, tpm=20000,
        expires="30d", team="search", user="alice", metadata={"env": "prod"},
    )  # fmt: skip
    assert secret.startswith(PREFIX)
    assert len(secret) > 40
    assert record.display == f"{PREFIX}…{secret[-4:]}"
    assert record.budget_usd == Decimal("10")
    assert record.budget_period == "monthly"  # the default when a budget is given
    assert record.models == ("gpt-4o-mini", "smart")
    async with engine.connect() as conn:
        rows = (await conn.execute(select(VIRTUAL_KEYS))).mappings().all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0].values())
    assert secret not in stored
    assert secret[len(PREFIX) :] not in stored
    assert rows[0]["secret_hash"] == hash_secret(secret)
    assert "secret" not in str(record.public())
    assert secret not in str(record.public())


async def test_authenticate_accepts_the_key_and_names_every_failure(engine: AsyncEngine) -> None:
    clock = Clock()
    store = KeyStore(engine, clock=clock)
    secret, record = await store.create(expires=3600)
    assert (await store.authenticate(secret)).key_id == record.key_id
    with pytest.raises(KeyRejected, match="no API key") as info:
        await store.authenticate(None)
    assert info.value.reason == "missing"
    with pytest.raises(KeyRejected, match="invalid API key") as info:
        await store.authenticate(secret + "x")
    assert info.value.reason == "invalid"
    clock.now += 3601
    with pytest.raises(KeyRejected, match="expired") as info:
        await store.authenticate(secret)
    assert info.value.reason == "expired"
    other, other_record = await store.create()
    await store.authenticate(other)  # cached now
    await store.revoke(other_record.key_id)
    with pytest.raises(KeyRejected, match="revoked") as info:
        await store.authenticate(other)  # revoked through this store: effective at once
    assert info.value.reason == "revoked"
    assert secret not in str(info.value)


async def test_a_revocation_elsewhere_applies_within_the_cache_ttl(engine: AsyncEngine) -> None:
    clock = Clock()
    gateway = KeyStore(engine, clock=clock, cache_ttl_s=5)
    admin = KeyStore(engine, clock=clock)
    secret, record = await admin.create()
    await gateway.authenticate(secret)
    await admin.revoke(record.key_id)
    await gateway.authenticate(secret)  # still cached in the gateway process
    clock.now += 5.1
    with pytest.raises(KeyRejected, match="revoked"):
        await gateway.authenticate(secret)


async def test_update_list_and_validation(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    _, a = await store.create(team="search", user="alice")
    _, b = await store.create(team="ads")
    updated = await store.update(a.key_id, models=["smart"], budget="2.5", budget_period="daily",
                                 rpm=10, metadata={"x": 1})  # fmt: skip
    assert updated.models == ("smart",)
    assert updated.budget_usd == Decimal("2.5")
    assert updated.budget_period == "daily"
    assert updated.allows("smart")
    assert not updated.allows("gpt-4o")
    assert [k.key_id for k in await store.list(team="search")] == [a.key_id]
    await store.revoke(b.key_id)
    assert [k.key_id for k in await store.list()] == [a.key_id]
    assert len(await store.list(include_revoked=True)) == 2
    with pytest.raises(InvalidRequestError, match="cannot update colour"):
        await store.update(a.key_id, colour="red")
    with pytest.raises(InvalidRequestError, match="budget_period: one of daily, monthly"):
        await store.update(a.key_id, budget_period="weekly")
    with pytest.raises(InvalidRequestError, match="rpm: a positive integer"):
        await store.create(rpm=0)
    with pytest.raises(InvalidRequestError, match="no key with id"):
        await store.revoke("key_nope")


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("90") == 90
    with pytest.raises(InvalidRequestError, match=r"e\.g\. 30d"):
        parse_duration("soon")
