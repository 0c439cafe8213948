from __future__ import annotations

import pytest
from pydantic import ValidationError

from chatgate.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    ImageURL,
    TextPart,
    UserMessage,
)


def test_wire_sends_only_what_was_given_but_always_the_discriminators() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            UserMessage(content=[TextPart(text="hi"), ImagePart(image_url=ImageURL(url="u"))])
        ],
        temperature=None,
    )
    assert request.wire() == {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "u"}},
                ],
            }
        ],
        "temperature": None,  # explicitly given: sent as null, unlike fields never given
    }


def test_unknown_fields_survive_a_round_trip() -> None:
    raw = {
        "model": "m",
        "messages": [{"role": "user", "content": "x", "cache_control": {"type": "ephemeral"}}],
        "top_k": 3,
    }
    request = ChatRequest.model_validate(raw)
    assert request.wire() == raw


def test_roles_are_discriminated() -> None:
    request = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                }
            ],
        }
    )
    message = request.messages[0]
    assert isinstance(message, AssistantMessage)
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "f"


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]},
        {"tools": [{"type": "function", "function": {"name": "has space"}}]},
        {"temperature": 2.5},
        {"top_logprobs": 21},
    ],
)
def test_invalid_requests_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate(
            {"model": "m", "messages": [{"role": "user", "content": "x"}], **bad}
        )


def test_response_parses_openai_fields_and_reasoning() -> None:
    response = ChatResponse.model_validate_json(
        b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"a","reasoning_content":"think","refusal":null},'
        b'"finish_reason":"length","logprobs":null}],"usage":{"prompt_tokens":5,'
        b'"completion_tokens":7,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":2},'
        b'"completion_tokens_details":{"reasoning_tokens":4}}}'
    )
    assert response.content == "a"
    assert response.choices[0].message.reasoning_content == "think"
    assert response.truncated
    assert response.usage is not None
    assert response.usage.prompt_tokens_details is not None
    assert response.usage.prompt_tokens_details.cached_tokens == 2
    assert response.usage.completion_tokens_details is not None
    assert response.usage.completion_tokens_details.reasoning_tokens == 4
    assert response.meta.attempts == 1  # meta is not part of the wire model
    assert "meta" not in response.model_dump()


def test_chunk_with_empty_choices_and_usage() -> None:
    chunk = ChatChunk.model_validate_json(
        b'{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
        b'"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'
    )
    assert chunk.choices == []
    assert chunk.usage is not None
    assert chunk.usage.total_tokens == 3


def test_a_chunk_keeps_its_wire_json_until_it_is_copied_or_changed() -> None:
    raw = b'{"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": null}'
    chunk = ChatChunk.model_validate_json(raw)
    assert chunk.wire_json is None  # only an OpenAI-format stream reader keeps it
    chunk.keep_wire_json(raw)
    assert chunk.wire_json == raw
    assert chunk == ChatChunk.model_validate_json(raw)  # not part of equality
    assert chunk.model_copy(update={"usage": None}).wire_json is None
    assert "wire" not in chunk.model_dump_json()
    chunk.id = "changed"
    assert chunk.wire_json is None
    assert chunk.id == "changed"
