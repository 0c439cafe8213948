"""run_tools against the fake OpenAI and Anthropic upstreams: what the model was sent
(tool schemas, results, call ids), statuses, parallelism, limits and idempotency."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

import chatgate
from chatgate.errors import InvalidRequestError
from chatgate.persistence import SQLiteStore
from chatgate.tools import Tool, ToolContext, ToolDenied, ToolResult, idempotency_key, tool
from tests.fakes.anthropic_server import FakeAnthropic, message_json
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json

ASK = [{"role": "user", "content": "help"}]


def call(call_id: str, name: str, args: dict[str, Any] | str) -> dict[str, Any]:
    arguments = args if isinstance(args, str) else orjson.dumps(args).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def asks(*calls: dict[str, Any]) -> Reply:
    return Reply(json=completion_json(None, finish_reason="tool_calls", tool_calls=list(calls)))


def answer(text: str = "done") -> Reply:
    return Reply(json=completion_json(text))


def results(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """tool_call_id -> parsed result envelope, from the messages of one request."""
    return {
        m["tool_call_id"]: orjson.loads(m["content"])
        for m in body["messages"]
        if m["role"] == "tool"
    }


@tool
def get_weather(city: str, unit: str = "C") -> dict[str, Any]:
    """The current weather in a city.

    Args:
        city: The city's English name.
        unit: "C" or "F".
    """
    return {"city": city, "temp": 21, "unit": unit}


@tool
async def search(query: str, limit: int = 3) -> list[str]:
    """Search the knowledge base."""
    await asyncio.sleep(0.2)
    return [f"{query} {i}" for i in range(limit)]


def kw(fake: FakeOpenAI, **more: Any) -> dict[str, Any]:
    return {"api_key": "sk-test", "api_base": fake.base_url, **more}


def test_tool_schema_from_signature_and_docstring() -> None:
    definition = get_weather.definition().function
    assert definition.name == "get_weather"
    assert definition.description == "The current weather in a city."
    assert definition.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "title": "City", "description": "The city's English name."},
            "unit": {"type": "string", "title": "Unit", "description": '"C" or "F".'},
        },
        "required": ["city"],
    }
    assert get_weather("Oslo") == {"city": "Oslo", "temp": 21, "unit": "C"}  # still callable


def test_tool_definition_errors_name_the_parameter() -> None:
    def untyped(city):  # type: ignore[no-untyped-def]
        return city

    with pytest.raises(InvalidRequestError, match="parameter 'city' needs a type annotation"):
        tool(untyped)
    with pytest.raises(InvalidRequestError, match="tool name"):
        tool(name="no spaces allowed")(get_weather.fn)


def test_parallel_calls_results_and_ids_reach_the_model(fake: FakeOpenAI) -> None:
    fake.script(
        asks(call("c1", "get_weather", {"city": "Oslo"}), call("c2", "search", {"query": "q"}),
             call("c3", "search", {"query": "r", "limit": 1})),
        answer("It is 21 C in Oslo."),
    )  # fmt: skip
    started = time.perf_counter()
    run = chatgate.run_tools("gpt-4o-mini", ASK, tools=[get_weather, search], **kw(fake))
    elapsed = time.perf_counter() - started
    assert run.stop_reason == "answered"
    assert run.content == "It is 21 C in Oslo."
    assert elapsed < 0.38  # two 0.2 s searches ran concurrently
    first, second = (r.body for r in fake.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather", "search"]
    assert second["messages"][1]["role"] == "assistant"
    assert [c["id"] for c in second["messages"][1]["tool_calls"]] == ["c1", "c2", "c3"]
    assert [m.get("tool_call_id") for m in second["messages"][2:]] == ["c1", "c2", "c3"]
    got = results(second)
    assert got["c1"] == {"status": "ok", "result": {"city": "Oslo", "temp": 21, "unit": "C"}}
    assert got["c2"] == {"status": "ok", "result": ["q 0", "q 1", "q 2"]}
    assert got["c3"] == {"status": "ok", "result": ["r 0"]}
    (round1, round2) = run.rounds
    assert [d.status for d in round1.decisions] == ["ok", "ok", "ok"]
    assert round1.decisions[1].args == {"query": "q", "limit": 3}
    assert round1.decisions[1].duration_ms >= 200
    assert round1.decisions[0].result_tokens > 0
    assert round2.decisions == []
    assert run.usage.total_tokens == 24
    assert run.messages[-1].content == "It is 21 C in Oslo."  # type: ignore[union-attr]
    assert len(run.messages) == 6


def test_bad_calls_become_results_the_model_sees(fake: FakeOpenAI) -> None:
    @tool
    def boom(x: int) -> str:
        """Fails."""
        raise RuntimeError(f"disk full at {x}")

    @tool(timeout=0.05)
    async def slow() -> str:
        """Too slow."""
        await asyncio.sleep(1)
        return "never"

    def authorize(ctx: ToolContext, t: Tool, args: dict[str, Any]) -> bool:
        if args.get("city") == "Mordor":
            raise ToolDenied("no weather reports for Mordor")
        return True

    fake.script(
        asks(
            call("a", "get_weather", {"cityy": "Oslo"}),
            call("b", "get_weather", "{not json"),
            call("c", "rm_rf", {}),
            call("d", "get_weather", {"city": "Mordor"}),
            call("e", "boom", {"x": 7}),
            call("f", "slow", {}),
        ),
        answer(),
    )
    tools = [get_weather, boom, slow]
    run = chatgate.run_tools("gpt-4o-mini", ASK, tools=tools, authorize=authorize, **kw(fake))
    assert run.stop_reason == "answered"
    statuses = {d.call_id: d.status for d in run.decisions}
    assert statuses == {"a": "error", "b": "error", "c": "denied", "d": "denied", "e": "error",
                        "f": "timeout"}  # fmt: skip
    got = results(fake.requests[1].body)
    assert "city: Field required" in got["a"]["error"]
    assert "cityy: Extra inputs are not permitted" in got["a"]["error"]
    assert got["b"]["error"].startswith("invalid arguments: (arguments): Invalid JSON")
    assert got["c"] == {
        "status": "denied",
        "error": "'rm_rf' is not an available tool (available: boom, get_weather, slow)",
    }
    assert got["d"] == {"status": "denied", "error": "no weather reports for Mordor"}
    assert got["e"] == {"status": "error", "error": "boom failed: RuntimeError: disk full at 7"}
    assert got["f"] == {"status": "timeout", "error": "slow timed out after 0.05s"}


def test_result_cap_empty_and_partial(fake: FakeOpenAI) -> None:
    @tool
    def big() -> str:
        """Big."""
        return "x" * 100

    @tool
    def nothing() -> list[str]:
        """Nothing."""
        return []

    @tool
    def page() -> ToolResult:
        """One page."""
        return ToolResult(["a"], status="partial", note="page 1 of 3")

    fake.script(asks(call("1", "big", {}), call("2", "nothing", {}), call("3", "page", {})),
                answer())  # fmt: skip
    run = chatgate.run_tools(
        "gpt-4o-mini", ASK, tools=[big, nothing, page], max_result_chars=40, **kw(fake)
    )
    assert [d.status for d in run.decisions] == ["partial", "empty", "partial"]
    got = results(fake.requests[1].body)
    assert got["1"] == {
        "status": "partial",
        "result": "x" * 40,
        "note": "truncated: showing the first 40 of 100 characters",
    }
    assert got["2"] == {"status": "empty", "result": []}
    assert got["3"] == {"status": "partial", "result": ["a"], "note": "page 1 of 3"}


def test_max_rounds_stops_with_a_reason_and_pending_calls(fake: FakeOpenAI) -> None:
    fake.script(*(asks(call(f"c{i}", "get_weather", {"city": "Oslo"})) for i in range(3)))
    run = chatgate.run_tools("gpt-4o-mini", ASK, tools=[get_weather], max_rounds=3, **kw(fake))
    assert run.stop_reason == "max_rounds"
    assert len(fake.requests) == 3
    assert [c.id for c in run.pending_calls] == ["c2"]
    assert len(run.decisions) == 2  # the last round's call was not run
    assert run.final_message is not None
    assert run.final_message.tool_calls is not None
    assert run.messages[-1].role == "tool"  # type: ignore[union-attr]  # continuable transcript
    assert run.usage.total_tokens == 36


def test_side_effect_runs_once_per_key_across_retries_and_restarts(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    sent: list[str] = []

    @tool(side_effect=True)
    def send_email(to: str, body: str, ctx: ToolContext) -> str:
        """Send an email."""
        sent.append(f"{to}:{ctx.idempotency_key}")
        return "sent"

    email = {"to": "a@example.com", "body": "hi"}
    reordered = '{"body": "hi", "to": "a@example.com"}'  # same canonical arguments
    db = tmp_path / "chatgate.db"
    fake.script(asks(call("c1", "send_email", email)), asks(call("c2", "send_email", reordered)),
                answer())  # fmt: skip
    run = chatgate.run_tools(
        "gpt-4o-mini", ASK, tools=[send_email], conversation_id="conv-1",
        store=SQLiteStore(db), **kw(fake),
    )  # fmt: skip
    key = idempotency_key("conv-1", "send_email", '{"body":"hi","to":"a@example.com"}')
    assert sent == [f"a@example.com:{key}"]
    first, second = run.decisions
    assert (first.status, first.replayed, second.status, second.replayed) == (
        "ok", False, "ok", True,
    )  # fmt: skip
    assert first.idempotency_key == second.idempotency_key == key
    assert results(fake.requests[2].body)["c2"] == {"status": "ok", "result": "sent"}

    def again(conversation_id: str) -> None:  # a restart: a new store object on the same file
        fake.script(asks(call("c9", "send_email", email)), answer())
        chatgate.run_tools(
            "gpt-4o-mini", ASK, tools=[send_email], conversation_id=conversation_id,
            store=SQLiteStore(db), **kw(fake),
        )  # fmt: skip

    again("conv-1")
    assert len(sent) == 1
    again("conv-2")  # another conversation is another key
    assert len(sent) == 2


async def test_side_effect_started_but_unfinished_is_not_repeated(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    calls: list[int] = []

    @tool(side_effect=True)
    async def charge(cents: int) -> str:
        """Charge the card."""
        calls.append(cents)
        return "charged"

    store = SQLiteStore(tmp_path / "s.db")
    key = idempotency_key("conv", "charge", '{"cents":500}')
    claimed = await store.claim(key, conversation_id="conv", tool="charge", arguments="{}")
    assert claimed is None  # a crashed process took the key and never recorded the outcome
    fake.script(asks(call("c", "charge", {"cents": 500})), answer())
    run = await chatgate.arun_tools(
        "gpt-4o-mini", ASK, tools=[charge], conversation_id="conv", store=store, **kw(fake)
    )
    assert calls == []
    (decision,) = run.decisions
    assert decision.status == "error"
    assert decision.error is not None
    assert "not repeated" in decision.error
    await store.release(key)  # an operator decides it may run again
    fake.script(asks(call("c", "charge", {"cents": 500})), answer())
    await chatgate.arun_tools(
        "gpt-4o-mini", ASK, tools=[charge], conversation_id="conv", store=store, **kw(fake)
    )
    assert calls == [500]
    store.close()


def test_side_effect_tools_need_a_conversation_id(fake: FakeOpenAI) -> None:
    @tool(side_effect=True)
    def write(x: int) -> None:
        """Write."""

    with pytest.raises(InvalidRequestError, match="need conversation_id"):
        chatgate.run_tools("gpt-4o-mini", ASK, tools=[write], **kw(fake))
    assert fake.requests == []


class Filters(BaseModel):
    tags: list[str]


def test_anthropic_tool_use_and_results_with_ids() -> None:
    @tool
    def find(filters: Filters, ctx: ToolContext) -> list[str]:
        """Find documents."""
        return [f"{ctx.data['user']}:{t}" for t in filters.tags]

    use = {"type": "tool_use", "id": "toolu_01", "name": "find",
           "input": {"filters": {"tags": ["a", "b"]}}}  # fmt: skip
    with FakeAnthropic() as fake:
        fake.script(
            Reply(json=message_json([{"type": "text", "text": "Looking."}, use],
                                    stop_reason="tool_use")),
            Reply(json=message_json("Found 2.")),
        )  # fmt: skip
        run = chatgate.run_tools(
            "anthropic/claude-sonnet-4-20250514", ASK, tools=[find], context={"user": "u1"},
            api_key="sk-ant", api_base=fake.base_url,
        )  # fmt: skip
        first, second = (r.body for r in fake.requests)
    assert run.content == "Found 2."
    (definition,) = first["tools"]
    assert definition["name"] == "find"
    assert definition["input_schema"]["$defs"]["Filters"]["properties"]["tags"]["type"] == "array"
    assistant, results_turn = second["messages"][1], second["messages"][2]
    assert assistant["role"] == "assistant"
    assert assistant["content"][1]["type"] == "tool_use"
    assert assistant["content"][1]["id"] == "toolu_01"
    (block,) = results_turn["content"]
    assert block["type"] == "tool_result"
    assert block["tool_use_id"] == "toolu_01"
    assert orjson.loads(block["content"]) == {"status": "ok", "result": ["u1:a", "u1:b"]}
    assert run.usage.total_tokens == 30


def test_gemini_function_calls_and_responses() -> None:
    from tests.fakes.gemini_server import FakeGemini, candidate_json, response_json, usage_json

    call_part = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    with FakeGemini() as fake:
        fake.script(
            Reply(json=response_json(candidate_json(call_part), usage=usage_json(9, 3))),
            Reply(json=response_json(candidate_json({"text": "21 C"}), usage=usage_json(20, 2))),
        )
        run = chatgate.run_tools(
            "gemini/gemini-2.5-flash", ASK, tools=[get_weather], api_key="g",
            api_base=fake.base_url,
        )  # fmt: skip
        first, second = (r.body for r in fake.requests)
    assert run.content == "21 C"
    (declaration,) = first["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "get_weather"
    assert declaration["parameters"]["required"] == ["city"]
    (decision,) = run.decisions
    assert decision.status == "ok"
    response_part = second["contents"][-1]["parts"][0]["functionResponse"]
    assert response_part["name"] == "get_weather"
    assert run.usage.total_tokens == 34
