"""`--provider-batch` end to end against the fake OpenAI Batch API and Anthropic Message
Batches API: submit, poll (no real waiting: the sleep is injected), download, the same
output format as a live run, resume without a second submission, expired / failed / cancelled
/ partly errored batches, the batch price and the cost cap."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

import chatgate
from chatgate.batching import BatchInputError, abatch
from chatgate.batching.provider.poll import PollPolicy
from chatgate.batching.provider.run import ProviderBatchRun
from chatgate.batching.provider.state import state_path
from chatgate.cost.budgets import Budgets
from chatgate.cost.calc import cost_of
from chatgate.cost.prices import lookup_price
from chatgate.types import Usage
from tests.fakes.anthropic_batches import FakeAnthropicBatches
from tests.fakes.gemini_batches import FakeGeminiBatches
from tests.fakes.openai_batches import FakeOpenAIBatches
from tests.integration.test_batch import line, read_output, write_input

MINI = "openai/gpt-4o-mini"
SONNET = "anthropic/claude-sonnet-4-5"
FLASH = "gemini/gemini-2.5-flash"


class Sleeps:
    """The injected sleep: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def policy(sleeps: Sleeps | None = None, **kw: Any) -> PollPolicy:
    return PollPolicy(sleep=sleeps or Sleeps(), **kw)


@pytest.fixture
def oai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIBatches]:
    with FakeOpenAIBatches() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-batch")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        yield fake


@pytest.fixture
def gem(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGeminiBatches]:
    with FakeGeminiBatches() as fake:
        monkeypatch.setenv("GEMINI_API_KEY", "g-test-batch")
        monkeypatch.setenv("GEMINI_API_BASE", fake.base_url)
        yield fake


@pytest.fixture
def ant(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropicBatches]:
    with FakeAnthropicBatches() as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-batch")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        yield fake


def by_id(out: Path) -> dict[str, dict[str, Any]]:
    return {r["custom_id"]: r for r in read_output(out)}


def uploaded_ids(fake: FakeOpenAIBatches) -> list[list[str]]:
    inputs = [b for b in fake.batches.values()]
    return [
        [orjson.loads(x)["custom_id"] for x in fake.uploads[b["input_file_id"]].splitlines()]
        for b in inputs
    ]


async def test_openai_submit_poll_download(oai: FakeOpenAIBatches, tmp_path: Path) -> None:
    oai.batch_script.polls = 2
    source = write_input(
        tmp_path / "in.jsonl", [line(f"q{i}", MINI, f"n{i}", max_tokens=50) for i in range(3)]
    )
    out, sleeps = tmp_path / "out.jsonl", Sleeps()
    summary = await abatch(source, out, provider_batch=True, poll=policy(sleeps))
    assert oai.submissions == 1
    assert sleeps.waits == [2.0, 3.0]  # two "in progress" answers, a growing wait
    records = by_id(out)
    assert sorted(records) == ["q0", "q1", "q2"]
    for custom_id, record in records.items():
        assert set(record) == {"id", "custom_id", "response", "error"}
        assert record["error"] is None
        assert record["response"]["status_code"] == 200
        answer = ChatCompletion.model_validate(record["response"]["body"])
        assert answer.choices[0].message.content == f"echo: n{custom_id[1:]}"
    # each line is the body the OpenAI adapter sends live: the provider prefix is gone
    line_body = orjson.loads(next(iter(oai.uploads.values())).splitlines()[0])["body"]
    assert line_body["model"] == "gpt-4o-mini"
    assert line_body["max_tokens"] == 50
    assert (summary.done, summary.failed, summary.batches) == (3, 0, list(oai.batches))
    assert not state_path(out).exists()  # every batch collected: no state left behind
    price = lookup_price(MINI)
    assert price is not None
    usage = Usage(prompt_tokens=9, completion_tokens=3, total_tokens=12)
    assert summary.cost == 3 * cost_of(usage, price) / 2  # half the live price
    assert summary.cost == 3 * (9 * price.input + 3 * price.output) * Decimal("0.5")


