"""The gateway app in this process (lifespan, pipeline, access logger) over the fake upstream:
what `create_app` gives someone who embeds it in their own ASGI server."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import orjson
import pytest

from chatgate.config import parse
from chatgate.server.app import ASGIApp, create_app
from tests.asgi_client import Lifespan, call
from tests.fakes.openai_server import FakeOpenAI, Reply, text_stream
from tests.gateway_harness import deployment, gateway_config


async def post(app: ASGIApp, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """POST ``body`` tagged ``inproc``: (status, body)."""
    status, _, answer = await call(app, "POST", path, body, {"x-chatgate-tags": "inproc"})
    return status, answer


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "chatgate.access"]


async def test_log_content_puts_messages_and_answers_in_the_line(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse(gateway_config(deployment("m", fake, "openai/x"), log_content=True))
    app = create_app(config)
    messages = [{"role": "user", "content": "tell me"}]
    caplog.set_level("INFO", logger="chatgate.access")
    async with Lifespan(app):
        status, _ = await post(app, "/v1/chat/completions", {"model": "m", "messages": messages})
        assert status == 200
        body = {"model": "m", "messages": messages, "stream": True}
        status, streamed = await post(app, "/v1/chat/completions", body)
        assert status == 200
        assert streamed.endswith(b"data: [DONE]\n\n")
    plain, stream = lines(caplog)  # shutdown wrote out the last records
    assert plain["request_content"] == messages
    assert plain["response_content"] == "echo: tell me"
    assert plain["tags"] == ["inproc"]
    assert (stream["stream"], stream["response_content"]) == (True, "echo: tell me")


async def test_without_log_content_no_content_and_no_line_unless_someone_listens(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(parse(gateway_config(deployment("m", fake, "openai/x"))))
    body = {"model": "m", "messages": [{"role": "user", "content": "quiet"}]}
    async with Lifespan(app):
        assert (await post(app, "/v1/chat/completions", body))[0] == 200
    assert lines(caplog) == []  # the logger is not enabled for INFO: nothing is even built
    caplog.set_level("INFO", logger="chatgate.access")
    async with Lifespan(app):
        assert (await post(app, "/v1/chat/completions", body))[0] == 200
    (line,) = lines(caplog)
    assert "request_content" not in line
    assert "quiet" not in json.dumps(line)


async def test_freeze_heap_hides_the_start_up_heap_from_the_collector(fake: FakeOpenAI) -> None:
    """`chatgate serve` freezes what start-up built (a full collection over it was the p99 at
    64 concurrent requests); an app embedded in someone else's process leaves their GC alone."""
    config = parse(gateway_config(deployment("m", fake, "openai/x")))
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        async with Lifespan(create_app(config)):
            assert gc.get_freeze_count() == 0
            assert gc.get_threshold() == thresholds
        app = create_app(config, freeze_heap=True)
        async with Lifespan(app):
            assert gc.get_freeze_count() > 10_000  # the modules, the app, pydantic's schemas
            assert gc.get_threshold()[0] == 10_000
            hello = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            status, _ = await post(app, "/v1/chat/completions", hello)
            assert status == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def stream_messages(app: ASGIApp, body: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    request = {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
    messages = [request]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    await app(scope, receive, send)
    return sent[1:]


async def test_a_stream_is_written_as_it_arrives_and_its_end_with_the_last_batch(
    fake: FakeOpenAI,
) -> None:
    """Paced chunks go out one write each; when the upstream's last read also ended its body,
    that batch and the end share one write (a syscall and a send saved per stream)."""
    app = create_app(parse(gateway_config(deployment("m", fake, "openai/x"))))
    chunks = text_stream(["a", "b", "c"])
    frames = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
    whole = b"".join(frames) + b"data: [DONE]\n\n"
    fake.script(
        Reply(chunks=chunks, chunk_delay_s=0.02),
        Reply(raw=whole, headers={"Content-Type": "text/event-stream"}),
    )
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with Lifespan(app):
        paced = await stream_messages(app, body)
        at_once = await stream_messages(app, body)
    assert len(paced) >= len(chunks)  # nothing held back while the upstream was still sending
    assert [m["more_body"] for m in at_once] == [False]
    (only,) = at_once
    # the upstream's bytes forwarded unchanged (less the usage chunk the client did not ask
    # for), then the end
    assert only["body"] == b"".join(frames[:-1]) + b"data: [DONE]\n\n"
