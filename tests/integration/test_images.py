"""download_images=True: image URLs fetched (once each) for providers that take only bytes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

import chatgate
from chatgate.images import inline_image_urls
from chatgate.types import ChatRequest
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def gem() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture
def host(fake: FakeOpenAI) -> FakeOpenAI:
    fake.files["/cat.png"] = (PNG, "image/png")
    fake.files["/page.html"] = (b"<html></html>", "text/html")
    return fake


def ask(url: str, twice: bool = False) -> list[dict[str, Any]]:
    image = {"type": "image_url", "image_url": {"url": url}}
    content = [{"type": "text", "text": "what is this"}, image] + ([image] if twice else [])
    return [{"role": "user", "content": content}]


def gemini(gem: FakeGemini, messages: list[dict[str, Any]], **kw: Any) -> Any:
    return chatgate.completion(
        model="gemini/gemini-2.0-flash",
        messages=messages,
        api_key="gk-test",
        api_base=gem.base_url,
        **kw,
    )


def test_gemini_gets_the_downloaded_bytes_inline(gem: FakeGemini, host: FakeOpenAI) -> None:
    url = f"http://127.0.0.1:{host.port}/cat.png"
    gemini(gem, ask(url, twice=True), download_images=True)
    inline = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}
    assert gem.last.body["contents"][0]["parts"] == [{"text": "what is this"}, inline, inline]
    assert [r.path for r in host.requests] == ["/cat.png"]  # fetched once for both parts


def test_without_opt_in_nothing_is_fetched_and_the_error_says_how(
    gem: FakeGemini, host: FakeOpenAI
) -> None:
    with pytest.raises(chatgate.InvalidRequestError, match="download_images=True"):
        gemini(gem, ask(f"http://127.0.0.1:{host.port}/cat.png"))
    assert host.requests == []
    assert gem.requests == []


@pytest.mark.parametrize(
    ("path", "problem"),
    [("/missing.png", "status 404"), ("/page.html", "'text/html', not an image")],
)
def test_a_bad_download_names_the_part_and_sends_nothing(
    gem: FakeGemini, host: FakeOpenAI, path: str, problem: str
) -> None:
    with pytest.raises(chatgate.InvalidRequestError, match=r"messages\[0\]\.content\[1\]") as info:
        gemini(gem, ask(f"http://127.0.0.1:{host.port}{path}"), download_images=True)
    assert problem in str(info.value)
    assert gem.requests == []


async def test_the_size_limit_stops_the_download(host: FakeOpenAI) -> None:
    request = ChatRequest.model_validate(
        {"model": "m", "messages": ask(f"http://127.0.0.1:{host.port}/cat.png")}
    )
    with pytest.raises(chatgate.InvalidRequestError, match="larger than"):
        await inline_image_urls(request, max_bytes=100)
    await chatgate.aclose()


def test_providers_that_fetch_urls_themselves_get_the_url(host: FakeOpenAI) -> None:
    url = f"http://127.0.0.1:{host.port}/cat.png"
    chatgate.completion(
        model="openai/gpt-4o-mini",
        messages=ask(url),
        api_key="sk-test",
        api_base=host.base_url,
        download_images=True,
    )
    assert host.last.body["messages"][0]["content"][1]["image_url"]["url"] == url
    assert [r.method for r in host.requests] == ["POST"]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failed_download_in_a_routed_call_frees_its_slot(
    gem: FakeGemini, host: FakeOpenAI, stream: bool
) -> None:
    params = {"model": "gemini/gemini-2.0-flash", "api_key": "gk", "api_base": gem.base_url}
    router = chatgate.Router([{"model_name": "g", "params": params}])
    missing = ask(f"http://127.0.0.1:{host.port}/missing.png")
    with pytest.raises(chatgate.InvalidRequestError, match="status 404"):
        await router.acompletion("g", missing, stream=stream, download_images=True)
    [stats] = await router.state.view(["g#0"], router.now())
    assert stats.in_flight == 0
    assert gem.requests == []
