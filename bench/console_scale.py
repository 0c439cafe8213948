"""The console's queries on a large PostgreSQL: each must answer in under 1 s.

    python bench/console_scale.py                      # 10,000,000 rows, 100,000 keys
    python bench/console_scale.py --rows 1000000       # a smaller run
    python bench/console_scale.py --url postgresql://… # an existing, empty database

Starts a throwaway PostgreSQL (Debian's binaries) unless --url is given, creates the schema
with chatgate's migrations, then fills it with COPY: ``--keys`` virtual keys (a tenth with
budgets) and ``--rows`` spend rows over ``--days`` days ending now, skewed as real traffic is
(a few keys and models carry most calls; 3% errors, 10% cache hits, some retries, 1% fallbacks;
0 to 3 of 40 tags a call, so a day holds thousands of distinct tag sets). The daily
rollup and the budget counters are filled from the log with one grouped INSERT each, and the
tables are analyzed. Then a real ``chatgate serve`` on that database answers each console
query over HTTP with the master key: every page's calls, filters and keyset pages included.
Each query's first answer is timed, then (Overview) the seconds until the background had
computed every day it shows, then ``--runs`` more answers: their median and the slowest, in
ms. Any answer slower than 1 s is marked.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.gateway import start_gateway
from tests.fakes.postgres import PostgresServer, require_bin_dir

from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate
from chatgate.store.partitions import ensure_days

MASTER = "sk-master-console-scale"
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet", "gemini-flash", "llama-local", "o3-mini"]
ERRORS = ["RateLimitError", "APITimeoutError", "InternalServerError", "BadRequestError"]
TEAMS = [f"team-{i}" for i in range(200)]
LOG_COLUMNS = [
    "day", "ts", "request_id", "key_id", "user_id", "team_id", "tags", "model", "deployment",
    "provider", "served_model", "stream", "prompt_tokens", "completion_tokens",
    "cached_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens",
    "cost_pico", "latency_ms", "ttft_ms", "finish_reason", "attempts", "cache_hit", "error",
    "record_id", "fallback", "saved_pico", "cache_saved_pico", "prompt_saved_pico",
    "batch_saved_pico",
]  # fmt: skip
TAGS = [f"tag-{i}" for i in range(40)]


def skewed(rng: random.Random, n: int) -> int:
    """0..n-1, the low numbers far more often (about a power law)."""
    return min(n - 1, int(n * rng.random() ** 4))


def key_rows(n: int, now: float) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(7)
    for i in range(n):
        budget = Decimal(rng.choice([5, 50, 500])) if i % 10 == 0 else None
        yield (
            f"key_{i:016x}", f"{i:064x}", f"sk-cg-…{i % 10000:04d}", f"key {i}", "[]",
            budget, "monthly" if budget else None, None, None, None,
            TEAMS[i % len(TEAMS)], f"user-{i % 5000}", "{}", now - 86400 * 60, now - 86400 * 60,
            None,
        )  # fmt: skip


def log_rows(n: int, keys: int, days: int, now: float) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(11)
    start = now - days * 86400
    for i in range(n):
        ts = start + (i + rng.random()) * (days * 86400 / n)  # in time order, as written
        k = skewed(rng, keys)
        model = MODELS[skewed(rng, len(MODELS))]
        error = ERRORS[rng.randrange(len(ERRORS))] if rng.random() < 0.03 else None
        hit = error is None and rng.random() < 0.1
        prompt, completion = rng.randint(20, 4000), 0 if error else rng.randint(1, 800)
        cost = None if error else (0 if hit else prompt * 150_000 + completion * 600_000)
        latency = rng.lognormvariate(6.5, 0.6)
        stream = rng.random() < 0.5
        tags = ",".join(sorted({TAGS[skewed(rng, len(TAGS))] for _ in range(rng.randrange(4))}))
        fallback = error is None and rng.random() < 0.01
        cached = 0 if hit else prompt // 4
        tiered = rng.random() < 0.2
        batch = k % 50 == 0
        yield (
            dt.datetime.fromtimestamp(ts, dt.UTC).date(), ts, f"cg-{i:024x}", f"key_{k:016x}",
            f"user-{k % 5000}", TEAMS[k % len(TEAMS)], tags or None,
            model, f"openai/{model}", "openai", model, stream, prompt, completion,
            cached, 0, 0, 0, cost, latency,
            latency * 0.3 if stream else None, None if error else "stop",
            2 if fallback or rng.random() < 0.02 else 1, hit, error, f"bench-{i}",
            fallback, cost // 3 if tiered and cost else None,
            prompt * 150_000 + completion * 600_000 if hit else None,
            cached * 75_000 if cached and not error else None, cost if batch and cost else None,
        )  # fmt: skip


def chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


ROLLUP = """
INSERT INTO spend_daily (day, key_id, team_id, user_id, model, requests, errors,
    prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
    cache_write_1h_tokens, cost_pico, unpriced, saved_pico, cache_saved_pico,
    prompt_saved_pico, batch_saved_pico)
