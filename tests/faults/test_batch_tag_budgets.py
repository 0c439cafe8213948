"""A batch counts against its virtual key's tags as a live request does (#14, #16): a key
tagged ``team-x`` and a $0.01 lifetime budget on that tag, on SQLite and PostgreSQL. A batch
whose worst case the tag cannot cover is refused with the live request's 402, whether its
lines go to a provider's batch API or are run by the gateway; batches and live requests sent
at once never overspend the tag; a batch's spend rows carry the key's tags first, the ones it
was submitted with (a key's tags changed mid-run change nothing); a batch resumed by a
restarted gateway is charged to those tags too."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fakes.openai_batches import BatchScript, FakeOpenAIBatches
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json
from tests.faults.budget_support import (
    DEAR,
    HI,
    LIMIT,
    MAX_TOKENS,
    counter,
    script_full_answers,
)
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

MASTER = "sk-master-batch-tags"
TAG = "team-x"
BUDGET_ID = f"tag:{TAG}:lifetime"
PRICES = {"input_cost_per_token": DEAR, "output_cost_per_token": DEAR}


@pytest.fixture
def provider() -> Iterator[FakeOpenAIBatches]:
    """OpenAI's batch API, its batches ending at the first status read."""
    with FakeOpenAIBatches(BatchScript(polls=0)) as fake:
        yield fake


def config(db_url: str, dear: FakeOpenAI, provider: FakeOpenAIBatches, **general: Any) -> Any:
    return gateway_config(
        deployment("dear", dear, "groq/dear-model", **PRICES),  # no batch API: the gateway runs it
        deployment("mini", provider, "openai/gpt-4o-mini", **PRICES),  # OpenAI's batch API
        master_key=MASTER,
        database=db_url,
        router={"num_retries": 0},
        key_cache_ttl_s=0,
        budgets=[{"scope": "tag", "subject": TAG, "limit": str(LIMIT), "window": "lifetime"}],
        **general,
    )


def chat(model: str = "dear", max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    return {"model": model, "messages": HI, "max_tokens": max_tokens}


def jsonl(*models: str) -> bytes:
    """A batch input file: a line per model, ``max_tokens`` as a live request's."""
    return b"".join(
        orjson.dumps({"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions",
                      "body": chat(model)}) + b"\n"
        for i, model in enumerate(models)
    )  # fmt: skip


def upload(gw: Gateway, key: str, data: bytes) -> str:
    made = gw.openai_client(key).files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    return made.id


def batch_body(file_id: str) -> dict[str, Any]:
    return {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }


async def post_all(
    url: str,
    key: str,
    calls: list[tuple[str, dict[str, Any]]],
    headers: dict[str, str] | None = None,
) -> list[tuple[int, Any]]:
    """Every (path, body) sent at once: (status, parsed body) of each, in order."""
    sent = {"Authorization": f"Bearer {key}", **(headers or {})}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, headers=sent) as session:

        async def one(path: str, body: dict[str, Any]) -> tuple[int, Any]:
            async with session.post(f"{url}{path}", json=body) as resp:
                return resp.status, orjson.loads(await resp.read())

        return list(await asyncio.gather(*(one(path, body) for path, body in calls)))


def refusal(answer: tuple[int, Any]) -> tuple[int, str | None, str | None]:
    status, body = answer
    error = body.get("error") or {}  # none: the call was accepted
    return status, error.get("type"), error.get("code")


