from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.batching.support import Fakes, fake_set


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with fake_set() as made:
        yield made
