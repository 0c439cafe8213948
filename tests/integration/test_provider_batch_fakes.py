"""The fake batch APIs speak the real wire formats: the official SDKs' batch calls (openai,
anthropic, google-genai) work against them and parse every object into the SDKs' own
types."""

from __future__ import annotations

import io
from typing import Any

import anthropic
import openai
import orjson
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from google import genai
from google.genai import types as genai_types
from openai.types import Batch, FileObject
from openai.types.chat import ChatCompletion

from tests.fakes.anthropic_batches import FakeAnthropicBatches
from tests.fakes.gemini_batches import FakeGeminiBatches
from tests.fakes.openai_batches import BatchScript, FakeOpenAIBatches


def _line(custom_id: str, text: str) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return orjson.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


def test_openai_sdk_batch_round_trip() -> None:
    script = BatchScript(polls=1, line_errors={"b": (400, "invalid_request_error", "bad")})
    with FakeOpenAIBatches(script) as fake:
        client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        data = _line("a", "one") + b"\n" + _line("b", "two") + b"\n"
        uploaded = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
        assert isinstance(uploaded, FileObject)
        assert uploaded.purpose == "batch"
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert isinstance(batch, Batch)
        assert client.batches.retrieve(batch.id).status == "in_progress"
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
        assert done.output_file_id is not None
        assert done.error_file_id is not None
        output = client.files.content(done.output_file_id).text.splitlines()
        answer = orjson.loads(output[0])
        assert answer["custom_id"] == "a"
        completion = ChatCompletion.model_validate(answer["response"]["body"])
        assert completion.choices[0].message.content == "echo: one"
        error = orjson.loads(client.files.content(done.error_file_id).content)
        assert error["custom_id"] == "b"
        assert error["response"]["status_code"] == 400
        assert fake.submissions == 1


def _submitted(fake: FakeOpenAIBatches) -> tuple[openai.OpenAI, Batch]:
    """One line submitted with the SDK, the batch read once (the fake ends it at once)."""
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(_line("a", "x"))), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return client, client.batches.retrieve(batch.id)


def test_openai_sdk_sees_failed_and_expired_batches() -> None:
    with FakeOpenAIBatches(BatchScript(polls=0, final="failed")) as fake:
        _, failed = _submitted(fake)
        assert failed.status == "failed"
        assert failed.errors is not None
        assert failed.errors.data is not None
        assert failed.errors.data[0].line == 1
    with FakeOpenAIBatches(BatchScript(polls=0, final="expired", answered=0)) as fake:
        client, expired = _submitted(fake)
        assert expired.status == "expired"
        assert expired.error_file_id is not None
        assert b"batch_expired" in client.files.content(expired.error_file_id).content


def test_anthropic_sdk_batch_round_trip() -> None:
    script = BatchScript(polls=1, line_errors={"b": (400, "invalid_request_error", "bad")})
    with FakeAnthropicBatches(script) as fake:
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0)
        params = {"model": "claude-sonnet-4-20250514", "max_tokens": 64}
        batch = client.messages.batches.create(
            requests=[
                {
                    "custom_id": "a",
                    "params": {**params, "messages": [{"role": "user", "content": "one"}]},
                },
                {
                    "custom_id": "b",
                    "params": {**params, "messages": [{"role": "user", "content": "two"}]},
                },
            ]
        )
        assert isinstance(batch, MessageBatch)
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended"
        assert (ended.request_counts.succeeded, ended.request_counts.errored) == (1, 1)
        results = list(client.messages.batches.results(batch.id))
        assert all(isinstance(r, MessageBatchIndividualResponse) for r in results)
        by_id = {r.custom_id: r.result for r in results}
        assert by_id["a"].type == "succeeded"
        assert by_id["a"].message.content[0].text == "echo: one"  # type: ignore[union-attr]
        assert by_id["b"].type == "errored"
        assert by_id["b"].error.error.type == "invalid_request_error"  # type: ignore[union-attr]
        assert fake.submissions == 1


def test_anthropic_sdk_sees_expired_lines() -> None:
    with FakeAnthropicBatches(BatchScript(polls=0, final="expired", answered=1)) as fake:
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0)
        params = {"model": "claude-sonnet-4-20250514", "max_tokens": 64}
        requests = [
            {
                "custom_id": f"r{i}",
                "params": {**params, "messages": [{"role": "user", "content": "x"}]},
            }
            for i in range(2)
        ]
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        assert client.messages.batches.retrieve(batch.id).request_counts.expired == 1
        kinds = [r.result.type for r in client.messages.batches.results(batch.id)]
        assert kinds == ["succeeded", "expired"]


def test_google_genai_sdk_batch_round_trip() -> None:
    script = BatchScript(polls=1, line_errors={"b": (400, "invalid_request_error", "bad")})
    with FakeGeminiBatches(script) as fake:
        client = genai.Client(
            api_key="g-test",
            http_options=genai_types.HttpOptions(
                base_url=fake.base_url.removesuffix("/v1beta"), api_version="v1beta"
            ),
        )
        requests: list[Any] = [
            {"contents": [{"role": "user", "parts": [{"text": text}]}], "metadata": {"key": key}}
            for key, text in (("a", "one"), ("b", "two"))
        ]
        job = client.batches.create(model="gemini-2.5-flash", src=requests)
        assert isinstance(job, genai_types.BatchJob)
        assert job.name is not None
        assert client.batches.get(name=job.name).state == genai_types.JobState.JOB_STATE_RUNNING
        done = client.batches.get(name=job.name)
        assert done.state == genai_types.JobState.JOB_STATE_SUCCEEDED
        assert done.dest is not None
        assert done.dest.inlined_responses is not None
        by_key = {r.metadata["key"]: r for r in done.dest.inlined_responses if r.metadata}
        answer = by_key["a"].response
        assert answer is not None
        assert answer.text == "echo: one"
        assert answer.usage_metadata is not None
        assert answer.usage_metadata.prompt_token_count == 9
        assert by_key["b"].error is not None
        assert by_key["b"].response is None
        assert fake.submissions == 1
