"""Hosted (OpenAI-run) tools through a real `chatgate serve`: dropped and named in
x-chatgate-dropped-tools, or a 400 naming the tool when the deployment (params.strict_tools)
or the virtual key (metadata strict_tools: true) asks for strictness; what was accepted but not
sent upstream is named in x-chatgate-ignored-params."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-strict-tools-3"
TOOLS: list[Any] = [
    {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}},
    {"type": "web_search"},
    {"type": "code_interpreter", "container": {"type": "auto"}},
]


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("open", upstream),
        deployment("strict", upstream, strict_tools=True),
        master_key=MASTER,
        database=SQLITE,
        key_cache_ttl_s=0,
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def test_hosted_tools_are_dropped_and_named(gateway: Gateway, upstream: FakeOpenAI) -> None:
    with gateway.openai_client() as client:
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
    with gateway.openai_client() as client, pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="strict", input="hi", tools=TOOLS)
    assert bad.value.param == "tools[1].type"
    assert "'web_search'" in bad.value.message
    assert "strict_tools" in bad.value.message


def test_a_strict_key_refuses_them_on_any_model(gateway: Gateway) -> None:
    key = gateway.new_key(name="strict-agent", metadata={"strict_tools": True})
    with gateway.openai_client(key) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model="open", input="hi", tools=TOOLS)
        assert bad.value.param == "tools[1].type"
        plain = client.responses.create(model="open", input="hi", tools=TOOLS[:1])
    assert plain.output_text == "echo: hi"


def test_client_given_names_cannot_write_headers(gateway: Gateway) -> None:
    tools = [{"type": "web_search\r\nx-evil: 1"}]
    with gateway.openai_client() as client:
        raw = client.responses.with_raw_response.create(
            model="open", input="hi", tools=tools, include=["file_search_call.results\nx: y"]
        )
    assert raw.headers["x-chatgate-dropped-tools"] == "web_searchx-evil1"
    assert raw.headers["x-chatgate-ignored-params"] == "include=file_search_call.resultsxy"
    assert "x-evil" not in raw.headers
