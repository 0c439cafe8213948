"""The backend's reasoning through a stateless gateway: sealed into ``encrypted_content``
(AES-GCM) when the client asks for it, restored onto the right assistant turn when it comes
back, for the backend kind that made it only; anything not sealed here is never trusted."""

from __future__ import annotations

from typing import Any

from openai.types.responses import Response

from chatgate.responses_api import ChunksToResponseEvents
from chatgate.responses_api.reasoning import Carry, Sealer, sealer_for
from chatgate.responses_api.request import echo_fields, translate
from chatgate.responses_api.response import response_object
from chatgate.types import ChatResponse
from tests.unit.responses_events import run_stream

SEALER = Sealer(b"master-key-one")
BLOCK = {"type": "thinking", "thinking": "the user wants ls", "signature": "sig-abc"}


def seal_as(family: str) -> Any:
    def seal(carry: Carry) -> str:
        carry.family = family
        return SEALER.seal(carry)

    return seal


def test_a_sealed_carry_opens_only_with_its_key_and_untouched() -> None:
    carry = Carry("anthropic", "r", [BLOCK], {"c1": "g"}, ["c1"])
    token = SEALER.seal(carry)
    assert token.startswith("cgr1.")
    assert "sig-abc" not in token
    assert "the user wants" not in token
    assert SEALER.open(token) == carry
    assert Sealer(b"another-key").open(token) is None
    flipped = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    assert SEALER.open(flipped) is None
    for junk in (None, 3, "", "cgr1.", "cgr1.!!!", "gAAAAABo-openai-encrypted"):
        assert SEALER.open(junk) is None


def test_sealer_for_is_keyed_by_the_master_key() -> None:
    token = sealer_for("sk-master-1").seal(Carry("openai", "x"))
    assert sealer_for("sk-master-1").open(token) is not None
    assert sealer_for("sk-master-2").open(token) is None
    assert sealer_for(None).open(token) is None


def anthropic_answer() -> ChatResponse:
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "exec_command", "arguments": '{"cmd": "ls"}'},
    }
    message = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "the user wants ls",
        "thinking_blocks": [BLOCK],
        "tool_calls": [call],
    }
    choice = {"message": message, "finish_reason": "tool_calls"}
    return ChatResponse.model_validate({"id": "x", "model": "m", "choices": [choice]})  # fmt: skip


def test_anthropic_thinking_rides_along_and_comes_back_on_its_turn() -> None:
    body = {"input": "list files", "include": ["reasoning.encrypted_content"], "store": False}
    served = translate(body, "m")
    response = response_object(
        anthropic_answer(), served.echo, response_id="resp_1", created_at=1,
        tools=served.tools, seal=seal_as("anthropic"),
    )  # fmt: skip
    Response.model_validate(response)
    output = response["output"]
    assert [i["type"] for i in output] == ["reasoning", "function_call", "reasoning"]
    envelope = output[2]["encrypted_content"]
    history = [
        {"role": "user", "content": "list files"},
        *output,
        {"type": "function_call_output", "call_id": "toolu_1", "output": "a.txt"},
    ]
    again = {"input": history, "include": ["reasoning.encrypted_content"]}
    restored = translate(again, "m", sealer=SEALER, family="anthropic").request.wire()
    turn = restored["messages"][1]
    assert turn["thinking_blocks"] == [BLOCK]
    assert turn["tool_calls"][0]["id"] == "toolu_1"
    # another backend kind gets no foreign signature; neither does another gateway's key
    for sealer, family in ((SEALER, "gemini"), (Sealer(b"other"), "anthropic")):
        plain = translate(again, "m", sealer=sealer, family=family).request.wire()
        assert "thinking_blocks" not in plain["messages"][1]
    assert envelope.startswith("cgr1.")


def test_without_include_nothing_is_sealed() -> None:
    served = translate({"input": "x"}, "m")
    response = response_object(anthropic_answer(), served.echo, response_id="r", created_at=1)
    assert [i["type"] for i in response["output"]] == ["reasoning", "function_call"]
    assert "encrypted_content" not in response["output"][0]


def test_gemini_thought_signatures_stream_out_and_come_back_on_their_calls() -> None:
    events = ChunksToResponseEvents(echo_fields({}), model="m", seal=seal_as("gemini"))
    google = {"google": {"thought_signature": "c2lnbmF0dXJl"}}
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "extra_content": google,
             "function": {"name": "exec_command", "arguments": '{"cmd": "echo hi"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]  # fmt: skip
    out = run_stream(events, chunks)
    done = [e["item"] for e in out if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["function_call", "reasoning"]
    history = [
        {"role": "user", "content": "go"},
        *done,
        {"type": "function_call_output", "call_id": "call_1", "output": "hi"},
    ]
    wire = translate({"input": history}, "m", sealer=SEALER, family="gemini").request.wire()
    call = wire["messages"][1]["tool_calls"][0]
    assert call["extra_content"] == google
    assert "reasoning_content" not in wire["messages"][1]


def test_reasoning_text_of_a_text_turn_comes_back_to_that_turn() -> None:
    events = ChunksToResponseEvents(echo_fields({}), model="m", seal=seal_as("openai"))
    chunks = [
        {"choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]},
        {"choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": "stop"}]},
    ]
    out = run_stream(events, chunks)
    done = [e["item"] for e in out if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["reasoning", "message", "reasoning"]
    history = [{"role": "user", "content": "hi"}, *done, {"role": "user", "content": "more"}]
    wire = translate({"input": history}, "m", sealer=SEALER, family="openai").request.wire()
    assert wire["messages"][1]["reasoning_content"] == "think"
    assert wire["messages"][1]["content"] == "hello"
