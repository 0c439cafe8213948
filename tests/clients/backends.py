"""One fake upstream per backend kind (OpenAI-format, Anthropic, Gemini), and the model_list
that serves each under its kind's name: what the client suites run every endpoint against."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import LoopbackServer
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import deployment

__all__ = ["BACKENDS", "model_list", "upstreams", "upstreams_of_every_kind"]

Upstream = LoopbackServer[Any, Any]

BACKENDS = ("openai", "anthropic", "gemini")
_MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}


@contextlib.contextmanager
def upstreams_of_every_kind() -> Iterator[dict[str, Upstream]]:
    with FakeOpenAI() as openai_fake, FakeAnthropic() as claude, FakeGemini() as gemini:
        yield {"openai": openai_fake, "anthropic": claude, "gemini": gemini}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Upstream]]:
    """The fixture: one fake of each kind for a test module (import it by name)."""
    with upstreams_of_every_kind() as fakes:
        yield fakes


def model_list(upstreams: dict[str, Upstream]) -> list[dict[str, Any]]:
    """A model_list entry per kind, named by the kind ("openai", "anthropic", "gemini")."""
    return [deployment(kind, upstreams[kind], _MODELS[kind]) for kind in BACKENDS]
