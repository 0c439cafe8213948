"""What tracing costs the gateway: CPU per request with OpenTelemetry off, and on with every
request sampled and exported over OTLP/HTTP to a real receiver, side by side in one run.

    python bench/tracing.py [--rounds 3] [--requests 2000] [--concurrency 16]

The same `chatgate serve` config twice, once without ``general_settings.otel`` and once with
it (sample_rate 1, the export thread included in the measured CPU); each gateway is one
process pinned to CPU 0 (taskset); the fast fake upstream (bench/upstream.py), the OTLP
receiver (tests/fakes/otlp_receiver.py, which decodes every export) and this load generator
share CPU 1. Off and on alternate for ``--rounds`` rounds so that drift on a shared machine
hits both; the report gives the median per mode and the difference, and how much of that the
event loop's thread spent (the rest: the export threads). Targets: off adds nothing
measurable; on adds at most 40 us CPU per request.

    python bench/tracing.py --ref /tmp/before/src [--rounds 5]

``--ref``: another source tree (``git archive <commit> src | tar -x -C /tmp/before``), its off
and on gateways alternated with this tree's in every round: what a change did to tracing's
cost, read against the same minutes of a machine whose speed drifts by more than the change.

    python bench/tracing.py --instructions [--src src] [--requests 400] [--stream] [--threads]

counts instructions per request under callgrind instead (bench/gateway_instructions.py: a
count the other work on a shared machine does not move), off and on, for one source tree;
``--threads``: each thread's count too (1 is the event loop; with tracing on, the largest
other is the span export thread).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes: the OTLP receiver

import yaml
from tests.fakes.otlp_receiver import OtlpReceiver

import upstream as fake_upstream
from gateway import CLIENT_CPU, MASTER_KEY, cpu_s, free_port, model_list, run_cell, server


def loop_cpu_s(pid: int) -> float:
    """CPU seconds of the process's main thread: the event loop, where requests run (the
    rest is its threads: the span export, the access log, the spend writer)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    config: dict[str, object],
    tmp: Path,
    name: str,
    args: argparse.Namespace,
    stream: bool,
    src: str | None = None,
) -> tuple[float, float, float]:
    """(CPU us per request, p50 ms, of the CPU the event loop's us) of one gateway process
    over one cell."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    cmd = [sys.executable, "-m", "chatgate.cli", "serve", "--config", str(path)]
    cmd += ["--port", str(port)]
    health = f"http://127.0.0.1:{port}/health/liveness"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if src is not None:  # that tree's chatgate, ahead of the installed one
        env["PYTHONPATH"] = src
    with server(cmd, health, tmp / f"{name}.log", env) as pid:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        before, loop_before = cpu_s(pid), loop_cpu_s(pid)
        cell = asyncio.run(run_cell(url, stream, args.concurrency, args.requests, args.max_seconds))
        used, loop = cpu_s(pid) - before, loop_cpu_s(pid) - loop_before
        if cell.errors:
            raise RuntimeError(f"{name}: {cell.errors} errors")
    count = len(cell.latencies) + cell.warmup
    return used / count * 1e6, cell.pct(0.5), loop / count * 1e6


def noop_path_us(n: int = 20000) -> float:
    """CPU of the telemetry calls one request makes with tracing off (no SDK anywhere), in
    this process: the route span and attempt marker checks, two gateway steps, the attempt
    span, traceparent check and the end of the attempt, as the code runs them."""
    import time

    from chatgate.providers.base import Deployment
    from chatgate.telemetry import spans, steps
    from chatgate.types import ChatRequest

    request = ChatRequest.model_validate(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    )
    deployment = Deployment("openai", "gpt-4o-mini", "https://api.openai.com/v1")
    headers: dict[str, str] = {}

    def one() -> None:  # as router.py, attempt.py and guarded.py make them with tracing off
        route = spans.start_route("bench")
        assert route is spans.NO_SPAN
        assert spans.attempt("d1", "bench", 1) is None
        for name in ("chatgate.budget.hold", "chatgate.cache"):
            with steps.step(name):
                pass
        span = spans.start_chat(request, deployment)
        spans.inject(span, headers)
        spans.end_attempt(span, deployment, 0.0)
        spans.served_by("bench", "bench")

    for _ in range(1000):
        one()
    began = time.process_time()
    for _ in range(n):
        one()
    return (time.process_time() - began) / n * 1e6


def instructions(args: argparse.Namespace) -> None:
    """Off and on under callgrind: instructions per request, all threads and the event loop."""
    import subprocess
    import time

    from gateway_cpu import BODY
    from gateway_instructions import _load, _totals

    body = (
        {**BODY, "stream": True, "stream_options": {"include_usage": True}} if args.stream else BODY
    )
    upstream_proc, fast = fake_upstream.start(chunks=20)
    counts: dict[str, tuple[float, float]] = {}
    try:
        with OtlpReceiver() as receiver, tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            general = {"master_key": MASTER_KEY, "database_url": f"sqlite:///{tmp / 's.db'}"}
            otel = {"endpoint": receiver.http_endpoint, "sample_rate": args.sample_rate}
            wanted = args.modes.split(",")
            every = (("off", general), ("on", {**general, "otel": otel}))
            for mode, settings in [(m, s) for m, s in every if m in wanted]:
                config = {"model_list": model_list(fast, fast)[:1], "general_settings": settings}
                path, out = tmp / f"{mode}.yaml", tmp / f"{mode}.callgrind"
                path.write_text(yaml.safe_dump(config))
                port = free_port()
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                if args.threads:
                    cmd.append("--separate-threads=yes")
                cmd += [sys.executable, "-m", "chatgate.cli", "serve", "--config", str(path)]
                env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
                env["PYTHONPATH"] = args.src
                with open(tmp / f"{mode}.log", "w") as log:
                    proc = subprocess.Popen(
                        [*cmd, "--port", str(port)], env=env, stdout=log, stderr=log
                    )
                    try:
                        asyncio.run(_load(port, args.warmup, 8, body))
                        time.sleep(2)
                        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True)
                        asyncio.run(_load(port, args.requests, 8, body))
                        time.sleep(3)  # the export of the last batch: part of the cost
                        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True)
                    finally:
                        proc.terminate()
                        proc.wait()
                if args.threads:
                    threads = _per_thread(out, args.requests)
                    total, loop = sum(threads.values()), threads[1]
                    print(f"{mode}, per thread (1: the event loop): " + ", ".join(
                        f"{n}: {count:,.0f}" for n, count in sorted(threads.items()) if count >= 1
                    ))  # fmt: skip
                    counts[mode] = (total, loop)
                else:
                    total, loop = _totals(Path(f"{out}.1"))
                    counts[mode] = (total / args.requests, loop / args.requests)
                print(
                    f"{mode}: {counts[mode][0]:,.0f} instructions/request, "
                    f"{counts[mode][1]:,.0f} on the event loop",
                    flush=True,
                )
    finally:
        upstream_proc.terminate()
        upstream_proc.wait()
    if len(counts) < 2:
        return
    (off, off_loop), (on, on_loop) = counts["off"], counts["on"]
    print(
        f"added by tracing: {on - off:+,.0f} instructions/request, {on_loop - off_loop:+,.0f} "
        f"on the event loop"
    )


def _per_thread(out: Path, requests: int) -> dict[int, float]:
    """Instructions per request of each thread, from callgrind's ``--separate-threads`` dumps
    of the measured part (``<out>.1-NN``); thread 1 is the event loop's, the largest of the
    others with tracing on the span export thread's."""
    import re

    threads = {}
    for dump in out.parent.glob(f"{out.name}.1-*"):
        text = dump.read_text(errors="replace")
        found = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
        if found:
            threads[int(dump.name.rsplit("-", 1)[1])] = int(found.group(1)) / requests
    return threads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--stream", action="store_true", help="--instructions: streamed answers")
    parser.add_argument(
        "--threads", action="store_true", help="--instructions: each thread's count too"
    )
    parser.add_argument(
        "--modes", default="off,on", help="--instructions: which gateways to count (off,on)"
    )
    parser.add_argument("--warmup", type=int, default=300, help="--instructions: requests first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--sample-rate", type=float, default=1.0, help="of the 'on' gateway")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--ref", help="another src tree, measured alternately with this one")
    parser.add_argument("--no-metrics", action="store_true", help="export spans only")
    parser.add_argument(
        "--record-only",
        action="store_true",
        help="record spans, export almost none (a queue of 1, a collector that is down): "
        "what recording costs without the export thread",
    )
    args = parser.parse_args()
    if args.instructions:
        instructions(args)
        return
    os.sched_setaffinity(0, {CLIENT_CPU})
    print(f"tracing off: the telemetry calls of one request cost {noop_path_us():.2f} us CPU")
    upstream_proc, fast = fake_upstream.start(chunks=20)
    os.sched_setaffinity(upstream_proc.pid, {CLIENT_CPU})
    tmp = Path(tempfile.mkdtemp(prefix="chatgate-bench-tracing-"))
    results: dict[tuple[str, bool], list[tuple[float, float, float]]] = {}
    try:
        with OtlpReceiver() as receiver:
            general = {"master_key": MASTER_KEY, "database_url": f"sqlite:///{tmp / 'spend.db'}"}
            otel = {
                "endpoint": receiver.http_endpoint,
                "sample_rate": args.sample_rate,
                "metrics": not args.no_metrics,
            }
            if args.record_only:
                otel.update(endpoint=f"http://127.0.0.1:{free_port()}", max_queue_size=1)
            configs = {
                "off": {"model_list": model_list(fast, fast), "general_settings": general},
                "on": {
                    "model_list": model_list(fast, fast),
                    "general_settings": {**general, "otel": otel},
                },
            }
            trees: list[tuple[str, str | None]] = [("", None)]
            if args.ref:
                trees.append(("ref ", str(Path(args.ref).resolve())))
            for round_ in range(args.rounds):
                for stream in (False,) if args.json_only else (False, True):
                    for (tree, src), (plain, config) in itertools.product(trees, configs.items()):
                        mode = tree + plain
                        got = measure(
                            config, tmp, f"{tree}{plain}-{round_}".strip(), args, stream, src
                        )
                        results.setdefault((mode, stream), []).append(got)
                        kind = "stream" if stream else "json"
                        print(
                            f"round {round_ + 1} {kind:6} tracing {mode:7}: "
                            f"{got[0]:6.0f} us CPU/req (event loop {got[2]:4.0f})  "
                            f"p50 {got[1]:6.2f} ms",
                            flush=True,
                        )
            spans = len(receiver.spans)
        report(results, args, spans)
    finally:
        upstream_proc.terminate()
        upstream_proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    results: dict[tuple[str, bool], list[tuple[float, float, float]]],
    args: argparse.Namespace,
    spans: int,
) -> None:
    print(
        f"\nmedians over {args.rounds} rounds, c={args.concurrency}, "
        f"{args.requests} requests per cell; the receiver took {spans} spans"
    )
    print("| mode | tracing off (us CPU/req) | tracing on | added by tracing | of it, event loop |")
    print("|---|---|---|---|---|")
    for tree in sorted({mode.rpartition(" ")[0] for mode, _ in results}):
        prefix = f"{tree} " if tree else ""
        for stream in sorted({stream for _, stream in results}):
            off, on = results[(prefix + "off", stream)], results[(prefix + "on", stream)]
            added = statistics.median(x[0] for x in on) - statistics.median(x[0] for x in off)
            loop = statistics.median(x[2] for x in on) - statistics.median(x[2] for x in off)
            kind = prefix + ("stream" if stream else "json")
            print(
                f"| {kind} | {statistics.median(x[0] for x in off):.0f} | "
                f"{statistics.median(x[0] for x in on):.0f} | {added:+.0f} | {loop:+.0f} |"
            )
    if any(mode.startswith("ref ") for mode, _ in results):
        print("\nadded by tracing, this tree minus the reference, paired by round (median):")
        for stream in sorted({stream for _, stream in results}):
            paired = [
                (on[0] - off[0]) - (ref_on[0] - ref_off[0])
                for off, on, ref_off, ref_on in zip(
                    results[("off", stream)],
                    results[("on", stream)],
                    results[("ref off", stream)],
                    results[("ref on", stream)],
                    strict=True,
                )
            ]
            kind = "stream" if stream else "json"
            rounds = ", ".join(f"{d:+.0f}" for d in paired)
            print(f"  {kind}: {statistics.median(paired):+.0f} us ({rounds})")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    main()
