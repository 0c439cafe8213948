"""What shared router state costs: MemoryState next to RedisState (a local redis-server).

    python bench/router_state.py [--calls 1000] [--runs 3]

Three figures, each MemoryState and RedisState side by side in the same run (medians of the
runs, microseconds per call, and the ratio):
- bookkeeping: the router's own steps for one call at 10 deployments (view, pick, reserve,
  record the outcome, release: bench/router.py's loop) with no network to an upstream;
- key limits: the gateway's per-key step (reserve one request and its tokens, release it);
- end to end: Router.acompletion over 10 deployments (RPM/TPM limits set) against one fast
  upstream process, next to the bare chatgate.acompletion.
Needs redis-server on PATH (apt-get install redis-server).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes.redis_server

from tests.fakes.redis_server import RedisServer

import chatgate
import upstream
from chatgate import Router
from chatgate.router import Limits, MemoryState, RedisState, RouterState
from overhead import per_call_us
from router import MESSAGES, bookkeeping_us, model_list


async def key_limits_us(state: RouterState, calls: int) -> float:
    limits = Limits(rpm=10_000_000, tpm=10_000_000_000)
    start = time.perf_counter()
    for _ in range(calls):
        await state.reserve("sk-key-1", limits, 50, time.monotonic())
        await state.release("sk-key-1", limits, -10, time.monotonic())
    return (time.perf_counter() - start) / calls * 1e6


async def measure(base_url: str, redis_url: str, calls: int, runs: int) -> dict[str, list[float]]:
    shared = RedisState(redis_url, namespace=f"bench-{uuid.uuid4().hex[:8]}")
    states: dict[str, RouterState] = {"memory": MemoryState(), "redis": shared}
    routers = {name: Router(model_list(base_url), state=s) for name, s in states.items()}

    async def bare() -> object:
        return await chatgate.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_key="sk-bench", api_base=base_url
        )

    results: dict[str, list[float]] = {}
    for _ in range(runs):  # interleaved: every run measures both, so drift hits both alike
        results.setdefault("bare", []).append(await per_call_us(bare, calls))
        for name, router in routers.items():
            book = await bookkeeping_us(router, calls)
            keys = await key_limits_us(states[name], calls)
            routed = await per_call_us(lambda r=router: r.acompletion("bench", MESSAGES), calls)
            results.setdefault(f"book {name}", []).append(book)
            results.setdefault(f"keys {name}", []).append(keys)
            results.setdefault(f"routed {name}", []).append(routed)
    await shared.aclose()
    await chatgate.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    proc, base_url = upstream.start()
    try:
        with RedisServer() as redis_server:
            try:
                import uvloop

                run = uvloop.run
            except ImportError:
                run = asyncio.run
            results = run(measure(base_url, redis_server.url, args.calls, args.runs))
    finally:
        proc.terminate()
        proc.wait(5)
    med = {name: statistics.median(v) for name, v in results.items()}
    print(f"median of {args.runs} runs x {args.calls} calls, microseconds per call")
    print(f"{'':34}{'memory':>9}{'redis':>9}{'ratio':>8}{'adds':>8}")
    rows = [
        ("router bookkeeping, 10 deployments", "book"),
        ("key limits (reserve + release)", "keys"),
        ("Router.acompletion end to end", "routed"),
    ]
    for label, key in rows:
        memory, redis = med[f"{key} memory"], med[f"{key} redis"]
        print(f"{label:34}{memory:9.1f}{redis:9.1f}{redis / memory:7.1f}x{redis - memory:8.1f}")
    print(f"{'bare chatgate.acompletion':34}{med['bare']:9.1f}")


if __name__ == "__main__":
    main()
