"""Strategies, error classification, backoff and admission control: pure and seeded."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from chatgate.config import ConfigError, RouterSettings, parse
from chatgate.errors import (
    APIConnectionError,
    APITimeoutError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InvalidRequestError,
    RateLimitError,
    error_for_status,
)
from chatgate.providers.base import Deployment
from chatgate.router.admission import Admission
from chatgate.router.deployments import RoutedDeployment
from chatgate.router.policy import (
    Fault,
    backoff,
    classify,
    cooldown_for,
    disabled_by,
    disabled_state,
)
from chatgate.router.state import Limits, Stats
from chatgate.router.strategies import pick_for
from tests.clock import wait_until


def routed(id: str, **kw: object) -> RoutedDeployment:
    deployment = Deployment(provider="openai", model=id, api_base="http://127.0.0.1:1/v1")
    return RoutedDeployment(
        id=id,
        model_name="g",
        model=f"openai/{id}",
        deployment=deployment,
        timeouts=None,
        limits=kw.pop("limits", Limits()),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def picks(strategy: str, candidates: list[tuple[RoutedDeployment, Stats]], n: int) -> Counter[str]:
    pick = pick_for(strategy, exploration=0.0)
    rng = random.Random(7)
    return Counter(pick(candidates, rng)[0].id for _ in range(n))


def test_simple_shuffle_follows_weights() -> None:
    counts = picks(
        "simple-shuffle", [(routed("a", weight=3.0), Stats()), (routed("b"), Stats())], 4000
    )
    assert 2800 < counts["a"] < 3200


def test_round_robin_takes_turns() -> None:
    pick = pick_for("round-robin")
    candidates = [(routed(x), Stats()) for x in "abc"]
    rng = random.Random(0)
    assert [pick(candidates, rng)[0].id for _ in range(6)] == list("abcabc")


def test_least_busy_picks_fewest_in_flight() -> None:
    candidates = [(routed("a"), Stats(in_flight=3)), (routed("b"), Stats(in_flight=1))]
    assert picks("least-busy", candidates, 50) == {"b": 50}


def test_latency_based_measures_the_unknown_first_then_prefers_the_fastest() -> None:
    fast, slow, new = routed("fast"), routed("slow"), routed("new")
    candidates = [(fast, Stats(latency_s=0.1)), (slow, Stats(latency_s=0.9)), (new, Stats())]
    assert picks("latency-based", candidates, 20) == {"new": 20}
    assert picks("latency-based", candidates[:2], 20) == {"fast": 20}


def test_latency_based_explores_a_little() -> None:
    pick = pick_for("latency-based", exploration=0.1)
    candidates = [(routed("fast"), Stats(latency_s=0.1)), (routed("slow"), Stats(latency_s=0.9))]
    rng = random.Random(1)
    counts = Counter(pick(candidates, rng)[0].id for _ in range(2000))
    assert 50 < counts["slow"] < 150  # about half of the 10 % explored picks


def test_cost_based_picks_the_cheapest() -> None:
    candidates = [(routed("a", cost=2.0), Stats()), (routed("b", cost=0.5), Stats())]
    assert picks("cost-based", candidates, 20) == {"b": 20}


def test_usage_based_picks_the_most_headroom() -> None:
    a = routed("a", limits=Limits(rpm=100))
    b = routed("b", limits=Limits(rpm=10))
    candidates = [(a, Stats(rpm_left=20.0)), (b, Stats(rpm_left=9.0))]
    assert picks("usage-based", candidates, 20) == {"b": 20}


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (error_for_status(429, "slow down"), Fault.RETRYABLE),
        (error_for_status(408, "timeout"), Fault.RETRYABLE),
        (error_for_status(500, "boom"), Fault.RETRYABLE),
        (error_for_status(529, "overloaded"), Fault.RETRYABLE),
        (APIConnectionError("reset"), Fault.RETRYABLE),
        (APITimeoutError("slow"), Fault.RETRYABLE),
        (error_for_status(400, "bad"), Fault.REQUEST),
        (error_for_status(422, "bad"), Fault.REQUEST),
        (InvalidRequestError("bad"), Fault.REQUEST),
        (error_for_status(401, "key"), Fault.DEPLOYMENT),
        (error_for_status(403, "no"), Fault.DEPLOYMENT),
        (error_for_status(404, "gone"), Fault.DEPLOYMENT),
        (error_for_status(400, "long", cls=ContextWindowExceededError), Fault.CONTEXT_WINDOW),
        (error_for_status(400, "no", cls=ContentPolicyViolationError), Fault.CONTENT_POLICY),
        (error_for_status(500, "x", {"x-should-retry": "false"}), Fault.DEPLOYMENT),
        # the request's own fault stays one whatever the upstream's hint
        (error_for_status(400, "bad", {"x-should-retry": "true"}), Fault.REQUEST),
        (error_for_status(422, "bad", {"x-should-retry": "true"}), Fault.REQUEST),
        (error_for_status(413, "big", {"x-should-retry": "true"}), Fault.REQUEST),
    ],
)
def test_classify(error: Exception, fault: Fault) -> None:
    assert classify(error) is fault  # type: ignore[arg-type]


def test_cooldown_for_auth_not_found_and_retry_after() -> None:
    assert cooldown_for(error_for_status(401, "k"), 30.0) == 30.0
    assert cooldown_for(error_for_status(403, "k"), 30.0) == 30.0
    assert cooldown_for(error_for_status(404, "k"), 30.0) == 30.0
    assert cooldown_for(error_for_status(429, "k", {"retry-after": "7"}), 30.0) == 7.0
    assert cooldown_for(error_for_status(429, "k"), 30.0) is None
    assert cooldown_for(error_for_status(500, "k"), 30.0) is None


def test_only_a_running_cooldown_after_refused_credentials_disables() -> None:
    def cooling(reason: str | None, until: float = 40.0) -> Stats:
        return Stats(cooldown_until=until, cooldown_reason=reason, cooled_at=10.0)

    assert disabled_by(cooling("AuthenticationError"), 20.0) == 401
    assert disabled_by(cooling("PermissionDeniedError"), 20.0) == 403
    assert disabled_by(cooling("AuthenticationError"), 40.0) is None  # over: half-open
    for transient in ("RateLimitError", "InternalServerError", "NotFoundError", None):
        assert disabled_by(cooling(transient), 20.0) is None
    state = disabled_state(cooling("PermissionDeniedError"), 20.0)
    assert state is not None
    assert state.startswith("disabled: the upstream denied its credentials permission (403) at ")
    assert state == disabled_state(cooling("PermissionDeniedError"), 25.0)  # the same text later
    assert disabled_state(cooling("RateLimitError"), 20.0) is None


def test_backoff_is_full_jitter_capped_and_honours_retry_after() -> None:
    rng = random.Random(3)
    waits = [backoff(3, None, 0.5, 2.0, rng) for _ in range(500)]
    assert 0.0 <= min(waits) < 0.1
    assert 1.9 < max(waits) <= 2.0
    assert all(backoff(0, 5.0, 0.5, 2.0, rng) == 5.0 for _ in range(20))


async def test_admission_serves_the_queue_by_priority_and_rejects_beyond_it() -> None:
    gate = Admission(max_in_flight=1, max_queue=3)
    first = await gate.enter(0, 1.0)
    order: list[str] = []

    async def call(name: str, priority: int) -> None:
        started = await gate.enter(priority, 5.0)
        order.append(name)
        await asyncio.sleep(0)  # holds the slot while the loop runs the others
        gate.leave(started)

    tasks = [asyncio.create_task(call(n, p)) for n, p in (("low", 5), ("urgent", -1), ("mid", 0))]
    await wait_until(lambda: gate.queued == 3, what="all three queued")
    with pytest.raises(RateLimitError) as info:
        await gate.enter(0, 1.0)  # the queue holds 3 already
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0
    assert "max_queue=3" in str(info.value)
    gate.leave(first)
    await asyncio.gather(*tasks)
    assert order == ["urgent", "mid", "low"]
    assert gate.in_flight == 0


async def test_admission_wait_is_bounded_by_the_deadline() -> None:
    gate = Admission(max_in_flight=1, max_queue=1)
    await gate.enter(0, 1.0)
    with pytest.raises(RateLimitError, match="deadline"):
        await gate.enter(0, 0.05)
    assert gate.queued == 0


def test_router_settings_accept_litellm_names_and_name_unknown_keys() -> None:
    config = parse({"router_settings": {"routing_strategy": "latency-based-routing"}})
    assert config.router_settings.routing_strategy == "latency-based"
    assert RouterSettings().num_retries == 2
    with pytest.raises(ConfigError, match=r"router_settings\.retry_policy: unknown key"):
        parse({"router_settings": {"retry_policy": {}}})
    with pytest.raises(
        ConfigError, match=r"model_list\.0\.litellm_params\.rpm: Input should be greater than 0"
    ):
        parse({"model_list": [{"model_name": "x", "litellm_params": {"model": "x", "rpm": 0}}]})


def test_the_token_estimate_tracks_the_count_and_adds_the_output_limit() -> None:
    from chatgate.cost.tokens import count_tokens
    from chatgate.router.call import estimate_tokens
    from chatgate.types import ChatRequest

    text = "The quick brown fox jumps over the lazy dog. " * 200
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    request = ChatRequest.model_validate({"model": "m", "messages": messages, "max_tokens": 100})
    counted = count_tokens("openai/gpt-4o-mini", messages).tokens
    estimate = estimate_tokens(request) - 100
    assert 0.8 * counted <= estimate <= 1.5 * counted  # a rough bucket figure, never wild
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with_image = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": [image]}]}
    )
    assert estimate_tokens(with_image) >= 250


def test_the_token_estimate_counts_an_assistants_tool_calls() -> None:
    from chatgate.router.call import prompt_bytes
    from chatgate.types import ChatRequest

    arguments = '{"city": "' + "x" * 4000 + '"}'
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": arguments}}
    asked = {"role": "user", "content": "weather?"}
    answered = {"role": "assistant", "content": None, "tool_calls": [call]}
    plain = ChatRequest.model_validate({"model": "m", "messages": [asked]})
    called = ChatRequest.model_validate({"model": "m", "messages": [asked, answered]})
    assert prompt_bytes(called) - prompt_bytes(plain) >= len(arguments) + len("weather")
