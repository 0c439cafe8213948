"""A batch the gateway runs itself is traced line by line: each line is a trace of its own,
its routed call's span the root, with its attempts as children; none of it lands in the
trace of the request that submitted the batch, which ended long before (a batch of 50,000
lines in one request's trace is no trace a person can read). A real `chatgate serve`
exporting over OTLP to a real receiver, and the OpenAI SDK submitting."""

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
            assert wait_done(client, submit(client, data).id).status == "completed"
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
    routes = [s for s in spans if s.name == "chatgate.route chat"]
    assert len(routes) == 2
    assert [s.parent_span_id for s in routes] == ["", ""]
    assert len({s.trace_id for s in routes}) == 2
    assert submitted.trace_id not in {s.trace_id for s in routes}
    for route in routes:
        [attempt] = [s for s in spans if s.trace_id == route.trace_id and s.kind == "CLIENT"]
        assert attempt.parent_span_id == route.span_id
        assert attempt.name == f"chat {LLAMA.split('/', 1)[1]}"
