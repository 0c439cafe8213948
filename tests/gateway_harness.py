"""A real `chatgate serve` for a test, stated by what differs from every other one: the models
behind it, the master key, the database and the settings the test is about. Writing the
config file, the free port, waiting for readiness and making keys through the admin API are
here once (the process itself: ``tests.fakes.gateway``)::

    @pytest.fixture(scope="module")
    def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory):
        config = gateway_config(
            deployment("fast", upstream),
            deployment("embed", upstream, "openai/text-embedding-3-small"),
            master_key=MASTER,
            database=SQLITE,
            router={"num_retries": 0},
        )
        with serve(config, tmp_path_factory) as gw:
            yield gw

    def test_x(gateway: Gateway) -> None:
        key = gateway.new_key(models=["fast"])

``upstream`` (one fake OpenAI server per test module) is a fixture in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.fakes.gateway import READY_TIMEOUT_S, Gateway, start_gateway

__all__ = [
    "SQLITE",
    "UPSTREAM_KEY",
    "Gateway",
    "deployment",
    "gateway_config",
    "serve",
]

# The upstream key a deployment gets unless the test is about keys: never shown to clients.
UPSTREAM_KEY = "sk-upstream-never-shown-0"
# database=SQLITE: a SQLite file of the gateway's own, in its folder (``Gateway.database_path``).
SQLITE = "sqlite:///<the gateway's folder>/gateway.db"


class Upstream(Protocol):
    @property
    def base_url(self) -> str: ...


def deployment(
    name: str,
    upstream: Upstream | str,
    model: str = "openai/gpt-4o-mini",
    *,
    api_key: str = UPSTREAM_KEY,
    **params: Any,
) -> dict[str, Any]:
    """One ``model_list`` entry: ``name`` served by ``model`` at the fake ``upstream`` (or a
    base URL); ``params`` are the deployment's other params (prices, limits, ...)."""
    base = upstream if isinstance(upstream, str) else upstream.base_url
    return {
        "model_name": name,
        "params": {"model": model, "api_base": base, "api_key": api_key, **params},
    }


def gateway_config(
    *deployments: Mapping[str, Any],
    master_key: str | None = None,
    database: str | None = None,
    router: Mapping[str, Any] | None = None,
    **general: Any,
) -> dict[str, Any]:
    """A config: the deployments (none: zero-config mode), ``router_settings`` and the
    ``general_settings`` (``master_key``, ``database_url`` = ``database``, then ``general``)."""
    config: dict[str, Any] = {}
    if deployments:
        config["model_list"] = [dict(d) for d in deployments]
    if router:
        config["router_settings"] = dict(router)
    named = {"master_key": master_key, "database_url": database}
    settings = {k: v for k, v in named.items() if v is not None} | general
    if settings:
        config["general_settings"] = settings
    return config


@contextlib.contextmanager
def serve(
    config: Mapping[str, Any] | None,
    folder: Path | pytest.TempPathFactory,
    *,
    env: Mapping[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[Gateway]:
    """Run `chatgate serve` with ``config`` in ``folder`` (a fresh one from a
    ``tmp_path_factory``); yield it once it answers, stop it at the end."""
    tmp = folder.mktemp("gateway") if isinstance(folder, pytest.TempPathFactory) else folder
    general = (config or {}).get("general_settings") or {}
    database = tmp / "gateway.db" if general.get("database_url") == SQLITE else None
    if database is not None:
        general = {**general, "database_url": f"sqlite:///{database}"}
        config = {**(config or {}), "general_settings": general}
    with start_gateway(config, tmp, env, ready_timeout_s, extra_args=extra_args) as gateway:
        gateway.database_path = database
        yield gateway
