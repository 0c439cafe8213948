"""Automatic cache points on Bedrock through the library, over a real socket to the fake
Bedrock (SigV4 checked on every call): sent only when opted in (``provider_options``), after
the system prompt, the last earlier turn and the final message; ``prompt_cache_key`` is not sent."""

from __future__ import annotations

from typing import Any

import chatgate
from tests.fakes.bedrock_server import FakeBedrock
from tests.integration import test_bedrock

bedrock = test_bedrock.bedrock  # the fake with AWS credentials in the environment

MODEL = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SYSTEM = "You are the support agent of a large online shop. " * 120  # ~1,500 tokens
MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "where is my order?"},
    {"role": "assistant", "content": "Which order number?"},
    {"role": "user", "content": "A-1234"},
]
POINT = {"cachePoint": {"type": "default"}}


def ask(**kw: Any) -> None:
    chatgate.completion(model=MODEL, messages=MESSAGES, max_tokens=50, **kw)


def test_cache_points_only_when_opted_in(bedrock: FakeBedrock) -> None:
    ask(provider_options={"auto_prompt_cache": True}, prompt_cache_key="thread-1")
    body = bedrock.last.body
    assert body["system"] == [{"text": SYSTEM}, POINT]
    assert body["messages"][1]["content"] == [{"text": "Which order number?"}, POINT]
    assert body["messages"][2]["content"] == [{"text": "A-1234"}, POINT]
    assert "prompt_cache_key" not in str(body)
    ask()
    assert POINT not in bedrock.last.body["system"]


def test_a_streamed_request_gets_them_too(bedrock: FakeBedrock) -> None:
    stream = chatgate.completion(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=50,
        stream=True,
        provider_options={"auto_prompt_cache": True},
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert bedrock.last.body["system"] == [{"text": SYSTEM}, POINT]
