"""GET /admin/logs and /admin/logs/{request_id} over HTTP: filters, keyset pages, the
detail, and a 400 naming the parameter for each bad filter."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
import requests

from tests.console.conftest import master_client, new_key
from tests.fakes.gateway import Gateway
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json

pytestmark = pytest.mark.parametrize(
    "database", ["sqlite", "postgresql"], indirect=True, scope="module"
)


def logged(gw: Gateway, *request_ids: str) -> None:
    """Wait (5 s at most) until the spend log holds these requests: records are written off
    the request path."""
    deadline = time.monotonic() + 5
    with master_client(gw) as http:
        for request_id in request_ids:
            while not http.get("/admin/logs", params={"request_id": request_id}).json()["data"]:
                assert time.monotonic() < deadline, f"{request_id} never reached the spend log"
                time.sleep(0.05)


def chat(gw: Gateway, key: str, model: str = "fast") -> str:
    resp = requests.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "logs"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    return str(resp.headers["x-chatgate-request-id"])


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("since=yesterday-ish", "since"),
        ("until=2026-13-01", "until"),
        ("since=1h&until=2h", "since"),
        ("status=maybe", "status"),
        ("min_cost=-1", "min_cost"),
        ("min_cost=abc", "min_cost"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("modle=fast", "modle"),
        ("key=" + "k" * 300, "key"),
        # PostgreSQL refuses a NUL in a query's text: once a 503 naming the key store
        ("model=a%00b", "model"),
        ("user=%00", "user"),
        ("cursor=" + base64.urlsafe_b64encode(orjson.dumps([1.0, "r\x00"])).decode(), "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(orjson.dumps([1.0, 7])).decode(), "cursor"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(gateway: Gateway, query: str, param: str) -> None:
    with master_client(gateway) as http:
        resp = http.get(f"/admin/logs?{query}")
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param
    assert error["message"].startswith(f"{param}:")


def test_pages_are_keyset_pages_and_filters_apply(gateway: Gateway, upstream: FakeOpenAI) -> None:
    secret, record = new_key(gateway, name="pager", team="blue")
    sent = [chat(gateway, secret) for _ in range(5)]
    sent.append(chat(gateway, secret, "smart"))
    upstream.script(Reply(status=400, json=error_json("bad", "invalid_request_error")))
    failed = chat(gateway, secret)
    logged(gateway, *sent, failed)
    seen: list[str] = []
    cursor = None
    with master_client(gateway) as http:
        for _ in range(10):
            params = {
                "key": record["key_id"],
                "limit": "2",
                **({"cursor": cursor} if cursor else {}),
            }
            page = http.get("/admin/logs", params=params).json()
            seen += [row["request_id"] for row in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [failed, *reversed(sent)]  # newest first, each once, none skipped
        by_model = http.get("/admin/logs", params={"key": record["key_id"], "model": "smart"})
        assert [r["request_id"] for r in by_model.json()["data"]] == [sent[-1]]
        errors = http.get("/admin/logs", params={"team": "blue", "status": "error"}).json()
        assert [r["request_id"] for r in errors["data"]] == [failed]
        assert errors["data"][0]["error"] is not None
        rich = http.get("/admin/logs", params={"key": record["key_id"], "min_cost": "1000"})
        assert rich.json()["data"] == []
        future = http.get(
            "/admin/logs", params={"since": "2099-01-01T00:00:00Z", "until": "2099-01-02"}
        )
        assert future.json() == {"data": [], "next_cursor": None}


def test_the_detail_of_one_request(gateway: Gateway) -> None:
    secret, record = new_key(gateway, name="detail")
    request_id = chat(gateway, secret)
    logged(gateway, request_id)
    with master_client(gateway) as http:
        detail = http.get(f"/admin/logs/{request_id}").json()
        missing = http.get("/admin/logs/cg-no-such-request")
    (only,) = detail["records"]
    assert only["key_id"] == record["key_id"]
    assert only["prompt_tokens"] > 0
    assert only["cost_breakdown"]["output"]  # priced from the bundled table
    assert detail["content_logged"] is False
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "request_id"


def test_a_nul_in_a_path_id_is_the_requests_fault_not_an_outage(gateway: Gateway) -> None:
    """PostgreSQL refuses a NUL in a query's text: that was a 503 "database unavailable",
    which also refused every virtual key until the next probe."""
    secret, record = new_key(gateway, name="after-nul")
    with master_client(gateway) as http:
        for method, path in (
            ("GET", "/admin/logs/r%00x"),
            ("PATCH", f"/admin/keys/{record['key_id']}%00"),
            ("DELETE", "/admin/keys/%00"),
        ):
            resp = http.request(method, path, json={"name": "x"} if method == "PATCH" else None)
            assert resp.status_code in (400, 404), (path, resp.text)  # 404: SQLite matches none
    resp = requests.post(  # the key store is not taken for down
        f"{gateway.url}/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": "after"}]},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text


def test_the_logs_need_an_admin(gateway: Gateway) -> None:
    secret, _ = new_key(gateway, name="not-admin")
    for key in (secret, None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        resp = requests.get(f"{gateway.url}/admin/logs", headers=headers, timeout=10)
        assert resp.status_code in (401, 403)


@pytest.mark.parametrize(("name", "value"), [("fallback", "yes"), ("retried", "1")])
def test_a_bad_flag_is_a_400_naming_it(gateway: Gateway, name: str, value: str) -> None:
    with master_client(gateway) as http:
        resp = http.get("/admin/logs", params={name: value})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == name
    assert "true or false" in resp.json()["error"]["message"]


def test_fallbacks_and_retries_are_recorded_and_filtered(gateway: Gateway) -> None:
    secret, record = new_key(gateway, name="fallbacks")
    direct = chat(gateway, secret)
    rescued = chat(gateway, secret, "flaky")
    logged(gateway, direct, rescued)
    key = {"key": record["key_id"]}
    with master_client(gateway) as http:

        def found(**flags: str) -> list[str]:
            rows = http.get("/admin/logs", params={**key, **flags}).json()["data"]
            return [r["request_id"] for r in rows]

        assert found(fallback="true") == [rescued]
        assert found(fallback="false") == [direct]
        assert found(retried="true") == [rescued]  # the dead deployment, then "fast"
        assert found(retried="false", fallback="false") == [direct]
        (row,) = http.get(f"/admin/logs/{rescued}").json()["records"]
    assert row["fallback"] is True
    assert row["attempts"] >= 2
    assert row["error"] is None
    assert row["saved"] == {"tier": None, "cache": None, "prompt": None, "batch": None}
