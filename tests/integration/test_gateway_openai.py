"""The official openai SDK against a real `chatgate serve` process, over the fake upstream."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.gateway import request_json
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    chunk_json,
    completion_json,
    error_json,
    text_stream,
)
from tests.gateway_harness import deployment, gateway_config, serve

MASTER = "sk-master-test-0123456789"
UPSTREAM_KEY = "sk-upstream-secret-987654"


@pytest.fixture(scope="module")
def limited() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAI, limited: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    served = (("fast", upstream), ("limited", limited))
    key = "os.environ/TEST_UPSTREAM_KEY"
    config = gateway_config(
        # litellm_params, the alias a LiteLLM config brings, rather than params
        *[
            {"model_name": n, "litellm_params": deployment(n, f, api_key=key)["params"]}
            for n, f in served
        ],
        # a 10 s deadline, so a 30 s Retry-After is passed on, not waited for; no cooldowns,
        # so one test's failures do not cool the deployment the next test uses
        router={"timeout": 10, "cooldown_time": 0, "retry_base_delay": 0.01},
        master_key="os.environ/TEST_MASTER_KEY",
        max_request_bytes=4096,
    )
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "TEST_MASTER_KEY": MASTER}
    with serve(config, tmp_path_factory, env=env) as gw:
        yield gw.url


@pytest.fixture
def client(gateway: str, upstream: FakeOpenAI) -> openai.OpenAI:
    upstream.replies.clear()
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=MASTER, max_retries=0)


def post(gateway: str, body: bytes, key: str | None = MASTER) -> tuple[int, dict[str, object]]:
    return request_json(f"{gateway}/v1/chat/completions", body=body, key=key)


def test_non_stream_round_trip(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "ping"}], temperature=0
    )
    out = raw.parse()
    assert out.choices[0].message.content == "echo: ping"
    assert out.usage is not None
    assert out.usage.total_tokens > 0
    assert raw.headers["x-chatgate-model"] == "openai/gpt-4o-mini"
    assert raw.headers["x-chatgate-attempts"] == "1"
    assert raw.headers["x-chatgate-request-id"].startswith("cg-")
    assert float(raw.headers["x-chatgate-overhead-ms"]) >= 0
    sent = upstream.last
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "ping"}],
        "temperature": 0.0,
    }


def test_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "a b"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)


def test_openai_format_chunks_are_forwarded_as_the_upstream_sent_them(
    gateway: str, upstream: FakeOpenAI
) -> None:
    """Chunks from an OpenAI-format upstream go out byte for byte (key order, spacing, provider
    fields), not parsed and written again; the usage chunk the gateway asked for on the
    client's behalf is still held back."""
    upstream.replies.clear()
    head = '"id": "c1",  "object": "chat.completion.chunk", "created": 7, "model": "m"'
    odd = [
        '{"choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}], '
        + head
        + ', "x_provider": {"b": 2, "a": 1}}',
        "{" + head + ', "choices":[{"delta":{},"index":0,"finish_reason":"stop"}]}',
    ]
    usage = (
        "{"
        + head
        + ', "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, '
        + '"total_tokens": 4}}'
    )
    upstream.script(Reply(chunks=[f"data: {c}\n\n" for c in [*odd, usage]]))
    body = json.dumps(
        {"model": "fast", "messages": [{"role": "user", "content": "x"}], "stream": True}
    )
    request = urllib.request.Request(
        f"{gateway}/v1/chat/completions", data=body.encode(), method="POST"
    )
    request.add_header("Authorization", f"Bearer {MASTER}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        sent = resp.read()
    assert sent == b"".join(f"data: {c}\n\n".encode() for c in odd) + b"data: [DONE]\n\n"
    assert upstream.last.body["stream_options"] == {"include_usage": True}


def test_tool_calls_stream_through(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    call = {
        "index": 0,
        "id": "call_7",
        "type": "function",
        "function": {"name": "lookup", "arguments": ""},
    }
    upstream.script(
        Reply(
            chunks=[
                chunk_json({"role": "assistant", "tool_calls": [call]}),
                chunk_json({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
                chunk_json({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
                chunk_json({}, finish_reason="tool_calls"),
            ]
        )
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    with client.chat.completions.stream(
        model="fast",
        messages=[{"role": "user", "content": "find x"}],
        tools=tools,  # type: ignore[arg-type]  # plain dicts, as users write them
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].id == "call_7"
    assert calls[0].function.arguments == '{"q":"x"}'
    assert upstream.last.body["tools"] == tools


def test_json_schema_response_format_passes_through(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.script(Reply(json=completion_json('{"city": "Oslo"}')))
    schema = {
        "name": "place",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
    out = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "where"}],
        response_format={"type": "json_schema", "json_schema": schema},  # type: ignore[typeddict-item]  # schema dict as users write it
    )
    assert json.loads(out.choices[0].message.content or "") == {"city": "Oslo"}
    assert upstream.last.body["response_format"] == {"type": "json_schema", "json_schema": schema}


def test_upstream_rate_limit_passes_status_and_retry_after(
    client: openai.OpenAI, limited: FakeOpenAI
) -> None:
    limited.script(
        Reply(
            status=429,
            json=error_json("slow down", "requests", code="rate_limit"),
            headers={"retry-after": "30"},  # past the router's deadline: passed on at once
        )
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "30"
    assert len(limited.requests) == 1
    assert info.value.code == "rate_limit"


def test_upstream_500_and_mid_stream_failure(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(*[Reply(status=500, json=error_json("boom", "server_error"))] * 3)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    upstream.script(Reply(chunks=text_stream(["a", "b", "c"]), drop_after=2, chunk_delay_s=0.05))
    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)


def test_upstream_auth_failure_is_the_gateways_problem(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.script(Reply(status=401, json=error_json(f"bad key {UPSTREAM_KEY}", "auth")))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert UPSTREAM_KEY not in str(info.value.body)


def test_gateway_errors_have_the_right_status_and_shape(gateway: str) -> None:
    ok_body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "x"}]}).encode()
    status, body = post(gateway, b'{"model": "fast", "messages": [', MASTER)
    assert status == 400
    assert "line 1 column" in body["error"]["message"]  # type: ignore[index]
    assert post(gateway, ok_body, key=None)[0] == 401
    assert post(gateway, ok_body, key="sk-wrong")[0] == 401
    status, body = post(gateway, json.dumps({"model": "nope", "messages": []}).encode())
    assert status == 404
    assert "fast" in body["error"]["message"]  # type: ignore[index]
    assert body["error"]["code"] == "model_not_found"  # type: ignore[index]
    status, body = post(
        gateway, json.dumps({"model": "fast", "messages": [], "temperature": 9}).encode()
    )
    assert status == 400
    assert body["error"]["param"] in ("messages", "temperature")  # type: ignore[index]
    assert post(gateway, b'{"model": "fast", "pad": "' + b"x" * 5000 + b'"}')[0] == 413


def test_sdk_errors_for_bad_key_and_model(gateway: str) -> None:
    bad = openai.OpenAI(base_url=f"{gateway}/v1", api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    good = openai.OpenAI(base_url=f"{gateway}/v1", api_key=MASTER, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        good.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    assert [m.id for m in good.models.list()] == ["fast", "limited"]


def test_client_disconnect_cancels_upstream_within_a_second(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    before = upstream.disconnects
    upstream.script(Reply(chunks=text_stream([f"w{i} " for i in range(300)]), chunk_delay_s=0.02))
    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "long"}], stream=True
    )
    for _ in stream:
        break
    stream.close()
    assert upstream.wait_for_disconnect(before + 1, timeout_s=1.0)


def test_secrets_never_in_gateway_log(
    gateway: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = list(Path(tmp_path_factory.getbasetemp()).rglob("gateway-*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert MASTER not in text
        assert UPSTREAM_KEY not in text
