"""Fixtures the fault tests take by name: the store tests' databases (a fresh one per test, on
SQLite and PostgreSQL) and the budget tests' two upstreams (``budget_support.py``)."""

from __future__ import annotations

from tests.faults.budget_support import dear, flaky
from tests.store.conftest import db_url, pg_url, postgres

__all__ = ["db_url", "dear", "flaky", "pg_url", "postgres"]
