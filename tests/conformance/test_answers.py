"""A plain answer, a stream, a stream that breaks, an image: the same outcome from every
provider's fake, whatever its wire format."""

from __future__ import annotations

from decimal import Decimal

import pytest

import chatgate
from tests.conformance.conftest import Ask
from tests.conformance.providers import IMAGE, Fake, Provider


def test_plain_answer_with_usage_and_cost(provider: Provider, upstream: Fake, ask: Ask) -> None:
    upstream.script(provider.text("Hello there!", 1000, 200))
    response = ask()
    assert response.content == "Hello there!"
    assert response.finish_reason == "stop"
    assert response.meta.provider == provider.name
    assert response.meta.request_id == provider.request_id
    assert response.usage is not None
    usage = (response.usage.prompt_tokens, response.usage.completion_tokens)
    assert (*usage, response.usage.total_tokens) == (1000, 200, 1200)
    per_input, per_output = provider.price
    assert response.cost == (1000 * per_input + 200 * per_output) / Decimal(1_000_000)


async def test_stream_with_usage_and_final(provider: Provider, upstream: Fake, aask: Ask) -> None:
    upstream.script(provider.stream(["Hel", "lo ", "wörld"], 5, 3))
    stream = await aask(stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello wörld"
    assert chunks[-1].choices == []  # the usage chunk, asked for
    final = await stream.afinal()
    assert final.content == "Hello wörld"
    assert final.finish_reason == "stop"
    assert final.usage == chunks[-1].usage
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (5, 3)
    assert stream.request_id == provider.request_id


def test_sync_stream_hides_usage_chunk_unless_asked(
    provider: Provider, upstream: Fake, ask: Ask
) -> None:
    upstream.script(provider.stream(["a ", "b"], 5, 2))
    stream = ask(stream=True)
    chunks = list(stream)
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "a b"
    final = stream.final()
    assert final.usage is not None
    assert final.usage.completion_tokens == 2


def test_stream_ending_before_its_end_raises(provider: Provider, upstream: Fake, ask: Ask) -> None:
    upstream.script(provider.stream_without_end(["a ", "b ", "c"]))
    with pytest.raises(chatgate.APIConnectionError) as info:
        list(ask(stream=True))
    assert info.value.provider == provider.name


def test_connection_dropped_mid_stream_raises(provider: Provider, upstream: Fake, ask: Ask) -> None:
    reply = provider.stream(["a ", "b ", "c ", "d"], 5, 4)
    reply.drop_after, reply.chunk_delay_s = 3, 0.05  # paced: what was written gets out first
    upstream.script(reply)
    seen = []
    with pytest.raises(chatgate.APIConnectionError) as info:
        for chunk in ask(stream=True):
            seen.append(chunk)
    assert seen  # what arrived was delivered; the break is not a silent short answer
    assert info.value.provider == provider.name


def test_image_data_url_in_the_provider_form(provider: Provider, upstream: Fake, ask: Ask) -> None:
    parts = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": IMAGE}},
    ]
    upstream.script(provider.text("a cat", 9, 2))
    assert ask([{"role": "user", "content": parts}]).content == "a cat"
    assert provider.sent_parts(upstream.last.body) == provider.image_wire
