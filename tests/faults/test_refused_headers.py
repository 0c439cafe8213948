"""A refused request (401, 402, 403, 429, a 4xx before routing) says nothing about the
deployments behind a name: no x-chatgate-model, -attempts or -cache header. An upstream's own
error still names the deployment that gave it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAI, Reply, error_json
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-refused-3"
HI = [{"role": "user", "content": "hi"}]
DEPLOYMENT_HEADERS = ("x-chatgate-model", "x-chatgate-attempts", "x-chatgate-cache")


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("fast", upstream),
        deployment("secret-model", upstream, "openai/gpt-4o-private"),
        master_key=MASTER,
        database=SQLITE,
        router={"num_retries": 0},
        cache={"backend": "memory"},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def call(gw: Gateway, path: str, body: Any, key: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(gw.url + path, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def post(gw: Gateway, path: str, body: Any, key: str) -> tuple[int, dict[str, str]]:
    status, headers, _ = call(gw, path, body, key)
    return status, headers


def assert_no_deployment_headers(status: int, headers: dict[str, str], expected: int) -> None:
    assert status == expected
    assert headers["x-chatgate-request-id"]
    leaked = {h: headers[h] for h in DEPLOYMENT_HEADERS if h in headers}
    assert not leaked, f"a {status} carries {leaked}"


def test_a_model_the_key_may_not_use_is_refused_without_naming_its_deployment(
    gateway: Gateway,
) -> None:
    key = gateway.new_key(models=["fast"])
    body = {"model": "secret-model", "messages": HI}
    status, headers = post(gateway, "/v1/chat/completions", body, key)
    assert_no_deployment_headers(status, headers, 403)
    status, headers = post(gateway, "/v1/messages", {**body, "max_tokens": 5}, key)
    assert_no_deployment_headers(status, headers, 403)
    status, headers = post(gateway, "/v1/embeddings", {"model": "secret-model", "input": "x"}, key)
    assert_no_deployment_headers(status, headers, 403)


def test_rate_limit_budget_auth_and_bad_bodies_carry_no_deployment_headers(
    gateway: Gateway,
) -> None:
    body = {"model": "fast", "messages": HI, "max_tokens": 5}
    limited = gateway.new_key(rpm=1)
    assert post(gateway, "/v1/chat/completions", body, limited)[0] == 200
    assert_no_deployment_headers(*post(gateway, "/v1/chat/completions", body, limited), 429)
    broke = gateway.new_key(budget="0")
    assert_no_deployment_headers(*post(gateway, "/v1/chat/completions", body, broke), 402)
    status, headers = post(gateway, "/v1/chat/completions", body, "sk-cg-not-a-real-key")
    assert_no_deployment_headers(status, headers, 401)
    bad = {"model": "fast", "messages": "x"}
    assert_no_deployment_headers(*post(gateway, "/v1/chat/completions", bad, MASTER), 400)


def test_an_upstream_error_still_names_the_deployment(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    upstream.script(Reply(status=400, json=error_json("bad stop", "invalid_request_error")))
    body = {"model": "fast", "messages": HI}
    status, headers = post(gateway, "/v1/chat/completions", body, MASTER)
    assert status == 400
    assert headers["x-chatgate-model"] == "openai/gpt-4o-mini"
    status, headers = post(gateway, "/v1/chat/completions", body, MASTER)
    assert (status, headers["x-chatgate-model"]) == (200, "openai/gpt-4o-mini")
