"""Zero-config mode under clients that invent model names (`openai/<anything>` is served on
first use): the process stays bounded (names kept: max_open_models, LRU; metric label values:
metrics_max_models, then "other"), a forgotten name still works when asked again, and /metrics
can be made to need the master key (metrics_require_key)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import SQLITE, Gateway, gateway_config, serve

MASTER = "sk-master-zero-config-9"
MAX_OPEN = 50
MAX_LABELS = 20


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with FakeOpenAI() as upstream:
        config = gateway_config(  # no deployments: zero-config mode, with these settings
            master_key=MASTER,
            database=SQLITE,
            max_open_models=MAX_OPEN,
            metrics_max_models=MAX_LABELS,
            metrics_require_key=True,
        )
        env = {"OPENAI_API_KEY": "sk-upstream-zero-9", "OPENAI_BASE_URL": upstream.base_url}
        with serve(config, tmp_path_factory, env=env) as gw:
            yield gw


def get(gw: Gateway, path: str, key: str | None = MASTER) -> tuple[int, bytes]:
    request = urllib.request.Request(gw.url + path)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def chat(gw: Gateway, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(
        gw.url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {MASTER}")
    with urllib.request.urlopen(request, timeout=15) as resp:
        resp.read()
        return resp.status


def invent(gw: Gateway, start: int, count: int) -> None:
    with ThreadPoolExecutor(4) as pool:
        statuses = set(pool.map(lambda i: chat(gw, f"openai/invented-{i}"), range(start, count)))
    assert statuses == {200}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_invented_model_names_do_not_grow_the_gateway(gateway: Gateway) -> None:
    invent(gateway, 0, 400)  # past both caps: what stays from here on is bounded
    before = rss_kib(gateway.proc.pid)
    invent(gateway, 400, 2400)
    grown_mib = (rss_kib(gateway.proc.pid) - before) / 1024
    assert grown_mib < 6, f"RSS grew {grown_mib:.1f} MiB over 2,000 invented names"

    status, metrics = get(gateway, "/metrics")
    assert status == 200
    models = set(re.findall(rb'model="([^"]*)"', metrics))
    assert len(models) <= MAX_LABELS + 2, sorted(models)  # the cap, "other" and ""
    assert b"other" in models
    assert len(metrics) < 200_000, len(metrics)
    assert chat(gateway, "openai/invented-0") == 200  # forgotten long ago, added again


def test_metrics_can_require_the_master_key(gateway: Gateway) -> None:
    status, body = get(gateway, "/metrics", key=None)
    assert status == 401, body
    assert json.loads(body)["error"]["code"] == "missing_api_key"
    assert get(gateway, "/metrics", key="sk-wrong")[0] == 401
    request = urllib.request.Request(gateway.url + "/admin/keys", data=b"{}", method="POST")
    request.add_header("Authorization", f"Bearer {MASTER}")
    with urllib.request.urlopen(request, timeout=15) as resp:
        virtual = json.loads(resp.read())["key"]
    assert get(gateway, "/metrics", key=virtual)[0] == 403
    assert get(gateway, "/metrics")[0] == 200
    assert get(gateway, "/health/liveness", key=None)[0] == 200  # probes stay open
