"""The aiohttp transport's session per event loop: reused call after call (its keep-alive
pool), replaced once closed; against the fake OpenAI upstream on loopback."""

from __future__ import annotations

import orjson

from chatgate.transport.aiohttp_transport import AiohttpTransport
from chatgate.transport.base import Timeouts
from chatgate.transport.http import send, use_transport
from chatgate.transport.request import HttpRequest
from tests.fakes.openai_server import FakeOpenAI

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _request(fake: FakeOpenAI) -> HttpRequest:
    headers = {"authorization": "Bearer k", "content-type": "application/json"}
    return HttpRequest("POST", f"{fake.base_url}/chat/completions", headers, orjson.dumps(BODY))


async def test_calls_on_one_loop_share_a_session_and_a_closed_one_is_replaced(
    fake: FakeOpenAI,
) -> None:
    transport = AiohttpTransport()
    with use_transport(transport):
        first = await send(_request(fake), Timeouts())
        assert first.status == 200
        (state,) = transport._sessions.values()
        session = state.session
        assert (await send(_request(fake), Timeouts())).status == 200
        assert state.session is session  # the same pool: no new session per call

        await session.close()  # closed under it (say, by the caller's own cleanup)
        again = await send(_request(fake), Timeouts())
        assert again.status == 200
        (state,) = transport._sessions.values()
        assert state.session is not session
        assert not state.session.closed

        await transport.aclose()
        assert not transport._sessions
        assert (await send(_request(fake), Timeouts())).status == 200
        await transport.aclose()
