"""An upstream 404 whose body says the model does not exist disables the deployment, as a
refused key does: every call then fails at once naming it, instead of waiting out a cooldown
only to be told the same again. A 404 that does not say so keeps the ordinary cooldown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chatgate import Router
from chatgate.errors import DeploymentDisabledError, NoDeploymentAvailableError, NotFoundError
from tests.fakes.anthropic_server import FakeAnthropic, error_body
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json
from tests.gateway_harness import deployment, gateway_config, serve

HI = [{"role": "user", "content": "hi"}]
UNKNOWN_MODEL = Reply(
    status=404,
    json=error_json(
        "The model `gpt-4o-mini` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
)


async def test_an_unknown_model_disables_the_deployment(fake: FakeOpenAI) -> None:
    fake.script(UNKNOWN_MODEL)
    router = Router([deployment("solo", fake)], cooldown_time=60, timeout=30)
    with pytest.raises(NotFoundError):
        await router.acompletion("solo", HI)
    for stream in (False, True):
        started = time.monotonic()
        with pytest.raises(DeploymentDisabledError) as info:
            await router.acompletion("solo", HI, stream=stream)
        assert time.monotonic() - started < 0.5
        assert not info.value.retryable
        assert info.value.message.startswith(
            "deployment solo#0 (openai/gpt-4o-mini) of 'solo' is disabled: the upstream does "
            "not know its model (404) at "
        )
        assert "fix the model name and reload" in info.value.message
    assert len(fake.requests) == 1  # neither call reached the upstream


async def test_anthropic_says_it_with_not_found_error() -> None:
    with FakeAnthropic() as fake:
        fake.script(Reply(status=404, json=error_body("not_found_error", "model: claude-9")))
        router = Router(
            [deployment("solo", fake, "anthropic/claude-9")], cooldown_time=60, timeout=30
        )
        with pytest.raises(NotFoundError):
            await router.acompletion("solo", HI)
        with pytest.raises(DeploymentDisabledError, match=r"does not know its model \(404\)"):
            await router.acompletion("solo", HI)
        assert len(fake.requests) == 1


async def test_a_404_that_names_no_model_only_cools(fake: FakeOpenAI) -> None:
    """A proxy's page, say: it may pass, so the deployment cools and is not disabled."""
    fake.script(Reply(status=404, raw=b"<html>Not Found</html>"))
    router = Router([deployment("solo", fake)], cooldown_time=60, timeout=0.5)
    with pytest.raises(NotFoundError):
        await router.acompletion("solo", HI)
    with pytest.raises(NoDeploymentAvailableError) as info:
        await router.acompletion("solo", HI)
    assert not isinstance(info.value, DeploymentDisabledError)
    assert "cooling down" in info.value.message
    assert len(fake.requests) == 1


def test_through_the_gateway_the_404_then_the_disabled_state(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.script(UNKNOWN_MODEL)
    config = gateway_config(
        deployment("solo", upstream, "openai/gpt-4o-mini"), router={"cooldown_time": 60}
    )
    with serve(config, tmp_path) as gateway:
        body = {"model": "solo", "messages": HI}
        status, first = gateway.admin("POST", "/v1/chat/completions", body)
        assert (status, first["error"]["code"]) == (404, "model_not_found")
        status, second = gateway.admin("POST", "/v1/chat/completions", body)
    assert status == 502
    assert "is disabled: the upstream does not know its model (404)" in second["error"]["message"]
    assert len(upstream.requests) == 1
