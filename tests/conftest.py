from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.gateway import Gateway
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.redis_server import RedisServer


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests reach only loopback: any other address fails loudly instead of leaving the box."""
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in (
            "127.0.0.1",
            "::1",
            "localhost",
        ):
            raise OSError(f"test tried to reach {host!r}; tests may only use loopback")
        return real_connect(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    for var in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "GROQ_API_KEY",
        "GEMINI_API_KEY",
        "GEMINI_API_BASE",
        "AZURE_API_KEY",
        "AZURE_API_BASE",
        "AZURE_API_VERSION",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _database_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An app built in-process opens its default database here, not in the checkout."""
    monkeypatch.setenv("CHATGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'chatgate.db'}")


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    """One fake OpenAI upstream for a test module (the one its gateway is usually put in front
    of: tests/gateway_harness.py); tests that script it clear what they leave behind."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def database(gateway: Gateway) -> Path:
    """The SQLite file of the module's ``gateway`` (one started with ``database=SQLITE``)."""
    assert gateway.database_path is not None, "the gateway has no SQLite file of its own"
    return gateway.database_path


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole run; tests keep apart by key prefix or flushdb."""
    with RedisServer() as server:
        yield server
