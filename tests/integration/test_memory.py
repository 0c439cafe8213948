"""Conversation memory against the fake OpenAI and Anthropic upstreams: what each request
carried (trimmed history, summary block, budgets), persistence and exact resumption."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import chatgate
from chatgate.errors import ConversationNotFoundError, MessageTooLargeError
from chatgate.memory import count_message_tokens
from chatgate.persistence import SQLiteStore
from chatgate.types import AssistantMessage, FunctionCall, ToolCall, ToolMessage, UserMessage
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "memory.db")


def conv(fake: FakeOpenAI, store: SQLiteStore, **kw: Any) -> chatgate.Conversation:
    return chatgate.Conversation(
        model=MODEL, store=store, api_key="sk-test", api_base=fake.base_url, **kw
    )


def sentence(i: int) -> str:
    return f"message {i}: " + " ".join(f"word{i}x{j}" for j in range(8))


def test_history_persists_and_load_resumes_exactly(fake: FakeOpenAI, store: SQLiteStore) -> None:
    chat = conv(fake, store, id="thread-1", system="be brief", temperature=0.2)
    first = chat.send("hello")
    assert first.content == "echo: hello"
    chat.send({"role": "user", "content": "again"})
    assert fake.last.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "echo: hello"},
        {"role": "user", "content": "again"},
    ]
    assert fake.last.body["temperature"] == 0.2
    again = chatgate.Conversation.load(
        "thread-1", store=SQLiteStore(store.path), api_key="sk-test", api_base=fake.base_url
    )
    assert again.record() == chat.record()
    again.send("third")
    assert len(fake.last.body["messages"]) == 6
    assert fake.last.body["temperature"] == 0.2
    assert chat.usage.total_tokens > 0
    with pytest.raises(ConversationNotFoundError, match="'nope'"):
        chatgate.Conversation.load("nope", store=store)


def test_failed_call_appends_nothing(fake: FakeOpenAI, store: SQLiteStore) -> None:
    chat = conv(fake, store)
    fake.script(Reply(status=500, json={"error": {"message": "down", "type": "server_error"}}))
    with pytest.raises(chatgate.InternalServerError):
        chat.send("hello")
    assert chat.messages == []
    chat.send("hello")
    assert [m.role for m in chat.messages] == ["user", "assistant"]


def test_last_turns_policy(fake: FakeOpenAI, store: SQLiteStore) -> None:
    chat = conv(fake, store, system="s", policy=chatgate.LastTurns(turns=1))
    for text in ("one", "two", "three"):
        chat.send(text)
    assert fake.last.body["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "echo: two"},
        {"role": "user", "content": "three"},
    ]


def test_token_budget_is_respected_exactly(fake: FakeOpenAI, store: SQLiteStore) -> None:
    budget = 150
    chat = conv(fake, store, system="be brief", policy=chatgate.TokenBudget(max_tokens=budget))
    for i in range(8):
        chat.send(sentence(i))
        sent = fake.last.body["messages"]
        assert count_message_tokens(MODEL, sent) <= budget
        assert sent[0] == {"role": "system", "content": "be brief"}
        assert sent[-1] == {"role": "user", "content": sentence(i)}
        if i:
            assert sent[-2] == {"role": "assistant", "content": f"echo: {sentence(i - 1)}"}
        kept = len(sent) - 2
        earlier = chat.messages[: len(chat.messages) - 2 - kept]  # history that was left out
        if earlier:  # one more turn would not have fit
            grown = [sent[0], *[m.model_dump(exclude_unset=True) for m in earlier[-2:]], *sent[1:]]
            assert count_message_tokens(MODEL, grown) > budget
    assert len(chat.messages) == 16  # trimming never loses stored history


def test_tool_calls_are_never_split_from_their_results(
    fake: FakeOpenAI, store: SQLiteStore
) -> None:
    chat = conv(fake, store, policy=chatgate.TokenBudget(max_tokens=60))
    call = ToolCall(id="call_1", function=FunctionCall(name="lookup", arguments='{"q": "x"}'))
    chat.messages = [
        UserMessage(content=sentence(1)),
        AssistantMessage(content=None, tool_calls=[call]),
        ToolMessage(tool_call_id="call_1", content=sentence(2)),
        AssistantMessage(content="found it"),
        UserMessage(content="ok"),
        AssistantMessage(content="good"),
    ]
    chat.send("next")
    sent = fake.last.body["messages"]
    roles = [m["role"] for m in sent]
    assert roles == ["user", "assistant", "user"]  # the whole tool turn went, not half of it
    assert count_message_tokens(MODEL, sent) <= 60
    chat2 = conv(fake, store, policy=chatgate.TokenBudget(max_tokens=400))
    chat2.messages = list(chat.messages[:6])
    chat2.send("next")
    roles = [m["role"] for m in fake.last.body["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant", "user"]


def test_oversize_message_is_refused_or_compressed(fake: FakeOpenAI, store: SQLiteStore) -> None:
    huge = " ".join(f"token{i}" for i in range(400))
    chat = conv(fake, store, system="s", policy=chatgate.TokenBudget(max_tokens=100))
    with pytest.raises(MessageTooLargeError, match=r"the new message takes \d+ tokens"):
        chat.send(huge)
    assert fake.requests == []
    assert chat.messages == []
    squeeze = chatgate.TokenBudget(max_tokens=100, on_oversize="truncate")
    chat = conv(fake, store, system="s", policy=squeeze)
    chat.send(huge)
    sent = fake.last.body["messages"]
    assert count_message_tokens(MODEL, sent) <= 100
    assert "characters removed to fit the token budget" in sent[-1]["content"]
    assert sent[-1]["content"].startswith("token0 token1")
    assert sent[-1]["content"].endswith("token399")


def test_summary_block_by_a_cheaper_model_refreshed_as_the_thread_grows(
    fake: FakeOpenAI, store: SQLiteStore
) -> None:
    """The conversation runs on Anthropic; its summaries are written by an OpenAI model."""
    policy = chatgate.Summarize(
        max_tokens=340, model="openai/gpt-4o-mini", summary_max_tokens=40, fold_to=0.6
    )
    fake.script(*(Reply(json=completion_json(f"SUMMARY-{n}")) for n in range(1, 6)))
    with FakeAnthropic() as claude:
        chat = chatgate.Conversation(
            id="long", model="anthropic/claude-sonnet-4-20250514", system="be brief",
            policy=policy, store=store, api_key="sk-ant", api_base=claude.base_url,
            summarizer={"api_key": "sk-test", "api_base": fake.base_url},
        )  # fmt: skip
        for i in range(10):
            chat.send(sentence(i))
            assert count_message_tokens(chat.model, chat.last_request) <= 340
        requests = [r.body for r in claude.requests]
    summaries = [r.body for r in fake.requests]
    assert len(summaries) == 4  # folded at turns 4, 6, 8, 10: every other turn, not every turn
    first = summaries[0]
    assert first["model"] == "gpt-4o-mini"
    assert first["max_tokens"] == 40
    assert "New turns:\nuser: message 0:" in first["messages"][1]["content"]
    assert "Previous summary" not in first["messages"][1]["content"]
    assert "Previous summary:\nSUMMARY-1\n\nNew turns:" in summaries[1]["messages"][1]["content"]
    last = requests[-1]
    n = len(summaries)
    assert last["system"] == f"be brief\n\nSummary of the earlier conversation:\nSUMMARY-{n}"
    assert last["messages"][0]["role"] == "user"
    assert last["messages"][-1] == {"role": "user", "content": sentence(9)}
    folded = {m["content"] for m in last["messages"] if m["role"] == "user"}
    assert sentence(0) not in folded
    assert chat.summary == f"SUMMARY-{n}"
    resumed = chatgate.Conversation.load("long", store=store)
    assert resumed.summary == chat.summary
    assert resumed.summary_covers == chat.summary_covers
    assert resumed.policy == policy


async def test_stream_appends_the_reply_when_complete(fake: FakeOpenAI, store: SQLiteStore) -> None:
    chat = conv(fake, store, system="s")
    stream = await chat.astream("stream me")
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: stream me"
    assert [m.role for m in chat.messages] == ["user", "assistant"]
    assert chat.messages[1].content == "echo: stream me"
    loaded = await chatgate.Conversation.aload(chat.id, store=store)
    assert len(loaded.messages) == 2


def test_sync_stream_and_early_exit(fake: FakeOpenAI, store: SQLiteStore) -> None:
    chat = conv(fake, store)
    for _ in chat.stream("first words here"):
        break  # left early: the exchange is not kept
    assert chat.messages == []
    stream = chat.stream("second")
    with pytest.raises(chatgate.InvalidRequestError, match="still has a streamed reply open"):
        chat.send("third")
    assert stream.final().content == "echo: second"
    assert [m.content for m in chat.messages] == ["second", "echo: second"]
    abandoned = chat.stream("fourth")
    abandoned.close()
    chat.send("fifth")
    assert [m.content for m in chat.messages][2:] == ["fifth", "echo: fifth"]


def test_two_writers_do_not_interleave(fake: FakeOpenAI, store: SQLiteStore) -> None:
    chat = conv(fake, store, id="shared")
    chat.send("one")
    a = chatgate.Conversation.load("shared", store=store, api_key="k", api_base=fake.base_url)
    b = chatgate.Conversation.load("shared", store=SQLiteStore(store.path), api_key="k",
                                   api_base=fake.base_url)  # fmt: skip
    a.send("from a")
    with pytest.raises(chatgate.ChatgateError, match="changed by another writer"):
        b.send("from b")
    assert len(b.messages) == 2  # nothing kept that was not stored
    reloaded = chatgate.Conversation.load("shared", store=store)
    assert [m.content for m in reloaded.messages] == ["one", "echo: one", "from a", "echo: from a"]


def test_connection_settings_are_used_but_never_stored(
    fake: FakeOpenAI, store: SQLiteStore
) -> None:
    chat = conv(fake, store, extra_headers={"X-Tenant-Token": "tok-secret"}, temperature=0)
    chat.send("hi")
    assert fake.last.headers["X-Tenant-Token"] == "tok-secret"
    record = chat.record()
    assert record.params == {"temperature": 0}
    assert "tok-secret" not in str(record)
    assert "sk-test" not in str(record)
