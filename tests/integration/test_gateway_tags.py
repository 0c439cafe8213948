"""The tags a request carries on a real `chatgate serve`, besides ``x-chatgate-tags``: its
virtual key's (set through the admin API; charged first, so no client can push them out of a
tag budget; they do not pick deployments) and LiteLLM-style ``metadata.tags`` in the body of
/v1/chat/completions, /v1/messages and /v1/responses (taken out of ``metadata`` before it is
forwarded: the fake OpenAI refuses a list there, as OpenAI does). Malformed tags are a 400
naming the field, never a 500."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-tags"
ROUTES = ["/v1/chat/completions", "/v1/messages", "/v1/responses"]
CAPPED = {"scope": "tag", "subject": "capped", "limit": "0", "window": "lifetime"}


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("fast", upstream),
        deployment("eu", upstream, tags=["eu"]),  # only requests tagged "eu" (or untagged)
        deployment("embed", upstream, "openai/text-embedding-3-small"),
        master_key=MASTER,
        database=SQLITE,
        router={"num_retries": 0},
        budgets=[CAPPED],
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def body_for(route: str, model: str = "fast", **extra: Any) -> dict[str, Any]:
    if route == "/v1/responses":
        return {"model": model, "input": "hi", **extra}
    messages = [{"role": "user", "content": "hi"}]
    return {"model": model, "messages": messages, "max_tokens": 16, **extra}


def post(
    gw: Gateway, route: str, body: dict[str, Any], key: str = MASTER, tags: str | None = None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if tags is not None:
        headers["x-chatgate-tags"] = tags
    return requests.post(f"{gw.url}{route}", json=body, headers=headers, timeout=10)


def logged_tags(gw: Gateway, resp: requests.Response) -> list[str]:
    """The tags the request's spend-log row holds (waits for the write)."""
    request_id = resp.headers["x-chatgate-request-id"]
    deadline = time.monotonic() + 10
    while True:
        status, body = gw.admin("GET", f"/admin/logs?request_id={request_id}")
        if status == 200 and body["data"]:
            tags: list[str] = body["data"][0]["tags"]
            return tags
        assert time.monotonic() < deadline, f"{request_id} never reached the spend log"
        time.sleep(0.05)


def refusal(resp: requests.Response) -> str:
    """The error's param (OpenAI's shape) or its message (Anthropic's, which has no param)."""
    error = resp.json()["error"]
    return str(error.get("param") or error["message"])


# -- a key's tags ---------------------------------------------------------------------------


def test_a_key_carries_tags_set_and_changed_through_the_admin_api(gateway: Gateway) -> None:
    created = gateway.create_key(name="tagged", tags=["team-search", "exp-7", "team-search"])
    assert created["tags"] == ["team-search", "exp-7"]  # once each, in order
    key_id = created["key_id"]
    status, body = gateway.admin("PATCH", f"/admin/keys/{key_id}", {"tags": ["exp-8"]})
    assert (status, body["tags"]) == (200, ["exp-8"])
    status, body = gateway.admin("GET", f"/admin/keys/{key_id}")
    assert (status, body["tags"]) == (200, ["exp-8"])
    status, body = gateway.admin("PATCH", f"/admin/keys/{key_id}", {"tags": None})
    assert (status, body["tags"]) == (200, [])
    status, body = gateway.admin("GET", f"/admin/keys/{key_id}")
    assert body["tags"] == []


