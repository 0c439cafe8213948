"""The gateway's CPU per request, two source trees side by side (before/after a change).

    python bench/gateway_cpu.py --ref /tmp/old/src [--new src] [--runs 3] [--requests 3000]

Export the reference first, e.g. ``git archive <commit> src | tar -x -C /tmp/old``. Each run
starts the fast fake upstream (bench/upstream.py) and one ``chatgate serve`` per tree, pinned to
CPU 0 (the load generator and the upstream on CPU 1), warms it, sends REQUESTS whole-answer chat
requests with CONCURRENCY in flight, and reads the gateway's user+system CPU time from /proc.
Runs alternate between the trees so a noisy machine weighs on both alike; prints the medians
and the ratio. CPU per request is what a saturated core's throughput follows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import yaml

import upstream as fake_upstream

KEY = "sk-bench-" + "5f3c9a1e7d2b4c6a8e0f1a2b3c4d5e6f"  # a throwaway master key
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say something short."}]}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_live(session: aiohttp.ClientSession, url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/health/liveness") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)


async def _load(port: int, requests: int, concurrency: int, pid: int) -> tuple[float, float]:
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as session:
        await wait_live(session, url, 30)

        async def one() -> None:
            async with session.post(f"{url}/v1/chat/completions", json=BODY, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status

        for _ in range(200):
            await one()
        gate = asyncio.Semaphore(concurrency)

        async def bounded() -> None:
            async with gate:
                await one()

        cpu, wall = _cpu_s(pid), time.perf_counter()
        await asyncio.gather(*(bounded() for _ in range(requests)))
        return (_cpu_s(pid) - cpu) / requests * 1e6, time.perf_counter() - wall


def measure(src: str, base_url: str, requests: int, concurrency: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="chatgate-cpu-") as tmp:
        params = {"model": "openai/gpt-4o-mini", "api_key": "x", "api_base": base_url}
        config = {
            "model_list": [{"model_name": "bench", "params": params}],
            "general_settings": {"master_key": KEY, "database_url": f"sqlite:///{tmp}/s.db"},
        }
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        port = fake_upstream.free_port()
        cmd = [sys.executable, "-m", "chatgate.cli", "serve", "--config", str(path)]
        env = {**os.environ, "PYTHONPATH": src}
        with open(Path(tmp) / "gateway.log", "w") as log:
            gateway = subprocess.Popen(
                ["taskset", "-c", "0", *cmd, "--port", str(port)], env=env, stdout=log, stderr=log
            )
            try:
                return asyncio.run(_load(port, requests, concurrency, gateway.pid))
            finally:
                gateway.terminate()
                gateway.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", required=True, help="the reference tree's src folder")
    parser.add_argument("--new", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    proc, base_url = fake_upstream.start(chunks=20)
    os.sched_setaffinity(proc.pid, {1})
    cpu: dict[str, list[float]] = {"ref": [], "new": []}
    wall: dict[str, list[float]] = {"ref": [], "new": []}
    try:
        for _ in range(args.runs):
            for name, src in (("ref", args.ref), ("new", args.new)):
                us, seconds = measure(src, base_url, args.requests, args.concurrency)
                cpu[name].append(us)
                wall[name].append(seconds)
                print(f"  {name}: {us:6.0f} us/req CPU, {seconds:.2f} s wall", flush=True)
    finally:
        proc.terminate()
        proc.wait()
    ref, new = statistics.median(cpu["ref"]), statistics.median(cpu["new"])
    ref_s, new_s = statistics.median(wall["ref"]), statistics.median(wall["new"])
    print(
        f"gateway CPU per whole request, median of {args.runs}: ref {ref:.0f} us, new {new:.0f} us"
    )
    print(f"ratio new/ref: CPU {new / ref:.3f}, wall {new_s / ref_s:.3f}")


if __name__ == "__main__":
    main()
