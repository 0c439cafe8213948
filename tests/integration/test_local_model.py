"""chatgate against the real local model (SmolLM2-135M via a managed llama.cpp server).

Skipped only where llama-cpp-python is not installed (scripts/install_local_model.sh installs
it; .ci/run does). Tiny prompts, max_tokens <= 32; assertions are on shape, never on quality.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

import chatgate
from chatgate.errors import BadRequestError, RateLimitError, UnsupportedParamsError
from chatgate.providers.local import server
from chatgate.providers.local.models import resolve_model
from tests.markers import REAL_MODEL

pytestmark = REAL_MODEL

MODEL = "local/smollm2-135m"
HI = [{"role": "user", "content": "Say hi."}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    asyncio.run(server.stop())


def test_non_stream() -> None:
    response = chatgate.completion(MODEL, HI, max_tokens=16, temperature=0)
    assert isinstance(response.content, str)
    assert response.content
    assert response.finish_reason in ("stop", "length")
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 16
    assert response.meta.provider == "local"


def test_stream_has_synthesized_usage_equal_to_non_stream() -> None:
    expected = chatgate.completion(MODEL, HI, max_tokens=12, temperature=0)
    stream = chatgate.completion(
        MODEL, HI, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert usage == expected.usage
    final = stream.final()
    assert final.content == expected.content
    assert final.usage == expected.usage


def test_stream_usage_hidden_unless_asked_but_final_has_it() -> None:
    stream = chatgate.completion(MODEL, HI, max_tokens=4, stream=True)
    assert all(chunk.usage is None for chunk in stream)
    final = stream.final()
    assert final.usage is not None
    assert 0 < final.usage.completion_tokens <= 4


def test_finish_reason_length() -> None:
    prompt = [{"role": "user", "content": "Count from 1 to 100."}]
    response = chatgate.completion(MODEL, prompt, max_tokens=3, temperature=0)
    assert response.finish_reason == "length"
    assert response.truncated
    assert response.usage is not None
    assert response.usage.completion_tokens == 3


def test_forced_tool_call() -> None:
    response = chatgate.completion(
        MODEL,
        [{"role": "user", "content": "What is the weather in Oslo?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=32,
        temperature=0,
    )
    calls = response.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments), dict)
    assert calls[0].id


def test_tool_result_turn_with_null_content_is_accepted() -> None:
    """llama.cpp answers 500 to an assistant tool-call turn with content null; we send ""."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    response = chatgate.completion(MODEL, messages, tools=TOOLS, max_tokens=16, temperature=0)
    assert response.finish_reason in ("stop", "length", "tool_calls")


def test_json_schema_is_constrained_and_parseable() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    response = chatgate.completion(
        MODEL,
        [{"role": "user", "content": "Make up a cat with a name and an age, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "cat", "schema": schema}},
        max_tokens=32,
        temperature=0,
    )
    if response.finish_reason == "stop":
        data = json.loads(response.content or "")
        assert set(data) == {"name", "age"}
        assert isinstance(data["age"], int)
    else:  # cut off by max_tokens: still a JSON object as far as it got
        assert (response.content or "").lstrip().startswith("{")


def test_temperature_zero_is_deterministic() -> None:
    prompt = [{"role": "user", "content": "Name a colour."}]
    first = chatgate.completion(MODEL, prompt, max_tokens=12, temperature=0)
    chatgate.completion(MODEL, HI, max_tokens=4, temperature=0)  # something else in between
    second = chatgate.completion(MODEL, prompt, max_tokens=12, temperature=0)
    assert first.content == second.content


def test_n_above_one_is_rejected_before_any_request() -> None:
    with pytest.raises(UnsupportedParamsError, match="n"):
        chatgate.completion(MODEL, HI, max_tokens=4, n=2)


def test_server_is_restarted_after_it_dies() -> None:
    chatgate.completion(MODEL, HI, max_tokens=1)
    (managed,) = [s for s in server.running_servers() if s.config.max_queue != 0]
    pid = managed.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while managed.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    response = chatgate.completion(MODEL, HI, max_tokens=2)
    assert response.usage is not None
    assert managed.pid != pid


async def test_queue_full_is_a_rate_limit_error_with_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its own server (another model string) started with no waiting room at all.
    monkeypatch.setenv("CHATGATE_LOCAL_MAX_QUEUE", "0")
    model = "local/" + str(resolve_model("smollm2-135m").path)
    await chatgate.acompletion(model, HI, max_tokens=1)  # started and warm
    prompt = [{"role": "user", "content": "Count from 1 to 100."}]
    # The child frees its slot just after the previous answer's last byte, so a request sent
    # at that instant can still meet a full house; wait for the slot instead of racing it.
    for _ in range(50):
        try:
            busy = await chatgate.acompletion(model, prompt, max_tokens=32, stream=True)
            break
        except RateLimitError:
            await asyncio.sleep(0.02)
    chunks = aiter(busy)
    await anext(chunks)  # the busy request is now certainly being served
    with pytest.raises(RateLimitError) as info:
        await chatgate.acompletion(model, HI, max_tokens=1)
    assert info.value.retryable
    assert info.value.retry_after is not None
    assert info.value.retry_after >= 1
    async for _ in chunks:
        pass
    assert (await busy.afinal()).finish_reason in ("stop", "length")


async def test_a_request_the_server_refuses_is_tried_once_and_cools_nothing() -> None:
    router = chatgate.Router(
        [{"model_name": "m", "params": {"model": MODEL}}], allowed_fails=1, num_retries=2
    )
    with pytest.raises(BadRequestError) as info:
        await router.acompletion("m", HI, max_tokens=8, extra_body={"min_p": 5})  # llama.cpp's own
    assert [a.status_code for a in info.value.attempt_log] == [400]
    assert "min_p: Input should be less than or equal to 1" in info.value.message
    [stats] = await router.state.view(["m#0"], router.now())
    assert (stats.cooldown_until, stats.last_error) == (0.0, None)
    system = [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]
    answer = await router.acompletion(
        "m", [{"role": "system", "content": system}, *HI], max_tokens=8
    )
    assert answer.finish_reason in ("stop", "length")
