"""The gateway's /v1/files and /v1/batches through a real `chatgate serve` process, with the
openai SDK's batch calls as the client: models with a provider batch API go to it (fake
OpenAI and Anthropic batch APIs), others are run by the gateway itself; virtual keys see
only their own batches, budgets hold the batch, and every result line is a spend-log row."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from openai.types import Batch
from openai.types.chat import ChatCompletion

from chatgate.cost.budgets import Budgets
from chatgate.cost.prices import lookup_price
from tests.clock import poll_until
from tests.fakes.anthropic_batches import FakeAnthropicBatches
from tests.fakes.openai_batches import BatchScript, FakeOpenAIBatches
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve
from tests.integration.test_gateway_keys import MASTER, new_key, spend_rows


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAIBatches, FakeAnthropicBatches, FakeOpenAI]]:
    script = BatchScript(polls=0, line_errors={"bad": (400, "invalid_request_error", "no")})
    with (
        FakeOpenAIBatches(script) as oai,
        FakeAnthropicBatches(BatchScript(polls=0)) as ant,
        FakeOpenAI() as live,
    ):
        yield oai, ant, live


@pytest.fixture(scope="module")
def gateway(
    fakes: tuple[FakeOpenAIBatches, FakeAnthropicBatches, FakeOpenAI],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    oai, ant, live = fakes
    llama = "groq/llama-3.1-8b-instant"
    prices = {"input_cost_per_token": "0.000001", "output_cost_per_token": "0.000002"}
    config = gateway_config(
        deployment("mini", oai),
        deployment("claude", ant, "anthropic/claude-sonnet-4-5"),
        deployment("live", live, llama, **prices),
        deployment("broken", "http://127.0.0.1:9/v1", llama, free=True),
        master_key=MASTER,
        database=SQLITE,
        router={"fallbacks": [{"broken": ["live"]}], "num_retries": 0},
        key_cache_ttl_s=0,
        budgets=[{"scope": "tag", "subject": "tiny", "limit": "0.0000001"}],
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return gw.openai_client(key)


def jsonl(lines: list[tuple[str, str, str]]) -> bytes:
    return b"".join(
        orjson.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                      "body": {"model": model, "max_tokens": 20,
                               "messages": [{"role": "user", "content": text}]}}) + b"\n"
        for cid, model, text in lines
    )  # fmt: skip


def submit(client: openai.OpenAI, data: bytes, tags: str | None = None) -> Batch:
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        extra_headers={"x-chatgate-tags": tags} if tags else None,
    )  # fmt: skip


def wait_done(client: openai.OpenAI, batch_id: str, timeout_s: float = 20.0) -> Batch:
    deadline = time.monotonic() + timeout_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed") or time.monotonic() > deadline:
            return batch
        time.sleep(0.1)


def lines_of(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    assert file_id is not None
    raw = client.files.content(file_id).content
    return {r["custom_id"]: r for r in map(orjson.loads, raw.splitlines())}


def test_sdk_batch_through_the_gateway(
    gateway: Gateway, fakes: tuple[FakeOpenAIBatches, FakeAnthropicBatches, FakeOpenAI]
) -> None:
    oai, ant, live = fakes
    secret, record = new_key(gateway, team="evals")
    client = sdk(gateway, secret)
    data = jsonl([("a", "mini", "one"), ("bad", "mini", "two"), ("c", "claude", "three"),
                  ("d", "live", "four")])  # fmt: skip
    batch = submit(client, data)
    assert batch.status == "validating"
    done = wait_done(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 1)
    answers = lines_of(client, done.output_file_id)
    assert sorted(answers) == ["a", "c", "d"]
    for custom_id, text in (("a", "one"), ("c", "three")):
        body = ChatCompletion.model_validate(answers[custom_id]["response"]["body"])
        assert body.choices[0].message.content == f"echo: {text}"
    assert ChatCompletion.model_validate(answers["d"]["response"]["body"]).choices
    errors = lines_of(client, done.error_file_id)
    assert errors["bad"]["response"]["status_code"] == 400
    assert (oai.submissions, ant.submissions) == (1, 1)  # "live" ran on the gateway itself
    assert any(r.path.endswith("/chat/completions") for r in live.requests)
    # a spend-log row per result line, for this key, at the batch rate for batch lines
    row = spend_rows(gateway, "key", record["key_id"], requests=4)
    assert row["requests"] == 4
    half = {}
    for name, model in (("mini", "openai/gpt-4o-mini"), ("claude", "anthropic/claude-sonnet-4-5")):
        price = lookup_price(model)
        assert price is not None
        half[name] = (9 * price.input + 3 * price.output) / 2  # the fakes' usage: 9 in, 3 out
    assert Decimal(spend_rows(gateway, "model", "mini", requests=2)["cost"]) == half["mini"]
    assert Decimal(spend_rows(gateway, "model", "claude")["cost"]) == half["claude"]
    # "live" has no batch API: run by the gateway at its normal price (5 in, 2 out)
    live_cost = 5 * Decimal("0.000001") + 2 * Decimal("0.000002")
    assert Decimal(spend_rows(gateway, "model", "live")["cost"]) == live_cost
    assert Decimal(row["cost"]) == half["mini"] + half["claude"] + live_cost
    # another key does not see this batch or its files
    other, _ = new_key(gateway)
    with pytest.raises(openai.NotFoundError):
        sdk(gateway, other).batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        sdk(gateway, other).files.content(done.output_file_id or "")
    assert [b.id for b in sdk(gateway, other).batches.list()] == []
    assert batch.id in [b.id for b in client.batches.list()]


def test_bad_lines_and_unknown_models_are_refused_at_creation(gateway: Gateway) -> None:
    secret, _ = new_key(gateway, models=["mini"])
    client = sdk(gateway, secret)
    with pytest.raises(openai.BadRequestError, match="line 2: this key may not use model"):
        submit(client, jsonl([("a", "mini", "x"), ("b", "claude", "y")]))
    with pytest.raises(openai.BadRequestError, match="not served"):
        submit(client, jsonl([("a", "nope", "x")]))
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("in.jsonl", io.BytesIO(b"{}")), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="line 1: not valid JSON") as bad:
        submit(client, b"not json\n")
    assert "chatgate-batches" not in str(bad.value)  # no server path in the answer


def test_gateway_run_lines_keep_the_key_allowlist_on_fallbacks(gateway: Gateway) -> None:
    for models, answered in ((["broken"], False), (["broken", "live"], True)):
        secret, _ = new_key(gateway, models=models)
        client = sdk(gateway, secret)
        done = wait_done(client, submit(client, jsonl([("a", "broken", "x")])).id)
        assert done.status == "completed", done
        assert (done.output_file_id is not None) == answered  # fell back to "live" only if allowed
        assert (done.error_file_id is None) == answered


def test_a_key_budget_holds_the_batch(gateway: Gateway) -> None:
    secret, _ = new_key(gateway, budget="0.0000001")
    with pytest.raises(openai.APIStatusError) as refused:
        submit(sdk(gateway, secret), jsonl([("a", "mini", "x")]))
    assert refused.value.status_code == 402


def test_a_tag_budget_holds_the_batch_created_with_its_tag(gateway: Gateway) -> None:
    client = sdk(gateway, new_key(gateway)[0])
    with pytest.raises(openai.APIStatusError) as refused:
        submit(client, jsonl([("a", "mini", "x")]), tags="other, tiny")
    assert refused.value.status_code == 402
    assert "tag:tiny:monthly" in refused.value.message
    assert submit(client, jsonl([("a", "mini", "x")]), tags="other").id


def mini_worst_and_actual() -> tuple[Decimal, Decimal]:
    """A one-line "x" batch on gpt-4o-mini at the batch rate: its hold, and its real cost."""
    price = lookup_price("openai/gpt-4o-mini")
    assert price is not None
    messages = [{"role": "user", "content": "x"}]
    worst = Budgets([]).worst_case("openai/gpt-4o-mini", messages, max_tokens=20, price=price)
    return worst / 2, (9 * price.input + 3 * price.output) / 2


def test_a_finished_batch_is_charged_to_the_key_budget(gateway: Gateway) -> None:
    worst, actual = mini_worst_and_actual()
    # room for one batch's hold, and after its actual cost is charged, not for another hold
    secret, _ = new_key(gateway, budget=str(worst + actual - Decimal("0.000000001")))
    client = sdk(gateway, secret)
    assert wait_done(client, submit(client, jsonl([("a", "mini", "x")])).id).status == "completed"

    def refused() -> bool:
        try:
            submit(client, jsonl([("b", "mini", "x")]))
        except openai.APIStatusError as exc:
            return exc.status_code == 402
        return False

    # the charge lands a moment after the batch completes
    poll_until(refused, what="the first batch charged (the next one refused, 402)", every_s=0.1)


def test_admin_sees_every_batch(gateway: Gateway, tmp_path: Path) -> None:
    secret, _ = new_key(gateway)
    batch = submit(sdk(gateway, secret), jsonl([("a", "live", "x")]))
    status, body = gateway.admin("GET", f"/v1/batches/{batch.id}")
    assert status == 200, body
    assert body["id"] == batch.id


def global_reserved(gw: Gateway) -> Decimal:
    """What the global budget holds for calls in flight now (/admin/budgets)."""
    status, listed = gw.admin("GET", "/admin/budgets")
    assert status == 200, listed
    [row] = [r for r in listed["data"] if r["scope"] == "global"]
    return Decimal(row["reserved"])


def test_a_restarted_gateway_resumes_the_batch_without_submitting_again(
    tmp_path: Path,
) -> None:
    worst, actual = mini_worst_and_actual()
    with FakeOpenAIBatches(BatchScript(polls=10_000)) as oai:
        config = gateway_config(
            deployment("mini", oai),
            master_key=MASTER,  # the admin API shows the budget's holds
            database=SQLITE,
            # room for one hold, then (once it is charged) for no other
            budgets=[{"scope": "global", "limit": str(worst + actual - Decimal("1e-9"))}],
            budget_hold_ttl_s=1,  # the dead gateway's hold is swept soon after
        )
        with serve(config, tmp_path) as gw:
            batch = submit(sdk(gw, MASTER), jsonl([("a", "mini", "x")]))
            poll_until(lambda: any(oai.polls.values()), 10, "the batch submitted and polled")
        assert oai.submissions == 1
        oai.batch_script.polls = 0  # the upstream batch ends while the gateway is down
        with serve(config, tmp_path) as gw:
            client = sdk(gw, MASTER)
            done = wait_done(client, batch.id)
            assert done.status == "completed", done
            assert sorted(lines_of(client, done.output_file_id)) == ["a"]
            # Nothing held any more (the first gateway settled its hold as it stopped; a
            # gateway that died would leave it to be swept after the TTL): only what was
            # charged counts, and a 402 while a hold stood would prove nothing.
            poll_until(lambda: global_reserved(gw) == 0, 10, "the dead gateway's hold swept")
            # the resumed run took no hold, yet its cost was charged: no room for another
            with pytest.raises(openai.APIStatusError) as refused:
                submit(client, jsonl([("b", "mini", "x")]))
            assert refused.value.status_code == 402
        assert oai.submissions == 1
