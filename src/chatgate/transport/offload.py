"""CPU-heavy work of one request (counting a big prompt's tokens) off the event loop.

A request's heavy work runs in a small pool of its own rather than asyncio's default
executor: a few big requests then use at most that many cores, and never take the threads
that file and database writes wait for. The work runs in a copy of the caller's context, so
context variables (the request's token counts) are shared with it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["OFFLOAD_MIN_BYTES", "off_loop"]

T = TypeVar("T")

# Below this much text a request is counted on the loop: ~4 ms of tiktoken at most (measured
# ~17 MB/s on a loaded 2-core box), less than the hop to a thread and back is worth.
OFFLOAD_MIN_BYTES = 64 * 1024

_pool: ThreadPoolExecutor | None = None  # one per process, like asyncio's default executor


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:  # leave a core to the event loop
        workers = max(1, min(4, (os.cpu_count() or 2) - 1))
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chatgate-offload")
    return _pool


async def off_loop(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in the offload pool, in a copy of the current context."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
