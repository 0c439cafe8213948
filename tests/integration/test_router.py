"""Router against real fake upstreams: retries, cooldowns, fallbacks, deadlines, streams, limits."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import chatgate
from chatgate import Router
from chatgate.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DeploymentDisabledError,
    InvalidRequestError,
    NoDeploymentAvailableError,
    PermissionDeniedError,
    RateLimitError,
)
from chatgate.types import ChatResponse
from tests.clock import ManualClock, wait_until
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    completion_json,
    error_json,
    text_stream,
)

HI = [{"role": "user", "content": "hi"}]
FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}


@pytest.fixture
def fakes() -> Iterator[list[FakeOpenAI]]:
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as c:
        yield [a, b, c]


def entry(name: str, fake: FakeOpenAI | str, model: str = "gpt-4o-mini", **params: Any) -> Any:
    base = fake if isinstance(fake, str) else fake.base_url
    return {
        "model_name": name,
        "params": {"model": f"openai/{model}", "api_key": "sk-test", "api_base": base, **params},
    }


def dead_base() -> str:
    """An address where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def err(status: int, type_: str = "server_error", **headers: str) -> Reply:
    return Reply(status=status, json=error_json(f"status {status}", type_), headers=headers)


async def test_a_500_is_retried_on_another_deployment_and_logged(fakes: list[FakeOpenAI]) -> None:
    a, b, _ = fakes
    a.script(err(500))
    router = Router(
        [entry("smart", a, "m-a"), entry("smart", b, "m-b")],
        routing_strategy="round-robin",
        settings=FAST,
    )
    response = await router.acompletion("smart", HI)
    assert response.content == "echo: hi"
    assert response.meta.deployment == "smart#1"
    assert response.meta.model_name == "smart"
    assert response.meta.attempts == 2
    first, second = response.meta.attempt_log
    assert (first.deployment, first.error, first.status_code) == (
        "smart#0",
        "InternalServerError",
        500,
    )
    assert first.wait_s == 0.0  # another healthy deployment was there: no backoff
    assert (second.deployment, second.error) == ("smart#1", None)
    assert b.last.body["model"] == "m-b"


@pytest.mark.parametrize(
    ("status", "type_", "error"),
    [
        (400, "invalid_request_error", BadRequestError),
        (401, "invalid_api_key", AuthenticationError),
        (403, "permission_denied", chatgate.PermissionDeniedError),
        (404, "not_found", chatgate.NotFoundError),
        (422, "invalid_request_error", chatgate.UnprocessableEntityError),
    ],
)
async def test_non_retryable_errors_are_attempted_exactly_once(
    fakes: list[FakeOpenAI], status: int, type_: str, error: type[Exception]
) -> None:
    a, b, _ = fakes
    a.script(err(status, type_))
    router = Router([entry("smart", a), entry("smart", b)], routing_strategy="round-robin")
    with pytest.raises(error) as info:
        await router.acompletion("smart", HI)
    assert len(a.requests) == 1
    assert len(b.requests) == 0
    assert [x.status_code for x in info.value.attempt_log] == [status]  # type: ignore[attr-defined]


