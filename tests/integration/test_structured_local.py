"""response_model against the real local model (SmolLM2-135M via the managed llama.cpp
server): its json_schema translation is a grammar, so the answer parses and validates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel

import chatgate
from chatgate.providers.local import server
from tests.markers import REAL_MODEL

pytestmark = REAL_MODEL


class Verdict(BaseModel):
    answer: Literal["yes", "no"]
    sure: bool


@pytest.fixture(scope="module", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    asyncio.run(server.stop())


def test_response_model_validates_against_the_real_local_model() -> None:
    result = chatgate.completion_structured(
        "local/smollm2-135m",
        [{"role": "user", "content": "Is the sky blue? Answer yes or no."}],
        Verdict,
        max_tokens=32,
        temperature=0,
    )
    assert isinstance(result.value, Verdict)
    assert result.value.answer in ("yes", "no")
    assert result.mode == "json_schema"
    assert result.attempts[-1].ok
    assert result.usage.prompt_tokens > 0
    assert result.usage.completion_tokens > 0
