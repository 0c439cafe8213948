"""One racing process for tests/store/test_idempotency_sql.py: opens its own store, says
"ready", waits for "go" on stdin, claims keys k0..k{n-1} and prints the keys it won (JSON)."""

from __future__ import annotations

import asyncio
import sys

import orjson

from chatgate.store.idempotency import SqlIdempotencyStore


async def main(url: str, count: int, name: str) -> None:
    store = SqlIdempotencyStore(url)
    await store.database.ready()
    print("ready", flush=True)
    sys.stdin.readline()
    won = []
    for n in range(count):
        key = f"k{n}"
        if await store.claim(key, conversation_id="c", tool="t", arguments=name) is None:
            won.append(key)
            await store.finish(key, status="ok", content=name)
    await store.aclose()
    print(orjson.dumps(won).decode(), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
