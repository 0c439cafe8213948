"""response.cost on every answer, through the real client against each provider's fake:
the same answer streamed and not streamed costs exactly the same, and that is the figure
computed by hand from the provider's price page."""

from __future__ import annotations

from decimal import Decimal

import chatgate
from tests.fakes import anthropic_server as anth
from tests.fakes import bedrock_server as bed
from tests.fakes import gemini_server as gem
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, text_stream
from tests.integration.test_bedrock import bedrock  # noqa: F401  (the fixture)

HI = [{"role": "user", "content": "hi"}]
WORDS = ["Hello", " there", "!"]


async def both(model: str, **kw: object) -> tuple[chatgate.ChatResponse, chatgate.ChatResponse]:
    plain = await chatgate.acompletion(model, HI, **kw)
    stream = await chatgate.acompletion(model, HI, stream=True, **kw)
    return plain, await stream.afinal()


async def test_openai_cached_tokens(fake: FakeOpenAI) -> None:
    fake.script(
        Reply(
            json=completion_json(
                "Hello there!",
                model="gpt-4o",
                prompt_tokens=1000,
                completion_tokens=200,
                cached_tokens=400,
            )
        ),
        Reply(chunks=text_stream(WORDS, model="gpt-4o", usage=(1000, 200, 400))),  # type: ignore[arg-type]
    )
    plain, streamed = await both("openai/gpt-4o", api_key="sk", api_base=fake.base_url)
    # 600 x $2.50/M + 400 x $1.25/M + 200 x $10/M
    assert plain.cost == streamed.cost == Decimal("0.004")
    assert plain.content == streamed.content


async def test_anthropic_cache_reads_and_writes() -> None:
    usage = anth.usage_json(100, 300, cache_read=2000, cache_write=500)
    message = anth.message_json("Hello there!", model="claude-sonnet-4-5", usage=usage)
    with anth.fake_anthropic(Reply(json=message), Reply(chunks=anth.events_for(message))) as fake:
        plain, streamed = await both(
            "anthropic/claude-sonnet-4-5", api_key="sk-ant", api_base=fake.base_url
        )
    # 100 x $3/M + 2000 reads x $0.30/M + 500 writes x $3.75/M + 300 x $15/M
    assert plain.cost == streamed.cost == Decimal("0.007275")
    assert plain.usage == streamed.usage


async def test_gemini_thinking_tokens_and_long_context() -> None:
    def reply(prompt: int, stream: bool) -> Reply:
        usage = gem.usage_json(prompt, 400, thoughtsTokenCount=600)
        if not stream:
            return Reply(json=gem.response_json(gem.candidate_json({"text": "Hi!"}), usage=usage))
        first = gem.response_json(
            gem.candidate_json({"text": "H"}, finish_reason=None), usage=gem.usage_json(prompt, 1)
        )
        last = gem.response_json(gem.candidate_json({"text": "i!"}), usage=usage)
        return gem.stream_reply([first, last])

    with gem.fake_gemini(
        reply(1000, False), reply(1000, True), reply(250_000, False), reply(250_000, True)
    ) as fake:
        short = await both("gemini/gemini-2.5-pro", api_key="g", api_base=fake.base_url)
        long = await both("gemini/gemini-2.5-pro", api_key="g", api_base=fake.base_url)
    # thinking tokens are output: 1000 x $1.25/M + (400 + 600) x $10/M
    assert short[0].cost == short[1].cost == Decimal("0.01125")
    # over 200k prompt tokens: 250000 x $2.50/M + 1000 x $15/M
    assert long[0].cost == long[1].cost == Decimal("0.64")


async def test_bedrock_cache_reads_and_writes(bedrock: bed.FakeBedrock) -> None:  # noqa: F811
    usage = bed.usage_json(100, 300, cacheReadInputTokens=2000, cacheWriteInputTokens=500)
    bedrock.script(
        bed.Reply(json=bed.converse_json("Hello there!", usage=usage)),
        bed.Reply(events=bed.text_events(WORDS, usage=usage)),
    )
    plain, streamed = await both("bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0")
    assert plain.cost == streamed.cost == Decimal("0.007275")


async def test_unpriced_model_costs_none_and_free_local_is_zero(fake: FakeOpenAI) -> None:
    plain, streamed = await both("vllm/house-llama", api_base=fake.base_url)
    assert plain.cost is None
    assert streamed.cost is None
    chatgate.register_price("vllm/house-llama", input=1e-06, output=2e-06)
    priced = await chatgate.acompletion("vllm/house-llama", HI, api_base=fake.base_url)
    assert priced.usage is not None
    expected = priced.usage.prompt_tokens * Decimal("0.000001") + (
        priced.usage.completion_tokens * Decimal("0.000002")
    )
    assert priced.cost == expected


async def test_a_stream_cut_off_early_is_billed_for_what_it_produced(fake: FakeOpenAI) -> None:
    from chatgate.cost.calc import cost_of, partial_usage
    from chatgate.cost.prices import lookup_price

    fake.script(
        Reply(
            chunks=text_stream(["Hello", " there", " friend"], model="gpt-4o", usage=None),
            chunk_delay_s=0.05,
        )
    )
    stream = await chatgate.acompletion(
        "openai/gpt-4o", HI, stream=True, api_key="sk", api_base=fake.base_url
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content == " there":
            break  # the client went away
    await stream.aclose()
    used = partial_usage("openai/gpt-4o", HI, stream.snapshot())
    assert (used.prompt_tokens, used.completion_tokens) == (8, 2)  # "Hello there"
    price = lookup_price("openai/gpt-4o")
    assert price is not None
    assert cost_of(used, price) == 8 * Decimal("0.0000025") + 2 * Decimal("0.00001")
