"""Test fixtures: every database test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from `ENTRAIDE_TEST_PG_URL` (scripts/postgres.sh starts one; `make test` does it).
Without it the suite refuses to run, rather than silently testing one backend only — unless
`ENTRAIDE_TEST_BACKENDS=sqlite` says so explicitly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.bootstrap import Context, Settings, open_context
from ledger.adapters.database import normalize_url

# The `entraide` CLI speaks French unless told otherwise; tests read its English (and those of
# French say so, tests/test_cli_language.py). LANGUAGE comes first in gettext's order.
os.environ["LANGUAGE"] = "en"

PG_URL = os.environ.get("ENTRAIDE_TEST_PG_URL")
BACKENDS = os.environ.get("ENTRAIDE_TEST_BACKENDS", "sqlite,postgresql").split(",")


def pytest_configure(config: pytest.Config) -> None:
    if "postgresql" in BACKENDS and not PG_URL:
        raise pytest.UsageError(
            "ENTRAIDE_TEST_PG_URL is not set: start PostgreSQL with `scripts/postgres.sh start` (make test does), "
            "or set ENTRAIDE_TEST_BACKENDS=sqlite to test SQLite only"
        )


def _pg_schema_url(schema: str) -> str:
    url = make_url(normalize_url(PG_URL))
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "entraide.db")
        return
    with pg_schema("t") as url:
        yield url


@contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """The URL of a new schema on the PostgreSQL server, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db_url, keys_dir=tmp_path / "keys")


class Clock:
    """A controllable clock in µs: tests move time instead of sleeping."""

    def __init__(self, start_us: int = 1_767_225_600_000_000) -> None:
        self.now_us = start_us

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(settings: Settings, clock: Clock) -> Iterator[Context]:
    context = open_context(settings, clock=clock, key_from_us=clock(), create=True)
    yield context
    context.engine.dispose()
