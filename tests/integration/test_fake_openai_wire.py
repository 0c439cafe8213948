"""The fake upstream speaks OpenAI's wire format exactly: the official SDK parses all of it."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    chunk_json,
    completion_json,
    embedding_vector,
    error_json,
    usage_json,
)


def sdk(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)


def test_sdk_parses_non_stream_completion(fake: FakeOpenAI) -> None:
    fake.script(Reply(json=completion_json("Hi there", cached_tokens=2)))
    out = sdk(fake).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert out.choices[0].message.content == "Hi there"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert out.usage.total_tokens == 12
    assert out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 2
    assert fake.last.body["messages"] == [{"role": "user", "content": "hi"}]


def test_sdk_parses_echo_stream_with_usage(fake: FakeOpenAI) -> None:
    stream = sdk(fake).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "one two"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_sdk_reassembles_tool_call_fragments(fake: FakeOpenAI) -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    fake.script(
        Reply(
            chunks=[
                chunk_json({"role": "assistant", "content": None, "tool_calls": [call]}),
                chunk_json({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
                chunk_json(
                    {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]}
                ),
                chunk_json({}, finish_reason="tool_calls"),
                chunk_json(usage=usage_json(20, 10), no_choices=True),
            ]
        )
    )
    client = sdk(fake)
    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_completion()
    tool_calls = final.choices[0].message.tool_calls
    assert tool_calls is not None
    assert tool_calls[0].function.arguments == '{"city":"Oslo"}'
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
    ],
)
def test_sdk_maps_fake_errors(fake: FakeOpenAI, status: int, error_class: type) -> None:
    fake.script(
        Reply(
            status=status,
            json=error_json("nope", "some_error", code="c1"),
            headers={"retry-after": "1"},
        )
    )
    with pytest.raises(error_class) as info:
        sdk(fake).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == status
    assert info.value.code == "c1"


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_sdk_parses_fake_embeddings(fake: FakeOpenAI, encoding: str | None) -> None:
    """The SDK asks for base64 by default and decodes it itself: both forms must be exact."""
    kwargs = {} if encoding is None else {"encoding_format": encoding}
    with sdk(fake) as client:
        out = client.embeddings.create(
            model="text-embedding-3-small",
            input=["one two", "three"],
            dimensions=4,
            **kwargs,  # type: ignore[arg-type]  # the parametrized literal
        )
    assert fake.last.path == "/v1/embeddings"
    assert fake.last.body["encoding_format"] == (encoding or "base64")
    assert [e.index for e in out.data] == [0, 1]
    if encoding == "base64":
        assert isinstance(out.data[0].embedding, str)
        return
    assert out.data[0].embedding == pytest.approx(embedding_vector("one two", 4), rel=1e-6)
    assert out.usage.prompt_tokens == 3
    assert out.model == "text-embedding-3-small"
