"""Structured outputs and tool loops through a Router: every model call is routed (retries,
fallbacks), and connection arguments belong to the router's model_list, not the call."""

from __future__ import annotations

from pathlib import Path

import pytest

import chatgate
from chatgate import Router
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json
from tests.integration.test_structured import ASK, GOOD, Cat, reply
from tests.integration.test_tools import answer, asks, call, get_weather, results


def router_over(*fakes: FakeOpenAI) -> Router:
    entries = [
        {
            "model_name": "smart",
            "params": {"model": "openai/gpt-4o-mini", "api_key": "sk-t", "api_base": f.base_url},
        }
        for f in fakes
    ]
    return Router(
        entries,
        routing_strategy="round-robin",
        allowed_fails=1,  # one failure cools a deployment: the rest of the test is predictable
        settings={"retry_base_delay": 0.01},
    )


async def test_structured_output_through_a_router_retries_on_another_deployment() -> None:
    with FakeOpenAI() as a, FakeOpenAI() as b:
        a.script(Reply(status=500, json=error_json("boom", "server_error")))
        b.script(reply({"kind": "cat"}), reply(GOOD))  # invalid first: a validation retry
        result = await chatgate.acompletion_structured(
            "smart", ASK, Cat, router=router_over(a, b), max_retries=2
        )
    assert result.value.name == "Tom"
    assert len(result.attempts) == 2  # validation attempts; the 500 was the router's business
    assert b.requests[0].body["response_format"]["json_schema"]["strict"] is True  # openai mode
    assert b.requests[0].body["model"] == "gpt-4o-mini"
    await chatgate.aclose()


async def test_tool_loop_through_a_router() -> None:
    with FakeOpenAI() as a:
        a.script(asks(call("c1", "get_weather", {"city": "Oslo"})), answer("mild"))
        run = await chatgate.arun_tools(
            "smart", [{"role": "user", "content": "weather?"}], [get_weather],
            router=router_over(a),
        )  # fmt: skip
    assert run.stop_reason == "answered"
    assert results(a.last.body)["c1"]["status"] == "ok"
    await chatgate.aclose()


async def test_connection_arguments_are_refused_with_a_router() -> None:
    with FakeOpenAI() as a:
        with pytest.raises(chatgate.InvalidRequestError, match="api_key cannot be combined"):
            await chatgate.acompletion_structured(
                "smart", ASK, Cat, router=router_over(a), api_key="sk-leak"
            )
        with pytest.raises(chatgate.InvalidRequestError, match="known names: smart"):
            await chatgate.acompletion_structured("nope", ASK, Cat, router=router_over(a))
        assert a.requests == []


async def test_conversation_through_a_router(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'memory.db'}"
    with FakeOpenAI() as a, FakeOpenAI() as b:
        a.script(Reply(status=503, json=error_json("busy", "server_error")))
        router = router_over(a, b)
        chat = chatgate.Conversation(id="routed", model="smart", system="be brief",
                                     store=store, router=router)  # fmt: skip
        first = await chat.asend("hello there")
        second = await chat.asend("and again")
        assert (first.content, second.content) == ("echo: hello there", "echo: and again")
        assert [m["role"] for m in b.last.body["messages"]] == [
            "system", "user", "assistant", "user"
        ]  # fmt: skip
        resumed = await chatgate.Conversation.aload("routed", store=store, router=router)
        assert len(resumed.messages) == 4
        with pytest.raises(chatgate.InvalidRequestError, match="api_key cannot be combined"):
            await chatgate.Conversation(model="smart", router=router, api_key="k",
                                        persist=False).asend("x")  # fmt: skip
    await chatgate.aclose()
