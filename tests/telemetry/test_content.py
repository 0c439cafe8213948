"""Prompts and answers in the GenAI conventions' JSON shapes, scrubbed (pure functions)."""

from __future__ import annotations

import orjson

from chatgate.providers.base import Deployment
from chatgate.telemetry.content import input_messages, output_messages
from chatgate.telemetry.semconv import provider_name
from chatgate.types import ChatRequest, ChatResponse

SECRET = "sk-up-secret-0123456789"
DEPLOYMENT = Deployment("openai", "gpt-4o", "http://127.0.0.1:9/v1", api_key=SECRET)


def test_tool_calls_results_and_images_take_the_conventions_shapes() -> None:
    request = ChatRequest.model_validate(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "terse"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "look", "arguments": '{"q": 1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": f"found, key {SECRET}"},
            ],
        }
    )
    got = orjson.loads(input_messages(request.messages, DEPLOYMENT))
    assert got == [
        {"role": "system", "parts": [{"type": "text", "content": "terse"}]},
        {
            "role": "user",
            "parts": [{"type": "text", "content": "what is this?"}, {"type": "image"}],
        },
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "look", "arguments": {"q": 1}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": "found, key ***"}],
        },
    ]


def test_an_answer_keeps_its_finish_reason_and_loses_the_deployments_key() -> None:
    response = ChatResponse.model_validate(
        {
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"your key is {SECRET}"},
                    "finish_reason": "stop",
                }
            ],
        }
    )
    got = orjson.loads(output_messages(response, DEPLOYMENT))
    assert got == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "your key is ***"}],
            "finish_reason": "stop",
        }
    ]


def test_provider_names_follow_the_conventions() -> None:
    assert provider_name("gemini") == "gcp.gemini"
    assert provider_name("bedrock") == "aws.bedrock"
    assert provider_name("azure") == "azure.ai.openai"
    assert provider_name("groq") == "groq"
