"""A real `chatgate serve` with a master key, a SQLite database and a fake OpenAI upstream,
shared by the console's HTTP and browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fakes.gateway import Gateway, start_gateway
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.postgres import PostgresServer, require_bin_dir

MASTER = "sk-master-console-test-7"
DEAD_UPSTREAM = "http://127.0.0.1:9/v1"  # the discard port: connection refused


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The gateway's database: SQLite unless a module parametrizes it (indirect) with
    "postgresql", a throwaway server of its own."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('console-db') / 'gateway.db'}"
        return
    server = PostgresServer(require_bin_dir()).init()
    server.start()
    try:
        yield server.url
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAI, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("console")
    params = {"api_base": upstream.base_url, "api_key": "sk-upstream-never-shown-2"}
    config = {
        "model_list": [
            {"model_name": "fast", "params": {"model": "openai/gpt-4o-mini", **params}},
            {"model_name": "smart", "params": {"model": "openai/gpt-4o", **params}},
            # nothing listens there: every call to it is tried, then answered by "fast"
            {
                "model_name": "flaky",
                "params": {**params, "model": "openai/gpt-4o", "api_base": DEAD_UPSTREAM},
            },
        ],
        "router_settings": {"fallbacks": [{"flaky": ["fast"]}], "num_retries": 1},
        "general_settings": {
            "master_key": MASTER,
            "database_url": database,
            "key_cache_ttl_s": 0,
            "budgets": [{"scope": "global", "limit": "100", "window": "monthly"}],
        },
    }
    with start_gateway(config, tmp) as gw:
        yield gw


class Client(requests.Session):
    """A requests session (it keeps cookies) whose paths are relative to ``base_url``."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.base_url = base_url
        self.headers.update(headers or {})

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any) -> Any:
        kw.setdefault("timeout", 10)
        return super().request(method, f"{self.base_url}{url!s}", *args, **kw)


def master_client(gw: Gateway) -> Client:
    return Client(gw.url, {"Authorization": f"Bearer {MASTER}"})


def new_key(gw: Gateway, **fields: Any) -> tuple[str, dict[str, Any]]:
    with master_client(gw) as http:
        resp = http.post("/admin/keys", json=fields)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return body.pop("key"), body