async def test_a_401_cools_the_deployment_so_the_next_call_skips_it(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    a.script(err(401, "invalid_api_key"))
    router = Router([entry("smart", a), entry("smart", b)], routing_strategy="round-robin")
    with pytest.raises(AuthenticationError):
        await router.acompletion("smart", HI)
    for _ in range(4):
        assert (await router.acompletion("smart", HI)).meta.deployment == "smart#1"
    assert len(a.requests) == 1


async def test_a_single_deployment_serves_429_then_ok_within_the_deadline(
    fake: FakeOpenAI,
) -> None:
    fake.script(err(429, "rate_limit_exceeded", **{"retry-after-ms": "300"}))
    router = Router([entry("solo", fake)], timeout=5, settings=FAST)
    started = time.monotonic()
    response = await router.acompletion("solo", HI)
    elapsed = time.monotonic() - started
    assert response.content == "echo: hi"
    assert 0.3 <= elapsed < 2.0
    assert response.meta.attempt_log[0].wait_s >= 0.3
    assert len(fake.requests) == 2


async def test_retry_after_beyond_the_deadline_fails_fast_with_the_real_error(
    fake: FakeOpenAI,
) -> None:
    fake.script(err(429, "rate_limit_exceeded", **{"retry-after": "30"}))
    router = Router([entry("solo", fake)], timeout=2, settings=FAST)
    started = time.monotonic()
    with pytest.raises(RateLimitError):
        await router.acompletion("solo", HI)
    assert time.monotonic() - started < 0.5
    assert len(fake.requests) == 1


async def test_one_deadline_covers_every_retry(fakes: list[FakeOpenAI]) -> None:
    a, b, c = fakes
    for fake in fakes:
        fake.script(*[Reply(delay_s=1.0, json=completion_json("late"))] * 3)
    router = Router([entry("slow", f, timeout=0.25) for f in (a, b, c)], num_retries=5, timeout=0.6)
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        await router.acompletion("slow", HI)
    assert time.monotonic() - started < 0.8  # not num_retries x per-attempt timeout
    assert len(info.value.attempt_log) == 3  # 0.25 + 0.25 + the 0.1 left


async def test_a_slow_deployment_times_out_and_the_retry_goes_elsewhere(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    a.script(Reply(delay_s=2.0, json=completion_json("late")))
    router = Router(
        [entry("g", a, timeout=0.2), entry("g", b, timeout=0.2)],
        routing_strategy="round-robin",
        timeout=5,
    )
    response = await router.acompletion("g", HI)
    assert response.content == "echo: hi"
    assert response.meta.attempt_log[0].error == "APITimeoutError"


async def test_connection_refused_is_retried_and_cools_the_dead_deployment(
    fake: FakeOpenAI,
) -> None:
    router = Router(
        [entry("g", dead_base()), entry("g", fake)],
        routing_strategy="round-robin",
        allowed_fails=2,
        cooldown_time=60,
    )
    for _ in range(6):
        assert (await router.acompletion("g", HI)).content == "echo: hi"
    [dead, _] = await router.state.view(["g#0", "g#1"], router.now())
    assert dead.cooldown_until > router.now()
    assert dead.last_error == "APIConnectionError"


async def test_fallbacks_move_to_the_next_model_and_meta_says_which(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    a.script(err(500), err(500), err(500))
    entries = [entry("primary", a), entry("backup", b, "backup-model")]
    router = Router(entries, fallbacks=[{"primary": ["backup"]}], num_retries=2, settings=FAST)
    response = await router.acompletion("primary", HI)
    assert response.meta.model_name == "backup"
    assert response.meta.deployment == "backup#0"
    assert [x.error for x in response.meta.attempt_log] == ["InternalServerError"] * 3 + [None]
    assert len(a.requests) == 3

    a.script(err(500), err(500), err(500))
    fresh = Router(entries, fallbacks=[{"primary": ["backup"]}], settings=FAST)
    with pytest.raises(chatgate.InternalServerError):
        await fresh.acompletion("primary", HI, disable_fallbacks=True)
    assert len(b.requests) == 1


async def test_all_cooling_falls_back_at_once_and_without_fallback_names_each_state(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    a.script(err(429, "rate_limit_exceeded", **{"retry-after": "60"}))
    router = Router(
        [entry("primary", a), entry("backup", b)],
        fallbacks=[{"primary": ["backup"]}],
        cooldown_time=60,
        timeout=5,
    )
    assert (await router.acompletion("primary", HI)).meta.model_name == "backup"  # 429 → fall back
    started = time.monotonic()
    assert (await router.acompletion("primary", HI)).meta.model_name == "backup"
    assert time.monotonic() - started < 0.5
    assert len(a.requests) == 1  # cooling: not even tried

    with pytest.raises(NoDeploymentAvailableError) as info:
        await router.acompletion("primary", HI, disable_fallbacks=True)
    message = str(info.value)
    assert "primary#0 (openai/gpt-4o-mini): cooling down" in message
    assert "after RateLimitError" in message
    assert info.value.retry_after is not None
    assert info.value.retry_after > 50


@pytest.mark.parametrize(
    ("status", "type_", "first"),
    [
        (401, "invalid_api_key", AuthenticationError),
        (403, "permission_denied", PermissionDeniedError),
    ],
)
async def test_refused_credentials_disable_the_deployment_every_call_fails_at_once(
    fake: FakeOpenAI, status: int, type_: str, first: type[Exception]
) -> None:
    """Not a cooldown to wait out (was: every call waited for it, up to the deadline)."""
    fake.script(err(status, type_))
    router = Router([entry("solo", fake)], cooldown_time=60, timeout=30)
    with pytest.raises(first):
        await router.acompletion("solo", HI)
    messages = set()
    for stream in (False, True, False, True):
        started = time.monotonic()
        with pytest.raises(DeploymentDisabledError) as info:
            await router.acompletion("solo", HI, stream=stream)
        assert time.monotonic() - started < 0.5
        assert not info.value.retryable
        assert info.value.retry_after is None
        assert [a.deployment for a in info.value.attempt_log] == []  # nothing was sent
        messages.add(info.value.message)
    [message] = messages  # the same error, whole or streamed, call after call
    what = "rejected its credentials" if status == 401 else "denied its credentials permission"
    assert message.startswith(
        f"deployment solo#0 (openai/gpt-4o-mini) of 'solo' is disabled: the upstream {what} "
        f"({status}) at "
    )
    assert " and reload (chatgate tries it again with the first request after" in message
    assert len(fake.requests) == 1


async def test_a_disabled_deployment_is_tried_again_after_the_cooldown(fake: FakeOpenAI) -> None:
    fake.script(err(401, "invalid_api_key"), err(401, "invalid_api_key"))
    clock = ManualClock()
    router = Router([entry("solo", fake)], cooldown_time=0.2, timeout=5, clock=clock)
    with pytest.raises(AuthenticationError):
        await router.acompletion("solo", HI)
    with pytest.raises(DeploymentDisabledError):
        await router.acompletion("solo", HI)
    clock.advance(0.19)
    with pytest.raises(DeploymentDisabledError):  # not a moment before the cooldown ends
        await router.acompletion("solo", HI)
    clock.advance(0.06)
    with pytest.raises(AuthenticationError):  # the probe: refused again, disabled again
        await router.acompletion("solo", HI)
    with pytest.raises(DeploymentDisabledError):
        await router.acompletion("solo", HI)
    clock.advance(0.25)
    assert (await router.acompletion("solo", HI)).content == "echo: hi"  # the key works again
    assert len(fake.requests) == 3


async def test_a_disabled_deployment_beside_a_cooling_one_is_not_waited_for(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    a.script(err(401, "invalid_api_key"))
    b.script(err(429, "rate_limit_exceeded", **{"retry-after": "0.3"}))
    router = Router(
        [entry("smart", a), entry("smart", b)],
        routing_strategy="round-robin",
        cooldown_time=60,
        num_retries=0,
        timeout=5,
    )
    with pytest.raises(AuthenticationError):
        await router.acompletion("smart", HI)
    with pytest.raises(RateLimitError):
        await router.acompletion("smart", HI)
    started = time.monotonic()  # b comes back in 0.3 s: waited for; a never
    assert (await router.acompletion("smart", HI)).meta.deployment == "smart#1"
    assert 0.2 < time.monotonic() - started < 1.0
    assert len(a.requests) == 1


async def test_context_window_fallback_on_the_error_and_before_sending(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, c = fakes
    a.script(
        Reply(
            status=400,
            json=error_json(
                "too long", "invalid_request_error", "context_length_exceeded", "messages"
            ),
        )
    )
    router = Router(
        [entry("small", a), entry("big", b, "big-model"), entry("tiny", c, context_window=50)],
        context_window_fallbacks=[{"small": ["big"]}, {"tiny": ["big"]}],
        fallbacks=[{"tiny": ["small"]}],
    )
    response = await router.acompletion("small", HI)
    assert response.meta.model_name == "big"
    long = [{"role": "user", "content": "word " * 400}]
    response = await router.acompletion("tiny", long)
    assert response.meta.model_name == "big"
    assert len(c.requests) == 0  # the pre-call check saved a doomed request
    with pytest.raises(chatgate.ContextWindowExceededError, match="context window"):
        await router.acompletion("tiny", long, disable_fallbacks=True)


async def test_content_policy_fallback(fakes: list[FakeOpenAI]) -> None:
    a, b, _ = fakes
    a.script(
        Reply(
            status=400, json=error_json("no", "invalid_request_error", "content_policy_violation")
        )
    )
    router = Router(
        [entry("strict", a), entry("lenient", b)],
        content_policy_fallbacks=[{"strict": ["lenient"]}],
    )
    assert (await router.acompletion("strict", HI)).meta.model_name == "lenient"


async def test_a_stream_failing_before_its_first_chunk_is_retried(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    a.script(Reply(chunks=text_stream(["x"]), drop_after=0))
    router = Router([entry("g", a), entry("g", b)], routing_strategy="round-robin")
    stream = await router.acompletion("g", [{"role": "user", "content": "stream me"}], stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: stream me"
    final = await stream.afinal()
    assert final.meta.deployment == "g#1"
    assert [x.error for x in final.meta.attempt_log] == ["APIConnectionError", None]


async def test_a_stream_failing_after_its_first_chunk_raises_on_the_stream(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    a.script(Reply(chunks=text_stream(["one ", "two ", "three"]), drop_after=2))
    router = Router([entry("g", a), entry("g", b)], routing_strategy="round-robin")
    stream = await router.acompletion("g", HI, stream=True)
    seen = []
    with pytest.raises(APIConnectionError):
        async for chunk in stream:
            seen.append(chunk)
    assert seen  # the caller got the start of the answer from a...
    assert len(b.requests) == 0  # ...and no silent switch to b mid-answer

    async def released() -> bool:
        [stats, _] = await router.state.view(["g#0", "g#1"], router.now())
        return stats.in_flight == 0 and stats.last_error == "APIConnectionError"

    await wait_until(released, what="a's slot released with the failure recorded")


async def test_stream_slots_are_held_until_the_stream_ends(fake: FakeOpenAI) -> None:
    router = Router([entry("g", fake, max_parallel_requests=1)], settings={"limit_wait": 0.05})
    stream = await router.acompletion("g", HI, stream=True)
    with pytest.raises(RateLimitError, match="1/1 requests in flight"):
        await router.acompletion("g", HI)
    await stream.afinal()  # the slot is given back as the stream ends, not some time after
    assert (await router.acompletion("g", HI)).content == "echo: hi"


async def test_a_waiting_call_gets_the_slot_a_finished_one_frees(fake: FakeOpenAI) -> None:
    fake.script(Reply(delay_s=0.2, json=completion_json("first")))
    router = Router([entry("g", fake, max_parallel_requests=1)], settings={"limit_wait": 2})
    first = asyncio.create_task(router.acompletion("g", HI))
    await wait_until(lambda: len(fake.requests) == 1, what="the first call holds the slot")
    second = await router.acompletion("g", HI)
    assert (await first).content == "first"
    assert second.content == "echo: hi"


async def test_rpm_limit_beyond_limit_wait_is_a_fast_rate_limit_error(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    router = Router([entry("g", a, rpm=1), entry("g", b, rpm=1)], settings={"limit_wait": 0.1})
    await router.acompletion("g", HI)
    await router.acompletion("g", HI)
    started = time.monotonic()
    with pytest.raises(RateLimitError, match="RPM limit 1 reached") as info:
        await router.acompletion("g", HI)
    assert time.monotonic() - started < 0.3
    assert info.value.retry_after is not None
    assert info.value.retry_after > 50
    assert len(a.requests) == 1
    assert len(b.requests) == 1


async def test_global_admission_rejects_beyond_the_queue(fake: FakeOpenAI) -> None:
    fake.script(Reply(delay_s=0.3, json=completion_json("slow")))
    router = Router([entry("g", fake)], settings={"max_parallel_requests": 1, "max_queue": 1})
    slow = asyncio.create_task(router.acompletion("g", HI))
    await wait_until(lambda: len(fake.requests) == 1, what="the slow call is in flight")
    queued = asyncio.create_task(router.acompletion("g", HI))
    await asyncio.sleep(0.05)
    with pytest.raises(RateLimitError, match="at capacity") as info:
        await router.acompletion("g", HI)
    assert info.value.retry_after is not None
    assert (await slow).content == "slow"
    assert (await queued).content == "echo: hi"


async def test_tags_select_deployments(fakes: list[FakeOpenAI]) -> None:
    a, b, _ = fakes
    router = Router([entry("g", a, tags=["eu"]), entry("g", b, tags=["us", "fast"])])
    for _ in range(3):
        assert (await router.acompletion("g", HI, tags=["us"])).meta.deployment == "g#1"
    with pytest.raises(NoDeploymentAvailableError, match="carries every requested tag"):
        await router.acompletion("g", HI, tags=["eu", "fast"])


async def test_unknown_model_and_bad_fallback_are_clear_errors(fake: FakeOpenAI) -> None:
    router = Router([entry("g", fake)])
    with pytest.raises(InvalidRequestError, match="known names: g"):
        await router.acompletion("nope", HI)
    with pytest.raises(chatgate.config.ConfigError, match="'ghost' is not a model_name"):
        Router([entry("g", fake)], fallbacks=[{"g": ["ghost"]}])
    with pytest.raises(chatgate.config.ConfigError, match=r"model_list\[0\]\.params: no API key"):
        Router([{"model_name": "g", "params": {"model": "anthropic/claude"}}])


def test_sync_router_completion_and_stream(fakes: list[FakeOpenAI]) -> None:
    a, b, _ = fakes
    a.script(err(503))
    router = Router([entry("g", a), entry("g", b)], routing_strategy="round-robin")
    response = router.completion("g", HI)
    assert isinstance(response, ChatResponse)
    assert response.meta.attempts == 2
    stream = router.completion("g", HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: hi"


def test_from_config_reads_yaml_and_env(tmp_path: Path, fake: FakeOpenAI) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: smart\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        "      api_key: os.environ/MY_KEY\n"
        f"      api_base: {fake.base_url}\n"
        "      rpm: 100\n"
        "    model_info: {id: primary}\n"
        "router_settings: {routing_strategy: usage-based-routing-v2, num_retries: 1}\n"
    )
    router = Router.from_config(path, env={"MY_KEY": "sk-from-env"})
    assert router.settings.routing_strategy == "usage-based"
    response = router.completion("smart", HI)
    assert response.meta.deployment == "primary"
    assert fake.last.headers["Authorization"] == "Bearer sk-from-env"


async def test_waits_follow_the_injected_clock_exactly(fake: FakeOpenAI) -> None:
    clock = ManualClock()  # time moves only when the router sleeps: waits exact, instant
    fake.script(err(429, "rate_limit_exceeded", **{"retry-after": "40"}))
    router = Router(
        [entry("solo", fake)], timeout=100, clock=clock, sleep=clock.sleep, settings=FAST
    )
    started = time.monotonic()
    response = await router.acompletion("solo", HI)
    assert time.monotonic() - started < 1.0
    assert clock.slept == [40.0]  # exactly the Retry-After, never less
    assert response.meta.attempt_log[0].wait_s == 40.0

    fake.script(err(429, "rate_limit_exceeded", **{"retry-after": "40"}))
    with pytest.raises(RateLimitError):  # 40 s would pass a 30 s deadline: fail now
        await router.acompletion("solo", HI, timeout=30)
    assert clock.slept == [40.0]


async def test_cost_based_uses_the_price_table_and_config_prices_reach_the_cost(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, c = fakes
    router = Router(
        [
            entry("g", a, "gpt-4o"),
            entry("g", b, "gpt-4o-mini"),
            entry(
                "g",
                c,
                "my-finetune",
                input_cost_per_token="0.000001",
                output_cost_per_token="0.000002",
            ),
        ],
        routing_strategy="cost-based",
    )
    response = await router.acompletion("g", HI)
    assert response.meta.deployment == "g#1"  # gpt-4o-mini is the cheapest by the table
    usage = response.usage
    assert usage is not None
    expected = (
        Decimal("0.00000015") * usage.prompt_tokens + Decimal("0.0000006") * usage.completion_tokens
    )
    assert response.cost == expected
    only_custom = Router(
        [
            entry(
                "g",
                c,
                "my-finetune",
                input_cost_per_token="0.000001",
                output_cost_per_token="0.000002",
            )
        ]
    )
    response = await only_custom.acompletion("g", HI)
    assert response.usage is not None
    assert response.cost == (
        Decimal("0.000001") * response.usage.prompt_tokens
        + Decimal("0.000002") * response.usage.completion_tokens
    )


async def test_the_price_tables_context_window_drives_the_pre_call_check(
    fakes: list[FakeOpenAI],
) -> None:
    a, b, _ = fakes
    router = Router(
        [entry("mini", a, "gpt-4o-mini"), entry("big", b, "big", context_window=1_000_000)],
        context_window_fallbacks=[{"mini": ["big"]}],
    )
    huge = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 30_000}]
    response = await router.acompletion("mini", huge)
    assert response.meta.model_name == "big"
    assert a.requests == []  # 150k counted tokens never went to a 128k model