SELECT day, coalesce(key_id, ''), coalesce(team_id, ''), coalesce(user_id, ''), model,
    count(*), count(error), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens),
    sum(cache_write_tokens), sum(cache_write_1h_tokens), sum(coalesce(cost_pico, 0)),
    count(*) FILTER (WHERE cost_pico IS NULL AND error IS NULL),
    coalesce(sum(saved_pico), 0), coalesce(sum(cache_saved_pico), 0),
    coalesce(sum(prompt_saved_pico), 0), coalesce(sum(batch_saved_pico), 0)
FROM spend_log GROUP BY 1, 2, 3, 4, 5
"""
COUNTERS = """
INSERT INTO budget_counters (budget_id, period, spent_pico, reserved_pico)
SELECT 'key:' || l.key_id || ':monthly', to_char(l.day, 'YYYY-MM'), sum(l.cost_pico), 0
FROM spend_log l JOIN virtual_keys k ON k.key_id = l.key_id
WHERE k.budget_usd IS NOT NULL AND l.cost_pico IS NOT NULL GROUP BY 1, 2
"""


async def fill(url: str, rows: int, keys: int, days: int, ahead_h: float = 0.0) -> float:
    """Schema, then the data (ending ``ahead_h`` hours from now, so that a later measurement
    still sees a full last day); returns the time the fill took."""
    began = time.perf_counter()
    engine = create_engine(url)
    await migrate(engine)
    now = time.time() + ahead_h * 3600
    first = dt.datetime.fromtimestamp(now - days * 86400, dt.UTC).date()
    async with engine.begin() as conn:
        await ensure_days(conn, [first + dt.timedelta(days=d) for d in range(days + 2)])
    await engine.dispose()
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "virtual_keys",
            records=list(key_rows(keys, now)),
            columns=[
                "key_id", "secret_hash", "display", "name", "models", "budget_usd",
                "budget_period", "rpm", "tpm", "expires_at", "team", "user_id", "metadata",
                "created_at", "updated_at", "revoked_at",
            ],
        )  # fmt: skip
        written = 0
        for batch in chunks(log_rows(rows, keys, days, now), 200_000):
            await conn.copy_records_to_table("spend_log", records=batch, columns=LOG_COLUMNS)
            written += len(batch)
            print(f"  {written:,} spend rows", end="\r", flush=True)
        print()
        await conn.execute(ROLLUP)
        await conn.execute(COUNTERS)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - began


def queries(url: str, keys: int) -> list[tuple[str, str]]:
    """The console's calls, page by page, as (label, path)."""
    get = requests.get(
        f"{url}/admin/logs?since=30d&limit=50",
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=60,
    ).json()
    first = get["data"][0]
    cursor = get["next_cursor"]
    keys_after = f"key_{keys // 2:016x}"  # halfway through the keys
    q = urllib.parse.quote
    retried = "/admin/logs?since=30d&retried=true"
    return [
        ("Overview: day by model, 30d", "/admin/overview?bucket=day&by=model"),
        ("Overview: day by key, 30d", "/admin/overview?bucket=day&by=key"),
        ("Overview: day by team, 30d", "/admin/overview?bucket=day&by=team"),
        ("Overview: day by user, 30d", "/admin/overview?bucket=day&by=user"),
        ("Overview: day by tag, 30d", "/admin/overview?bucket=day&by=tag"),
        ("Overview: hour by model, 24h", "/admin/overview?bucket=hour&by=model"),
        ("Overview: hour by tag, 24h", "/admin/overview?bucket=hour&by=tag"),
        ("Overview: hour by model, 71h", "/admin/overview?bucket=hour&by=model&since=71h"),
        ("Overview: hour by tag, 71h", "/admin/overview?bucket=hour&by=tag&since=71h"),
        ("Overview: month by tag, 365d", "/admin/overview?bucket=month&by=tag"),
        ("Overview: month by model, 365d", "/admin/overview?bucket=month&by=model"),
        ("Logs: newest 50, 7d", "/admin/logs?since=7d"),
        ("Logs: page 2 (keyset)", f"/admin/logs?since=30d&cursor={q(cursor)}"),
        ("Logs: one key, 30d", f"/admin/logs?since=30d&key={first['key_id']}"),
        ("Logs: a quiet key, 30d", "/admin/logs?since=30d&key=key_00000000000182b7"),
        ("Logs: one team, 30d", "/admin/logs?since=30d&team=team-7"),
        ("Logs: one model, 30d", "/admin/logs?since=30d&model=o3-mini"),
        ("Logs: errors, 30d", "/admin/logs?since=30d&status=error"),
        ("Logs: error class, 30d", "/admin/logs?since=30d&error=APITimeoutError"),
        ("Logs: fallback taken, 30d", "/admin/logs?since=30d&fallback=true"),
        ("Logs: retried, 30d", "/admin/logs?since=30d&retried=true"),
        ("Logs: retried, no fallback, 1 key", f"{retried}&fallback=false&key={first['key_id']}"),
        ("Logs: min cost $0.9, 30d", "/admin/logs?since=30d&min_cost=0.9"),
        ("Logs: request id, 30d", f"/admin/logs?since=30d&request_id={first['request_id']}"),
        ("Logs: one request's detail", f"/admin/logs/{first['request_id']}"),
        ("Keys: first page of 50, with spend", "/admin/keys?limit=50&usage=true"),
        ("Keys: a later page (keyset)", f"/admin/keys?limit=50&usage=true&after={keys_after}"),
        ("Budgets", "/admin/budgets"),
        ("Models", "/admin/models"),
    ]  # fmt: skip


