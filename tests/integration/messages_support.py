"""A real `chatgate serve` in front of one fake upstream of each kind, for the /v1/messages
tests (tests/integration/test_messages_*.py, tests/clients/test_anthropic_sdk.py).

Model names: ``gpt`` (OpenAI format, gpt-4o: no reasoning_effort), ``reasoner`` (OpenAI
format, o3-mini), ``claude`` (Anthropic), ``gem`` (Gemini 2.5), ``claude-or-gpt`` (Anthropic,
falling back to ``gpt``).
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock_server import ACCESS_KEY, SECRET_KEY, FakeBedrock
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

MASTER = "sk-master-messages-test-7"
UPSTREAM_KEY = "sk-upstream-messages-never-shown"


@dataclass
class Answer:
    status_code: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def call(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> Answer:
    """One HTTP request with urllib (``body``: JSON-ready, or raw bytes): every status is an
    answer, none an exception; no answer within 20 s raises."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:
            return Answer(
                resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
            )
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read().decode())


@dataclass
class Backends:
    gateway: Gateway
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    gemini: FakeGemini
    bedrock: FakeBedrock

    @property
    def url(self) -> str:
        return self.gateway.url

    def clear(self) -> None:
        for fake in (self.openai, self.anthropic, self.gemini, self.bedrock):
            fake.replies.clear()
            fake.requests.clear()

    def post(
        self, path: str, body: Any, key: str = MASTER, headers: dict[str, str] | None = None
    ) -> Answer:
        sent = {"x-api-key": key, "anthropic-version": "2023-06-01", **(headers or {})}
        return call("POST", f"{self.url}{path}", body, sent)

    def get(self, path: str, key: str = MASTER, **headers: str) -> Answer:
        return call("GET", f"{self.url}{path}", None, {"authorization": f"Bearer {key}", **headers})

    def new_key(self, **fields: Any) -> str:
        return self.gateway.new_key(**fields)


def _aws_env(tmp: Path, endpoint: str) -> dict[str, str]:
    """The gateway process's AWS credentials and endpoint: the fake's, nothing from the host."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "eu-west-3",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": endpoint,
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextlib.contextmanager
def backends_gateway(tmp: Path) -> Iterator[Backends]:
    with FakeOpenAI() as oai, FakeAnthropic() as ant, FakeGemini() as gem, FakeBedrock() as bed:
        key = {"api_key": UPSTREAM_KEY}
        config = gateway_config(
            deployment("gpt", oai, "openai/gpt-4o", **key),
            deployment("reasoner", oai, "openai/o3-mini", **key),
            deployment("claude", ant, "anthropic/claude-sonnet-4-5", **key),
            deployment("gem", gem, "gemini/gemini-2.5-flash", **key),
            deployment("claude-or-gpt", ant, "anthropic/claude-sonnet-4-5", **key),
            {
                "model_name": "bedrock",
                "params": {"model": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"},
            },
            master_key=MASTER,
            router={
                "timeout": 15,
                "num_retries": 0,
                "cooldown_time": 0,
                "fallbacks": [{"claude-or-gpt": ["gpt"]}],
            },
        )
        with serve(config, tmp, env=_aws_env(tmp, bed.url)) as gateway:
            yield Backends(gateway, oai, ant, gem, bed)


def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """One gateway and its fakes per test module:
    ``backends = pytest.fixture(scope="module")(module_gateway)``."""
    with backends_gateway(tmp_path_factory.mktemp("messages")) as running:
        yield running


def fresh_gateway(backends: Backends) -> Backends:
    """The module's gateway with the fakes' scripts and records emptied:
    ``fresh = pytest.fixture(fresh_gateway)``."""
    backends.clear()
    return backends
