"""GET /admin/budgets and GET /admin/models over HTTP (the Budgets and Models pages' data)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.console.conftest import master_client, new_key
from tests.console.test_admin_logs import chat, logged
from tests.fakes.gateway import Gateway
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json

pytestmark = pytest.mark.parametrize(
    "database", ["sqlite", "postgresql"], indirect=True, scope="module"
)


def test_budgets_show_their_use_and_reset(gateway: Gateway) -> None:
    secret, record = new_key(gateway, name="daily", budget="5", budget_period="daily")
    logged(gateway, chat(gateway, secret))
    with master_client(gateway) as http:
        rows = {r["budget_id"]: r for r in http.get("/admin/budgets").json()["data"]}
    global_ = rows["global:*:monthly"]
    assert global_["source"] == "config"
    assert Decimal(global_["spent"]) > 0
    assert global_["resets_at"].endswith("T00:00:00+00:00")
    mine = rows[f"key:{record['key_id']}:daily"]
    assert Decimal(mine["spent"]) > 0
    assert 0 < mine["used"] < 0.8
    assert mine["alerts"] == [{"at": "0.8", "crossed": False}]


def test_models_show_each_deployment_and_its_errors(gateway: Gateway, upstream: FakeOpenAI) -> None:
    secret, _ = new_key(gateway, name="models")
    upstream.script(Reply(status=400, json=error_json("bad", "invalid_request_error")))
    logged(gateway, chat(gateway, secret, "smart"), chat(gateway, secret, "smart"))
    with master_client(gateway) as http:
        groups = {g["model"]: g["deployments"] for g in http.get("/admin/models").json()["data"]}
    (smart,) = groups["smart"]
    assert smart["model"] == "openai/gpt-4o"
    assert smart["state"] in ("healthy", "half-open")  # a 400 is the caller's, no cooldown
    assert smart["requests_1h"] >= 2
    assert 0 < smart["error_rate_1h"] < 1
    assert smart["latency_ewma_ms"] is not None
    assert smart["rpm"] is None


def test_keys_come_in_keyset_pages_with_their_spend(gateway: Gateway) -> None:
    made = [new_key(gateway, name=f"page-{i}", team="paged")[1]["key_id"] for i in range(5)]
    secret, spender = new_key(gateway, name="spender", team="paged", budget="5")
    logged(gateway, chat(gateway, secret))
    seen: list[str] = []
    after = None
    with master_client(gateway) as http:
        for _ in range(10):
            params = {"team": "paged", "limit": "2", "usage": "true"}
            page = http.get("/admin/keys", params={**params, **({"after": after} if after else {})})
            seen += [k["key_id"] for k in page.json()["data"]]
            spent = {k["key_id"]: Decimal(k["spent"]) for k in page.json()["data"]}
            if spender["key_id"] in spent:
                assert spent[spender["key_id"]] > 0
            after = page.json()["next_after"]
            if after is None:
                break
        bad = http.get("/admin/keys", params={"limit": "0"})
        everything = http.get("/admin/keys", params={"team": "paged"}).json()
    assert seen == [*made, spender["key_id"]]  # oldest first, each once
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "limit"
    assert everything["next_after"] is None
    assert "spent" not in everything["data"][0]  # only when asked for
