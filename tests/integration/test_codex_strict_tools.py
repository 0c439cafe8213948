"""Hosted (OpenAI-run) tools through a real `chatgate serve`: dropped and named in
x-chatgate-dropped-tools, or a 400 naming the tool when the deployment (params.strict_tools)
or the virtual key (metadata strict_tools: true) asks for strictness; what was accepted but not
sent upstream is named in x-chatgate-ignored-params."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.gateway import Gateway, request_json, start_gateway
from tests.fakes.openai_server import FakeOpenAI

MASTER = "sk-master-strict-tools-3"
TOOLS: list[Any] = [
    {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}},
    {"type": "web_search"},
    {"type": "code_interpreter", "container": {"type": "auto"}},
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("strict-tools")
    params = {"model": "openai/gpt-4o-mini", "api_base": upstream.base_url, "api_key": "up"}
    config = {
        "model_list": [
            {"model_name": "open", "params": params},
            {"model_name": "strict", "params": {**params, "strict_tools": True}},
        ],
        "general_settings": {
            "master_key": MASTER,
            "database_url": f"sqlite:///{tmp / 'gateway.db'}",
            "key_cache_ttl_s": 0,
        },
    }
    with start_gateway(config, tmp) as gw:
        yield gw


def sdk(gateway: Gateway, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_hosted_tools_are_dropped_and_named(gateway: Gateway, upstream: FakeOpenAI) -> None:
    with sdk(gateway) as client:
        raw = client.responses.with_raw_response.create(
            model="open",
            input="hi",
            tools=TOOLS,
            include=["reasoning.encrypted_content"],
            truncation="auto",
            extra_body={"client_metadata": {"x": "1"}},
        )
    assert raw.headers["x-chatgate-dropped-tools"] == "web_search,code_interpreter"
    assert raw.headers["x-chatgate-ignored-params"] == "truncation,client_metadata"
    response = raw.parse()
    assert response.output_text == "echo: hi"
    sent = upstream.last.body
    assert [t["function"]["name"] for t in sent["tools"]] == ["lookup"]
    assert "client_metadata" not in sent


def test_a_strict_deployment_refuses_them_by_name(gateway: Gateway) -> None:
    with sdk(gateway) as client, pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="strict", input="hi", tools=TOOLS)
    assert bad.value.param == "tools[1].type"
    assert "'web_search'" in bad.value.message
    assert "strict_tools" in bad.value.message


def test_a_strict_key_refuses_them_on_any_model(gateway: Gateway) -> None:
    fields = {"name": "strict-agent", "metadata": {"strict_tools": True}}
    status, body = request_json(
        f"{gateway.url}/admin/keys", body=json.dumps(fields).encode(), key=MASTER
    )
    assert status == 200, body
    with sdk(gateway, body["key"]) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model="open", input="hi", tools=TOOLS)
        assert bad.value.param == "tools[1].type"
        plain = client.responses.create(model="open", input="hi", tools=TOOLS[:1])
    assert plain.output_text == "echo: hi"


def test_client_given_names_cannot_write_headers(gateway: Gateway) -> None:
    tools = [{"type": "web_search\r\nx-evil: 1"}]
    with sdk(gateway) as client:
        raw = client.responses.with_raw_response.create(
            model="open", input="hi", tools=tools, include=["file_search_call.results\nx: y"]
        )
    assert raw.headers["x-chatgate-dropped-tools"] == "web_searchx-evil1"
    assert raw.headers["x-chatgate-ignored-params"] == "include=file_search_call.resultsxy"
    assert "x-evil" not in raw.headers
