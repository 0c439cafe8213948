"""GET /admin/overview over HTTP: its series hold what was served; bad parameters are a 400
naming the parameter."""

from __future__ import annotations

import pytest

from tests.console.conftest import master_client, new_key
from tests.console.test_admin_logs import chat, logged
from tests.fakes.gateway import Gateway

pytestmark = pytest.mark.parametrize(
    "database", ["sqlite", "postgresql"], indirect=True, scope="module"
)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("bucket=week", "bucket"),
        ("by=tag", "by"),
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


@pytest.mark.parametrize("bucket", ["hour", "day", "month"])
def test_the_series_hold_what_was_served(gateway: Gateway, bucket: str) -> None:
    secret, _ = new_key(gateway, name=f"overview-{bucket}", team=f"t-{bucket}")
    logged(gateway, chat(gateway, secret), chat(gateway, secret, "smart"))
    with master_client(gateway) as http:
        data = http.get("/admin/overview", params={"bucket": bucket, "by": "team"}).json()
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
