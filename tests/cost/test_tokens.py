"""Token counting: exact OpenAI counts with the bundled encodings, images, tools, estimates,
and the provider count endpoints against the loopback fakes."""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import chatgate
from chatgate.cost.images import image_size, image_tokens
from chatgate.cost.tokens import acount_tokens, count_tokens, render_tools
from tests.fakes.anthropic_server import FakeAnthropic, count_tokens_of
from tests.fakes.gemini_server import FakeGemini

# OpenAI cookbook "How to count tokens with tiktoken": these messages are 129 prompt tokens on
# gpt-3.5-turbo / gpt-4 and 124 on gpt-4o / gpt-4o-mini, as counted by the OpenAI API.
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "expected", "encoding"),
    [
        ("gpt-3.5-turbo", 129, "cl100k_base"),
        ("openai/gpt-4", 129, "cl100k_base"),
        ("gpt-4o", 124, "o200k_base"),
        ("openai/gpt-4o-mini", 124, "o200k_base"),
        ("azure/gpt-4o-2024-08-06", 124, "o200k_base"),
    ],
)
def test_openai_counts_match_the_api(model: str, expected: int, encoding: str) -> None:
    counted = chatgate.count_tokens(model, messages=COOKBOOK)
    assert counted.tokens == expected
    assert counted.exact
    assert counted.method == f"tiktoken:{encoding}"


def test_text_and_message_models_and_unknown_names() -> None:
    assert count_tokens("gpt-4o", text="hello world").tokens == 2
    typed = [chatgate.ChatRequest(model="x", messages=COOKBOOK).messages[0]]
    assert count_tokens("gpt-4o", typed) == count_tokens("gpt-4o", COOKBOOK[:1])
    unknown = count_tokens("openai/some-future-model", COOKBOOK)
    assert (unknown.tokens, unknown.exact, unknown.method) == (124, False, "estimate:o200k_base")
    claude = count_tokens("anthropic/claude-sonnet-4-5", COOKBOOK)
    assert not claude.exact
    assert claude.method == "estimate:o200k_base"
    with pytest.raises(ValueError, match=r"messages=\.\.\. or text="):
        count_tokens("gpt-4o")


def test_gpt_oss_uses_the_harmony_encoding() -> None:
    counted = count_tokens("groq/gpt-oss-120b", text="hello world")
    assert counted.method == "estimate:o200k_harmony"
    assert counted.tokens == 2


def test_encodings_load_with_the_network_blocked_and_no_cache(tmp_path: Path) -> None:
    """A fresh interpreter with every socket refused and an empty tiktoken cache: counting
    works, so nothing was downloaded, and the cache directory stays empty."""
    code = f"""
import socket
def refuse(*a, **k):
    raise OSError("network is blocked in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import os
os.environ["TIKTOKEN_CACHE_DIR"] = {str(tmp_path)!r}
from chatgate.cost.encodings import get_encoding
from chatgate.cost.tokens import count_tokens
assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]
assert get_encoding("o200k_harmony").encode("<|start|>", allowed_special="all") == [200006]
print(count_tokens("gpt-4o", text="offline").tokens)
"""
    env = {"PYTHONPATH": str(Path(chatgate.__file__).parents[1]), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert list(tmp_path.iterdir()) == []


def _png(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _jpeg(width: int, height: int) -> str:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    data = b"\xff\xd8" + app0 + sof + b"\xff\xd9"
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def test_image_sizes_are_read_from_data_urls() -> None:
    assert image_size(_png(1024, 768)) == (1024, 768)
    assert image_size(_jpeg(640, 480)) == (640, 480)
    assert image_size("https://example.com/cat.png") is None


@pytest.mark.parametrize(
    ("model", "size", "detail", "tokens"),
    [
        # OpenAI's vision guide: 1024x1024 high -> 765; 2048x4096 high -> 1105; low -> 85.
        ("gpt-4o", (1024, 1024), "high", 765),
        ("gpt-4o", (2048, 4096), "high", 1105),
        ("gpt-4o", (4096, 8192), "low", 85),
        ("gpt-4o-mini", (1024, 1024), "high", 2833 + 5667 * 4),
        ("o3", (512, 512), "auto", 75 + 150),
        # Patch models: 1024x1024 is 1024 patches; 1800x2400 scales to 1452 patches.
        ("gpt-4.1-mini", (1024, 1024), None, 1659),
        ("gpt-4.1-nano", (1800, 2400), None, 3572),
    ],
)
def test_image_tokens_follow_the_published_formulas(
    model: str, size: tuple[int, int], detail: str | None, tokens: int
) -> None:
    counted = image_tokens(model, _png(*size), detail)
    assert (counted.tokens, counted.exact) == (tokens, True)


def test_images_in_messages_and_remote_images_are_worst_case() -> None:
    text_only = count_tokens("gpt-4o", [{"role": "user", "content": "what is this"}])
    parts = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": _png(1024, 1024), "detail": "high"}},
    ]
    with_image = count_tokens("gpt-4o", [{"role": "user", "content": parts}])
    assert with_image.tokens == text_only.tokens + 765
    assert with_image.exact
    remote = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    counted = count_tokens("gpt-4o", [{"role": "user", "content": remote}])
    assert not counted.exact
    assert counted.tokens >= 85 + 170 * 8  # the largest image gpt-4o can be sent


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["city"],
        },
    },
}


def test_tool_schemas_are_rendered_and_counted() -> None:
    assert render_tools([WEATHER]) == (
        "namespace functions {\n\n// Get the weather\ntype get_weather = (_: {\n"
        '// City name\ncity: string,\nunit?: "c" | "f",\ndays?: number[],\n}) => any;\n\n'
        "} // namespace functions"
    )
    messages = [{"role": "user", "content": "weather in Paris?"}]
    plain = count_tokens("gpt-4o", messages)
    with_tools = count_tokens("gpt-4o", messages, tools=[WEATHER])
    rendered = count_tokens("gpt-4o", text=render_tools([WEATHER])).tokens
    assert with_tools.tokens == plain.tokens + rendered + 9
    assert not with_tools.exact  # the rendering is OpenAI's, but not guaranteed to the token


async def test_anthropic_count_endpoint_gets_the_adapters_body() -> None:
    with FakeAnthropic() as fake:
        counted = await acount_tokens(
            "anthropic/claude-sonnet-4-5",
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            tools=[WEATHER],
            use_api=True,
            api_key="sk-ant-test",
            api_base=fake.base_url,
        )
        sent = fake.last
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert set(sent.body) == {"model", "messages", "system", "tools"}  # no max_tokens
    assert (counted.tokens, counted.exact, counted.method) == (
        count_tokens_of(sent.body),
        True,
        "anthropic_api",
    )


def test_gemini_count_endpoint_sync() -> None:
    with FakeGemini() as fake:
        counted = count_tokens(
            "gemini/gemini-2.5-flash",
            text="hello there",
            use_api=True,
            api_key="g-key",
            api_base=fake.base_url,
        )
        sent = fake.last
    assert sent.path.endswith("/models/gemini-2.5-flash:countTokens")
    request = sent.body["generateContentRequest"]
    assert request["model"] == "models/gemini-2.5-flash"
    assert request["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
    assert counted.method == "gemini_api"
    assert counted.exact


def test_count_endpoint_refuses_providers_without_one() -> None:
    with pytest.raises(chatgate.InvalidRequestError, match="no token count endpoint"):
        count_tokens("openai/gpt-4o", text="x", use_api=True, api_key="sk")
