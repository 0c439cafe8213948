"""response_model against the fake OpenAI, Anthropic and Gemini upstreams, asserting on the
requests they received."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Annotated, Literal

import orjson
import pytest
from pydantic import BaseModel, Field, field_validator

import chatgate
from chatgate.errors import InvalidRequestError, StructuredOutputError
from chatgate.structured import Structured
from tests.fakes.anthropic_server import FakeAnthropic, message_json
from tests.fakes.anthropic_server import usage_json as anthropic_usage
from tests.fakes.gemini_server import FakeGemini, candidate_json, response_json
from tests.fakes.gemini_server import usage_json as gemini_usage
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json

ASK = [{"role": "system", "content": "be exact"}, {"role": "user", "content": "a cat please"}]


class Color(enum.Enum):
    BLACK = "black"
    GINGER = "ginger"


class Toy(BaseModel):
    name: str


class Cat(BaseModel):
    kind: Literal["cat"]
    name: str
    age: int
    color: Color
    toys: list[Toy] = []
    nickname: str | None = None

    @field_validator("age")
    @classmethod
    def plausible(cls, value: int) -> int:
        if not 0 <= value <= 40:
            raise ValueError("a cat's age is between 0 and 40")
        return value


class Dog(BaseModel):
    kind: Literal["dog"]
    name: str


class Pet(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]


class Node(BaseModel):
    label: str
    children: list[Node] = []


GOOD = {"kind": "cat", "name": "Tom", "age": 3, "color": "ginger", "toys": [], "nickname": None}


def openai(fake: FakeOpenAI, **kw: object) -> dict[str, object]:
    return {"api_key": "sk-test", "api_base": fake.base_url, **kw}


def reply(content: object, prompt: int = 50, completion: int = 20) -> Reply:
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    return Reply(json=completion_json(text, prompt_tokens=prompt, completion_tokens=completion))


def test_openai_strict_schema_and_instance(fake: FakeOpenAI) -> None:
    fake.script(reply(GOOD))
    cat = chatgate.completion("openai/gpt-4o-mini", ASK, response_model=Cat, **openai(fake))
    assert isinstance(cat, Cat)
    assert cat.color is Color.GINGER
    fmt = fake.last.body["response_format"]
    assert fmt["type"] == "json_schema"
    spec = fmt["json_schema"]
    assert spec["name"] == "Cat"
    assert spec["strict"] is True
    schema = spec["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["kind", "name", "age", "color", "toys", "nickname"]
    assert schema["properties"]["nickname"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert schema["properties"]["kind"]["enum"] == ["cat"]
    assert schema["$defs"]["Toy"]["additionalProperties"] is False
    assert "default" not in orjson.dumps(schema).decode()
    assert fake.last.body["messages"] == ASK  # no instruction: the schema travels in the format


def test_validation_errors_are_fed_back_and_context_does_not_grow(fake: FakeOpenAI) -> None:
    bad1 = {**GOOD, "age": 99}
    bad2 = {**GOOD, "age": "old", "color": "purple"}
    fake.script(reply(bad1), reply(bad2), reply(GOOD))
    result = chatgate.completion_structured(
        "openai/gpt-4o-mini", ASK, Cat, max_retries=2, **openai(fake)
    )
    assert isinstance(result, Structured)
    assert result.value.age == 3
    assert [a.ok for a in result.attempts] == [False, False, True]
    assert "age: Value error, a cat's age is between 0 and 40 (got 99)" in result.attempts[0].errors
    sent = [r.body["messages"] for r in fake.requests]
    assert sent[0] == ASK
    assert len(sent[1]) == len(sent[2]) == len(ASK) + 2  # only the latest failure, every time
    assert sent[1][:2] == sent[2][:2] == ASK
    assert sent[2][2] == {"role": "assistant", "content": orjson.dumps(bad2).decode()}
    feedback = sent[2][3]
    assert feedback["role"] == "user"
    assert feedback["content"].startswith("Your previous answer does not match")
    assert "age: Input should be a valid integer" in feedback["content"]
    assert "color: Input should be 'black' or 'ginger'" in feedback["content"]
    assert "99" not in feedback["content"]  # the first failure is not resent
    assert result.usage.prompt_tokens == 150
    assert result.usage.completion_tokens == 60
    assert result.raw.content == orjson.dumps(GOOD).decode()


def test_error_holds_every_attempt_after_max_retries(fake: FakeOpenAI) -> None:
    fake.script(reply("not json"), reply({"kind": "cat"}))
    with pytest.raises(StructuredOutputError) as info:
        chatgate.completion("gpt-4o-mini", ASK, response_model=Cat, max_retries=1, **openai(fake))
    error = info.value
    assert error.reason == "retries"
    assert len(error.attempts) == 2
    assert error.attempts[0].errors == ["not JSON: the answer contains no JSON value"]
    assert any(e.startswith("name: Field required") for e in error.attempts[1].errors)
    assert error.usage.total_tokens == 140
    prompt, completion = error.usage.prompt_tokens, error.usage.completion_tokens
    assert error.cost == Decimal("0.00000015") * prompt + Decimal("0.0000006") * completion
    assert len(fake.requests) == 2


def test_feedback_on_cut_off_json_names_the_error_and_its_position(fake: FakeOpenAI) -> None:
    fake.script(reply('{"kind": "cat", "name": "Tom", "age": 3'), reply(GOOD))
    result = chatgate.completion_structured("openai/gpt-4o-mini", ASK, Cat, **openai(fake))
    [error] = result.attempts[0].errors
    assert error == "invalid JSON: EOF while parsing an object at line 1 column 39"
    feedback = fake.requests[1].body["messages"][-1]["content"]
    assert "- invalid JSON: EOF while parsing an object at line 1 column 39" in feedback
    assert "no JSON value" not in feedback


def test_token_budget_stops_retries_before_exceeding_it(fake: FakeOpenAI) -> None:
    fake.script(reply("{}", prompt=60, completion=40), reply("{}", prompt=60, completion=40))
    with pytest.raises(StructuredOutputError) as info:
        chatgate.completion(
            "gpt-4o-mini", ASK, response_model=Cat, max_retries=5, retry_budget_tokens=250,
            **openai(fake),
        )  # fmt: skip
    assert info.value.reason == "budget"
    assert len(fake.requests) == 2  # 100 + 100 fit in 250; a third would not
    assert "token budget of 250" in str(info.value)


def test_dollar_budget_with_unknown_price_allows_no_retry(fake: FakeOpenAI) -> None:
    fake.script(reply("{}"))
    with pytest.raises(StructuredOutputError, match="price is unknown") as info:
        chatgate.completion(
            "my-unpriced-model", ASK, response_model=Cat, retry_budget_usd="0.01", **openai(fake)
        )
    assert info.value.reason == "budget"
    assert len(fake.requests) == 1


def test_refusal_is_not_retried(fake: FakeOpenAI) -> None:
    body = completion_json(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    fake.script(Reply(json=body))
    with pytest.raises(StructuredOutputError, match="refused") as info:
        chatgate.completion("gpt-4o-mini", ASK, response_model=Cat, **openai(fake))
    assert info.value.reason == "refusal"
    assert len(fake.requests) == 1


async def test_union_recursive_and_list_types(fake: FakeOpenAI) -> None:
    fake.script(
        reply({"pet": {"kind": "dog", "name": "Rex"}}),
        reply({"label": "a", "children": [{"label": "b", "children": []}]}),
        reply({"value": [{"name": "ball"}, {"name": "mouse"}]}),
    )
    kw = openai(fake)
    pet = await chatgate.acompletion("gpt-4o-mini", ASK, response_model=Pet, **kw)
    assert isinstance(pet.pet, Dog)
    union = fake.last.body["response_format"]["json_schema"]["schema"]["properties"]["pet"]
    assert "anyOf" in union
    assert "oneOf" not in orjson.dumps(union).decode()
    tree = await chatgate.acompletion("gpt-4o-mini", ASK, response_model=Node, **kw)
    assert tree.children[0].label == "b"
    schema = fake.last.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert schema["$defs"]["Node"]["required"] == ["label", "children"]
    toys = await chatgate.acompletion("gpt-4o-mini", ASK, response_model=list[Toy], **kw)
    assert [t.name for t in toys] == ["ball", "mouse"]
    schema = fake.last.body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["value"]
    assert schema["properties"]["value"]["type"] == "array"


def test_dict_field_falls_back_to_non_strict_json_schema(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    class Scores(BaseModel):
        by_name: dict[str, int]

    fake.script(reply({"by_name": {"a": 1}}))
    scores = chatgate.completion("gpt-4o-mini", ASK, response_model=Scores, **openai(fake))
    assert scores.by_name == {"a": 1}
    spec = fake.last.body["response_format"]["json_schema"]
    assert "strict" not in spec
    assert "by_name: a dict field" in caplog.text
    with pytest.raises(InvalidRequestError, match="cannot express Scores"):
        chatgate.completion(
            "gpt-4o-mini", ASK, response_model=Scores, structured_mode="strict", **openai(fake)
        )


def test_prompt_mode_extracts_json_from_prose(fake: FakeOpenAI) -> None:
    fake.script(reply("Sure! Here it is:\n```json\n" + orjson.dumps(GOOD).decode() + "\n```"))
    cat = chatgate.completion(
        "gpt-4o-mini", ASK, response_model=Cat, structured_mode="prompt", **openai(fake)
    )
    assert cat.name == "Tom"
    body = fake.last.body
    assert "response_format" not in body
    instruction = body["messages"][1]
    assert body["messages"][0] == ASK[0]
    assert instruction["role"] == "system"
    assert instruction["content"].startswith("Answer with only a JSON object")
    assert '"Cat"' in instruction["content"]


def test_json_object_mode_for_registry_row(fake: FakeOpenAI) -> None:
    fake.script(reply(GOOD))
    cat = chatgate.completion("deepseek/deepseek-chat", ASK, response_model=Cat, **openai(fake))
    assert cat.age == 3
    assert fake.last.body["response_format"] == {"type": "json_object"}
    assert "JSON" in fake.last.body["messages"][1]["content"]


def test_structured_only_arguments_need_a_response_model(fake: FakeOpenAI) -> None:
    with pytest.raises(InvalidRequestError, match="max_retries needs response_model"):
        chatgate.completion("gpt-4o-mini", ASK, max_retries=2, **openai(fake))
    with pytest.raises(InvalidRequestError, match="response_format cannot be combined"):
        chatgate.completion(
            "gpt-4o-mini", ASK, response_model=Cat, response_format={"type": "json_object"},
            **openai(fake),
        )  # fmt: skip
    with pytest.raises(InvalidRequestError, match="stream=True cannot be combined"):
        chatgate.completion("gpt-4o-mini", ASK, response_model=Cat, stream=True, **openai(fake))
    assert fake.requests == []


def test_anthropic_forced_tool_and_feedback() -> None:
    def tool_answer(data: object) -> Reply:
        block = {"type": "tool_use", "id": "toolu_1", "name": "Cat", "input": data}
        usage = anthropic_usage(30, 10)
        return Reply(json=message_json([block], stop_reason="tool_use", usage=usage))

    with FakeAnthropic() as fake:
        fake.script(tool_answer({**GOOD, "age": -1}), tool_answer(GOOD))
        result = chatgate.completion_structured(
            "anthropic/claude-sonnet-4-20250514", ASK, Cat, api_key="sk-ant",
            api_base=fake.base_url,
        )  # fmt: skip
        first, second = (r.body for r in fake.requests)
    assert result.value.name == "Tom"
    assert result.usage.total_tokens == 80
    assert first["tool_choice"] == {"type": "tool", "name": "Cat"}
    (tool,) = first["tools"]
    assert tool["name"] == "Cat"
    assert tool["input_schema"]["properties"]["age"] == {"title": "Age", "type": "integer"}
    assert first["system"] == "be exact"
    assert first["messages"] == [{"role": "user", "content": "a cat please"}]
    assert len(second["messages"]) == 3
    assert second["messages"][1]["role"] == "assistant"
    assert orjson.loads(second["messages"][1]["content"]) == {**GOOD, "age": -1}
    feedback = second["messages"][2]["content"]
    assert "age: Value error, a cat's age is between 0 and 40 (got -1)" in feedback


def test_gemini_response_schema_and_recursive_fallback() -> None:
    def answer(data: object) -> Reply:
        text = orjson.dumps(data).decode()
        return Reply(json=response_json(candidate_json({"text": text}), usage=gemini_usage()))

    with FakeGemini() as fake:
        fake.script(answer(GOOD), answer({"label": "root", "children": []}))
        kw = {"api_key": "g-key", "api_base": fake.base_url}
        cat = chatgate.completion("gemini/gemini-2.5-flash", ASK, response_model=Cat, **kw)
        tree = chatgate.completion("gemini/gemini-2.5-flash", ASK, response_model=Node, **kw)
        first, second = (r.body for r in fake.requests)
    assert cat.color is Color.GINGER
    assert tree.label == "root"
    config = first["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["properties"]["color"]["enum"] == ["black", "ginger"]
    assert config["responseSchema"]["required"] == ["kind", "name", "age", "color"]
    # A recursive model cannot be a Gemini responseSchema: JSON mode, schema in the prompt.
    assert second["generationConfig"]["responseMimeType"] == "application/json"
    assert "responseSchema" not in second["generationConfig"]
    assert "Answer with only a JSON object" in second["systemInstruction"]["parts"][0]["text"]


def test_cost_is_summed_when_known(fake: FakeOpenAI) -> None:
    """meta.cost is filled by the cost layer; here the first attempt's answer is read back
    with a known price to check the sum is exact Decimal arithmetic."""
    from chatgate.accounting import Spend
    from chatgate.types import ChatResponse

    spend = Spend()
    for cost in ("0.0010", "0.0025"):
        response = ChatResponse.model_validate(completion_json("x"))
        response.meta.cost = Decimal(cost)
        spend.add(response)
    assert spend.total_cost == Decimal("0.0035")
    assert spend.usage.total_tokens == 24
    unknown = ChatResponse.model_validate(completion_json("x"))
    spend.add(unknown)
    assert spend.total_cost is None


def test_partial_objects_stream_field_by_field(fake: FakeOpenAI) -> None:
    from tests.fakes.openai_server import text_stream

    text = orjson.dumps(GOOD).decode()
    pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
    fake.script(Reply(chunks=text_stream(pieces)))
    events = list(chatgate.stream_structured("gpt-4o-mini", ASK, Cat, **openai(fake)))
    assert fake.last.body["stream"] is True
    assert fake.last.body["response_format"]["json_schema"]["strict"] is True
    *partials, last = events
    assert [list(p.fields) for p in partials] == [
        ["kind"],
        ["kind", "name"],
        ["kind", "name", "age"],
        ["kind", "name", "age", "color"],
        ["kind", "name", "age", "color", "toys"],
    ]
    assert partials[1].fields == {"kind": "cat", "name": "Tom"}
    assert last.done
    assert isinstance(last.value, Cat)
    assert last.fields == GOOD
    assert last.raw is not None
    assert last.raw.usage is not None


async def test_partial_objects_from_anthropic_forced_tool_stream() -> None:
    from tests.fakes.anthropic_server import events_for

    block = {"type": "tool_use", "id": "toolu_1", "name": "Cat", "input": GOOD}
    message = message_json([block], stop_reason="tool_use")
    with FakeAnthropic() as fake:
        fake.script(Reply(chunks=events_for(message, pieces=12)))
        stream = chatgate.astream_structured(
            "anthropic/claude-sonnet-4-20250514", ASK, Cat, api_key="k", api_base=fake.base_url
        )
        events = [e async for e in stream]
    assert len(events) >= 3
    assert events[-1].value == Cat.model_validate(GOOD)
    sizes = [len(e.fields) for e in events[:-1]]
    assert sizes == sorted(sizes)
    assert len(set(sizes)) == len(sizes)