def wait_done(gw: Gateway, key: str, batch_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, batch = gw.admin("GET", f"/v1/batches/{batch_id}", key=key)
        assert status == 200, batch
        if batch["status"] in ("completed", "failed"):
            assert batch["status"] == "completed", batch
            return dict(batch)
        assert time.monotonic() < deadline, f"{batch_id} still {batch['status']}"
        time.sleep(0.1)


def wait_polled(provider: FakeOpenAIBatches) -> None:
    """Until the gateway has submitted its provider batch and asked how it goes."""
    deadline = time.monotonic() + 15
    while not any(provider.polls.values()):
        assert time.monotonic() < deadline, "the provider batch was never polled"
        time.sleep(0.05)


def key_rows(gw: Gateway, key_id: str, count: int) -> list[dict[str, Any]]:
    """The key's answered spend-log rows (not refusals), once there are ``count`` (written
    off the request path)."""
    deadline = time.monotonic() + 15
    while True:
        status, body = gw.admin("GET", f"/admin/logs?key={key_id}&status=ok&limit=500")
        assert status == 200, body
        rows: list[dict[str, Any]] = body["data"]
        if len(rows) >= count:
            assert len(rows) == count, rows
            return rows
        assert time.monotonic() < deadline, f"{len(rows)} of {count} rows"
        time.sleep(0.1)


def charged_to_tag(db_url: str, expected: Decimal) -> tuple[Decimal, Decimal]:
    """The tag's counter once it has been charged ``expected`` (settled a moment after a batch
    ends; a dead gateway's hold is swept a moment after its TTL)."""
    deadline = time.monotonic() + 15
    while True:
        spent, reserved = asyncio.run(counter(db_url, BUDGET_ID))
        if (spent, reserved) == (expected, 0) or time.monotonic() > deadline:
            return spent, reserved
        time.sleep(0.1)


def test_a_batch_over_its_keys_tag_budget_is_refused_as_a_live_request_is(
    db_url: str, dear: FakeOpenAI, provider: FakeOpenAIBatches, tmp_path: Path
) -> None:
    with serve(config(db_url, dear, provider), tmp_path) as gw:
        made = gw.create_key(tags=[TAG])
        key = made["key"]
        [live] = asyncio.run(
            post_all(gw.url, key, [("/v1/chat/completions", chat("dear", 11_000))])
        )
        assert refusal(live) == (402, "budget_error", "budget_exceeded"), live
        assert BUDGET_ID in live[1]["error"]["message"]
        # eleven lines of a thousand tokens: $0.011 at worst, on the gateway or a batch API
        for model, lines in (("dear", 11), ("mini", 30)):
            file_id = upload(gw, key, jsonl(*[model] * lines))
            [made_batch] = asyncio.run(
                post_all(gw.url, key, [("/v1/batches", batch_body(file_id))])
            )
            assert refusal(made_batch) == refusal(live), made_batch
            assert BUDGET_ID in made_batch[1]["error"]["message"]
        assert asyncio.run(counter(db_url, BUDGET_ID)) == (0, 0)  # nothing held, nothing left
        assert [b["id"] for b in gw.admin("GET", "/v1/batches", key=key)[1]["data"]] == []
        # a batch the tag can cover is held on it, and charged what its lines cost
        file_id = upload(gw, key, jsonl("dear", "mini"))
        status, batch = gw.admin("POST", "/v1/batches", batch_body(file_id), key=key)
        assert status == 200, batch
        wait_done(gw, key, batch["id"])
        rows = key_rows(gw, made["key_id"], 2)
        cost = sum(Decimal(r["cost"]) for r in rows)
        assert cost > 0
        assert charged_to_tag(db_url, cost) == (cost, 0)


def test_batches_and_live_requests_at_once_never_overspend_a_keys_tag_budget(
    db_url: str, dear: FakeOpenAI, provider: FakeOpenAIBatches, tmp_path: Path
) -> None:
    live_calls, batches = 40, 20  # ~$0.001 a request or a line, two lines a batch: $0.08 asked
    script_full_answers(dear, live_calls + 2 * batches)
    with serve(config(db_url, dear, provider), tmp_path) as gw:
        made = gw.create_key(tags=[TAG])
        key = made["key"]
        files = [upload(gw, key, jsonl("dear", "dear")) for _ in range(batches)]
        calls = [("/v1/batches", batch_body(f)) for f in files]
        calls += [("/v1/chat/completions", chat())] * live_calls
        answers = asyncio.run(post_all(gw.url, key, calls))
        assert {status for status, _ in answers} <= {200, 402}, answers
        accepted = [body["id"] for status, body in answers[:batches] if status == 200]
        answered = sum(status == 200 for status, _ in answers[batches:])
        for batch_id in accepted:
            wait_done(gw, key, batch_id)
        rows = key_rows(gw, made["key_id"], answered + 2 * len(accepted))
        cost = sum(Decimal(r["cost"]) for r in rows)
        assert Decimal("0.009") <= cost <= LIMIT  # the tag was used, never overspent
        assert charged_to_tag(db_url, cost) == (cost, 0)  # every row charged to it
        assert all(r["tags"][0] == TAG for r in rows)
        # the tag spent: a one-line batch is refused as a live request is
        last = [
            ("/v1/chat/completions", chat()),
            ("/v1/batches", batch_body(upload(gw, key, jsonl("dear")))),
        ]
        refused = [refusal(a) for a in asyncio.run(post_all(gw.url, key, last))]
        assert refused == [(402, "budget_error", "budget_exceeded")] * 2


def test_a_batchs_spend_rows_carry_its_keys_tags_first_as_they_were_at_submission(
    db_url: str, dear: FakeOpenAI, tmp_path: Path
) -> None:
    with (
        FakeOpenAIBatches(BatchScript(polls=10_000)) as provider,
        serve(config(db_url, dear, provider), tmp_path) as gw,
    ):
        made = gw.create_key(tags=[TAG, "exp-7"])
        key = made["key"]
        file_id = upload(gw, key, jsonl("dear", "mini"))
        headers = {"x-chatgate-tags": "mine, exp-7"}
        calls = [("/v1/batches", batch_body(file_id))]
        [(status, batch)] = asyncio.run(post_all(gw.url, key, calls, headers))
        assert status == 200, batch
        wait_polled(provider)  # the gateway's line answered, the other one sent
        status, changed = gw.admin("PATCH", f"/admin/keys/{made['key_id']}", {"tags": ["team-y"]})
        assert (status, changed["tags"]) == (200, ["team-y"])
        provider.batch_script.polls = 0
        wait_done(gw, key, batch["id"])
        rows = key_rows(gw, made["key_id"], 2)
        expected = [TAG, "exp-7", "mine", "batch", batch["id"]]
        assert sorted(r["model"] for r in rows) == ["dear", "mini"]
        assert [r["tags"] for r in rows] == [expected, expected]
        cost = sum(Decimal(r["cost"]) for r in rows)
        assert charged_to_tag(db_url, cost) == (cost, 0)


def submit_tagged(gw: Gateway) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A key tagged TAG and a one-line batch for the provider's batch API submitted with it:
    (the key as made, its secret, the batch)."""
    made = gw.create_key(tags=[TAG])
    key = made["key"]
    file_id = upload(gw, key, jsonl("mini"))
    status, batch = gw.admin("POST", "/v1/batches", batch_body(file_id), key=key)
    assert status == 200, batch
    return made, key, batch


def test_a_resumed_batch_is_charged_to_the_tags_it_was_submitted_with(
    dear: FakeOpenAI, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'chatgate.db'}"
    with FakeOpenAIBatches(BatchScript(polls=10_000)) as provider:
        settings = config(db, dear, provider, budget_hold_ttl_s=1)  # the dead one's hold: swept
        with serve(settings, tmp_path) as gw:
            made, key, batch = submit_tagged(gw)
            wait_polled(provider)
        provider.batch_script.polls = 0  # it ends while the gateway is down
        with serve(settings, tmp_path) as gw:
            gw.admin("PATCH", f"/admin/keys/{made['key_id']}", {"tags": None})
            wait_done(gw, key, batch["id"])  # read: picked up again, without the first's hold
            [row] = key_rows(gw, made["key_id"], 1)
            cost = Decimal(row["cost"])
            assert cost > 0
            assert charged_to_tag(db, cost) == (cost, 0)
            assert row["tags"] == [TAG, "batch", batch["id"]]
        assert provider.submissions == 1


def test_a_resumed_batch_is_charged_even_past_a_budget_lowered_meanwhile(
    dear: FakeOpenAI, tmp_path: Path
) -> None:
    """What a batch spent was spent at the provider: its charge is never refused. It once
    went through a hold of nothing, refused once the budget was spent (an operator lowered
    it while the gateway was down): the counter then missed the batch's cost."""
    db = f"sqlite:///{tmp_path / 'chatgate.db'}"
    with FakeOpenAIBatches(BatchScript(polls=10_000)) as provider:
        settings = config(db, dear, provider, budget_hold_ttl_s=1)
        with serve(settings, tmp_path) as gw:
            made, key, batch = submit_tagged(gw)
            status, answer = gw.admin("POST", "/v1/chat/completions", chat(max_tokens=5), key=key)
            assert status == 200, answer  # the tag has spent something live
            wait_polled(provider)
        live, _ = asyncio.run(counter(db, BUDGET_ID))  # the batch's hold: swept at the restart
        assert live > 0
        provider.batch_script.polls = 0
        lowered = {"scope": "tag", "subject": TAG, "limit": "0.000000001", "window": "lifetime"}
        settings["general_settings"]["budgets"] = [lowered]
        with serve(settings, tmp_path) as gw:
            wait_done(gw, key, batch["id"])
            rows = key_rows(gw, made["key_id"], 2)
            [cost] = [Decimal(r["cost"]) for r in rows if "batch" in r["tags"]]
            assert cost > 0
            assert charged_to_tag(db, live + cost) == (live + cost, 0)  # past its limit


def test_lines_answered_before_a_kill_are_charged_by_the_resume(
    dear: FakeOpenAI, provider: FakeOpenAIBatches, tmp_path: Path
) -> None:
    """A gateway SIGKILLed mid-batch charged nothing of the lines it had answered (its hold
    expired with it), and the resumed run charged only its own: the tag's counter missed
    them. Now the batch's ledger carries them over: counter = every answered line's cost."""
    db = f"sqlite:///{tmp_path / 'chatgate.db'}"
    settings = config(db, dear, provider, budget_hold_ttl_s=1)
    lines = 12
    fast = Reply(json=completion_json("ok", model="dear-model"))
    stuck = Reply(json=completion_json("ok", model="dear-model"), delay_s=60)
    dear.script(*[fast] * 4, *[stuck] * 8)  # 4 answered, 8 in flight when the gateway dies
    with serve(settings, tmp_path) as gw:
        made = gw.create_key(tags=[TAG])
        key = made["key"]
        small = b"".join(
            orjson.dumps({"custom_id": f"l{i}", "method": "POST", "url": "/v1/chat/completions",
                          "body": chat(max_tokens=20)}) + b"\n"
            for i in range(lines)
        )  # fmt: skip
        file_id = upload(gw, key, small)
        status, batch = gw.admin("POST", "/v1/batches", batch_body(file_id), key=key)
        assert status == 200, batch
        key_rows(gw, made["key_id"], 4)
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(5)
    dear.replies.clear()  # the resumed lines: answered at once
    with serve(settings, tmp_path) as gw:
        wait_done(gw, key, batch["id"])
        rows = key_rows(gw, made["key_id"], lines)
        total = sum(Decimal(r["cost"]) for r in rows)
        assert charged_to_tag(db, total) == (total, 0)
