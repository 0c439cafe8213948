"""What prompt caching saves on a replayed multi-turn agent workload, lever by lever.

    python bench/prompt_cache.py [--seeds 3] [--regenerate]

The workload (bench/data/prompt_cache_workload.json, fixed): 20 conversations of 10 turns of
a support agent with a ~3,000-token system prompt and 6 tools; even turns end with the
customer's message (the agent answers with a tool call), odd turns with the tool's result
(the agent answers in text). Each request carries the whole conversation so far, as an agent
loop sends it. The turns are replayed turn by turn across the conversations (turn 0 of all
20, then turn 1, ...), so conversations interleave as concurrent sessions do.

Each model group has two deployments, each a fake upstream with its own prompt cache that it
reports the way its provider does (bench/prompt_cache_upstreams.py), routed by a chatgate
Router (simple-shuffle); every answer is priced by chatgate with the price table
(gpt-4.1 and claude-sonnet-4-5 rows). The levers:

- cache-aware routing (router_settings.cache_affinity) off / on;
- automatic breakpoints (params.auto_prompt_cache) off / on, for the Claude group.

Printed: the cost of the replay and the input tokens read from cache / written to it, per
combination, averaged over ``--seeds`` router seeds, and the saving against the same
workload with no caching at all (every input token at the full price).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.prompt_cache_upstreams import CachingAnthropic, CachingOpenAI

from chatgate import Router
from chatgate.cost.prices import lookup_price

DATA = Path(__file__).resolve().parent / "data" / "prompt_cache_workload.json"
CONVERSATIONS, TURNS = 20, 10

# -- the workload ---------------------------------------------------------------------------

_VOCABULARY = (
    "order refund shipping warehouse customer invoice parcel carrier address policy return "
    "label tracking payment card account delivery window weekend courier damaged replace "
    "exchange warranty receipt discount voucher loyalty points subscription cancel renew "
    "schedule pickup store inventory backorder estimate region tax duty customs signature "
    "confirm verify escalate supervisor ticket priority status update notify email phone "
    "the a of to and for with within after before unless when if must may should never always"
)
_WORDS = _VOCABULARY.split()


def _prose(rng: random.Random, words: int) -> str:
    out = []
    for i in range(words):
        word = rng.choice(_WORDS)
        out.append(word.capitalize() if i % 14 == 0 else word)
        if i % 14 == 13:
            out[-1] += "."
    return " ".join(out) + "."


def _tools(rng: random.Random) -> list[dict[str, Any]]:
    names = ("search_orders", "get_order", "issue_refund", "track_parcel", "update_address")
    tools = []
    for name in (*names, "escalate"):
        properties = {
            f"{rng.choice(_WORDS)}_{i}": {"type": "string", "description": _prose(rng, 8)}
            for i in range(3)
        }
        function = {
            "name": name,
            "description": _prose(rng, 30),
            "parameters": {"type": "object", "properties": properties, "required": []},
        }
        tools.append({"type": "function", "function": function})
    return tools


def generate() -> dict[str, Any]:
    """The workload file's content (fixed seed: the shipped file is this function's output)."""
    rng = random.Random(17)
    system = "\n\n".join(f"## Policy {i + 1}\n{_prose(rng, 200)}" for i in range(8))
    conversations = []
    for c in range(CONVERSATIONS):
        turns = []
        for t in range(TURNS):
            if t % 2 == 0:
                call = {
                    "id": f"call_{c}_{t}",
                    "type": "function",
                    "function": {
                        "name": rng.choice(("search_orders", "get_order", "track_parcel")),
                        "arguments": orjson.dumps({"order_id": f"A-{c}{t}"}).decode(),
                    },
                }
                turns.append(
                    {
                        "send": {"role": "user", "content": _prose(rng, rng.randint(25, 90))},
                        "answer": {"role": "assistant", "content": None, "tool_calls": [call]},
                    }
                )
            else:
                result = {
                    "role": "tool",
                    "tool_call_id": f"call_{c}_{t - 1}",
                    "content": _prose(rng, rng.randint(150, 500)),
                }
                answer = {"role": "assistant", "content": _prose(rng, rng.randint(60, 160))}
                turns.append({"send": result, "answer": answer})
        conversations.append(turns)
    return {"system": system, "tools": _tools(rng), "conversations": conversations}


def requests(workload: dict[str, Any]) -> list[tuple[list[dict[str, Any]], list[Any]]]:
    """(messages, tools) of every request, turn by turn across the conversations."""
    system = {"role": "system", "content": workload["system"]}
    out = []
    for t in range(TURNS):
        for turns in workload["conversations"]:
            messages = [system]
            for earlier in turns[:t]:
                messages += [earlier["send"], earlier["answer"]]
            messages.append(turns[t]["send"])
            out.append((messages, workload["tools"]))
    return out


# -- the replay -----------------------------------------------------------------------------


@dataclass
class Tally:
    cost: Decimal = Decimal(0)
    prompt: int = 0
    read: int = 0
    written: int = 0
    output: int = 0

    def add(self, other: Tally) -> None:
        self.cost += other.cost
        self.prompt += other.prompt
        self.read += other.read
        self.written += other.written
        self.output += other.output


async def replay(model: str, affinity: bool, breakpoints: bool, seed: int) -> Tally:
    anthropic = model.startswith("anthropic/")
    fakes: list[CachingOpenAI | CachingAnthropic] = [
        CachingAnthropic() if anthropic else CachingOpenAI() for _ in range(2)
    ]
    for fake in fakes:
        await fake.start()
    params: dict[str, Any] = {"model": model, "api_key": "bench"}
    if breakpoints:
        params["auto_prompt_cache"] = True
    model_list = [
        {"model_name": "agent", "params": {**params, "api_base": f.base_url}} for f in fakes
    ]
    router = Router(model_list, settings={"cache_affinity": affinity}, rng=random.Random(seed))
    tally = Tally()
    try:
        for messages, tools in requests(orjson.loads(DATA.read_bytes())):
            response = await router.acompletion("agent", messages, tools=tools, max_tokens=512)
            usage = response.usage
            details = usage.prompt_tokens_details
            tally.cost += response.meta.cost or Decimal(0)
            tally.prompt += usage.prompt_tokens
            tally.output += usage.completion_tokens
            tally.read += (details.cached_tokens or 0) if details else 0
            tally.written += (details.cache_creation_tokens or 0) if details else 0
    finally:
        await router.aclose()
        for fake in fakes:
            await fake.stop()
    return tally


def uncached(model: str, tally: Tally) -> Decimal:
    price = lookup_price(model)
    assert price is not None
    return price.input * tally.prompt + price.output * tally.output


async def main(seeds: int) -> None:
    cases = [
        ("openai/gpt-4.1", False, False),
        ("openai/gpt-4.1", True, False),
        ("anthropic/claude-sonnet-4-5", False, False),
        ("anthropic/claude-sonnet-4-5", True, False),
        ("anthropic/claude-sonnet-4-5", False, True),
        ("anthropic/claude-sonnet-4-5", True, True),
    ]
    n = CONVERSATIONS * TURNS
    print(f"{n} requests ({CONVERSATIONS} conversations x {TURNS} turns), 2 deployments, "
          f"mean of {seeds} router seeds\n")  # fmt: skip
    print("| model | affinity | auto breakpoints | cost (USD) | no caching (USD) | saving | "
          "input read from cache | input written to cache |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model, affinity, breakpoints in cases:
        total = Tally()
        for seed in range(seeds):
            total.add(await replay(model, affinity, breakpoints, seed))
        base = uncached(model, total)
        onoff = {True: "on", False: "off"}
        print(
            f"| {model} | {onoff[affinity]} | "
            f"{onoff[breakpoints] if model.startswith('anthropic/') else 'n/a'} | "
            f"{total.cost / seeds:.4f} | {base / seeds:.4f} | {1 - total.cost / base:.1%} | "
            f"{total.read / total.prompt:.1%} | {total.written / total.prompt:.1%} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true", help="rewrite the workload file")
    args = parser.parse_args()
    if args.regenerate:
        DATA.parent.mkdir(exist_ok=True)
        DATA.write_bytes(orjson.dumps(generate(), option=orjson.OPT_INDENT_2) + b"\n")
        print(f"wrote {DATA} ({DATA.stat().st_size // 1024} KiB)")
    else:
        asyncio.run(main(args.seeds))
