"""Streams through the cache: replays in the live chunk schema, stored only when complete,
and single-flight for identical concurrent requests, counted at the fake upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import openai.types.chat as oa
import pytest

import chatgate
from chatgate.cache import Cache
from chatgate.stream import ChatStream
from chatgate.types import ChatChunk, ChatResponse
from tests.clock import wait_until
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json, text_stream
from tests.integration.guarded_support import chats

HI = [{"role": "user", "content": "tell me three words"}]
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
}


async def ask(fake: FakeOpenAI, **kw: Any) -> Any:
    kw.setdefault("messages", HI)
    kw.setdefault("temperature", 0)
    return await chatgate.acompletion(
        model="openai/gpt-4o-mini", api_key="sk-test", api_base=fake.base_url, **kw
    )


async def read(stream: ChatStream) -> list[ChatChunk]:
    return [chunk async for chunk in stream]


def text(chunks: list[ChatChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def disconnected(fake: FakeOpenAI) -> None:
    """Wait until the upstream saw the client go (the loop must run for the flight to be
    cancelled); fail after 2 s."""
    await wait_until(lambda: fake.disconnects > 0, timeout_s=2.0, what="the upstream closed")


def wire(chunk: ChatChunk) -> dict[str, Any]:
    return chunk.model_dump(mode="json", exclude_unset=True)


async def test_replayed_stream_matches_the_live_one(fake: FakeOpenAI, cache: Cache) -> None:
    usage = {"stream_options": {"include_usage": True}}
    live_stream = await ask(fake, stream=True, **usage)
    assert not live_stream.cache_hit
    live = await read(live_stream)
    replay_stream = await ask(fake, stream=True, **usage)
    assert replay_stream.cache_hit
    replay = await read(replay_stream)
    assert chats(fake) == 1
    assert text(replay) == text(live) == "echo: tell me three words"
    # the same schema: role chunk first, finish chunk, then one usage chunk without choices
    assert replay[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in replay if c.choices][-1] == "stop"
    assert replay[-1].choices == []
    assert replay[-1].usage == live[-1].usage
    assert {(c.id, c.model, c.created) for c in replay} == {
        (live[0].id, live[0].model, live[0].created)
    }
    for chunk in replay:  # what the gateway writes parses as the openai SDK's chunk type
        oa.ChatCompletionChunk.model_validate(wire(chunk))
    live_final, replay_final = await live_stream.afinal(), await replay_stream.afinal()
    assert replay_final.choices == live_final.choices
    assert replay_final.usage == live_final.usage
    assert replay_final.meta.cache_hit
    assert replay_final.meta.cost == 0
    assert replay_stream.ttft_ms is not None
    # without include_usage the replay hides the usage chunk, like a live stream does
    assert all(c.choices for c in await read(await ask(fake, stream=True)))


async def test_non_stream_answer_replays_as_a_stream_with_tool_calls(
    fake: FakeOpenAI, cache: Cache
) -> None:
    from tests.fakes.openai_server import completion_json

    fake.script(
        Reply(json=completion_json(None, tool_calls=[TOOL_CALL], finish_reason="tool_calls"))
    )
    first = await ask(fake)
    stream = await ask(fake, stream=True)
    chunks = await read(stream)
    assert chats(fake) == 1
    final = await stream.afinal()
    assert final.choices[0].message.tool_calls == first.choices[0].message.tool_calls
    assert final.finish_reason == "tool_calls"
    for chunk in chunks:
        oa.ChatCompletionChunk.model_validate(wire(chunk))
    # and a streamed answer serves a later non-stream call
    again = await ask(fake, messages=[{"role": "user", "content": "streamed first"}], stream=True)
    await read(again)
    plain = await ask(fake, messages=[{"role": "user", "content": "streamed first"}])
    assert plain.meta.cache_hit
    assert plain.content == "echo: streamed first"
    assert chats(fake) == 2


async def test_aborted_or_failed_streams_are_never_stored(fake: FakeOpenAI, cache: Cache) -> None:
    words = ["one ", "two ", "three ", "four"]
    fake.script(Reply(chunks=text_stream(words), chunk_delay_s=0.02))
    stream = await ask(fake, stream=True)
    async for _ in stream:
        break  # the caller leaves early
    await stream.aclose()
    await disconnected(fake)
    fake.script(Reply(chunks=text_stream(words), drop_after=3))
    with pytest.raises(chatgate.APIConnectionError):
        await read(await ask(fake, stream=True))
    assert cache.stats.stores == 0
    complete = await ask(fake, stream=True)
    assert text(await read(complete)) == "echo: tell me three words"
    assert cache.stats.stores == 1
    assert chats(fake) == 3


async def test_fifty_identical_requests_make_one_upstream_call(
    fake: FakeOpenAI, cache: Cache
) -> None:
    fake.script(
        Reply(json=None, delay_s=0.05, chunks=None, raw=None)
        if False
        else Reply(delay_s=0.05, json=_answer())
    )
    results = await asyncio.gather(*(ask(fake) for _ in range(50)))
    assert chats(fake) == 1
    assert {r.content for r in results} == {"one answer"}
    assert sum(not r.meta.cache_hit for r in results) == 1
    assert cache.stats.coalesced == 49
    assert cache.stats.misses == 1


def _answer() -> Any:
    from tests.fakes.openai_server import completion_json

    return completion_json("one answer")


async def test_identical_streams_share_one_call_and_stream_live(
    fake: FakeOpenAI, cache: Cache
) -> None:
    fake.script(Reply(chunks=text_stream(["a ", "b ", "c"]), chunk_delay_s=0.03))
    streams = await asyncio.gather(*(ask(fake, stream=True) for _ in range(20)))
    plain = asyncio.ensure_future(ask(fake))  # a non-stream request joins the same flight
    readers = [s.__aiter__() for s in streams]
    first_chunks = await asyncio.gather(*(r.__anext__() for r in readers))
    assert all(c.choices[0].delta.role == "assistant" for c in first_chunks)
    assert chats(fake) == 1
    assert not plain.done()
    texts = await asyncio.gather(*(_rest(s, r) for s, r in zip(streams, readers, strict=True)))
    assert set(texts) == {"a b c"}
    assert (await plain).content == "a b c"
    assert (await plain).meta.cache_hit
    assert chats(fake) == 1
    assert sum(not s.cache_hit for s in streams) == 1


async def _rest(stream: ChatStream, reader: Any) -> str:
    async for _ in reader:
        pass
    final = await stream.afinal()
    return final.content or ""


async def test_an_upstream_error_reaches_every_waiter_and_is_not_kept(
    fake: FakeOpenAI, cache: Cache
) -> None:
    fake.script(Reply(status=500, delay_s=0.05, json=error_json("boom", "server_error")))
    results = await asyncio.gather(*(ask(fake) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, chatgate.InternalServerError) for r in results)
    assert chats(fake) == 1
    after = await ask(fake)  # the failure poisoned nothing: the next request calls again
    assert after.content == "echo: tell me three words"
    assert chats(fake) == 2


async def test_the_leader_leaving_does_not_fail_the_followers(
    fake: FakeOpenAI, cache: Cache
) -> None:
    fake.script(Reply(delay_s=0.1, json=_answer()))
    leader = asyncio.ensure_future(ask(fake))
    await wait_until(lambda: len(fake.requests) == 1, what="the leader's call upstream")
    followers = [asyncio.ensure_future(ask(fake)) for _ in range(3)]
    await asyncio.sleep(0.02)
    leader.cancel()
    answers = await asyncio.gather(*followers)
    assert [a.content for a in answers] == ["one answer"] * 3
    assert leader.cancelled()
    assert chats(fake) == 1
    assert (await ask(fake)).meta.cache_hit  # and the answer was stored


async def test_when_every_waiter_leaves_the_call_is_cancelled(
    fake: FakeOpenAI, cache: Cache
) -> None:
    fake.script(Reply(chunks=text_stream(["x "] * 50), chunk_delay_s=0.02))
    streams = await asyncio.gather(*(ask(fake, stream=True) for _ in range(3)))
    for stream in streams:
        await stream.__aiter__().__anext__()
        await stream.aclose()
    await disconnected(fake)
    assert cache.stats.stores == 0
    fresh = await ask(fake)
    assert not fresh.meta.cache_hit
    assert chats(fake) == 2


async def test_sampled_requests_are_never_coalesced(fake: FakeOpenAI, cache: Cache) -> None:
    fake.script(*(Reply(delay_s=0.05, json=_answer()) for _ in range(5)))
    await asyncio.gather(*(ask(fake, temperature=0.9) for _ in range(5)))
    assert chats(fake) == 5


async def test_a_stream_miss_returns_a_chat_stream(fake: FakeOpenAI, cache: Cache) -> None:
    stream = await ask(fake, stream=True)
    assert isinstance(stream, ChatStream)
    final: ChatResponse = await stream.afinal()
    assert final.meta.provider == "openai"
    assert final.meta.request_id == "req_fake_1"
    assert stream.request_id == "req_fake_1"
    assert not final.meta.cache_hit


def test_sync_stream_miss_then_hit(fake: FakeOpenAI, cache: Cache) -> None:
    kw: dict[str, Any] = {"api_key": "sk", "api_base": fake.base_url, "temperature": 0}
    with chatgate.completion("gpt-4o-mini", HI, stream=True, **kw) as live:
        assert not live.cache_hit
        words = [c.choices[0].delta.content for c in live if c.choices]
    assert "".join(w or "" for w in words) == "echo: tell me three words"
    left = chatgate.completion("gpt-4o-mini", HI, stream=True, **kw)
    assert left.cache_hit
    for _ in left:
        break  # leaving a replay early is harmless
    left.close()
    assert chatgate.completion("gpt-4o-mini", HI, **kw).meta.cache_hit
    assert chats(fake) == 1