def settle(http: requests.Session, url: str) -> float:
    """Ask again until no day is pending (the background computes them); the seconds it took."""
    began = time.perf_counter()
    while http.get(url, timeout=600).json().get("pending_days"):
        time.sleep(1)
    return time.perf_counter() - began


def measure(url: str, runs: int, keys: int) -> list[tuple[str, float, float, float, float, int]]:
    """Per query: the first answer, the seconds until its days were all computed (Overview),
    the median and the slowest of the next ``runs``, and the answer's size."""
    out = []
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {MASTER}"
        for label, path in queries(url, keys):
            began = time.perf_counter()
            first = http.get(f"{url}{path}", timeout=600)
            first_ms = (time.perf_counter() - began) * 1000
            assert first.status_code == 200, (path, first.text[:300])
            filled = settle(http, f"{url}{path}") if path.startswith("/admin/overview") else 0.0
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                resp = http.get(f"{url}{path}", timeout=600)
                times.append((time.perf_counter() - began) * 1000)
                assert resp.status_code == 200, (path, resp.text[:300])
            size = len(resp.content)
            out.append((label, first_ms, filled, statistics.median(times), max(times), size))
    return out


def run(url: str, args: argparse.Namespace) -> None:
    if not args.measure_only:
        print(f"filling: {args.rows:,} spend rows over {args.days} days, {args.keys:,} keys")
        took = asyncio.run(fill(url, args.rows, args.keys, args.days, args.ahead_h))
        print(f"filled in {took:.0f} s")
    never = {"api_base": "http://127.0.0.1:9", "api_key": "x"}  # no request is sent
    config = {
        "model_list": [
            {"model_name": m, "params": {"model": f"openai/{m}", **never}} for m in MODELS
        ],
        "general_settings": {"master_key": MASTER, "database_url": url},
    }
    with tempfile.TemporaryDirectory() as tmp, start_gateway(config, Path(tmp)) as gw:
        results = measure(gw.url, args.runs, args.keys)
    head = f"{'query':36} {'first ms':>9} {'filled s':>9} {'median ms':>10} {'max ms':>9}"
    print(f"\n{head} {'bytes':>10}")
    for label, first, filled, median, worst, size in results:
        flag = "  > 1 s" if max(worst, first) > 1000 else ""
        print(f"{label:36} {first:9.1f} {filled:9.1f} {median:10.1f} {worst:9.1f} {size:10,}{flag}")
    slow = [r for r in results if max(r[1], r[4]) > 1000]
    print(
        f"\n{len(results) - len(slow)} of {len(results)} queries under 1 s, first answers included"
    )
    print("filled s: the seconds until the background had computed every day of that view")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", help="an existing, empty PostgreSQL database")
    parser.add_argument(
        "--ahead-h",
        type=float,
        default=0.0,
        help="spend rows end this many hours from now (to measure with --measure-only later)",
    )
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="--url was filled by an earlier run (same --keys): time the queries only",
    )
    args = parser.parse_args()
    if args.url:
        run(args.url, args)
        return
    server = PostgresServer(require_bin_dir()).init()
    server.start()
    try:
        run(server.url, args)
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
