"""Response headers, the access log, /metrics and mid-stream error events of a real
`chatgate serve`, driven by the official openai and anthropic SDKs."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.clock import poll_until
from tests.fakes.openai_server import FakeOpenAI, Reply, text_stream
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

MASTER = "sk-master-observe-5551234"
UPSTREAM_KEY = "sk-upstream-observe-777999"
SECRET_TEXT = "the-launch-code-is-swordfish"


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("fast", upstream, api_key="os.environ/OBS_UPSTREAM_KEY"), master_key=MASTER
    )
    with serve(config, tmp_path_factory, env={"OBS_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway, upstream: FakeOpenAI) -> Iterator[openai.OpenAI]:
    upstream.replies.clear()
    with gateway.openai_client() as sdk:
        yield sdk


def raw_sse(gateway: Gateway, path: str, body: dict[str, object]) -> tuple[str, str]:
    """(request id, whole SSE body)"""
    request = urllib.request.Request(
        f"{gateway.url}{path}", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {MASTER}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.headers["x-chatgate-request-id"], resp.read().decode()


def test_headers_and_access_line(client: openai.OpenAI, gateway: Gateway) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fast",
        messages=[{"role": "user", "content": f"say {SECRET_TEXT}"}],
        extra_headers={"x-chatgate-tags": "team-search, exp-7 ,", "x-chatgate-trace-id": "tr-42"},
    )
    headers = raw.headers
    request_id = headers["x-chatgate-request-id"]
    assert request_id.startswith("cg-")
    assert headers["x-chatgate-model"] == "openai/gpt-4o-mini"
    assert headers["x-chatgate-attempts"] == "1"
    assert 0 <= float(headers["x-chatgate-overhead-ms"]) < 100
    line = gateway.wait_for_access_line(request_id)
    assert line["trace_id"] == "tr-42"
    assert line["tags"] == ["team-search", "exp-7"]
    assert line["model"] == "fast"
    assert line["deployment"] == "openai/gpt-4o-mini"
    assert line["route"] == "/v1/chat/completions"
    assert (line["status"], line["stream"], line["attempts"]) == (200, False, 1)
    assert line["prompt_tokens"] > 0
    assert line["completion_tokens"] == 3
    assert line["cached_tokens"] == 0
    assert line["finish_reason"] == "stop"
    assert line["latency_ms"] > 0
    assert line["error_class"] is None
    assert line["cache_hit"] is False
    assert "key_id" in line
    assert "request_content" not in line


def test_stream_headers_and_ttft(client: openai.OpenAI, gateway: Gateway) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="fast", messages=[{"role": "user", "content": "a b"}], stream=True
    ) as raw:
        request_id = raw.headers["x-chatgate-request-id"]
        assert raw.headers["x-chatgate-model"] == "openai/gpt-4o-mini"
        assert float(raw.headers["x-chatgate-overhead-ms"]) >= 0
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "echo: a b"
    line = gateway.wait_for_access_line(request_id)
    assert line["stream"] is True
    assert line["ttft_ms"] is not None
    assert 0 < line["ttft_ms"] <= line["latency_ms"]
    assert line["completion_tokens"] == 3  # the gateway asks for usage even if the client did not


def test_errors_are_logged_with_their_class_and_carry_a_request_id(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    request_id = info.value.response.headers["x-chatgate-request-id"]
    line = gateway.wait_for_access_line(request_id)
    assert (line["status"], line["error_class"], line["model"]) == (404, "model_not_found", None)


def test_metrics_count_requests_tokens_latency_and_errors(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    labels = {"model": "fast", "deployment": "openai/gpt-4o-mini"}
    ok = {"route": "/v1/chat/completions", **labels, "status": "200"}
    before = gateway.metric("chatgate_requests_total", **ok)
    out_before = gateway.metric("chatgate_tokens_total", **labels, direction="output")
    for _ in range(3):
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    list(
        client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gone", messages=[{"role": "user", "content": "x"}])
    errors = {"route": "/v1/chat/completions", "model": "", "error_class": "model_not_found"}
    samples = gateway.metric_samples()

    def get(name: str, **extra: str) -> float:
        return samples.get((name, frozenset(extra.items())), 0.0)

    def counted() -> bool:
        nonlocal samples
        samples = gateway.metric_samples()  # the gateway counts off the request path
        return (
            get("chatgate_requests_total", **ok) >= before + 4
            and get("chatgate_errors_total", **errors) >= 1
            and get("chatgate_tokens_total", **labels, direction="output") >= out_before + 8
            and get("chatgate_overhead_seconds_count", route="/v1/chat/completions") >= 5
            and get("chatgate_in_flight_requests") == 0
        )

    poll_until(counted, what="the requests counted")

    assert get("chatgate_requests_total", **ok) == before + 4
    assert get("chatgate_tokens_total", **labels, direction="output") == out_before + 4 * 2
    assert get("chatgate_request_latency_seconds_count", **labels) >= 4
    assert get("chatgate_ttft_seconds_count", **labels) >= 1
    assert get("chatgate_errors_total", **errors) >= 1
    assert get("chatgate_overhead_seconds_count", route="/v1/chat/completions") >= 5
    assert get("chatgate_in_flight_requests") == 0
    assert get("chatgate_usage_records_dropped_total") == 0


def test_mid_stream_failure_is_an_openai_error_event(
    upstream: FakeOpenAI, gateway: Gateway
) -> None:
    upstream.replies.clear()
    upstream.script(Reply(chunks=text_stream(["a", "b", "c", "d"]), drop_after=2))
    body = {"model": "fast", "messages": [{"role": "user", "content": "x"}], "stream": True}
    request_id, text = raw_sse(gateway, "/v1/chat/completions", body)
    events = [e for e in text.split("\n\n") if e]
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]["role"]
    last = json.loads(events[-1].removeprefix("data: "))
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert (last["error"]["type"], last["error"]["code"]) == (
        "upstream_error",
        "upstream_unreachable",
    )
    assert "[DONE]" not in events[-1]
    line = gateway.wait_for_access_line(request_id)
    assert (line["status"], line["error_class"]) == (200, "APIConnectionError")
    # and the SDK turns it into an exception rather than a short answer
    upstream.script(Reply(chunks=text_stream(["a", "b", "c"]), drop_after=2))
    with (
        gateway.openai_client() as sdk,
        pytest.raises(openai.APIError, match="Response payload is not completed"),
    ):
        list(
            sdk.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )


def test_mid_stream_failure_on_messages_is_an_anthropic_error_event(
    upstream: FakeOpenAI, gateway: Gateway
) -> None:
    upstream.replies.clear()
    upstream.script(Reply(chunks=text_stream(["a", "b", "c", "d"]), drop_after=3))
    body = {
        "model": "fast",
        "max_tokens": 16,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    _, text = raw_sse(gateway, "/v1/messages", body)
    events = [e for e in text.split("\n\n") if e]
    assert events[0].startswith("event: message_start")
    name, data = events[-1].split("\n", 1)
    assert name == "event: error"
    error = json.loads(data.removeprefix("data: "))
    assert error["type"] == "error"
    assert error["error"]["type"] == "api_error"
    assert not any(e.startswith("event: message_stop") for e in events)
    upstream.script(Reply(chunks=text_stream(["a", "b", "c"]), drop_after=2))
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key=MASTER, max_retries=0) as sdk,
        pytest.raises(anthropic.APIStatusError),
        sdk.messages.stream(
            model="fast", max_tokens=16, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()


def test_probes_metrics_and_readiness_need_no_key(gateway: Gateway) -> None:
    with urllib.request.urlopen(f"{gateway.url}/health/readiness", timeout=5) as resp:
        ready = json.loads(resp.read())
    assert ready["status"] == "ok"
    assert ready["checks"]["accepting"] == {"ok": True}


def test_log_never_holds_keys_or_content(client: openai.OpenAI, gateway: Gateway) -> None:
    logged = len(gateway.access_lines())
    client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": SECRET_TEXT}]
    )
    with (
        gateway.openai_client(f"{MASTER}x") as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    poll_until(lambda: len(gateway.access_lines()) >= logged + 2, what="both requests logged")
    text = gateway.log_text()
    assert gateway.access_lines()
    assert MASTER not in text
    assert UPSTREAM_KEY not in text
    assert SECRET_TEXT not in text
