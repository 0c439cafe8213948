"""A response-cache hit on the gateway records as saved what the call it replaced cost, not
the served model's list price: here the deployment's own price is 1000x the list's."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from tests.console.conftest import MASTER, master_client
from tests.console.test_admin_logs import logged
from tests.fakes.gateway import Gateway, start_gateway
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAI, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    params = {
        "api_base": upstream.base_url,
        "api_key": "sk-upstream-cache-saving-3",
        "model": "openai/gpt-4o-mini",
        "input_cost_per_token": "0.001",
        "output_cost_per_token": "0.002",
    }
    config = {
        "model_list": [{"model_name": "priced", "params": params}],
        "general_settings": {
            "master_key": MASTER,
            "database_url": database,
            "cache": {"backend": "memory", "mode": "always"},
        },
    }
    with start_gateway(config, tmp_path_factory.mktemp("cache-saving")) as gw:
        yield gw


def ask(gw: Gateway) -> requests.Response:
    return requests.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "priced", "messages": [{"role": "user", "content": "same question"}]},
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=10,
    )


def test_a_cache_hit_saves_what_the_original_call_cost(gateway: Gateway) -> None:
    first, hit = ask(gateway), ask(gateway)
    assert first.headers["x-chatgate-cache"] == "miss"
    assert hit.headers["x-chatgate-cache"] == "hit"
    ids = [r.headers["x-chatgate-request-id"] for r in (first, hit)]
    logged(gateway, *ids)
    with master_client(gateway) as http:
        original, served = (http.get(f"/admin/logs/{i}").json()["records"][0] for i in ids)
    paid = Decimal(original["cost"])
    assert paid > Decimal("0.001")  # the deployment's price, far above gpt-4o-mini's list
    assert served["cache_hit"] is True
    assert Decimal(served["saved"]["cache"]) == paid
