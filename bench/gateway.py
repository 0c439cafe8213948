"""What a gateway adds: direct-to-upstream vs chatgate vs LiteLLM proxy, side by side.

    python bench/gateway.py [--quick] [--litellm /work/litellm-venv/bin/litellm]
                            [--concurrency 1,16,64,256] [--rss-requests 20000]
    python bench/gateway.py --ref /tmp/before/src --rounds 3 --only chatgate
                            [--concurrency 16,64] [--rss-requests 0]

``--ref``: another source tree of chatgate (``git archive <commit> src | tar -x -C dir``),
measured in the same run as this one, alternating for ``--rounds`` rounds: a change's cost in
throughput (the median requests/s of each cell, this tree over the reference).

A fast fake upstream (bench/upstream.py) answers every request; each gateway is one process
pinned to CPU 0 (taskset), with the same model_list; the upstream and this load generator
(aiohttp on uvloop) share CPU 1. Latency is measured by the client: from sending the request on
a pooled keep-alive connection to the last byte (TTFT: to the first content chunk). Each cell
is bounded in requests and seconds. Prints p50/p99, throughput, the latency each gateway adds
over direct, throughput ratios, chunk-timing preservation and the gateway's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import orjson
import yaml

import upstream as fake_upstream

GATEWAY_CPU, CLIENT_CPU = "0", 1
SRC = Path(__file__).resolve().parents[1] / "src"
# Both gateways check a master key on every request, as in production (LiteLLM refuses to
# start without one). A throwaway value for this benchmark only.
MASTER_KEY = "sk-bench-" + "5f3c9a1e7d2b4c6a8e0f1a2b3c4d5e6f"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"}
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say something short."}]}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}


@dataclass
class Cell:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0
    warmup: int = 0
    cpu_us: float = float("nan")  # the gateway process's CPU time per request

    def pct(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(self.latencies if values is None else values)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q * len(data)))] * 1000.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, cell: Cell
) -> None:
    started = time.perf_counter()
    first: float | None = None
    arrivals: list[float] = []
    async with session.post(url, data=body, headers=HEADERS) as resp:
        if resp.status != 200:
            cell.errors += 1
            await resp.read()
            return
        if stream:
            async for _ in resp.content.iter_any():
                now = time.perf_counter()
                first = first or now
                arrivals.append(now)
        else:
            await resp.read()
    done = time.perf_counter()
    cell.latencies.append(done - started)
    if first is not None:
        cell.ttfts.append(first - started)
        cell.gaps.extend(b - a for a, b in itertools.pairwise(arrivals))


async def run_cell(
    url: str, stream: bool, concurrency: int, requests: int, max_s: float, model: str = "bench"
) -> Cell:
    body = orjson.dumps({**(STREAM_BODY if stream else BODY), "model": model})
    cell = Cell()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm up at the cell's own concurrency, so every keep-alive connection (client to
        # gateway, gateway to upstream) exists before the clock starts: opening 256 at once
        # inside the measured run overflows the listen queues, and a SYN retried after 1 s
        # was the p99 at c=256.
        per_worker = max(2, 200 // concurrency)
        cell.warmup = per_worker * concurrency
        for _ in range(per_worker):
            await asyncio.gather(
                *(one(session, url, body, stream, Cell()) for _ in range(concurrency))
            )
        remaining = requests
        deadline = time.perf_counter() + max_s

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                try:
                    await one(session, url, body, stream, cell)
                except (aiohttp.ClientError, TimeoutError):
                    cell.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cell.elapsed = time.perf_counter() - started
    return cell


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def cpu_s(pid: int) -> float:
    """CPU seconds of the process and its worker processes (``--workers``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return own + sum(cpu_s(int(kid)) for kid in kids)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


@contextlib.contextmanager
def server(
    args: list[str], health: str, log: Path, env: dict[str, str], cpus: str = GATEWAY_CPU
) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", cpus, *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_ready(health, proc)
            yield proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def model_list(fast: str, paced: str) -> list[dict[str, object]]:
    def entry(name: str, base: str) -> dict[str, object]:
        params = {"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-bench"}
        return {"model_name": name, "litellm_params": params}

    return [entry("bench", fast), entry("paced", paced)]


def free_port() -> int:
    return fake_upstream.free_port()


@dataclass
class Target:
    name: str
    url: str  # chat completions URL
    paced_url: str = ""  # where the "paced" model (chunks 10 ms apart) is; default: url
    pid: int | None = None
    results: dict[tuple[bool, int], Cell] = field(default_factory=dict)
    timing: Cell | None = None
    rss: list[tuple[int, float]] = field(default_factory=list)


def measure(target: Target, args: argparse.Namespace) -> None:
    for stream in (False, True):
        for conc in args.concurrency:
            n = args.requests if conc > 1 else max(args.requests // 3, 300)
            before = cpu_s(target.pid) if target.pid else 0.0
            cell = asyncio.run(run_cell(target.url, stream, conc, n, args.max_seconds))
            if target.pid:
                used = cpu_s(target.pid) - before
                cell.cpu_us = used / (len(cell.latencies) + cell.warmup) * 1e6
            target.results[(stream, conc)] = cell
            mode = "stream" if stream else "json"
            print(
                f"  {target.name:8} {mode:6} c={conc:<4} {cell.rps:8.0f} req/s  "
                f"p50 {cell.pct(0.5):7.2f} ms  p99 {cell.pct(0.99):7.2f} ms  "
                f"cpu {cell.cpu_us:6.0f} us/req  n={len(cell.latencies)} errors={cell.errors}",
                flush=True,
            )
    # chunk timing: 20 chunks 10 ms apart; mean gap at the client should stay 10 ms
    paced = target.paced_url or target.url
    target.timing = asyncio.run(run_cell(paced, True, 1, 20, 30, model="paced"))
    if target.pid is not None and args.rss_requests:
        done = 0
        for _ in range(2):  # RSS after N/2 and after N requests (each half capped at 120 s)
            cell = asyncio.run(run_cell(target.url, False, 64, args.rss_requests // 2, 120))
            done += len(cell.latencies)
            target.rss.append((done, rss_mb(target.pid)))


def report(targets: list[Target], args: argparse.Namespace) -> None:
    direct = targets[0]
    print(
        "\n| target | mode | conc | req/s | p50 ms | p99 ms | added p50 | added p99 "
        "| TTFT p50 | CPU us/req |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for stream in (False, True):
        for conc in args.concurrency:
            base = direct.results[(stream, conc)]
            for t in targets:
                c = t.results.get((stream, conc))
                if c is None:
                    continue
                added = (
                    ("-", "-")
                    if t is direct
                    else (
                        f"{c.pct(0.5) - base.pct(0.5):.2f}",
                        f"{c.pct(0.99) - base.pct(0.99):.2f}",
                    )
                )
                ttft = f"{c.pct(0.5, c.ttfts):.2f}" if stream else "-"
                cpu = "-" if t is direct else f"{c.cpu_us:.0f}"
                print(
                    f"| {t.name} | {'stream' if stream else 'json'} | {conc} | {c.rps:.0f} | "
                    f"{c.pct(0.5):.2f} | {c.pct(0.99):.2f} | {added[0]} | {added[1]} | {ttft} "
                    f"| {cpu} |"
                )
    names = {t.name: t for t in targets}
    if "chatgate" in names and "litellm" in names:
        print("\nthroughput ratio chatgate / litellm (one core each):")
        for stream in (False, True):
            for conc in args.concurrency:
                cg = names["chatgate"].results[(stream, conc)]
                ll = names["litellm"].results[(stream, conc)]
                ratio = cg.rps / ll.rps if ll.rps else float("inf")
                print(f"  {'stream' if stream else 'json':6} c={conc:<4} {ratio:6.2f}x")
    print("\nchunk timing (20 chunks sent 10 ms apart), mean / p99 gap at the client:")
    for t in targets:
        if t.timing is not None and t.timing.gaps:
            gaps = t.timing.gaps
            mean, p99 = statistics.mean(gaps) * 1000, t.timing.pct(0.99, gaps)
            print(f"  {t.name:8} {mean:6.2f} ms / {p99:6.2f} ms")
    for t in targets:
        if t.rss:
            marks = ", ".join(f"{n} req: {mb:.0f} MB" for n, mb in t.rss)
            print(f"RSS {t.name}: {marks}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument("--rss-requests", type=int, default=20000)
    parser.add_argument("--litellm", default="/work/litellm-venv/bin/litellm")
    parser.add_argument("--only", default="direct,chatgate,litellm")
    parser.add_argument("--ref", help="a reference tree's src folder, measured as 'ref'")
    parser.add_argument("--rounds", type=int, default=1, help="with --ref: chatgate/ref pairs")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway worker processes (both gateways); with 2 they run on both cores and the "
        "load generator shares core 1 with them: figures per machine, not per core",
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if args.quick:
        args.requests, args.max_seconds, args.rss_requests = 600, 5.0, 2000
    os.sched_setaffinity(0, {CLIENT_CPU})
    only = args.only.split(",")
    fast_proc, fast = fake_upstream.start(chunks=20)
    paced_proc, paced = fake_upstream.start(chunks=20, delay_ms=10)
    args.upstreams = (fast, paced)
    for proc in (fast_proc, paced_proc):
        os.sched_setaffinity(proc.pid, {CLIENT_CPU})
    tmp = Path(tempfile.mkdtemp(prefix="chatgate-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    targets = [Target("direct", f"{fast}/chat/completions", f"{paced}/chat/completions")]
    try:
        if "direct" in only:
            print("direct", flush=True)
            measure(targets[0], args)
        if args.ref:
            for _ in range(args.rounds):  # alternated, so that drift hits both
                run_gateway("ref", targets, args, tmp, {**env, "PYTHONPATH": args.ref})
                run_gateway("chatgate", targets, args, tmp, {**env, "PYTHONPATH": str(SRC)})
            report_against_ref(targets, args)
        elif "chatgate" in only:
            run_gateway("chatgate", targets, args, tmp, env)
        if "litellm" in only and Path(args.litellm).exists():
            run_gateway("litellm", targets, args, tmp, env)
        if targets[0].results:  # the table compares with direct
            report([t for t in targets if t.results], args)
    finally:
        for proc in (fast_proc, paced_proc):
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def report_against_ref(targets: list[Target], args: argparse.Namespace) -> None:
    """Each cell's median requests/s and CPU per request over the rounds, this tree / ref."""
    print(f"\nthis tree / ref ({args.ref}), medians of {args.rounds} rounds:")
    print("| mode | conc | ref req/s | req/s | ratio | ref CPU us/req | CPU us/req | ratio |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for stream in (False, True):
        for conc in args.concurrency:
            cells = {
                name: [t.results[(stream, conc)] for t in targets if t.name == name]
                for name in ("ref", "chatgate")
            }
            rps = {n: statistics.median(c.rps for c in cs) for n, cs in cells.items()}
            cpu = {n: statistics.median(c.cpu_us for c in cs) for n, cs in cells.items()}
            print(
                f"| {'stream' if stream else 'json'} | {conc} | {rps['ref']:.0f} | "
                f"{rps['chatgate']:.0f} | {rps['chatgate'] / rps['ref']:.3f} | "
                f"{cpu['ref']:.0f} | {cpu['chatgate']:.0f} | {cpu['chatgate'] / cpu['ref']:.3f} |"
            )


def run_gateway(
    name: str, targets: list[Target], args: argparse.Namespace, tmp: Path, env: dict[str, str]
) -> None:
    """Start one gateway (same model_list and master key for both), measure it, stop it."""
    fast, paced = args.upstreams
    config = tmp / f"{name}.yaml"
    data: dict[str, object] = {
        "model_list": model_list(fast, paced),
        "general_settings": {"master_key": MASTER_KEY},
    }
    port = free_port()
    if name in ("chatgate", "ref"):
        # the access log stays on (written to the log file), and the spend log writes every
        # request to SQLite, as in production; the database lives in the run's temp dir
        database = tmp / f"spend-{name}-{len(targets)}.db"
        settings = {"master_key": MASTER_KEY, "database_url": f"sqlite:///{database}"}
        data["general_settings"] = settings
        cmd = [sys.executable, "-m", "chatgate.cli", "serve", "--config", str(config)]
        cmd += ["--workers", str(args.workers)]
        health = f"http://127.0.0.1:{port}/health/liveness"
    else:
        data["litellm_settings"] = {"telemetry": False, "drop_params": True, "set_verbose": False}
        env = {**env, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
        cmd = [args.litellm, "--config", str(config), "--num_workers", str(args.workers)]
        health = f"http://127.0.0.1:{port}/health/liveliness"
    config.write_text(yaml.safe_dump(data))
    cpus = GATEWAY_CPU if args.workers == 1 else "0,1"
    with server([*cmd, "--port", str(port)], health, tmp / f"{name}.log", env, cpus) as pid:
        print(name, flush=True)
        target = Target(name, f"http://127.0.0.1:{port}/v1/chat/completions", pid=pid)
        targets.append(target)
        measure(target, args)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    main()
