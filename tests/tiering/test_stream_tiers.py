"""Streams on a tiered name, against fake upstreams: an empty, refused or failed answer from
a cheaper tier is replaced by the next tier's while the caller has seen nothing of it; once
the answer has shown, the stream is the caller's, even if it stops at ``length``. The final
answer carries the tier and the saving either way."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from chatgate.cost.calc import cost_of
from chatgate.cost.prices import lookup_price
from chatgate.errors import BadRequestError, InternalServerError
from chatgate.router import Router
from chatgate.types import ChatResponse, Usage
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    chunk_json,
    completion_json,
    error_json,
    text_stream,
    usage_json,
)

ASK = [{"role": "user", "content": "hello there"}]  # the features send it to the cheap tier


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as cheap, FakeOpenAI() as premium:
        yield cheap, premium


@pytest.fixture(autouse=True)
def fresh(fakes: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[None]:
    yield
    for fake in fakes:
        fake.replies.clear()


def router(fakes: tuple[FakeOpenAI, FakeOpenAI], escalate_on: list[str]) -> Router:
    cheap, premium = fakes
    mini = {"model": "openai/gpt-4o-mini", "api_base": cheap.base_url, "api_key": "k"}
    full = {"model": "openai/gpt-4o", "api_base": premium.base_url, "api_key": "k"}
    tiered = {
        "model_name": "auto",
        "tiers": ["mini", "full"],
        "classifier": {"embeddings": "never"},
        "escalate_on": escalate_on,
    }
    return Router(
        [{"model_name": "mini", "params": mini}, {"model_name": "full", "params": full}],
        num_retries=0,
        tiers=[tiered],
    )


def stream_of(*chunks: Any, **reply: Any) -> Reply:
    return Reply(chunks=list(chunks), **reply)


def usage_chunk(prompt: int, completion: int) -> Any:
    return chunk_json(usage=usage_json(prompt, completion), no_choices=True)


async def read(r: Router) -> tuple[str, ChatResponse]:
    stream = await r.acompletion("auto", ASK, stream=True, stream_options={"include_usage": True})
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text, await stream.afinal()


def price(model: str, prompt: int, completion: int) -> Decimal:
    found = lookup_price(model)
    assert found is not None
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    usage.total_tokens = prompt + completion
    return cost_of(usage, found)


async def test_an_empty_streamed_answer_is_replaced_by_the_next_tier(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    cheap, premium = fakes
    cheap.script(
        stream_of(
            chunk_json({"role": "assistant", "content": ""}),
            chunk_json({}, finish_reason="stop"),
            usage_chunk(10, 0),
        )
    )
    premium.script(Reply(chunks=text_stream(["full ", "answer"], model="gpt-4o", usage=(10, 2))))
    text, final = await read(router(fakes, ["empty"]))
    assert text == "full answer"  # nothing of the empty answer reached the caller
    assert (final.meta.tier, final.meta.model_name) == ("full", "full")
    replaced = price("openai/gpt-4o-mini", 10, 0)
    assert final.meta.cost == price("openai/gpt-4o", 10, 2) + replaced
    assert final.meta.tier_saved_cost == -replaced  # the premium tier's price, paid twice


async def test_a_refusal_by_the_content_filter_escalates_too(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    cheap, premium = fakes
    cheap.script(
        stream_of(chunk_json({"role": "assistant"}), chunk_json({}, finish_reason="content_filter"))
    )
    premium.script(Reply(chunks=text_stream(["answered"], model="gpt-4o")))
    text, final = await read(router(fakes, ["empty"]))
    assert (text, final.meta.tier) == ("answered", "full")


async def test_a_stream_that_showed_its_answer_is_kept_even_when_cut_at_length(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    """The caller has read part of the answer: it cannot be taken back, so a ``length``
    finish after content is the caller's to see, never a switch mid-answer."""
    cheap, premium = fakes
    cheap.script(
        stream_of(
            chunk_json({"role": "assistant", "content": ""}),
            chunk_json({"content": "the first part"}),
            chunk_json({}, finish_reason="length"),
            usage_chunk(10, 4),
            chunk_delay_s=0.05,
        )
    )
    asked = len(premium.requests)
    text, final = await read(router(fakes, ["empty", "length"]))
    assert (text, final.finish_reason, final.meta.tier) == ("the first part", "length", "mini")
    assert len(premium.requests) == asked
    assert final.meta.tier_saved_cost == price("openai/gpt-4o", 10, 4) - price(
        "openai/gpt-4o-mini", 10, 4
    )


