"""A batch the gateway runs itself is traced line by line: each line is a trace of its own,
its root a ``chatgate.batch.line`` span naming the batch and the line, linked to the request
that submitted the batch, with the line's routed call and its attempts below it; none of it
lands in the submitting request's trace, which ended long before (a batch of 50,000 lines in
one request's trace is no trace a person can read). A real `chatgate serve` exporting over
OTLP to a real receiver, and the OpenAI SDK submitting."""

from __future__ import annotations

import pytest

from tests.batching.support import LLAMA
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.gateway_harness import SQLITE, deployment, gateway_config, serve
from tests.integration.test_provider_batch_gateway import jsonl, submit, wait_done

MASTER = "sk-master-batch-traces"


def test_each_line_of_a_batch_run_by_the_gateway_is_a_trace_of_its_own(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with FakeOpenAI() as fake, OtlpReceiver() as receiver:
        config = gateway_config(
            deployment("chat", fake, LLAMA),
            master_key=MASTER,
            database=SQLITE,
            otel={"endpoint": receiver.http_endpoint},
        )
        with serve(config, tmp_path_factory) as gw:
            client = gw.openai_client(MASTER)
            data = jsonl([("a", "chat", "q0"), ("b", "chat", "q1")])
            batch_id = submit(client, data).id
            done = wait_done(client, batch_id)
            assert done.status == "completed"
            assert not [k for k in done.model_dump() if k.startswith("chatgate")]  # stored only
            spans = receiver.wait_for_spans(
                lambda s: len([x for x in s if x.name == "chatgate.route chat"]) >= 2
            )
    # Requests to the files and batches routes are named by their templates, never the ids.
    [submitted] = [s for s in spans if s.name == "POST /v1/batches"]
    assert submitted.attributes["http.route"] == "/v1/batches"
    assert [s.name for s in spans if s.name.startswith("POST /v1/files")] == ["POST /v1/files"]
    polls = [s for s in spans if s.name == "GET /v1/batches/{id}"]
    assert polls
    assert {s.attributes["http.route"] for s in polls} == {"/v1/batches/{id}"}

    lines = [s for s in spans if s.name == "chatgate.batch.line"]
    assert sorted(s.attributes["chatgate.batch.custom_id"] for s in lines) == ["a", "b"]
    assert {s.attributes["chatgate.batch.id"] for s in lines} == {batch_id}
    assert [s.parent_span_id for s in lines] == ["", ""]  # each line a trace of its own
    assert len({s.trace_id for s in lines}) == 2
    assert submitted.trace_id not in {s.trace_id for s in lines}
    for line in lines:
        assert line.links == [(submitted.trace_id, submitted.span_id)]  # the way back
        [route] = [
            s for s in spans if s.name == "chatgate.route chat" and s.trace_id == line.trace_id
        ]
        assert route.parent_span_id == line.span_id
        [attempt] = [s for s in spans if s.trace_id == line.trace_id and s.kind == "CLIENT"]
        assert attempt.parent_span_id == route.span_id
        assert attempt.name == f"chat {LLAMA.split('/', 1)[1]}"
        assert line.start_ns <= attempt.start_ns <= attempt.end_ns <= line.end_ns
