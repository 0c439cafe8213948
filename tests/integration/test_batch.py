"""Batch runs against the fake OpenAI upstream: format, resume, repair, validation, cost cap,
failures and retries, routing with fallbacks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

import chatgate
from chatgate import Router
from chatgate.batching import BatchInputError, abatch
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json
from tests.integration.test_router import entry


def line(custom_id: str, model: str = "openai/gpt-4o-mini", text: str = "hi", **body: Any) -> Any:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


def write_input(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path


def read_output(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines()]


@pytest.fixture
def env_fake(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    return fake


def priced(name: str, fake: FakeOpenAI, **params: Any) -> dict[str, Any]:
    return entry(name, fake, input_cost_per_token="0.001", output_cost_per_token="0.002", **params)


FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.02}


async def test_output_is_openai_batch_format(env_fake: FakeOpenAI, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", text=f"n{i}") for i in range(3)])
    out = tmp_path / "out.jsonl"
    summary = await abatch(source, out, concurrency=2)
    records = read_output(out)
    assert sorted(r["custom_id"] for r in records) == ["q0", "q1", "q2"]
    for record in records:
        assert set(record) == {"id", "custom_id", "response", "error"}
        assert record["id"].startswith("batch_req_")
        assert record["error"] is None
        response = record["response"]
        assert response["status_code"] == 200
        assert response["request_id"].startswith("req_fake_")
        completion = ChatCompletion.model_validate(response["body"])
        assert completion.choices[0].message.content == f"echo: n{record['custom_id'][1:]}"
    assert (summary.done, summary.failed, summary.skipped, summary.unsent) == (3, 0, 0, 0)
    assert summary.prompt_tokens > 0
    assert summary.cost > 0


async def test_resume_sends_only_what_is_missing(env_fake: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await abatch([line("a"), line("b")], out)
    assert len(env_fake.requests) == 2
    summary = await abatch([line("a"), line("b"), line("c")], out)
    assert len(env_fake.requests) == 3
    assert env_fake.last.body["messages"][0]["content"] == "hi"
    assert (summary.done, summary.skipped) == (1, 2)
    assert [r["custom_id"] for r in read_output(out)] == ["a", "b", "c"]


async def test_cut_off_last_line_is_dropped_and_rerun(env_fake: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await abatch([line("a"), line("b")], out)
    whole = out.read_bytes()
    cut = whole.index(b"\n") + 1 + 25  # the second line cut off mid-write
    out.write_bytes(whole[:cut])
    summary = await abatch([line("a"), line("b")], out)
    assert summary.repaired
    assert (summary.done, summary.skipped) == (1, 1)
    assert sorted(r["custom_id"] for r in read_output(out)) == ["a", "b"]
    assert len(env_fake.requests) == 3


async def test_every_problem_is_listed_and_nothing_sent(
    env_fake: FakeOpenAI, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    rows = [
        orjson.dumps(line("ok")),
        b'{"custom_id": "x", "body": ',
        orjson.dumps(line("ok")),
        orjson.dumps({**line("e"), "url": "/v1/embeddings"}),
        orjson.dumps(line("t", temperature=5)),
        orjson.dumps(line("m", model="nosuch/model")),
    ]
    source.write_bytes(b"\n".join(rows) + b"\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(BatchInputError) as caught:
        await abatch(source, out)
    text = caught.value.message
    assert "line 2: not valid JSON" in text
    assert "line 3: custom_id 'ok' repeats line 1" in text
    assert "line 4: url must be '/v1/chat/completions'" in text
    assert "line 5: body: invalid temperature" in text
    assert "line 6: body.model 'nosuch/model'" in text
    assert env_fake.requests == []
    assert not out.exists()


async def test_cost_cap_is_never_exceeded(fake: FakeOpenAI, tmp_path: Path) -> None:
    # each answer costs 1 x 0.001 + 10 x 0.002 = 0.021; each hold (the worst case) is more
    fake.script(*[Reply(json=completion_json("x", prompt_tokens=1, completion_tokens=10))] * 10)
    router = Router([priced("m", fake)])
    rows = [line(f"q{i}", model="m", max_tokens=10) for i in range(10)]
    cap = Decimal("0.1")
    summary = await abatch(rows, tmp_path / "out.jsonl", router=router, concurrency=8, max_cost=cap)
    assert summary.cost == Decimal("0.084")
    assert summary.cost <= cap
    assert (summary.done, summary.unsent, summary.stopped) == (4, 6, "max_cost")
    assert len(fake.requests) == 4
    assert len(read_output(tmp_path / "out.jsonl")) == 4


async def test_cost_cap_needs_a_price_and_an_output_limit(fake: FakeOpenAI, tmp_path: Path) -> None:
    entry = {
        "model_name": "free-ish",
        "params": {"model": "openai/no-such-model", "api_key": "k", "api_base": fake.base_url},
    }
    router = Router([entry])
    with pytest.raises(BatchInputError, match=r"line 1: with a cost cap: .*no price"):
        await abatch(
            [line("a", model="free-ish")], tmp_path / "o.jsonl", router=router, max_cost=Decimal(1)
        )
    assert fake.requests == []


async def test_failures_are_error_lines_retryable_ones_retried(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    bad = Reply(status=400, json=error_json("bad value", "invalid_request_error", "bad_value"))
    flaky = Reply(status=500, json=error_json("boom", "server_error"))
    fake.script(bad, flaky)  # the first request fails for good, the second is retried
    router = Router([priced("m", fake)], num_retries=2, settings=FAST)
    out = tmp_path / "out.jsonl"
    summary = await abatch(
        [line("a", model="m"), line("b", model="m")], out, router=router, concurrency=1
    )
    assert (summary.done, summary.failed) == (1, 1)
    assert len(fake.requests) == 3
    records = {r["custom_id"]: r for r in read_output(out)}
    assert records["a"]["error"]["code"] == "bad_value"
    assert "bad value" in records["a"]["error"]["message"]
    assert records["a"]["response"]["status_code"] == 400
    assert records["a"]["response"]["body"]["error"]["message"] == "bad value"
    assert records["b"]["error"] is None
    # without retry_failed the failure stays; with it, it runs again and replaces its line
    again = await abatch([line("a", model="m"), line("b", model="m")], out, router=router)
    assert (again.done, again.skipped) == (0, 2)
    assert len(fake.requests) == 3
    again = await abatch(
        [line("a", model="m"), line("b", model="m")], out, router=router, retry_failed=True
    )
    assert (again.done, again.skipped) == (1, 1)
    assert len(fake.requests) == 4
    records = {r["custom_id"]: r for r in read_output(out)}
    assert len(read_output(out)) == 2
    assert records["a"]["error"] is None


async def test_routing_with_fallbacks(tmp_path: Path) -> None:
    with FakeOpenAI() as down, FakeOpenAI() as backup:
        down.script(*[Reply(status=503, json=error_json("down", "server_error"))] * 5)
        router = Router(
            [priced("smart", down), priced("cheap", backup)],
            num_retries=0,
            fallbacks=[{"smart": ["cheap"]}],
            settings=FAST,
        )
        summary = await abatch(
            [line("a", model="smart", max_tokens=10), line("b", model="smart", max_tokens=10)],
            tmp_path / "out.jsonl",
            router=router,
            concurrency=1,
            max_cost=Decimal(1),
        )
        assert summary.done == 2
        assert len(backup.requests) == 2


def test_sync_batch(env_fake: FakeOpenAI, tmp_path: Path) -> None:
    summary = chatgate.batch([line("a")], tmp_path / "out.jsonl")
    assert summary.done == 1
    assert "done 1" in summary.report()
