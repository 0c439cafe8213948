"""`chatgate serve` with no config and no keys answers from the embedded local model, and the
official openai SDK works against it unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.gateway_harness import serve
from tests.markers import REAL_MODEL

pytestmark = REAL_MODEL


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with serve(None, tmp_path_factory) as gateway:
        yield gateway.openai_client()


def test_zero_config_lists_the_local_model(client: openai.OpenAI) -> None:
    assert "smollm2-135m" in [m.id for m in client.models.list()]


def test_zero_config_chat_non_stream(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
    )
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None
    assert 0 < out.usage.completion_tokens <= 8


def test_zero_config_chat_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0


SYSTEM_BLOCKS: list[Any] = [
    {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "Answer in English."},
]


@pytest.fixture(scope="module")
def claude(client: openai.OpenAI) -> anthropic.Anthropic:
    base = str(client.base_url).removesuffix("/v1/")
    return anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)


def test_system_blocks_from_the_anthropic_sdk_are_answered(claude: anthropic.Anthropic) -> None:
    """As Claude Code sends them: a list of text blocks with cache_control (was: 500 x3)."""
    ask: Any = {
        "model": "smollm2-135m",
        "max_tokens": 8,
        "system": SYSTEM_BLOCKS,
        "messages": [{"role": "user", "content": "Say hi."}],
    }
    answer = claude.messages.create(**ask)
    assert answer.stop_reason in ("end_turn", "max_tokens")
    with claude.messages.stream(**ask) as stream:
        final = stream.get_final_message()
    assert final.stop_reason in ("end_turn", "max_tokens")


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_the_server_refuses_is_a_400(client: openai.OpenAI, stream: bool) -> None:
    """The server answers 500 to it (was: retried three times, then 500)."""
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=8,
            stream=stream,
            extra_body={"min_p": 5},  # llama.cpp's own parameter, sent as it is
        )
    assert "min_p: Input should be less than or equal to 1" in info.value.message
