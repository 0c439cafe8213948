"""A traced stream whose client leaves mid-answer, through a real `chatgate serve`: the request
span still ends with the status that was sent, and the attempt says it was cancelled. The
stream's body bypasses the server span's status watch once its head is out
(asgi.StatusWatch), so the status must come from the head alone."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import FakeOpenAI, Reply, text_stream
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-traced-disconnect-3"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAI, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("fast", upstream),
        master_key=MASTER,
        database=SQLITE,
        router={"num_retries": 0},
        otel={"endpoint": receiver.http_endpoint},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def test_a_stream_the_client_leaves_ends_its_spans_with_the_status_sent(
    gateway: Gateway, upstream: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    words = [f"w{i} " for i in range(200)]
    upstream.script(Reply(chunks=text_stream(words), chunk_delay_s=0.02))
    conn = http.client.HTTPConnection("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]), timeout=5)
    body = {"model": "fast", "messages": [{"role": "user", "content": "go"}], "stream": True}
    headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    response = conn.getresponse()
    assert response.status == 200
    assert response.read1(64)  # the answer has begun
    conn.close()  # and the client is gone long before its end

    spans = receiver.wait_for_spans(
        lambda s: any(x.kind == "SERVER" for x in s) and any(x.name.startswith("chat ") for x in s),
        timeout_s=15,
    )
    server = next(s for s in spans if s.kind == "SERVER")
    attempt = next(s for s in spans if s.name.startswith("chat "))
    assert server.attributes["http.response.status_code"] == 200
    assert attempt.attributes["chatgate.stream.cancelled"] is True
    assert attempt.parent_span_id != ""
    assert server.start_ns <= attempt.start_ns <= attempt.end_ns <= server.end_ns
    line = gateway.wait_for_access_line("/v1/chat/completions", field="route")
    assert line["status"] == 499  # the access log tells the client left