async def test_a_short_answer_cut_at_length_before_the_caller_saw_it_escalates(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    """Read ahead for ``empty``, the answer ended before showing any text: it is judged whole."""
    cheap, premium = fakes
    cheap.script(
        stream_of(chunk_json({"role": "assistant"}), chunk_json({}, finish_reason="length"))
    )
    premium.script(Reply(chunks=text_stream(["whole"], model="gpt-4o")))
    text, final = await read(router(fakes, ["empty", "length"]))
    assert (text, final.meta.tier) == ("whole", "full")


@pytest.mark.parametrize(
    "failure",
    [
        Reply(status=503, json=error_json("overloaded", "server_error")),
        # the connection drops after the role chunk: nothing of the answer was shown
        stream_of(chunk_json({"role": "assistant", "content": ""}), "", drop_after=1),
    ],
    ids=["503", "dropped"],
)
async def test_a_failure_before_the_first_chunk_escalates_with_error(
    fakes: tuple[FakeOpenAI, FakeOpenAI], failure: Reply
) -> None:
    cheap, premium = fakes
    cheap.script(failure)
    premium.script(Reply(chunks=text_stream(["rescued"], model="gpt-4o")))
    text, final = await read(router(fakes, ["empty", "error"]))
    assert (text, final.meta.tier) == ("rescued", "full")


async def test_without_error_in_escalate_on_a_failure_is_raised(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    cheap, premium = fakes
    cheap.script(Reply(status=500, json=error_json("boom", "server_error")))
    asked = len(premium.requests)
    with pytest.raises(InternalServerError):
        await read(router(fakes, ["empty"]))
    assert len(premium.requests) == asked


async def test_a_request_the_upstream_refuses_is_not_escalated(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    """A 400 is the request's fault: the next tier would refuse it too, and pay for it."""
    cheap, premium = fakes
    cheap.script(Reply(status=400, json=error_json("bad 'temperature'", "invalid_request_error")))
    asked = len(premium.requests)
    with pytest.raises(BadRequestError, match="temperature"):
        await router(fakes, ["error", "empty"]).acompletion("auto", ASK)
    assert len(premium.requests) == asked


async def test_an_empty_whole_answer_escalates(fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    cheap, premium = fakes
    cheap.script(Reply(json=completion_json("  ")))
    premium.script(Reply(json=completion_json("an answer", model="gpt-4o")))
    answer = await router(fakes, ["empty"]).acompletion("auto", ASK)
    assert (answer.content, answer.meta.tier) == ("an answer", "full")
    tool = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    cheap.script(Reply(json=completion_json(None, tool_calls=[tool], finish_reason="tool_calls")))
    called = await router(fakes, ["empty"]).acompletion("auto", ASK)
    assert called.meta.tier == "mini"  # a tool call is an answer


async def test_a_streamed_answer_without_escalation_is_not_read_ahead(
    fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    cheap, _ = fakes
    cheap.script(Reply(chunks=text_stream(["plain"], usage=(5, 1))))
    text, final = await read(router(fakes, []))
    assert (text, final.meta.tier) == ("plain", "mini")
    assert final.meta.tier_saved_cost == price("openai/gpt-4o", 5, 1) - price(
        "openai/gpt-4o-mini", 5, 1
    )
