"""Automatic prompt-cache breakpoints (providers/anthropic/cache_points.py) on the Messages API
and Bedrock Converse bodies, and the prefix hashes cache-aware routing keys on
(router/affinity.py): placement, the provider's limit, the model's minimum length, the
client's own breakpoints, and which prompts share a hash."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials

from chatgate.providers.anthropic.cache_points import (
    MAX_BREAKPOINTS,
    OPTION,
    anthropic_breakpoints,
    minimum_tokens,
)
from chatgate.providers.anthropic.request import build_body
from chatgate.providers.base import Deployment
from chatgate.providers.bedrock.request import converse_body
from chatgate.router.affinity import MemoryAffinity, prefix_hashes
from chatgate.types import ChatRequest

SONNET = Deployment("anthropic", "claude-sonnet-4-5", "https://x", "k", options={OPTION: True})
PLAIN = dataclasses.replace(SONNET, options={})
BEDROCK = Deployment(
    provider="bedrock",
    model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    api_base="https://bedrock-runtime.us-east-1.amazonaws.com",
    options={
        "region": "us-east-1",
        "credentials": ReadOnlyCredentials("AKIDEXAMPLE", "secret", None),
        OPTION: True,
    },
)
EPHEMERAL = {"type": "ephemeral"}
POINT = {"cachePoint": {"type": "default"}}
LONG = "You are a careful assistant. " * 200  # ~5,800 characters: ~1,450 tokens
TOOLS = [
    {
        "type": "function",
        "function": {"name": f"tool_{i}", "description": "d", "parameters": {"type": "object"}},
    }
    for i in range(3)
]


def chat(
    system: str | None = LONG, turns: int = 3, tools: list[Any] | None = None, **kw: Any
) -> ChatRequest:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for i in range(turns):
        messages.append({"role": "user", "content": f"question {i}"})
        messages.append({"role": "assistant", "content": f"answer {i}"})
    messages.append({"role": "user", "content": "the new question"})
    return ChatRequest.model_validate({"model": "m", "messages": messages, "tools": tools, **kw})


def marks(body: dict[str, Any]) -> int:
    """Every cache_control in a Messages API body."""
    count = int("cache_control" in body)
    for tool in body.get("tools") or ():
        count += "cache_control" in tool
    system = body.get("system")
    if isinstance(system, list):
        count += sum("cache_control" in b for b in system)
    for turn in body["messages"]:
        if isinstance(turn["content"], list):
            count += sum("cache_control" in b for b in turn["content"])
    return count


# -- the Messages API ---------------------------------------------------------------------------


def test_system_last_earlier_turn_and_final_message_are_marked_when_opted_in() -> None:
    body = build_body(chat(), SONNET)
    assert body["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
    earlier, final = body["messages"][-2], body["messages"][-1]
    assert earlier["role"] == "assistant"
    assert earlier["content"] == [{"type": "text", "text": "answer 2", "cache_control": EPHEMERAL}]
    assert final == {
        "role": "user",
        "content": [{"type": "text", "text": "the new question", "cache_control": EPHEMERAL}],
    }
    assert marks(body) == 3


def test_a_first_turn_marks_the_system_prompt_only() -> None:
    body = build_body(chat(turns=0), SONNET)  # one-shot so far: its question may never return
    assert body["system"][0]["cache_control"] == EPHEMERAL
    assert body["messages"] == [{"role": "user", "content": "the new question"}]
    assert marks(body) == 1


def test_nothing_is_marked_without_the_option() -> None:
    body = build_body(chat(), PLAIN)
    assert body["system"] == LONG
    assert marks(body) == 0


def test_a_long_tool_list_gets_its_own_breakpoint_within_the_limit() -> None:
    tools = [
        {"type": "function", "function": {"name": f"t{i}", "description": LONG[:1500]}}
        for i in range(4)
    ]
    body = build_body(chat(tools=tools), SONNET)
    assert body["tools"][-1]["cache_control"] == EPHEMERAL
    assert all("cache_control" not in t for t in body["tools"][:-1])
    assert marks(body) == 4 == MAX_BREAKPOINTS  # tools, system, earlier turn, final message


def test_short_tools_get_no_breakpoint_of_their_own() -> None:
    body = build_body(chat(tools=TOOLS), SONNET)  # a few hundred characters: below 1024 tokens
    assert all("cache_control" not in t for t in body["tools"])
    assert body["system"][0]["cache_control"] == EPHEMERAL
    assert marks(body) == 3


def test_a_prefix_under_the_models_minimum_is_left_alone() -> None:
    short = chat(system="Be brief. " * 100)  # ~1,000 characters: ~250 tokens
    body = build_body(short, SONNET)
    assert marks(body) == 0
    assert body["system"] == "Be brief. " * 100


def test_the_minimum_is_the_models_own() -> None:
    # ~1,450 tokens: over Sonnet 4.5's 1024, under Haiku 4.5's and Opus 4.5's 4096
    haiku = dataclasses.replace(SONNET, model="claude-haiku-4-5-20251001")
    assert marks(build_body(chat(), haiku)) == 0
    assert marks(build_body(chat(), SONNET)) == 3
    assert minimum_tokens("claude-haiku-4-5-20251001") == 4096
    assert minimum_tokens("claude-3-5-haiku-latest") == 2048
    assert minimum_tokens("claude-opus-4-1-20250805") == 1024
    assert minimum_tokens("us.anthropic.claude-opus-4-5-20251101-v1:0") == 4096
    assert minimum_tokens("some-future-model") == 1024  # the table's default


def test_a_long_conversation_marks_its_earlier_turns_even_with_a_short_system() -> None:
    request = chat(system="Be brief.", turns=1)
    request.messages[1].content = LONG  # type: ignore[union-attr]  # a long first question
    body = build_body(request, SONNET)
    assert body["system"] == "Be brief."  # alone it is far below the minimum
    assert body["messages"][-2]["content"][0]["cache_control"] == EPHEMERAL
    assert body["messages"][-1]["content"][0]["cache_control"] == EPHEMERAL
    assert marks(body) == 2


def test_the_clients_own_breakpoint_leaves_the_request_untouched() -> None:
    request = chat()
    request.messages[1] = type(request.messages[1]).model_validate(
        {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": EPHEMERAL}]}
    )
    body = build_body(request, SONNET)
    assert body["system"] == LONG
    assert marks(body) == 1  # the client's, and no other


def test_top_level_automatic_caching_counts_as_the_clients_choice() -> None:
    body = build_body(chat(cache_control=EPHEMERAL), SONNET)
    assert body["cache_control"] == EPHEMERAL
    assert marks(body) == 1


def test_a_client_tool_breakpoint_is_respected() -> None:
    tools = [dict(TOOLS[0], cache_control=EPHEMERAL), *TOOLS[1:]]
    body = build_body(chat(tools=tools), SONNET)
    assert body["tools"][0]["cache_control"] == EPHEMERAL
    assert marks(body) == 1


def test_never_more_than_the_limit_counting_the_clients_own() -> None:
    body: dict[str, Any] = {
        "tools": [{"name": "t", "input_schema": {}, "description": LONG}],
        "system": [{"type": "text", "text": LONG}],
        "messages": [
            {"role": "user", "content": LONG},
            {"role": "assistant", "content": LONG},
            {"role": "user", "content": "q"},
        ],
    }
    assert anthropic_breakpoints(body, "claude-sonnet-4-5") == 4
    assert marks(body) == 4 == MAX_BREAKPOINTS
    assert anthropic_breakpoints(body, "claude-sonnet-4-5") == 0  # marked now: left alone
    assert marks(body) == 4


def test_thinking_blocks_are_never_marked() -> None:
    body: dict[str, Any] = {
        "system": LONG,
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                ],
            },
            {"role": "user", "content": "q2"},
        ],
    }
    anthropic_breakpoints(body, "claude-sonnet-4-5")
    text, thinking = body["messages"][1]["content"]
    assert text["cache_control"] == EPHEMERAL
    assert "cache_control" not in thinking


def test_prompt_cache_key_is_not_sent_to_anthropic() -> None:
    body = build_body(chat(prompt_cache_key="thread-1"), PLAIN)
    assert "prompt_cache_key" not in body


# -- Bedrock Converse ---------------------------------------------------------------------------


def test_bedrock_gets_cache_points_after_system_earlier_turn_and_final_message() -> None:
    body = converse_body(chat(), BEDROCK)
    assert body["system"] == [{"text": LONG}, POINT]
    assert body["messages"][-2]["content"] == [{"text": "answer 2"}, POINT]
    assert body["messages"][-1]["content"] == [{"text": "the new question"}, POINT]
    first = converse_body(chat(turns=0), BEDROCK)
    assert first["system"] == [{"text": LONG}, POINT]
    assert first["messages"][-1]["content"] == [{"text": "the new question"}]


def test_bedrock_long_tools_get_a_cache_point_after_the_last() -> None:
    tools = [
        {"type": "function", "function": {"name": f"t{i}", "description": LONG}} for i in (1, 2)
    ]
    body = converse_body(chat(tools=tools), BEDROCK)
    listed = body["toolConfig"]["tools"]
    assert [list(t) for t in listed] == [["toolSpec"], ["toolSpec"], ["cachePoint"]]


def test_bedrock_without_the_option_or_with_a_client_mark_or_not_claude() -> None:
    plain = dataclasses.replace(
        BEDROCK, options={k: v for k, v in BEDROCK.options.items() if k != OPTION}
    )
    assert converse_body(chat(), plain)["system"] == [{"text": LONG}]
    marked = chat()
    marked.messages[1] = type(marked.messages[1]).model_validate(
        {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": EPHEMERAL}]}
    )
    assert converse_body(marked, BEDROCK)["system"] == [{"text": LONG}]
    nova = dataclasses.replace(BEDROCK, model="amazon.nova-pro-v1:0")
    assert converse_body(chat(), nova)["system"] == [{"text": LONG}]


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": EPHEMERAL}


def test_bedrock_translates_the_clients_own_marks_for_claude_and_drops_them_elsewhere() -> None:
    marked = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": [text_part("s")]},
                {"role": "user", "content": [text_part("q")]},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "t0", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1",
                 "content": [text_part("r")]},
            ],
            "tools": [dict(TOOLS[0], cache_control=EPHEMERAL)],
        }
    )  # fmt: skip
    plain = dataclasses.replace(
        BEDROCK, options={k: v for k, v in BEDROCK.options.items() if k != OPTION}
    )
    for dep in (BEDROCK, plain):  # the client's own, whether or not auto_prompt_cache is on
        body = converse_body(marked, dep)
        assert body["system"] == [{"text": "s"}, POINT]
        assert body["messages"][0]["content"] == [{"text": "q"}, POINT]
        assert body["messages"][2]["content"][1:] == [POINT]  # after the tool result
        assert [list(t) for t in body["toolConfig"]["tools"]] == [["toolSpec"], ["cachePoint"]]
    llama = dataclasses.replace(plain, model="meta.llama3-70b-instruct-v1:0")
    body = converse_body(marked, llama)  # no prompt cache there: the marks go, not a 400
    assert "cachePoint" not in str(body)
    assert body["system"] == [{"text": "s"}]


def test_prompt_cache_key_is_not_sent_to_bedrock() -> None:
    body = converse_body(chat(prompt_cache_key="thread-1"), dataclasses.replace(BEDROCK))
    assert "prompt_cache_key" not in body.get("additionalModelRequestFields", {})


# -- prefix hashes ------------------------------------------------------------------------------


def test_hashes_start_where_the_prefix_reaches_the_minimum() -> None:
    request = chat(system=LONG, turns=2)  # 1 system + 4 earlier + 1 new message
    hashes = prefix_hashes(request, 1024)
    assert len(hashes) == 6  # the system prompt alone is over ~1,024 tokens
    assert prefix_hashes(request, 100_000) == []
    assert len(prefix_hashes(chat(system="short", turns=2), 1024)) == 0


def test_the_next_turn_shares_every_hash_of_the_previous_request() -> None:
    first = chat(turns=1)
    answered = [m.model_dump(exclude_unset=True) for m in first.messages]
    answered += [{"role": "assistant", "content": "an answer"}, {"role": "user", "content": "q"}]
    second = ChatRequest.model_validate({"model": "m", "messages": answered})
    a, b = prefix_hashes(first, 1024), prefix_hashes(second, 1024)
    assert len(b) == len(a) + 2
    assert b[: len(a)] == a  # the longest known prefix of the next turn: all of the first
    other = chat(turns=1)
    other.messages[-1].content = "another question"  # type: ignore[union-attr]
    c = prefix_hashes(other, 1024)
    assert c[:-1] == a[:-1]
    assert c[-1] != a[-1]


def test_a_different_system_prompt_or_tools_shares_nothing() -> None:
    base = prefix_hashes(chat(), 1024)
    assert not set(base) & set(prefix_hashes(chat(system=LONG + "!"), 1024))
    assert not set(base) & set(prefix_hashes(chat(tools=TOOLS), 1024))


def test_many_boundaries_are_capped_keeping_the_shortest_and_the_longest() -> None:
    long = chat(turns=40)
    hashes = prefix_hashes(long, 1024)
    assert len(hashes) == 17
    every = prefix_hashes(chat(turns=40), 1)
    assert hashes[0] == prefix_hashes(chat(turns=0), 1024)[0]
    assert hashes[-1] == every[-1]


@pytest.mark.parametrize("size", [1, 3])
async def test_the_memory_store_is_a_bounded_lru_with_a_ttl(size: int) -> None:
    store = MemoryAffinity(max_prefixes=size, ttl=10.0)
    await store.remember("g", ["a"], "d1", now=0.0)
    await store.remember("g", ["b", "c"], "d2", now=1.0)
    assert len(store) == size
    assert await store.warm("g", ["c"], now=5.0) == [frozenset({"d2"})]
    assert await store.warm("g", ["c"], now=11.0) == [frozenset()]  # went cold
    assert await store.warm("other", ["c"], now=5.0) == [frozenset()]  # groups apart
    expected = frozenset({"d1"}) if size == 3 else frozenset()
    assert await store.warm("g", ["a"], now=5.0) == [expected]


def test_warm_first_narrows_to_the_longest_warm_prefix_among_the_candidates() -> None:
    from chatgate.router.deployments import build_groups
    from chatgate.router.state import Stats
    from chatgate.router.strategies import warm_first

    entries = [
        {"model_name": "g", "params": {"model": "openai/gpt-4o", "api_key": "k"},
         "model_info": {"id": name}}
        for name in ("a", "b", "c")
    ]  # fmt: skip
    candidates = [(d, Stats()) for d in build_groups(entries)["g"]]
    ids = lambda picked: [d.id for d, _ in picked]  # noqa: E731
    assert ids(warm_first(candidates, [])) == ["a", "b", "c"]
    assert ids(warm_first(candidates, [{"a", "b"}, {"c"}])) == ["c"]  # the longest wins
    assert ids(warm_first(candidates, [{"a", "b"}, set()])) == ["a", "b"]
    # a warm deployment that is not a candidate (cooling, at a limit) does not count
    assert ids(warm_first(candidates[:2], [{"a"}, {"c"}])) == ["a"]
    assert ids(warm_first(candidates[:2], [{"c"}])) == ["a", "b"]


def test_affinity_is_one_store_per_router_state_and_can_be_turned_off() -> None:
    from chatgate.config import RouterSettings
    from chatgate.router.affinity import affinity_for
    from chatgate.router.state import MemoryState

    state, settings = MemoryState(), RouterSettings()
    assert affinity_for(settings, state).store is affinity_for(settings, state).store
    assert affinity_for(settings, MemoryState()).store is not affinity_for(settings, state).store
    off = affinity_for(RouterSettings(cache_affinity=False), state)
    assert off.store is None
    assert off.hashes(object()) == []

    class Slotted:  # a RouterState of the caller's own, with no weak references
        __slots__ = ()

    assert isinstance(affinity_for(settings, Slotted()).store, MemoryAffinity)
