"""No provider credential in what the library raises, whatever the upstream echoes back.

``chatgate.acompletion`` against fake OpenAI, Anthropic, Gemini and Bedrock upstreams that echo
their credential in the error body and in the response headers, refused whole, refused before
a stream, and broken off mid-stream: the exception carries no piece of it in ``str()``,
``repr()``, ``args``, any attribute (walked recursively), or the exceptions it was raised from.
Also a message cut to its maximum length inside the key, the token-count endpoint, and the
log filter on chatgate's loggers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chatgate
from chatgate.errors import ChatgateError
from chatgate.redact import LOGGERS
from tests.fakes import anthropic_server as anth
from tests.fakes import bedrock_server as bedrock
from tests.fakes import gemini_server as gemini
from tests.fakes.openai_server import FakeOpenAI
from tests.faults.secret_echo import FOREIGN, KEYS, broken_stream, echo_headers, leaks, refused

HI = [{"role": "user", "content": "hi"}]
GEMINI_KEY = "gm-5d2a8f1c7e4b9a0d3f6c2e8b1a7d4f0c"


def everything(exc: BaseException) -> str:
    """str and repr of the exception and of everything reachable from it: args, attributes
    (recursively), the exceptions it was raised from or during."""
    out: list[str] = [str(exc)]
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        out.append(repr(obj))
        if isinstance(obj, BaseException):
            out.append(str(obj))
            for inner in (obj.args, obj.__cause__, obj.__context__):
                walk(inner, depth + 1)
        if isinstance(obj, dict):
            for key, value in obj.items():
                walk(key, depth + 1)
                walk(value, depth + 1)
        elif isinstance(obj, list | tuple | set):
            for item in obj:
                walk(item, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            for value in vars(obj).values():
                walk(value, depth + 1)

    walk(exc, 0)
    return "\n".join(out)


async def failure_of(model: str, stream: bool, **kw: Any) -> ChatgateError:
    with pytest.raises(ChatgateError) as caught:
        if stream:
            async for _ in await chatgate.acompletion(model, HI, stream=True, **kw):
                pass
        else:
            await chatgate.acompletion(model, HI, **kw)
    return caught.value


def check(exc: ChatgateError, *secrets: str) -> None:
    text = everything(exc)
    assert "***" in exc.message, exc.message  # scrubbed where it was, not dropped
    assert leaks(text) == [], text
    for secret in secrets:
        assert not any(secret[i : i + 8] in text for i in range(len(secret) - 7)), text


# -- OpenAI-format and Anthropic upstreams ------------------------------------------------------


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[anth.FakeAnthropic]:
    with anth.FakeAnthropic() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def upstreams(openai_fake: FakeOpenAI, anthropic_fake: anth.FakeAnthropic) -> dict[str, FakeOpenAI]:
    return {"openai": openai_fake, "anthropic": anthropic_fake}


MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5"}


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("stream", "failure"), [(False, "refused"), (True, "refused"), (True, "mid-stream")]
)
async def test_the_raised_error_carries_no_key(
    upstreams: dict[str, FakeOpenAI], upstream: str, stream: bool, failure: str
) -> None:
    fake = upstreams[upstream]
    fake.script(refused(upstream) if failure == "refused" else broken_stream(upstream))
    exc = await failure_of(MODELS[upstream], stream, api_base=fake.base_url, api_key=KEYS[upstream])
    assert exc.status_code is not None
    assert exc.status_code >= 500
    check(exc)


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_a_message_cut_inside_the_key_keeps_no_piece_of_it(
    upstreams: dict[str, FakeOpenAI], upstream: str
) -> None:
    """Error messages are cut to 2,000 characters; this one is cut 12 characters into the
    key, and those 12 characters are a piece of the key too."""
    fake = upstreams[upstream]
    prefix = len("Incorrect API key provided: ")
    fake.script(refused(upstream, pad=2000 - prefix - 12))
    exc = await failure_of(MODELS[upstream], False, api_base=fake.base_url, api_key=KEYS[upstream])
    assert len(exc.message) <= 2000
    check(exc)


async def test_a_key_in_custom_auth_headers_is_scrubbed_too(openai_fake: FakeOpenAI) -> None:
    """A deployment that authenticates with its own header (a gateway in front of the
    provider) has that header's value scrubbed like a key."""
    token = "hdr-tok-91c3e5a7b9d1f3a5c7e9b1d3f5a7c9e1"
    key = KEYS["openai"]
    openai_fake.script(refused("openai"))  # echoes KEYS["openai"]; the header value below too
    openai_fake.replies[-1].json["error"]["message"] += f" and X-Proxy-Auth {token}"
    exc = await failure_of(
        MODELS["openai"],
        False,
        api_base=openai_fake.base_url,
        api_key=key,
        extra_headers={"X-Proxy-Auth": token},
    )
    check(exc, token)


async def test_token_count_errors_carry_no_key(openai_fake: FakeOpenAI) -> None:
    """``count_tokens(use_api=True)`` calls Anthropic's count endpoint itself, not through
    send(): its errors are scrubbed too. (The OpenAI fake answers any path with the scripted
    reply, here an Anthropic error body.)"""
    openai_fake.script(refused("anthropic", status=401))
    with pytest.raises(ChatgateError) as caught:
        await chatgate.acount_tokens(
            MODELS["anthropic"],
            HI,
            use_api=True,
            api_base=f"http://127.0.0.1:{openai_fake.port}",
            api_key=KEYS["anthropic"],
        )
    assert openai_fake.last.path == "/v1/messages/count_tokens"
    check(caught.value)


