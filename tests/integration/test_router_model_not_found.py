"""An upstream 404 whose body says the model does not exist disables the deployment, as a
refused key does: every call then fails at once naming it, instead of waiting out a cooldown
only to be told the same again. A 404 that does not say so keeps the ordinary cooldown."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chatgate import Router
from chatgate.errors import DeploymentDisabledError, NoDeploymentAvailableError, NotFoundError
from tests.fakes.anthropic_server import FakeAnthropic, error_body
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json

HI = [{"role": "user", "content": "hi"}]
UNKNOWN_MODEL = Reply(
    status=404,
    json=error_json(
        "The model `gpt-4o-mini` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
)


def deployment(fake: FakeOpenAI | FakeAnthropic, model: str) -> dict[str, Any]:
    return {
        "model_name": "solo",
        "params": {"model": model, "api_key": "sk-test", "api_base": fake.base_url},
    }


async def test_an_unknown_model_disables_the_deployment(fake: FakeOpenAI) -> None:
    fake.script(UNKNOWN_MODEL)
    router = Router([deployment(fake, "openai/gpt-4o-mini")], cooldown_time=60, timeout=30)
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
        router = Router([deployment(fake, "anthropic/claude-9")], cooldown_time=60, timeout=30)
        with pytest.raises(NotFoundError):
            await router.acompletion("solo", HI)
        with pytest.raises(DeploymentDisabledError, match=r"does not know its model \(404\)"):
            await router.acompletion("solo", HI)
        assert len(fake.requests) == 1


async def test_a_404_that_names_no_model_only_cools(fake: FakeOpenAI) -> None:
    """A proxy's page, say: it may pass, so the deployment cools and is not disabled."""
    fake.script(Reply(status=404, raw=b"<html>Not Found</html>"))
    router = Router([deployment(fake, "openai/gpt-4o-mini")], cooldown_time=60, timeout=0.5)
    with pytest.raises(NotFoundError):
        await router.acompletion("solo", HI)
    with pytest.raises(NoDeploymentAvailableError) as info:
        await router.acompletion("solo", HI)
    assert not isinstance(info.value, DeploymentDisabledError)
    assert "cooling down" in info.value.message
    assert len(fake.requests) == 1
