"""What the routing-tag tests of batches share: two live fakes and two batch-API fakes, the
second of each pair to be tagged ``eu``, and the chat requests a fake was sent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.fakes.openai_batches import BatchScript, FakeOpenAIBatches
from tests.fakes.openai_server import FakeOpenAI

__all__ = ["LLAMA", "MINI", "Fakes", "chats", "fake_set"]

LLAMA = "groq/llama-3.1-8b-instant"  # no batch API: a live line
MINI = "openai/gpt-4o-mini"  # OpenAI's batch API

Fakes = tuple[FakeOpenAI, FakeOpenAI, FakeOpenAIBatches, FakeOpenAIBatches]  # us, eu, us, eu


@contextmanager
def fake_set(polls: int = 0) -> Iterator[Fakes]:
    """us, eu (live), us, eu (batch APIs whose batches end after ``polls`` status reads)."""
    with (
        FakeOpenAI() as us,
        FakeOpenAI() as eu,
        FakeOpenAIBatches(BatchScript(polls=polls)) as us_batch,
        FakeOpenAIBatches(BatchScript(polls=polls)) as eu_batch,
    ):
        yield us, eu, us_batch, eu_batch


def chats(upstream: FakeOpenAI) -> int:
    """The chat completions ``upstream`` was sent."""
    return sum(r.path.endswith("/chat/completions") for r in upstream.requests)
