"""Every scenario in this folder runs once per provider: ``provider`` names it, ``upstream`` is
its fake started for the test, ``ask`` calls chatgate at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import chatgate
from tests.conformance.native import Anthropic, Bedrock, Gemini
from tests.conformance.providers import Azure, Fake, Provider

PROVIDERS = [Provider(), Azure(), Anthropic(), Gemini(), Bedrock()]

Ask = Callable[..., Any]


@pytest.fixture(params=PROVIDERS, ids=repr)
def provider(request: pytest.FixtureRequest) -> Provider:
    chosen: Provider = request.param
    return chosen


@pytest.fixture
def upstream(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
    with provider.start(monkeypatch) as fake:
        yield fake


@pytest.fixture
def ask(provider: Provider, upstream: Fake) -> Ask:
    """chatgate.completion at the provider's fake; ``messages`` default to one "hi"."""

    def call(messages: list[Any] | None = None, **kw: Any) -> Any:
        messages = messages or [{"role": "user", "content": "hi"}]
        return chatgate.completion(messages=messages, **provider.call_args(upstream), **kw)

    return call


@pytest.fixture
def aask(provider: Provider, upstream: Fake) -> Ask:
    """The same through chatgate.acompletion."""

    async def call(messages: list[Any] | None = None, **kw: Any) -> Any:
        messages = messages or [{"role": "user", "content": "hi"}]
        return await chatgate.acompletion(messages=messages, **provider.call_args(upstream), **kw)

    return call