async def test_anthropic_submit_poll_download(ant: FakeAnthropicBatches, tmp_path: Path) -> None:
    # "q 1" is not a valid Anthropic custom_id: it is sent under another and mapped back
    lines = [line("q 1", SONNET, "one", max_tokens=64), line("q2", SONNET, "two")]
    source = write_input(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    summary = await abatch(source, out, provider_batch=True, poll=policy())
    assert ant.submissions == 1
    sent = next(iter(ant.inputs.values()))
    assert [r["custom_id"] for r in sent] == ["_L1", "q2"]
    assert sent[0]["params"]["model"] == "claude-sonnet-4-5"
    assert sent[0]["params"]["max_tokens"] == 64
    assert sent[0]["params"]["messages"] == [{"role": "user", "content": "one"}]
    assert ant.requests[0].headers["x-api-key"] == "sk-ant-test-batch"
    records = by_id(out)
    assert sorted(records) == ["q 1", "q2"]
    answer = ChatCompletion.model_validate(records["q 1"]["response"]["body"])
    assert answer.choices[0].message.content == "echo: one"
    assert answer.choices[0].finish_reason == "stop"
    price = lookup_price(SONNET)
    assert price is not None
    assert summary.cost == 2 * (9 * price.input + 3 * price.output) / 2


async def test_resume_after_a_crash_mid_poll_does_not_submit_again(
    oai: FakeOpenAIBatches, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", MINI) for i in range(3)])
    out = tmp_path / "out.jsonl"

    class Crash(Exception):
        pass

    async def crash(seconds: float) -> None:
        raise Crash  # the process dies while waiting for the batch

    with pytest.raises(Crash):
        await abatch(source, out, provider_batch=True, poll=PollPolicy(sleep=crash))
    state = orjson.loads(state_path(out).read_bytes())
    assert [j["batch_id"] for j in state["jobs"]] == list(oai.batches)
    assert sorted(state["jobs"][0]["ids"].values()) == ["q0", "q1", "q2"]
    assert b"sk-test" not in state_path(out).read_bytes()  # never a key in the state file
    assert read_output(out) == []
    summary = await abatch(source, out, provider_batch=True, poll=policy())
    assert oai.submissions == 1  # the rerun polled the batch it found, it did not pay again
    assert sorted(by_id(out)) == ["q0", "q1", "q2"]
    assert summary.batches == []
    assert summary.done == 3
    assert not state_path(out).exists()


async def test_interrupt_keeps_the_batch_and_a_rerun_collects_it(
    oai: FakeOpenAIBatches, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", MINI) for i in range(2)])
    out = tmp_path / "out.jsonl"
    run: ProviderBatchRun | None = None

    async def ctrl_c(seconds: float) -> None:
        assert run is not None
        run.interrupt()
        await asyncio.sleep(30)  # cancelled by the interrupt, never waited out

    run = ProviderBatchRun(source, out, poll=PollPolicy(sleep=ctrl_c))
    run.prepare()
    summary = await asyncio.wait_for(run.run(), 10)
    assert summary.stopped == "interrupted"
    assert summary.waiting == 2
    assert "run the same command again" in summary.report()
    assert state_path(out).exists()
    again = await abatch(source, out, provider_batch=True, poll=policy())
    assert (oai.submissions, again.done, again.waiting) == (1, 2, 0)


async def test_lines_already_in_the_output_are_not_resubmitted(
    oai: FakeOpenAIBatches, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", MINI) for i in range(2)])
    out = tmp_path / "out.jsonl"
    await abatch(source, out, provider_batch=True, poll=policy())
    write_input(source, [line(f"q{i}", MINI) for i in range(3)])
    summary = await abatch(source, out, provider_batch=True, poll=policy())
    assert uploaded_ids(oai) == [["q0", "q1"], ["q2"]]
    assert (summary.skipped, summary.done) == (2, 1)
    assert sorted(by_id(out)) == ["q0", "q1", "q2"]


async def test_openai_expired_batch_writes_error_lines(
    oai: FakeOpenAIBatches, tmp_path: Path
) -> None:
    oai.batch_script.final, oai.batch_script.answered = "expired", 1
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", MINI) for i in range(3)])
    out = tmp_path / "out.jsonl"
    summary = await abatch(source, out, provider_batch=True, poll=policy())
    records = by_id(out)
    assert records["q0"]["error"] is None
    for custom_id in ("q1", "q2"):
        assert records[custom_id]["response"] is None
        assert records[custom_id]["error"]["code"] == "batch_expired"
    assert (summary.done, summary.failed) == (1, 2)
    # a rerun with --retry-failed submits only the expired lines again
    await abatch(source, out, provider_batch=True, retry_failed=True, poll=policy())
    assert uploaded_ids(oai)[1] == ["q1", "q2"]


async def test_openai_failed_and_cancelled_batches(oai: FakeOpenAIBatches, tmp_path: Path) -> None:
    oai.batch_script.final = "failed"
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", MINI) for i in range(2)])
    out = tmp_path / "failed.jsonl"
    summary = await abatch(source, out, provider_batch=True, poll=policy())
    for record in read_output(out):
        assert record["response"] is None
        assert record["error"]["code"] == "batch_failed"
        assert "the model does not exist (line 1)" in record["error"]["message"]
    assert summary.failed == 2
    oai.batch_script.final, oai.batch_script.answered = "cancelled", 1
    out = tmp_path / "cancelled.jsonl"
    await abatch(source, out, provider_batch=True, poll=policy())
    records = by_id(out)
    assert records["q0"]["error"] is None
    assert records["q1"]["error"]["code"] == "batch_cancelled"  # no result at all for it


async def test_partly_errored_batches_write_todays_error_lines(
    oai: FakeOpenAIBatches, ant: FakeAnthropicBatches, tmp_path: Path
) -> None:
    errors = {"q1": (400, "invalid_request_error", "max_tokens is too large")}
    oai.batch_script.line_errors = ant.batch_script.line_errors = errors
    lines = [line("q0", MINI), line("q1", MINI), line("a0", SONNET), line("q1x", SONNET)]
    ant.batch_script.line_errors = {"q1x": errors["q1"]}
    source = write_input(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    summary = await abatch(source, out, provider_batch=True, poll=policy())
    assert (oai.submissions, ant.submissions) == (1, 1)
    records = by_id(out)
    for custom_id, provider in (("q1", "openai"), ("q1x", "anthropic")):
        record = records[custom_id]
        assert record["response"]["status_code"] == 400
        assert record["response"]["body"]["error"]["message"] == "max_tokens is too large"
        assert record["error"]["code"] == "invalid_request_error"
        assert f"[{provider}/" in record["error"]["message"]
    assert records["q0"]["error"] is None
    assert records["a0"]["error"] is None
    assert (summary.done, summary.failed) == (2, 2)


@pytest.mark.parametrize(("fixture", "model"), [("ant", SONNET), ("gem", FLASH)])
async def test_anthropic_and_gemini_expired_lines(
    fixture: str, model: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fake = request.getfixturevalue(fixture)
    fake.batch_script.final, fake.batch_script.answered = "expired", 1
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", model) for i in range(2)])
    out = tmp_path / "out.jsonl"
    await abatch(source, out, provider_batch=True, poll=policy())
    records = by_id(out)
    assert records["q0"]["error"] is None
    assert records["q1"]["response"] is None
    assert records["q1"]["error"]["code"] == "batch_expired"


def worst_at_batch_rate(text: str, max_tokens: int) -> Decimal:
    price = lookup_price(MINI)
    assert price is not None
    messages = [{"role": "user", "content": text}]
    full = Budgets([]).worst_case(MINI, messages, max_tokens=max_tokens, price=price)
    return full * Decimal("0.5")


async def test_cost_cap_holds_the_worst_case_at_the_batch_rate(
    oai: FakeOpenAIBatches, tmp_path: Path
) -> None:
    source = write_input(
        tmp_path / "in.jsonl", [line(f"q{i}", MINI, "hi", max_tokens=1000) for i in range(3)]
    )
    worst = worst_at_batch_rate("hi", 1000)
    out = tmp_path / "out.jsonl"
    # two lines fit at the batch rate (they would not at the live rate: 2 x worst x 2)
    summary = await abatch(source, out, provider_batch=True, max_cost=2 * worst, poll=policy())
    assert uploaded_ids(oai) == [["q0", "q1"]]
    assert (summary.done, summary.unsent, summary.stopped) == (2, 1, "max_cost")
    assert summary.cost <= 2 * worst


async def test_cost_cap_refuses_before_submitting(oai: FakeOpenAIBatches, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [line("q0", MINI, "hi", max_tokens=1000)])
    out = tmp_path / "out.jsonl"
    cap = worst_at_batch_rate("hi", 1000) - Decimal("0.000001")
    summary = await abatch(source, out, provider_batch=True, max_cost=cap, poll=policy())
    assert oai.submissions == 0
    assert oai.requests == []  # not even the file upload
    assert (summary.unsent, summary.stopped) == (1, "max_cost")


async def test_a_provider_without_a_batch_api_is_refused_before_anything_is_sent(
    oai: FakeOpenAIBatches, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    source = write_input(
        tmp_path / "in.jsonl", [line("q0", MINI), line("q1", "groq/llama-3.1-8b-instant")]
    )
    with pytest.raises(BatchInputError, match=r"line 2: .*groq.*no batch API"):
        await abatch(source, tmp_path / "out.jsonl", provider_batch=True, poll=policy())
    assert oai.requests == []


async def test_polling_stops_after_max_wait_and_a_rerun_collects(
    oai: FakeOpenAIBatches, tmp_path: Path
) -> None:
    oai.batch_script.polls = 1
    source = write_input(tmp_path / "in.jsonl", [line("q0", MINI)])
    out = tmp_path / "out.jsonl"
    summary = await abatch(source, out, provider_batch=True, poll=policy(max_wait_s=0))
    assert (summary.stopped, summary.waiting) == ("waiting", 1)
    summary = await abatch(source, out, provider_batch=True, poll=policy(max_wait_s=0))
    assert (oai.submissions, summary.done, summary.waiting) == (1, 1, 0)


async def test_a_failing_status_read_is_tried_again(oai: FakeOpenAIBatches, tmp_path: Path) -> None:
    oai.batch_script.polls = 0
    oai.failing_reads = 2
    source = write_input(tmp_path / "in.jsonl", [line("q0", MINI)])
    sleeps = Sleeps()
    summary = await abatch(source, tmp_path / "out.jsonl", provider_batch=True, poll=policy(sleeps))
    assert (oai.submissions, summary.done) == (1, 1)
    assert sleeps.waits == [2.0, 3.0]  # two 500s, each followed by a longer wait


async def test_gemini_submit_poll_download(gem: FakeGeminiBatches, tmp_path: Path) -> None:
    gem.batch_script.line_errors = {"q1": (400, "invalid_request_error", "bad request")}
    lines = [line("q0", FLASH, "one", max_tokens=32), line("q1", FLASH, "two")]
    source = write_input(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    summary = await abatch(source, out, provider_batch=True, poll=policy())
    assert gem.submissions == 1
    sent = next(iter(gem.inputs.values()))
    assert [r["metadata"]["key"] for r in sent] == ["q0", "q1"]
    assert sent[0]["request"]["contents"] == [{"role": "user", "parts": [{"text": "one"}]}]
    assert sent[0]["request"]["generationConfig"]["maxOutputTokens"] == 32
    assert gem.requests[0].path == "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
    records = by_id(out)
    answer = ChatCompletion.model_validate(records["q0"]["response"]["body"])
    assert answer.choices[0].message.content == "echo: one"
    assert records["q1"]["response"]["status_code"] == 400
    assert records["q1"]["error"]["message"].startswith("bad request")
    price = lookup_price(FLASH)
    assert price is not None
    assert summary.cost == (9 * price.input + 3 * price.output) / 2


def test_the_blocking_batch_takes_provider_batch_too(
    oai: FakeOpenAIBatches, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.jsonl", [line("q0", MINI)])
    summary = chatgate.batch(source, tmp_path / "out.jsonl", provider_batch=True, poll=policy())
    assert (oai.submissions, summary.done) == (1, 1)