@pytest.mark.parametrize(
    "tags",
    ["team-search", ["a,b"], [" padded"], [""], ["x" * 65], [f"t{i}" for i in range(17)], [1], {}],
    ids=["string", "comma", "spaces", "empty", "too-long", "too-many", "number", "object"],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_malformed_key_tags_are_a_400_naming_tags(
    gateway: Gateway, tags: object, method: str
) -> None:
    path = "/admin/keys"
    if method == "PATCH":
        path += "/" + gateway.create_key(name="to-edit")["key_id"]
    status, body = gateway.admin(method, path, {"tags": tags})
    assert status == 400, body
    assert body["error"]["param"] == "tags"


def test_a_request_carries_its_keys_tags_before_its_own(gateway: Gateway) -> None:
    key = gateway.new_key(tags=["team-search", "exp-7"])
    resp = post(
        gateway, "/v1/chat/completions", body_for("/v1/chat/completions"), key, "exp-7, mine"
    )
    assert resp.status_code == 200, resp.text
    assert logged_tags(gateway, resp) == ["team-search", "exp-7", "mine"]
    line = gateway.wait_for_access_line(resp.headers["x-chatgate-request-id"])
    assert line["tags"] == ["team-search", "exp-7", "mine"]


def test_a_keys_tags_count_on_tag_budgets_whatever_the_client_sends(gateway: Gateway) -> None:
    capped = gateway.new_key(tags=["capped"])
    free = gateway.new_key(tags=["uncapped"])
    body = body_for("/v1/chat/completions")
    assert post(gateway, "/v1/chat/completions", body, free).status_code == 200
    refused = post(gateway, "/v1/chat/completions", body, capped)
    assert refused.status_code == 402, refused.text
    # sixteen tags of its own would push a key's tags past the cap, were they not first
    crowd = ",".join(f"mine-{i}" for i in range(16))
    assert post(gateway, "/v1/chat/completions", body, capped, crowd).status_code == 402
    many = body_for("/v1/chat/completions", metadata={"tags": crowd})
    assert post(gateway, "/v1/chat/completions", many, capped).status_code == 402


def test_an_embeddings_request_carries_its_keys_tags(gateway: Gateway) -> None:
    body = {"model": "embed", "input": "hi"}
    tagged = gateway.new_key(tags=["team-embed"])
    resp = post(gateway, "/v1/embeddings", body, tagged, "mine")
    assert resp.status_code == 200, resp.text
    assert logged_tags(gateway, resp) == ["team-embed", "mine"]
    refused = post(gateway, "/v1/embeddings", body, gateway.new_key(tags=["capped"]))
    assert refused.status_code == 402, refused.text


def test_a_keys_tags_do_not_pick_deployments(gateway: Gateway) -> None:
    key = gateway.new_key(tags=["team-search"])
    # every deployment of "eu" carries "eu": a request tagged "team-search" would find none
    resp = post(gateway, "/v1/chat/completions", body_for("/v1/chat/completions", "eu"), key)
    assert resp.status_code == 200, resp.text
    assert logged_tags(gateway, resp) == ["team-search"]
    other = post(gateway, "/v1/chat/completions", body_for("/v1/chat/completions", "eu"), key, "x")
    assert other.status_code >= 400  # the request's own tags still do


def test_the_overview_by_tag_counts_a_keys_tags(gateway: Gateway) -> None:
    key = gateway.new_key(tags=["overview-tag"])
    resp = post(gateway, "/v1/chat/completions", body_for("/v1/chat/completions"), key)
    assert resp.status_code == 200, resp.text
    logged_tags(gateway, resp)
    deadline = time.monotonic() + 30
    while True:
        status, data = gateway.admin("GET", "/admin/overview?bucket=hour&by=tag")
        names = {s["name"]: sum(s["values"]) for s in data["spend"]}
        if "overview-tag" in names or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200
    assert names["overview-tag"] > 0


# -- metadata.tags in the body --------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("tags", [["alpha", "beta"], "alpha, beta,"], ids=["list", "string"])
def test_metadata_tags_are_the_requests_tags_and_not_forwarded(
    gateway: Gateway, upstream: FakeOpenAI, route: str, tags: object
) -> None:
    resp = post(gateway, route, body_for(route, metadata={"tags": tags}), tags="gamma")
    assert resp.status_code == 200, resp.text
    assert logged_tags(gateway, resp) == ["gamma", "alpha", "beta"]
    assert "metadata" not in upstream.last.body  # nothing else was in it


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/responses"])
def test_the_rest_of_metadata_is_forwarded(
    gateway: Gateway, upstream: FakeOpenAI, route: str
) -> None:
    resp = post(gateway, route, body_for(route, metadata={"tags": ["alpha"], "run": "7"}))
    assert resp.status_code == 200, resp.text
    assert upstream.last.body["metadata"] == {"run": "7"}
    assert logged_tags(gateway, resp) == ["alpha"]


def test_the_fake_refuses_a_list_in_metadata_as_openai_does(upstream: FakeOpenAI) -> None:
    resp = requests.post(
        f"{upstream.base_url}/chat/completions",
        json={**body_for("/v1/chat/completions"), "metadata": {"tags": ["alpha"]}},
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "metadata.tags"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "tags",
    [5, {"a": "b"}, [1], [None], ["a,b"], [f"t{i}" for i in range(17)], ["x" * 65], True],
    ids=["number", "object", "list-of-numbers", "null-item", "comma", "too-many", "long", "bool"],
)
def test_malformed_metadata_tags_are_a_400_naming_the_field(
    gateway: Gateway, upstream: FakeOpenAI, route: str, tags: object
) -> None:
    before = len(upstream.requests)
    resp = post(gateway, route, body_for(route, metadata={"tags": tags}))
    assert resp.status_code == 400, resp.text
    assert "metadata.tags" in refusal(resp)
    assert len(upstream.requests) == before  # refused before anything was sent


@pytest.mark.parametrize("route", ROUTES)
def test_null_metadata_tags_are_no_tags(gateway: Gateway, route: str) -> None:
    resp = post(gateway, route, body_for(route, metadata={"tags": None}))
    assert resp.status_code == 200, resp.text
    assert logged_tags(gateway, resp) == []


def test_the_cli_sets_a_keys_tags(gateway: Gateway) -> None:
    config = gateway.config_path
    done = subprocess.run(
        [sys.executable, "-m", "chatgate.cli", "keys", "create", "--config", str(config),
         "--tags", "cli-tag, other"],
        capture_output=True, text=True, check=True, cwd=config.parent,
    )  # fmt: skip
    secret = done.stdout.split("key: ", 1)[1].split()[0]
    resp = post(gateway, "/v1/chat/completions", body_for("/v1/chat/completions"), secret)
    assert resp.status_code == 200, resp.text
    assert logged_tags(gateway, resp) == ["cli-tag", "other"]
