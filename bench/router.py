"""What the Router adds per call, at 10 deployments, next to the bare call.

    python bench/router.py [--calls 2000] [--runs 3]

Two figures, per routing strategy:
- bookkeeping: the router's own steps for one call (view the group's state, filter, pick,
  reserve, record the outcome, release) run in a loop with no network: its cost in isolation.
- end to end: Router.acompletion over 10 deployments (RPM/TPM limits set, so the buckets are
  exercised) against one fast upstream process, interleaved with the bare
  chatgate.acompletion to the same upstream; the difference of the medians is what routing
  adds, printed with the ratio. Target: <= 50 us median at 10 deployments.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chatgate
import upstream
from chatgate import Router
from chatgate.router.call import CallContext
from chatgate.router.chat import ChatJob
from chatgate.types import ChatRequest

MESSAGES = [{"role": "user", "content": "Say something short about benchmarks."}]
STRATEGIES = ("simple-shuffle", "least-busy", "latency-based", "usage-based")


def model_list(base_url: str, n: int = 10) -> list[dict[str, Any]]:
    return [
        {
            "model_name": "bench",
            "params": {
                "model": "openai/gpt-4o-mini",
                "api_key": "sk-bench",
                "api_base": base_url,
                "rpm": 10_000_000,
                "tpm": 10_000_000_000,
            },
        }
        for _ in range(n)
    ]


async def bookkeeping_us(router: Router, calls: int) -> float:
    """The decision and bookkeeping path of GroupRunner.run, minus the network."""
    runner = router._runners["bench"]
    state = router.state
    job = ChatJob(ChatRequest.model_validate({"model": "bench", "messages": MESSAGES}))
    call = CallContext(
        deadline=1e12,
        timeout=1e12,
        num_retries=2,
        tags=frozenset(),
        sync=False,
        raise_on_truncation=False,
    )
    start = time.perf_counter()
    for _ in range(calls):
        now = router.now()
        stats = await state.view(runner.ids, now)
        usable = runner._usable(stats, call, 50, job)
        ready = [(d, s) for d, s in usable if runner._has_room(d, s, 50, now)]
        chosen = runner._pick(ready, router._runtime.rng)[0]
        await state.reserve(chosen.id, chosen.limits, 50, now)
        await state.record_success(chosen.id, 0.001, now)
        await state.release(chosen.id, chosen.limits, -10, now)
    return (time.perf_counter() - start) / calls * 1e6


async def end_to_end(base_url: str, calls: int, runs: int) -> dict[str, list[float]]:
    routers = {s: Router(model_list(base_url), routing_strategy=s) for s in STRATEGIES}

    async def bare() -> object:
        return await chatgate.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_key="sk-bench", api_base=base_url
        )

    cases: dict[str, Any] = {"bare": bare}
    for name, router in routers.items():
        cases[name] = (lambda r: lambda: r.acompletion("bench", MESSAGES))(router)
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            for _ in range(min(200, calls)):
                await fn()
            start = time.perf_counter()
            for _ in range(calls):
                await fn()
            results[name].append((time.perf_counter() - start) / calls * 1e6)
    for name, router in routers.items():
        results[f"book {name}"] = [await bookkeeping_us(router, calls * 5) for _ in range(runs)]
    await chatgate.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    proc, base_url = upstream.start()
    try:
        try:
            import uvloop

            results = uvloop.run(end_to_end(base_url, args.calls, args.runs))
        except ImportError:
            results = asyncio.run(end_to_end(base_url, args.calls, args.runs))
    finally:
        proc.terminate()
        proc.wait(5)
    med = {name: statistics.median(v) for name, v in results.items()}
    bare = med["bare"]
    print(f"10 deployments; median of {args.runs} runs x {args.calls} calls (microseconds)")
    print(f"  bare chatgate.acompletion          {bare:8.1f}")
    for s in STRATEGIES:
        routed = med[s]
        print(
            f"  Router {s:<15} {routed:8.1f}   adds {routed - bare:6.1f}"
            f"   ratio {routed / bare:.2f}x   bookkeeping alone {med['book ' + s]:5.1f}"
        )


if __name__ == "__main__":
    main()
