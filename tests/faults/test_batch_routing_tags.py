"""A batch submitted through the gateway with ``x-chatgate-tags: eu`` is routed as a live
request with that header is: each model has two deployments on two fake upstreams, the
second one tagged ``eu``, and every line of the batch (run by the gateway, or sent to a
provider's batch API) is answered by the eu upstream alone, counted at the fakes; without
tags either serves. A tag no deployment of a line's model carries is refused at submission
(400 naming it, nothing held); the hold is taken on the deployment the lines will run on;
a batch resumed by a restarted gateway keeps routing by the tags it was submitted with."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from tests.batching.support import LLAMA, MINI, Fakes, chats, fake_set
from tests.clock import poll_until
from tests.fakes.openai_server import Reply, completion_json
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve
from tests.integration.test_provider_batch_gateway import (
    global_reserved,
    jsonl,
    lines_of,
    submit,
    wait_done,
)

MASTER = "sk-master-batch-routing"
CHEAP = {"input_cost_per_token": "0.000001", "output_cost_per_token": "0.000002"}
DEAR = {"input_cost_per_token": "0.00001", "output_cost_per_token": "0.00002"}  # 10 x CHEAP


def config(fakes: Fakes, database: str = SQLITE) -> dict[str, Any]:
    us, eu, us_batch, eu_batch = fakes
    return gateway_config(
        deployment("chat", us, LLAMA, **CHEAP),  # untagged first: what an untagged pick takes
        deployment("chat", eu, LLAMA, tags=["eu"], **CHEAP),
        deployment("mini", us_batch, MINI, **CHEAP),
        deployment("mini", eu_batch, MINI, tags=["eu"], **DEAR),
        deployment("mixed", us_batch, MINI, **CHEAP),  # its batch API is not in the eu
        deployment("mixed", eu, LLAMA, tags=["eu"], **CHEAP),
        deployment("plain", us, LLAMA, **CHEAP),  # no tags in the group: any tags are served
        master_key=MASTER,
        database=database,
        router={"num_retries": 0},
        budgets=[{"scope": "global", "limit": "100"}],  # holds to see: /admin/budgets
    )


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    with fake_set(polls=0) as fakes:
        yield fakes


@pytest.fixture(scope="module")
def gateway(fakes: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serve(config(fakes), tmp_path_factory) as gw:
        yield gw


def lines(*models: str) -> bytes:
    return jsonl([(f"{model}-{i}", model, f"q{i}") for i, model in enumerate(models)])


def counts(fakes: Fakes) -> tuple[int, int, int, int]:
    """Chat requests at each live fake, batches created at each batch fake."""
    us, eu, us_batch, eu_batch = fakes
    return chats(us), chats(eu), us_batch.submissions, eu_batch.submissions


def run(gw: Gateway, data: bytes, tags: str | None = None) -> openai.types.Batch:
    client = gw.openai_client(MASTER)
    done = wait_done(client, submit(client, data, tags).id)
    assert done.status == "completed", done
    return done


def test_a_tagged_batch_is_answered_by_the_tagged_deployments_only(
    gateway: Gateway, fakes: Fakes
) -> None:
    before = counts(fakes)
    untagged = run(gateway, lines(*["chat"] * 8, "mini", "mini", "mixed"))
    us, eu, us_batches, eu_batches = (a - b for a, b in zip(counts(fakes), before, strict=True))
    assert us > 0  # without tags: either live deployment, the first batch API
    assert eu > 0
    assert (us + eu, us_batches, eu_batches) == (8, 1, 0)
    assert untagged.request_counts is not None
    assert untagged.request_counts.completed == 11
    before = counts(fakes)
    us_reads = len(fakes[2].requests)
    tagged = run(gateway, lines(*["chat"] * 8, "mini", "mini", "mixed", "mixed"), tags="eu")
    after = counts(fakes)
    # "mixed" has no batch API in the eu: its lines run live, on the eu deployment
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (0, 10, 0, 1)
    assert len(fakes[2].requests) == us_reads  # the untagged batch API was not even asked
    answers = lines_of(gateway.openai_client(MASTER), tagged.output_file_id)
    assert len(answers) == 12
    assert tagged.error_file_id is None


def test_a_tag_no_deployment_carries_is_refused_at_submission(
    gateway: Gateway, fakes: Fakes
) -> None:
    client = gateway.openai_client(MASTER)
    listed = [b.id for b in client.batches.list()]
    before = counts(fakes)
    with pytest.raises(openai.BadRequestError) as refused:
        submit(client, lines("mini", "chat", "plain"), tags="eu, nowhere")
    message = refused.value.message
    assert "line 1: body.model 'mini'" in message
    assert "line 2: body.model 'chat'" in message
    assert "(eu, nowhere)" in message
    assert "line 3" not in message  # "plain" has no tags at all: it serves any
    assert "the input file has 2 problem(s)" in message
    assert global_reserved(gateway) == 0  # nothing held
    assert [b.id for b in client.batches.list()] == listed
    assert counts(fakes) == before  # nothing sent
    assert run(gateway, lines("plain"), tags="nowhere").request_counts is not None


def test_the_bodys_metadata_tags_route_as_the_header_does(gateway: Gateway, fakes: Fakes) -> None:
    """LiteLLM-style ``metadata.tags`` on the batch, as on a chat request: they route its
    lines, and are taken out of the metadata the batch keeps; malformed ones are a 400."""
    client = gateway.openai_client(MASTER)
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(lines("chat", "chat", "mini"))),
                                   purpose="batch")  # fmt: skip
    before = counts(fakes)
    made = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"tags": "eu", "run": "7"}, extra_headers={"x-chatgate-trace-id": "tagged-7"},
    )  # fmt: skip
    assert made.metadata == {"run": "7"}
    # the submission's access-log line names them, as a chat request's does
    assert gateway.wait_for_access_line("tagged-7", field="trace_id")["tags"] == ["eu"]
    done = wait_done(client, made.id)
    assert done.status == "completed", done
    assert tuple(a - b for a, b in zip(counts(fakes), before, strict=True)) == (0, 2, 0, 1)
    for tags, said, param in (
        ([1], "metadata.tags: item 0 is int, not a string", "metadata.tags"),
        ("eu, nowhere", "carries every requested tag (eu, nowhere)", "input_file_id"),
    ):
        body = {"input_file_id": uploaded.id, "endpoint": "/v1/chat/completions",
                "completion_window": "24h", "metadata": {"tags": tags}}  # fmt: skip
        status, answer = gateway.admin("POST", "/v1/batches", body)
        assert status == 400, answer
        assert said in answer["error"]["message"]
        assert answer["error"]["param"] == param
    assert global_reserved(gateway) == 0


def test_the_hold_is_taken_on_the_deployment_the_lines_go_to(
    gateway: Gateway, fakes: Fakes
) -> None:
    """The eu batch deployment costs ten times the other: so does the eu batch's hold (it
    was once held at the first batch deployment's price, whatever the tags)."""
    _, _, us_batch, eu_batch = fakes
    client = gateway.openai_client(MASTER)
    us_batch.batch_script.polls = eu_batch.batch_script.polls = 10_000
    try:
        assert global_reserved(gateway) == 0
        first = submit(client, lines("mini"))
        cheap = global_reserved(gateway)
        second = submit(client, lines("mini"), tags="eu")
        dear = global_reserved(gateway) - cheap
        assert cheap > 0
        assert dear == 10 * cheap
    finally:
        us_batch.batch_script.polls = eu_batch.batch_script.polls = 0
    for batch in (first, second):
        assert wait_done(client, batch.id, timeout_s=30).status == "completed"
    poll_until(lambda: global_reserved(gateway) == 0, 10, "both holds settled")


