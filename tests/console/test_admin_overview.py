"""GET /admin/overview over HTTP: its series hold what was served; hour buckets read from
stored hours are those of the log; bad parameters are a 400 naming the parameter."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import requests
from sqlalchemy import insert

from chatgate.server.hour_stats import HourStats
from chatgate.server.log_filters import Window
from chatgate.server.overview_hours import TOP, hour_series
from chatgate.store.engine import create_engine
from chatgate.store.partitions import ensure_days
from chatgate.store.schema.spend import SPEND_LOG
from tests.console.conftest import master_client, new_key
from tests.console.test_admin_logs import chat, logged
from tests.console.test_overview_hours import traffic
from tests.fakes.gateway import Gateway

pytestmark = pytest.mark.parametrize(
    "database", ["sqlite", "postgresql"], indirect=True, scope="module"
)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("bucket=week", "bucket"),
        ("by=tags", "by"),
        ("bucket=hour&since=30d", "since"),
        ("since=soon", "since"),
        ("colour=red", "colour"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(gateway: Gateway, query: str, param: str) -> None:
    with master_client(gateway) as http:
        resp = http.get(f"/admin/overview?{query}")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def overview_with(gw: Gateway, params: dict[str, str], series: str) -> dict[str, Any]:
    """The overview once it has ``series``. Today's statistics are remembered for a minute
    when computing them was slow (a busy machine): the view then shows them as they were,
    and what was just served comes a little later."""
    deadline = time.monotonic() + 70
    with master_client(gw) as http:
        while True:
            data: dict[str, Any] = http.get("/admin/overview", params=params).json()
            if any(s["name"] == series for s in data["spend"]) or time.monotonic() > deadline:
                return data
            time.sleep(1)


@pytest.mark.parametrize("bucket", ["hour", "day", "month"])
def test_the_series_hold_what_was_served(gateway: Gateway, bucket: str) -> None:
    secret, _ = new_key(gateway, name=f"overview-{bucket}", team=f"t-{bucket}")
    logged(gateway, chat(gateway, secret), chat(gateway, secret, "smart"))
    data = overview_with(gateway, {"bucket": bucket, "by": "team"}, f"t-{bucket}")
    labels = data["buckets"]
    assert len(labels) == len(set(labels))
    assert all(len(s["values"]) == len(labels) for s in data["spend"])
    mine = {s["name"]: s for s in data["spend"]}[f"t-{bucket}"]
    assert sum(mine["values"]) > 0
    assert mine["values"][-1] == sum(mine["values"])  # all of it in the newest bucket
    traffic = data["traffic"]
    assert traffic["requests"][-1] >= 2
    assert traffic["latency_p50_ms"][-1] is not None
    assert traffic["latency_p95_ms"][-1] >= traffic["latency_p50_ms"][-1]
    assert data["totals"]["requests"] == sum(traffic["requests"])


def tagged_chat(gw: Gateway, key: str, tags: str | None, model: str = "fast") -> str:
    resp = requests.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "tags"}]},
        headers={"Authorization": f"Bearer {key}", **({"x-chatgate-tags": tags} if tags else {})},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.headers["x-chatgate-request-id"])


@pytest.mark.parametrize("bucket", ["hour", "day", "month"])
def test_spend_stacked_by_tag_counts_a_call_under_each_tag(gateway: Gateway, bucket: str) -> None:
    secret, _ = new_key(gateway, name=f"tags-{bucket}")
    both, one = f"both-{bucket}", f"one-{bucket}"
    sent = [
        tagged_chat(gateway, secret, f"{both},{one}"),
        tagged_chat(gateway, secret, both),
        tagged_chat(gateway, secret, None),
        tagged_chat(gateway, secret, both, "flaky"),
    ]
    logged(gateway, *sent)
    data = overview_with(gateway, {"bucket": bucket, "by": "tag"}, both)
    series = {s["name"]: sum(s["values"]) for s in data["spend"]}
    with master_client(gateway) as http:
        logs = {r["request_id"]: r for r in http.get("/admin/logs").json()["data"]}
    cost = [float(logs[r]["cost"]) for r in sent]
    assert series[both] == pytest.approx(cost[0] + cost[1] + cost[3])
    assert series[one] == pytest.approx(cost[0])
    assert series["(none)"] >= cost[2]
    assert data["traffic"]["fallbacks"][-1] >= 1
    assert data["totals"]["fallbacks"] >= 1
    assert data["traffic"]["retried"][-1] >= 1
    assert set(data["saved"]) == {"tier", "cache", "prompt", "batch"}
    assert all(len(v) == len(data["buckets"]) for v in data["saved"].values())


@pytest.mark.parametrize("by", ["tag", "key"])
def test_hour_buckets_from_stored_hours_are_those_of_the_log(
    gateway: Gateway, database: str, by: str
) -> None:
    now = time.time()
    since, until = now - 30 * 3600 - 100.5, now - 7.25
    asyncio.run(add_rows(database, traffic(400, since - 3600, now, seed=len(by))))
    params = {"bucket": "hour", "by": by, "since": str(since), "until": str(until)}
    deadline = time.monotonic() + 60
    with master_client(gateway) as http:
        while (data := http.get("/admin/overview", params=params).json())["pending_days"]:
            assert time.monotonic() < deadline, data["pending_days"]
            time.sleep(0.5)
        again = http.get("/admin/overview", params=params).json()  # the stored hours, read
    spend, counts, saved = asyncio.run(from_the_log(database, Window(since, until), by))
    assert (data["spend"], data["traffic"], data["saved"]) == (spend, counts, saved)
    assert again == data
    assert len(spend) == TOP + 1


async def add_rows(database: str, rows: list[dict[str, Any]]) -> None:
    engine = create_engine(database)
    try:
        async with engine.begin() as conn:
            await ensure_days(conn, {r["day"] for r in rows})
            await conn.execute(insert(SPEND_LOG), rows)
    finally:
        await engine.dispose()


async def from_the_log(database: str, span: Window, by: str) -> Any:
    """The hours of ``span`` computed from the spend log alone, nothing stored."""
    engine = create_engine(database)
    try:
        rows, _ = await HourStats(engine, settle_s=1e12).rows(span, by)
    finally:
        await engine.dispose()
    first = int(span.since // 3600)
    return hour_series(rows, by, first, int((span.until - 1e-6) // 3600) - first + 1)
