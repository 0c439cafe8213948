"""The gateway's instructions per request under callgrind, two source trees: a count that the
other work on a shared machine does not move, where CPU time (bench/gateway_cpu.py) does.

    python bench/gateway_instructions.py --ref /tmp/old/src [--new src] [--requests 1000]
                                         [--stream] [--keep DIR]

Each tree's ``chatgate serve`` runs under ``valgrind --tool=callgrind`` (about 50x slower);
after a warm-up the counters are zeroed, REQUESTS whole-answer requests are sent (8 in flight;
``--stream``: streams of 20 chunks plus usage, read to the end), the counters dumped. Prints
instructions per request: all threads, and the event loop's thread alone. Work done on a timer
(the spend log's 20 ms write-ahead window, the usage pipeline, database batches) runs as often
per second as natively while requests come ~50x slower, so the other threads' share is
overstated here; the loop's figure is the one to compare. Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import yaml

import upstream as fake_upstream
from gateway_cpu import BODY, KEY, wait_live


async def _load(port: int, requests: int, concurrency: int, body: dict[str, object]) -> None:
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as session:
        await wait_live(session, url, 600)  # start-up under valgrind takes a minute or two
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with (
                gate,
                session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r,
            ):
                await r.read()
                assert r.status == 200, r.status

        await asyncio.gather(*(one() for _ in range(requests)))


def _totals(dump: Path) -> tuple[int, int]:
    """(all threads, the main thread) from a callgrind dump."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text)
    main = re.search(r"([\d,]+) \([\d.]+%\)\s+\S*Modules/main\.c:Py_BytesMain", text)
    if total is None or main is None:
        raise SystemExit(f"callgrind_annotate gave no totals for {dump}")
    return int(total.group(1).replace(",", "")), int(main.group(1).replace(",", ""))


def measure(
    src: str, base_url: str, requests: int, stream: bool, keep: Path | None = None
) -> tuple[float, float]:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}} if stream else BODY
    with tempfile.TemporaryDirectory(prefix="chatgate-ir-") as tmp:
        params = {"model": "openai/gpt-4o-mini", "api_key": "x", "api_base": base_url}
        config = {
            "model_list": [{"model_name": "bench", "params": params}],
            "general_settings": {"master_key": KEY, "database_url": f"sqlite:///{tmp}/s.db"},
        }
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        out = Path(tmp) / "callgrind.out"
        port = fake_upstream.free_port()
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        cmd = [sys.executable, "-m", "chatgate.cli", "serve", "--config", str(path)]
        with open(Path(tmp) / "gateway.log", "w") as log:
            gateway = subprocess.Popen(
                [*valgrind, *cmd, "--port", str(port)],
                env={**os.environ, "PYTHONPATH": src},
                stdout=log,
                stderr=log,
            )
            try:
                asyncio.run(_load(port, 300, 8, body))
                time.sleep(2)
                subprocess.run(["callgrind_control", "-z", str(gateway.pid)], check=True)
                asyncio.run(_load(port, requests, 8, body))
                time.sleep(3)  # what the requests left to the background: part of their cost
                subprocess.run(["callgrind_control", "-d", str(gateway.pid)], check=True)
            finally:
                gateway.terminate()
                gateway.wait()
        total, main = _totals(Path(f"{out}.1"))
        if keep is not None:  # for `callgrind_annotate` per function
            keep.write_bytes(Path(f"{out}.1").read_bytes())
        return total / requests, main / requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", required=True, help="the reference tree's src folder")
    parser.add_argument("--new", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--stream", action="store_true", help="streamed answers")
    parser.add_argument("--keep", type=Path, help="folder to keep the two callgrind dumps in")
    args = parser.parse_args()
    keep: Path | None = args.keep
    dumps = (keep / "ref.callgrind", keep / "new.callgrind") if keep else (None, None)
    proc, base_url = fake_upstream.start(chunks=20)
    try:
        ref = measure(args.ref, base_url, args.requests, args.stream, dumps[0])
        new = measure(args.new, base_url, args.requests, args.stream, dumps[1])
    finally:
        proc.terminate()
        proc.wait()
    for name, (total, main_thread) in (("ref", ref), ("new", new)):
        print(f"{name}: {total:,.0f} instructions/request, {main_thread:,.0f} on the event loop")
    print(f"ratio new/ref: all threads {new[0] / ref[0]:.3f}, event loop {new[1] / ref[1]:.3f}")


if __name__ == "__main__":
    main()
