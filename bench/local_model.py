"""The local model through chatgate next to the raw openai SDK, same llama.cpp server, one run.

    python bench/local_model.py [--runs 7] [--max-tokens 64]

chatgate starts its managed server (local/smollm2-135m); the openai SDK then talks to that
same server directly. Each run streams one temperature-0 answer per client, in alternating
order; TTFT is the time to the first content token, tokens/s completion tokens over the
whole request (the server sends tokens in bursts, so a rate after the first one is noise).
Prints medians and chatgate/direct ratios (expected ~1.0: the model, not the hop, dominates).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import openai

import chatgate
from chatgate.providers.local import server
from chatgate.providers.registry import resolve_deployment

MODEL = "smollm2-135m"
MESSAGES = [{"role": "user", "content": "Write one long sentence about rivers."}]
Sample = tuple[float, float]  # (ttft seconds, completion tokens per second)


async def via_chatgate(max_tokens: int) -> Sample:
    started = time.perf_counter()
    first = 0.0
    stream = await chatgate.acompletion(
        f"local/{MODEL}", MESSAGES, stream=True, max_tokens=max_tokens, temperature=0
    )
    async for chunk in stream:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    end = time.perf_counter()
    usage = stream.usage
    tokens = usage.completion_tokens if usage else 0
    return first - started, tokens / (end - started)


async def via_openai(client: openai.AsyncOpenAI, max_tokens: int) -> Sample:
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, max_tokens=max_tokens, temperature=0
    )  # type: ignore[call-overload]  # plain dict messages
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1
            first = first or time.perf_counter()
    end = time.perf_counter()
    return first - started, tokens / (end - started)


async def main(runs: int, max_tokens: int) -> None:
    deployment = await server.prepare(resolve_deployment(f"local/{MODEL}"))
    client = openai.AsyncOpenAI(base_url=deployment.api_base, api_key="unused", max_retries=0)
    ours: list[Sample] = []
    direct: list[Sample] = []
    clients: list[tuple[list[Sample], Callable[[], Awaitable[Sample]]]] = [
        (ours, lambda: via_chatgate(max_tokens)),
        (direct, lambda: via_openai(client, max_tokens)),
    ]
    for _ in range(2):  # warm-up: page cache, connection pools
        for _, run in clients:
            await run()
    for i in range(runs):
        for samples, run in clients if i % 2 == 0 else clients[::-1]:
            samples.append(await run())
    await client.close()
    await server.stop()

    def med(samples: list[Sample], k: int) -> float:
        return statistics.median(s[k] for s in samples)

    print(f"local/{MODEL}, {runs} runs, max_tokens={max_tokens}, medians")
    print(f"{'':10}{'TTFT ms':>10}{'tok/s':>10}")
    for name, samples in (("chatgate", ours), ("direct", direct)):
        print(f"{name:10}{med(samples, 0) * 1000:>10.1f}{med(samples, 1):>10.1f}")
    ttft = med(ours, 0) / med(direct, 0)
    rate = med(ours, 1) / med(direct, 1)
    print(f"{'ratio':10}{ttft:>10.3f}{rate:>10.3f}   (chatgate / direct; 1.0 = no overhead)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.max_tokens))
