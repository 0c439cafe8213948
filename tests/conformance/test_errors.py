"""Upstream failures, before the answer and in the middle of a stream: the same exception
class, retry flag and retry hint from every provider."""

from __future__ import annotations

import pytest

import chatgate
from tests.conformance.conftest import Ask
from tests.conformance.providers import ERRORS, ErrorCase, Fake, Provider


@pytest.mark.parametrize("case", ERRORS, ids=lambda case: case.kind)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_error_status_maps_to_class(
    provider: Provider, upstream: Fake, ask: Ask, case: ErrorCase, stream: bool
) -> None:
    upstream.script(provider.error(case.kind, "it broke"))
    with pytest.raises(case.cls) as info:
        ask(stream=stream)
    err = info.value
    assert type(err) is case.cls
    assert err.status_code == provider.statuses[case.kind]
    assert err.retryable is case.retryable
    assert err.retry_after == provider.retry_after(case.kind)
    assert err.provider == provider.name
    assert err.request_id == provider.request_id
    assert "it broke" in str(err)


def test_error_event_mid_stream_raises_mapped_error(
    provider: Provider, upstream: Fake, ask: Ask
) -> None:
    upstream.script(provider.mid_stream_error("Overloaded now"))
    seen = []
    with pytest.raises(chatgate.APIStatusError, match="Overloaded now") as info:
        for chunk in ask(stream=True):
            seen.append(chunk)
    assert type(info.value) is provider.mid_stream_error_cls
    assert info.value.retryable
    assert info.value.request_id == provider.stream_error_request_id
    assert seen  # the text before the failure was delivered