def test_a_resumed_batch_keeps_routing_by_the_tags_it_was_submitted_with(
    tmp_path: Path,
) -> None:
    """Killed while its live lines are in flight, then stopped while its provider batch is
    out: each restart goes on with the eu deployments only."""
    with fake_set(polls=10_000) as fakes:
        _, eu, us_batch, eu_batch = fakes
        settings = config(fakes, f"sqlite:///{tmp_path / 'chatgate.db'}")
        eu.script(*[Reply(json=completion_json("ok"), delay_s=60)] * 3)
        with serve(settings, tmp_path) as gw:
            batch = submit(gw.openai_client(MASTER), lines("chat", "chat", "chat", "mini"), "eu")
            poll_until(lambda: chats(eu) == 3, 15, "the live lines in flight at the eu fake")
            os.kill(gw.proc.pid, signal.SIGKILL)
            gw.proc.wait(5)
        eu.replies.clear()
        with serve(settings, tmp_path) as gw:
            gw.openai_client(MASTER).batches.retrieve(batch.id)  # read: picked up again
            poll_until(lambda: any(eu_batch.polls.values()), 15, "the eu batch submitted")
        eu_batch.batch_script.polls = 0  # it ends while the gateway is down
        with serve(settings, tmp_path) as gw:
            done = wait_done(gw.openai_client(MASTER), batch.id)
            assert done.status == "completed", done
            assert done.request_counts is not None
            assert done.request_counts.completed == 4
        assert counts(fakes) == (0, 6, 0, 1)  # the three lines again, then one batch
        assert us_batch.requests == []


def test_a_batch_stored_before_route_tags_were_kept_resumes_as_before(tmp_path: Path) -> None:
    """Its record has no ``route_tags`` and its provider jobs no ``tags``: it runs untagged."""
    with fake_set(polls=10_000) as fakes:
        settings = config(fakes, f"sqlite:///{tmp_path / 'chatgate.db'}")
        with serve(settings, tmp_path) as gw:
            batch = submit(gw.openai_client(MASTER), lines("chat", "mini"))
            poll_until(lambda: any(fakes[2].polls.values()), 15, "the batch submitted")
        folder = tmp_path / "chatgate-batches" / "batches" / batch.id
        record = orjson.loads((folder / "batch.json").read_bytes())
        del record["chatgate_key"]["route_tags"]
        (folder / "batch.json").write_bytes(orjson.dumps(record))
        state = orjson.loads((folder / "output.jsonl.batches.json").read_bytes())
        for job in state["jobs"]:
            del job["tags"]
        (folder / "output.jsonl.batches.json").write_bytes(orjson.dumps(state))
        fakes[2].batch_script.polls = 0
        with serve(settings, tmp_path) as gw:
            done = wait_done(gw.openai_client(MASTER), batch.id)
            assert done.status == "completed", done
            assert done.request_counts is not None
            assert done.request_counts.completed == 2
        assert [f.submissions for f in fakes[2:]] == [1, 0]
