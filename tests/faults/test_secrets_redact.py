"""chatgate.redact on its own: which credentials a deployment has, which shapes count as keys
(and which ordinary text does not), exceptions scrubbed in place, and the log filter a
running gateway installs with every credential of its config."""

from __future__ import annotations

import logging
from collections import namedtuple

import pytest
from botocore.credentials import ReadOnlyCredentials

from chatgate.config import parse
from chatgate.errors import APIConnectionError, InternalServerError
from chatgate.providers.base import Deployment
from chatgate.redact import MASK, RedactingFilter, Redactor, credentials, scrub_error
from chatgate.server.app import create_app
from tests.asgi_client import Lifespan
from tests.faults.secret_echo import FOREIGN, leaks

SHAPED = [
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
    "sk-ant-api03-Qm7Vx2Lp9Rt4Wy6Zb1Nc8Kd3",
    "sk-cg-4Yb0vQm2s8Zr1Lx7Nc5Kd3Hf9Gj0Ss",
    "AIzaSyD3x7Lq9Vb2Nm5Kp8Rt1Wy4Zc6Hf0Jg3Ds",
    "AKIAIOSFODNN7EXAMPLE",
    "ya29.a0AfH6SMBx7Lq9Vb2Nm5Kp8Rt1Wy4Zc6",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
    "gsk_Qm7Vx2Lp9Rt4Wy6Zb1Nc8Kd3Hf",
]
ORDINARY = [
    "task-management-system-configuration-file",
    "ask-me-anything-about-everything-today",
    "model claude-sonnet-4-20250514 and gpt-4o-mini-2024-07-18",
    "request req_fake_12 id chatcmpl-fake123 resp_53c304f74f3540cd99351de692bab111",
    "see https://platform.openai.com/account/api-keys for your key",
    "the Bearer scheme needs a token",
    "input token count (1200000) exceeds the maximum number of tokens allowed (1048576)",
]


@pytest.mark.parametrize("key", SHAPED)
def test_well_known_key_shapes_are_masked_whoever_owns_them(key: str) -> None:
    assert Redactor().text(f"bad key {key}, try again") == f"bad key {MASK}, try again"


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


def test_whatever_follows_bearer_is_masked() -> None:
    assert Redactor().text("got 'Bearer abc.def-123_xyz'") == f"got 'Bearer {MASK}'"


def test_credentials_of_a_deployment() -> None:
    aws = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY", "session-token-1")
    deployment = Deployment(
        provider="azure",
        model="m",
        api_base="http://127.0.0.1:1",
        api_key="key-0123456789",
        headers={
            "Authorization": "Bearer bearer-0123456789",
            "X-Api-Key": "header-key-0123",
            "anthropic-version": "2023-06-01",  # not a secret: kept out
            "api-key": "short",  # too short to be a credential: kept out
        },
        options={
            "azure_ad_token": "ad-token-0123456789",
            "aws_secret_access_key": "aws-secret-0123",
            "credentials": aws,
            "region": "eu-west-3",
        },
    )
    assert set(credentials(deployment)) == {
        "key-0123456789",
        "Bearer bearer-0123456789",
        "bearer-0123456789",
        "header-key-0123",
        "ad-token-0123456789",
        "aws-secret-0123",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
        "session-token-1",
    }


def test_a_secret_containing_another_is_masked_whole() -> None:
    redactor = Redactor(["abcdefgh", "abcdefgh-and-more"])
    assert redactor.text("x abcdefgh-and-more y") == f"x {MASK} y"


def test_an_exception_chain_is_scrubbed_in_place() -> None:
    """Foreign exceptions keep their types (a namedtuple argument stays one); only what held
    the secret changes."""
    key = "custom-secret-0123456789"
    Key = namedtuple("Key", "host token")  # like aiohttp's ConnectionKey
    cause = OSError(Key("example.org", key), f"refused with {key}")
    exc = APIConnectionError(f"connection failed: {key}", body={key: [key, 1]})
    exc.__cause__ = cause
    deployment = Deployment(provider="openai", model="m", api_base="", api_key=key)
    scrub_error(exc, deployment)
    assert exc.message == f"connection failed: {MASK}"
    assert exc.args == (exc.message,)
    assert exc.body == {MASK: [MASK, 1]}
    assert cause.args == (Key("example.org", MASK), f"refused with {MASK}")
    assert type(cause.args[0]) is Key


def test_without_a_deployment_key_shapes_are_still_masked() -> None:
    exc = InternalServerError(f"upstream said {FOREIGN}", request_id=FOREIGN)
    scrub_error(exc)
    assert leaks(repr(vars(exc)) + str(exc)) == []


async def test_a_running_gateway_logs_none_of_its_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The second line: a log call that formats something other than an error (none does
    today) still cannot write a configured key, though it has no well-known shape."""
    key, master = "plain-upstream-key-31415926", "plain-master-key-27182818"
    params = {"model": "openai/x", "api_base": "http://127.0.0.1:9", "api_key": key}
    config = {"model_list": [{"model_name": "m", "params": params}]}
    config["general_settings"] = {"master_key": master}
    app = create_app(parse(config))
    async with Lifespan(app):
        with caplog.at_level(logging.WARNING, logger="chatgate.server"):
            logging.getLogger("chatgate.server").warning("debugging %s and %s", key, master)
    assert "debugging *** and ***" in caplog.text
    assert key not in caplog.text
    assert master not in caplog.text


def test_only_a_secret_cut_at_the_end_counts_as_one() -> None:
    redactor = Redactor(["key-0123456789", "Bearer tok-0123456789", "tok-0123456789"])
    assert redactor.text("cut here: key-0123") == f"cut here: {MASK}"
    assert redactor.text("cut here: tok-01") == f"cut here: {MASK}"
    assert redactor.text("key-0123 in the middle") == "key-0123 in the middle"
    assert redactor.text("the scheme is Bearer") == "the scheme is Bearer"


def test_both_the_cause_and_the_context_are_scrubbed() -> None:
    key = "custom-secret-0123456789"
    exc = InternalServerError(f"outer {key}")
    exc.__cause__ = ValueError(f"cause {key}")
    exc.__context__ = KeyError(f"context {key}")
    scrub_error(exc, Deployment(provider="openai", model="m", api_base="", api_key=key))
    assert [str(e) for e in (exc.__cause__, exc.__context__)] == [
        f"cause {MASK}",
        repr(f"context {MASK}"),
    ]


def test_a_broken_log_format_is_left_to_logging() -> None:
    """The filter must not turn a bad format string into an exception in the caller: the
    record goes on, and logging reports the format error when a handler emits it."""
    record = logging.LogRecord(
        "chatgate", logging.WARNING, __file__, 1, "two %s %s", ("one",), None
    )
    assert RedactingFilter().filter(record) is True
