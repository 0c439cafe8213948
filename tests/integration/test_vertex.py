"""vertex_ai/<model>: the Gemini adapter on Vertex AI's URLs with an OAuth bearer token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import chatgate
from chatgate.providers.gemini.vertex import vertex_base
from tests.fakes.gemini_server import FakeGemini

HI = [{"role": "user", "content": "hi"}]
TOKEN = "ya29.test-access-token"


@pytest.fixture
def gem() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def test_vertex_url_and_bearer_token(gem: FakeGemini) -> None:
    base = f"{gem.root_url}/v1/projects/my-proj/locations/europe-west4"
    response = chatgate.completion(
        model="vertex_ai/gemini-2.0-flash", messages=HI, api_key=TOKEN, api_base=base
    )
    assert response.content == "echo: hi"
    sent = gem.last
    assert sent.path == (
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/"
        "gemini-2.0-flash:generateContent"
    )
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in {k.lower() for k in sent.headers}
    assert response.meta.provider == "vertex_ai"


async def test_vertex_stream(gem: FakeGemini) -> None:
    base = f"{gem.root_url}/v1/projects/p/locations/us-central1"
    stream = await chatgate.acompletion(
        model="vertex_ai/gemini-2.0-flash",
        messages=[{"role": "user", "content": "stream this"}],
        api_key=TOKEN,
        api_base=base,
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: stream this"
    assert gem.last.path.endswith(":streamGenerateContent?alt=sse")
    await chatgate.aclose()


def test_project_and_location_build_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    assert vertex_base("p", "us-east5") == (
        "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5"
    )
    assert vertex_base("p", "global") == (
        "https://aiplatform.googleapis.com/v1/projects/p/locations/global"
    )
    for name in ("VERTEXAI_PROJECT", "GOOGLE_CLOUD_PROJECT", "VERTEXAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(chatgate.InvalidRequestError, match="VERTEXAI_PROJECT"):
        chatgate.completion(model="vertex_ai/gemini-2.0-flash", messages=HI, api_key=TOKEN)
