"""Fixtures the integration tests take by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatgate.cache import Cache, configure_cache


@pytest.fixture
def cache() -> Iterator[Cache]:
    """The process's cache (``configure_cache``): in memory, for this test only."""
    configured = configure_cache(Cache("memory"))
    assert configured is not None
    yield configured
    configure_cache(False)
