"""What cost tracking adds to a call, and how many records/s the SQL spend log sustains.

    python bench/cost.py [--calls 20000] [--records 20000]

1. Per call: response_cost() + UsageRecord.of() + sink.emit() on a real ChatResponse
   (target <= 20 us median), next to the bare chatgate.acompletion call against the fake
   OpenAI upstream (loopback HTTP) in the same run.
2. The SQL sink: records/s with batching (500 per transaction, rows + rollup upsert) next to
   the reference of one transaction per record, on SQLite and on a real PostgreSQL server
   (started here when its binaries are installed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.postgres import PostgresServer, find_bin_dir

import chatgate
from chatgate.cost.calc import response_cost
from chatgate.cost.usage import MemorySink, UsageRecord
from chatgate.cost.usage_sql import SqlSink
from chatgate.providers.registry import resolve_deployment

HI = [{"role": "user", "content": "Say something short about benchmarks."}]


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def per_call(calls: int) -> None:
    with FakeOpenAI() as fake:
        kw = {"api_key": "sk-bench", "api_base": fake.base_url}
        response = await chatgate.acompletion("openai/gpt-4o", HI, **kw)
        deployment = resolve_deployment("openai/gpt-4o", **kw)
        sink = MemorySink()
        overhead = []
        for _ in range(calls):
            start = time.perf_counter()
            response.meta.cost = response_cost(response, deployment)
            sink.emit(UsageRecord.of(response, key_id="k1", team_id="t1", tags=("bench",)))
            overhead.append(time.perf_counter() - start)
            if len(sink.records) > 10_000:
                sink.records.clear()
        bare = []
        for _ in range(min(2000, calls)):
            start = time.perf_counter()
            await chatgate.acompletion("openai/gpt-4o", HI, **kw)
            bare.append(time.perf_counter() - start)
    cost_us, call_us = median_us(overhead), median_us(bare)
    print(f"cost + usage record per call: {cost_us:8.2f} us median (target <= 20 us)")
    print(f"bare acompletion (loopback):  {call_us:8.1f} us median")
    print(f"ratio: cost tracking = {cost_us / call_us * 100:.2f}% of the bare call")


def records(n: int) -> list[UsageRecord]:
    now = time.time()
    return [
        UsageRecord(
            ts=now,
            model="smart",
            key_id=f"k{i % 50}",
            team_id=f"t{i % 5}",
            prompt_tokens=120,
            completion_tokens=30,
            cost=Decimal("0.0006"),
        )
        for i in range(n)
    ]


async def sink_rate(url: str, n: int, batch_size: int, spill: Path) -> float:
    sink = await SqlSink.open(url, spill_path=spill, batch_size=batch_size, interval_s=3600)
    batch = records(n)
    start = time.perf_counter()
    for r in batch:
        sink.emit(r)
        if batch_size == 1:
            await sink.flush()
    await sink.flush()
    elapsed = time.perf_counter() - start
    await sink.aclose()
    assert sink.written == n
    return n / elapsed


async def sql(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite:///{tmp}/bench.db")]
        server = None
        bin_dir = find_bin_dir()
        if bin_dir is not None:
            server = PostgresServer(bin_dir).init()
            server.start()
            targets.append(("PostgreSQL", server.url))
        else:
            print("PostgreSQL binaries not found: PostgreSQL figures skipped")
        try:
            for name, url in targets:
                batched = await sink_rate(url, n, 500, Path(tmp) / "spill.jsonl")
                single = await sink_rate(url, max(n // 10, 100), 1, Path(tmp) / "spill.jsonl")
                print(
                    f"{name:10} batched: {batched:9,.0f} records/s   one per transaction: "
                    f"{single:7,.0f} records/s   ratio {batched / single:5.1f}x"
                )
        finally:
            if server is not None:
                server.destroy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args()
    asyncio.run(per_call(args.calls))
    asyncio.run(sql(args.records))


if __name__ == "__main__":
    main()
