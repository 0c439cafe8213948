"""What structured outputs and conversation memory add per call, next to references, all
against one fake upstream (an in-process aiohttp server on loopback).

    python bench/structured.py [--calls 500] [--runs 3]

- response_model: the openai SDK's own ``chat.completions.parse(response_format=Model)``, and
  chatgate.acompletion + ``Model.model_validate_json`` by hand, vs
  ``chatgate.acompletion(response_model=Model)``.
- memory: chatgate.acompletion with a 40-message history vs ``Conversation.asend`` on a
  growing thread whose TokenBudget keeps about as much, saving to SQLite every exchange.

Prints the median per-call time over RUNS runs and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import openai
import orjson
from aiohttp import web
from pydantic import BaseModel

import chatgate
from chatgate.persistence import SQLiteStore


class Toy(BaseModel):
    name: str


class Cat(BaseModel):
    name: str
    age: int
    toys: list[Toy]
    nickname: str | None


ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": '{"name":"Tom","age":3,"toys":[{"name":"ball"}],"nickname":null}',
                    "refusal": None,
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 42, "completion_tokens": 20, "total_tokens": 62},
    }
)
ASK = [{"role": "user", "content": "Describe a cat."}]


async def handler(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")


async def per_call_us(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    for _ in range(min(50, calls)):
        await fn()
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


async def measure(calls: int, runs: int) -> dict[str, list[float]]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above
    base = f"http://127.0.0.1:{port}/v1"
    sdk = openai.AsyncOpenAI(base_url=base, api_key="sk-bench", max_retries=0)
    kw = {"api_key": "sk-bench", "api_base": base}
    history = []
    for i in range(20):
        history += [
            {"role": "user", "content": f"question {i}: " + "some words here " * 10},
            {"role": "assistant", "content": f"answer {i}: " + "more words there " * 10},
        ]
    tmp = tempfile.mkdtemp()
    chat = chatgate.Conversation(
        model="openai/gpt-4o-mini",
        policy=chatgate.TokenBudget(max_tokens=2_500),
        store=SQLiteStore(Path(tmp) / "bench.db"),
        **kw,
    )

    async def sdk_parse() -> object:
        return await sdk.chat.completions.parse(
            model="gpt-4o-mini",
            messages=ASK,  # type: ignore[arg-type]  # plain dicts are what users pass
            response_format=Cat,
        )

    async def by_hand() -> object:
        response = await chatgate.acompletion("openai/gpt-4o-mini", ASK, **kw)
        return Cat.model_validate_json(response.content or "")

    async def response_model() -> object:
        return await chatgate.acompletion("openai/gpt-4o-mini", ASK, response_model=Cat, **kw)

    async def plain_history() -> object:
        return await chatgate.acompletion("openai/gpt-4o-mini", [*history, *ASK], **kw)

    async def conversation() -> object:  # the thread grows; the budget keeps ~40 messages
        return await chat.asend("Describe a cat.")

    cases = {
        "openai SDK parse()": sdk_parse,
        "chatgate + validate by hand": by_hand,
        "chatgate response_model": response_model,
        "acompletion, 40-message history": plain_history,
        "Conversation.asend (TokenBudget, SQLite)": conversation,
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            results[name].append(await per_call_us(fn, calls))
    await sdk.close()
    await runner.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = asyncio.run(measure(args.calls, args.runs))
    med = {name: statistics.median(v) for name, v in results.items()}
    print(f"per-call time, median of {args.runs} runs x {args.calls} calls (microseconds)")
    for name, value in med.items():
        print(f"  {name:<42} {value:8.0f}")
    ours = med["chatgate response_model"]
    print(f"response_model vs openai SDK parse():   {ours / med['openai SDK parse()']:.2f}x")
    print(
        f"response_model vs validating by hand:   {ours / med['chatgate + validate by hand']:.2f}x"
    )
    conv = med["Conversation.asend (TokenBudget, SQLite)"]
    plain = med["acompletion, 40-message history"]
    print(f"Conversation.asend vs plain acompletion: {conv / plain:.2f}x")


if __name__ == "__main__":
    main()
