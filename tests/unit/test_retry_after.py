from __future__ import annotations

import email.utils

import pytest

from chatgate.retry_after import parse_retry_after


@pytest.mark.parametrize(
    ("headers", "status", "expected"),
    [
        ({"retry-after": "3"}, 429, 3.0),
        ({"retry-after": "0.5"}, 503, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 429, 1.5),
        ({"retry-after": "soon"}, 429, None),
        ({"retry-after": "100000"}, 429, None),
        ({"x-ratelimit-reset-requests": "20ms"}, 429, 0.02),
        ({"x-ratelimit-reset-tokens": "2m3.5s"}, 429, 123.5),
        ({"x-ratelimit-reset-tokens": "1h2m3.5s"}, 429, None),
        ({"x-ratelimit-reset-tokens": "1s"}, 500, None),
        ({"x-ratelimit-reset-tokens": "garbage1s"}, 429, None),
        ({}, 429, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], status: int, expected: float | None) -> None:
    assert parse_retry_after(headers, status) == expected


def test_http_date_is_relative_to_now() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert parse_retry_after({"retry-after": date}, 429, now=now) == 12.0
    past = email.utils.formatdate(now - 5, usegmt=True)
    assert parse_retry_after({"retry-after": past}, 429, now=now) == 0.0
