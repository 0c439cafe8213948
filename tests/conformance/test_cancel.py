"""A caller that stops reading closes the upstream connection at once, for every provider:
no stream keeps running (and billing) after its reader left."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.conftest import Ask
from tests.conformance.providers import Fake, Provider


def _endless(provider: Provider) -> object:
    reply = provider.stream([f"w{i} " for i in range(200)], 5, 200)
    reply.chunk_delay_s = 0.02
    return reply


def test_breaking_out_of_the_loop_closes_upstream(
    provider: Provider, upstream: Fake, ask: Ask
) -> None:
    upstream.script(_endless(provider))
    for chunk in ask(stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            break
    assert upstream.wait_for_disconnect(timeout_s=1.0)


async def test_breaking_out_of_the_async_loop_closes_upstream(
    provider: Provider, upstream: Fake, aask: Ask
) -> None:
    upstream.script(_endless(provider))
    stream = await aask(stream=True)
    async for _ in stream:
        break
    await asyncio.sleep(0)  # the loop's async-generator finalizer runs aclose() next tick
    assert await asyncio.to_thread(upstream.wait_for_disconnect, 1, 1.0)


def test_closing_the_stream_closes_upstream(provider: Provider, upstream: Fake, ask: Ask) -> None:
    upstream.script(_endless(provider))
    with ask(stream=True) as stream:
        next(iter(stream))
    assert upstream.wait_for_disconnect(timeout_s=1.0)


async def test_cancelling_the_task_closes_upstream(
    provider: Provider, upstream: Fake, aask: Ask
) -> None:
    upstream.script(_endless(provider))
    started = asyncio.Event()

    async def consume() -> None:
        stream = await aask(stream=True)
        async for _ in stream:
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)  # reading, not merely connecting
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(upstream.wait_for_disconnect, 1, 1.0)
