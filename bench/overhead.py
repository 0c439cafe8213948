"""Per-call cost of chatgate.acompletion next to the raw openai SDK, same fake upstream.

    python bench/overhead.py [--calls 2000] [--runs 3]

Each run makes CALLS sequential calls per client (non-stream, then stream read to the end)
against one upstream process, after a warm-up; the figure is the median per-call time over
RUNS runs. Also times `import chatgate` in fresh interpreters. Prints ratios (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai

import chatgate
import upstream

MESSAGES = [{"role": "user", "content": "Say something short about benchmarks."}]


async def per_call_us(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    for _ in range(min(200, calls)):
        await fn()
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


async def measure(base_url: str, calls: int, runs: int) -> dict[str, list[float]]:
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)

    async def sdk_plain() -> object:
        return await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]  # plain dicts are what users pass

    async def sdk_stream() -> object:
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]  # as above
            stream_options={"include_usage": True},
        )
        return [c async for c in stream]

    async def cg_plain() -> object:
        return await chatgate.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_key="sk-bench", api_base=base_url
        )

    async def cg_stream() -> object:
        stream = await chatgate.acompletion(
            model="openai/gpt-4o-mini",
            messages=MESSAGES,
            api_key="sk-bench",
            api_base=base_url,
            stream=True,
        )
        return [c async for c in stream]

    cases = {
        "sdk non-stream": sdk_plain,
        "chatgate non-stream": cg_plain,
        "sdk stream": sdk_stream,
        "chatgate stream": cg_stream,
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():  # interleaved, so drift hits both sides alike
            results[name].append(await per_call_us(fn, calls))
    await sdk.close()
    return results


def import_ms(statement: str, repeats: int = 7) -> float:
    code = f"import time; t=time.perf_counter(); {statement}; print(time.perf_counter()-t)"
    times = [float(subprocess.check_output([sys.executable, "-c", code])) for _ in range(repeats)]
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    proc, base_url = upstream.start()
    try:
        try:
            import uvloop

            results = uvloop.run(measure(base_url, args.calls, args.runs))
        except ImportError:
            results = asyncio.run(measure(base_url, args.calls, args.runs))
    finally:
        proc.terminate()
        proc.wait(5)
    med = {name: statistics.median(v) for name, v in results.items()}
    print(f"per-call time, median of {args.runs} runs x {args.calls} calls (microseconds)")
    for kind in ("non-stream", "stream"):
        sdk, ours = med[f"sdk {kind}"], med[f"chatgate {kind}"]
        print(
            f"  {kind:<11} openai SDK {sdk:8.0f}   chatgate {ours:8.0f}   ratio {ours / sdk:.2f}x"
        )
    lazy = import_ms("import chatgate")
    full = import_ms("import chatgate; chatgate.completion")
    sdk_import = import_ms("import openai")
    print(
        f"import chatgate {lazy:.1f} ms; with completion loaded {full:.1f} ms; "
        f"import openai {sdk_import:.1f} ms"
    )


if __name__ == "__main__":
    main()