def test_the_blocking_api_raises_the_same_scrubbed_errors(openai_fake: FakeOpenAI) -> None:
    key, base = KEYS["openai"], openai_fake.base_url
    openai_fake.script(refused("openai"), broken_stream("openai"))
    with pytest.raises(ChatgateError) as whole:
        chatgate.completion(MODELS["openai"], HI, api_base=base, api_key=key)
    check(whole.value)
    with pytest.raises(ChatgateError) as streamed:
        for _ in chatgate.completion(MODELS["openai"], HI, stream=True, api_base=base, api_key=key):
            pass
    check(streamed.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_router_that_tried_and_fell_back_raises_no_key(
    upstreams: dict[str, FakeOpenAI], stream: bool
) -> None:
    """Each failed attempt (a retry, then the fallback's) is scrubbed; the one raised and the
    ones it was raised during hold no key of either deployment."""
    entries = [
        {"model_name": name, "params": {"model": MODELS[name], "api_key": KEYS[name]}}
        for name in ("openai", "anthropic")
    ]
    for item, name in zip(entries, ("openai", "anthropic"), strict=True):
        item["params"]["api_base"] = upstreams[name].base_url
        upstreams[name].script(refused(name), refused(name))
    router = chatgate.Router(
        entries,
        fallbacks=[{"openai": ["anthropic"]}],
        num_retries=1,
        settings={"retry_base_delay": 0.01, "retry_max_delay": 0.02},
    )
    with pytest.raises(ChatgateError) as caught:
        if stream:
            async for _ in await router.acompletion("openai", HI, stream=True):
                pass
        else:
            await router.acompletion("openai", HI)
    tried = {name: 2 - len(fake.replies) for name, fake in upstreams.items()}
    assert tried == {"openai": 2, "anthropic": 2}  # a try and a retry each
    check(caught.value)


# -- Gemini: the key travels in x-goog-api-key -------------------------------------------------


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[gemini.FakeGemini]:
    with gemini.FakeGemini() as fake:
        yield fake


def gemini_error(status: int = 500) -> dict[str, Any]:
    text = f"API key not valid: {GEMINI_KEY}; also {FOREIGN}"
    return gemini.error_json(status, "INTERNAL", text)


@pytest.mark.parametrize(
    ("stream", "failure"), [(False, "refused"), (True, "refused"), (True, "mid-stream")]
)
async def test_gemini_errors_carry_no_key(
    gemini_fake: gemini.FakeGemini, stream: bool, failure: str
) -> None:
    headers = echo_headers(GEMINI_KEY)
    if failure == "refused":
        gemini_fake.script(gemini.Reply(status=500, json=gemini_error(), headers=headers))
    else:
        first = gemini.response_json(gemini.candidate_json({"text": "Hi"}, finish_reason=None))
        gemini_fake.script(gemini.stream_reply([first, gemini_error()], headers=headers))
    exc = await failure_of(
        "gemini/gemini-2.5-flash", stream, api_base=gemini_fake.base_url, api_key=GEMINI_KEY
    )
    check(exc, GEMINI_KEY)


# -- Bedrock: the AWS secret key signs, the session token travels ------------------------------

SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD"


@pytest.fixture
def bedrock_fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[bedrock.FakeBedrock]:
    with bedrock.FakeBedrock() as server:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", bedrock.ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", bedrock.SECRET_KEY)
        monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
        monkeypatch.setenv("AWS_REGION", "eu-west-3")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        yield server


@pytest.mark.parametrize(
    ("stream", "failure"), [(False, "refused"), (True, "refused"), (True, "mid-stream")]
)
async def test_bedrock_errors_carry_no_aws_secret(
    bedrock_fake: bedrock.FakeBedrock, stream: bool, failure: str
) -> None:
    text = f"signature for {bedrock.SECRET_KEY} with token {SESSION_TOKEN} is invalid"
    headers = {"x-amzn-requestid": SESSION_TOKEN}
    if failure == "refused":
        reply = bedrock.error_reply(500, "InternalServerException", text, **headers)
    else:
        events = [
            *bedrock.text_events(["Hi"])[:2],
            bedrock.exception("internalServerException", text),
        ]
        reply = bedrock.Reply(events=events, headers=headers)
    bedrock_fake.script(reply)
    exc = await failure_of("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", stream)
    check(exc, bedrock.SECRET_KEY, SESSION_TOKEN)


# -- log records ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOGGERS)
def test_chatgate_loggers_never_write_a_key_shape(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=name):
        logging.getLogger(name).warning("upstream said %s", f"bad key {FOREIGN}")
        try:
            raise ValueError(f"auth header was Bearer {FOREIGN}")
        except ValueError:
            logging.getLogger(name).exception("failed")
    assert "bad key ***" in caplog.text
    assert leaks(caplog.text) == [], caplog.text


def test_the_filter_covers_every_logger_chatgate_writes_to() -> None:
    """A logger's filter applies to its own records only: the list must name them all."""
    source = Path(chatgate.__file__).parent
    named = set()
    for path in source.rglob("*.py"):
        named |= set(re.findall(r'getLogger\("(chatgate[^"]*)"\)', path.read_text()))
    assert named - {"chatgate.access"} <= set(LOGGERS), named - set(LOGGERS)
