"""Test fixtures: every database test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from `ENTRAIDE_TEST_PG_URL` (scripts/postgres.sh starts one; `make test` does it).
Without it the suite refuses to run, rather than silently testing one backend only — unless
`ENTRAIDE_TEST_BACKENDS=sqlite` says so explicitly.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from api.bootstrap import Context, Settings, open_context
from ledger.adapters.database import checkpoint_wal, normalize_url, open_database

# The `entraide` CLI speaks French unless told otherwise; tests read its English (and those of
# French say so, tests/test_cli_language.py). LANGUAGE comes first in gettext's order.
os.environ["LANGUAGE"] = "en"

# tmp_path in memory where the machine has a tmpfs: every SQLite commit (synchronous=FULL) and
# every key or export file then costs no disk flush, which the tests never checked the disk for.
# xdist's workers and the servers the tests start inherit it; PYTEST_DEBUG_TEMPROOT set by hand wins.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", "/dev/shm")

PG_URL = os.environ.get("ENTRAIDE_TEST_PG_URL")
BACKENDS = os.environ.get("ENTRAIDE_TEST_BACKENDS", "sqlite,postgresql").split(",")


def pytest_configure(config: pytest.Config) -> None:
    if "postgresql" in BACKENDS and not PG_URL:
        raise pytest.UsageError(
            "ENTRAIDE_TEST_PG_URL is not set: start PostgreSQL with `scripts/postgres.sh start` (make test does), "
            "or set ENTRAIDE_TEST_BACKENDS=sqlite to test SQLite only"
        )


# The modules whose tests take the longest (the contract, the payments' interleavings, the demo,
# server processes, concurrency, the refunds and witness properties, a browser), longest first, as
# `--durations` measured them: they start first, so that with `-n 2 --maxschedchunk 2` (make
# test-python) none of them starts last and leaves one core idle at the end while the other runs it.
SLOW_FIRST = ("test_contract.py", "test_payments.py", "test_cli_community.py", "test_api_processes.py",
              "test_concurrency.py", "test_refunds.py", "test_witness.py", "test_tiles.py", "test_identity_provider.py",
              "test_finance.py", "test_monitor.py", "test_docs_pages.py", "test_web_home.py", "test_cli.py",
              "test_generated_client.py", "test_database_outage.py")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """SLOW_FIRST, then every other module with a browser scenario (Chromium walking pages: 10-40 s a
    test; each part of the pages adds its own, and `test_web_*` sorted last, so that one of them was
    the last test to start), then the rest."""
    rank = {name: n for n, name in enumerate(SLOW_FIRST)}
    browsers = {item.path for item in items if "browser" in getattr(item, "fixturenames", ())}

    def order(item: pytest.Item) -> int:
        return rank.get(item.path.name, len(SLOW_FIRST) + (item.path not in browsers))

    items.sort(key=order)  # stable: modules keep their order, a module's tests theirs


# A test's sessions commit without waiting for the server's WAL flush: what they wrote is visible
# to every other session at once, as before, and lost only if PostgreSQL itself crashed, which no
# test does (they kill our processes, or cut the network). Each commit waited 3-15 ms for the disk.
NO_FLUSH_WAIT = "-csynchronous_commit=off"


def _pg_schema_url(schema: str) -> str:
    url = make_url(normalize_url(PG_URL))
    options = f"-csearch_path={schema} {NO_FLUSH_WAIT}"
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def _pg_database_url(database: str) -> str:
    url = make_url(normalize_url(PG_URL)).set(database=database)
    return url.update_query_dict({"options": NO_FLUSH_WAIT}).render_as_string(hide_password=False)


class Templates:
    """Databases holding the schema at its latest revision, made once per test process (each xdist
    worker its own) on first use, then copied for each test that wants a migrated database: running
    the migrations cost ~0.7 s a test on SQLite and ~1 s on PostgreSQL, a copy ~1 ms and ~0.1 s.
    SQLite: a file, copied. PostgreSQL: a database that `CREATE DATABASE … TEMPLATE` clones (nobody
    connects to it after it is made, as PostgreSQL requires of a template).

    On PostgreSQL the copies are made ahead and dropped behind, each on a thread of its own: a test
    takes a database made while the previous ones ran, and leaves its own to be dropped while the
    next ones run. Either statement waits on the server's disk (CREATE and DROP DATABASE commit
    synchronously, whatever the session says), 0.5-2 s each on a loaded machine, for ~0.3 s of the
    server's CPU (a create; a drop, next to nothing): ~270 tests waited for both.

    A drop waits for a checkpoint of the whole server (PostgreSQL 15 forces one; with fsync=on and
    other databases busy, 2-10 s), and drops in flight at the same time share one: on one thread they
    fell behind the tests and the last test of each worker waited out the backlog. Measured with
    `pytest -n 2 tests/test_transfers.py tests/test_accounts.py -k postgresql` (37 tests, load ~10):
    1 thread 152 s (the last teardown 96 s), 4 threads 67 s (23 s), 8 threads 46 s (3 s)."""

    SPARES = 2  # databases made ahead: enough for two short tests in a row
    DROPPERS = 8  # drops at once: each waits for a checkpoint (PostgreSQL 15), which drops in flight share

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sqlite: Path | None = None
        self._pg: str | None = None
        self._admin: Engine | None = None
        self._maker = ThreadPoolExecutor(1, thread_name_prefix="templates-create")
        self._dropper = ThreadPoolExecutor(self.DROPPERS, thread_name_prefix="templates-drop")
        self._spares: deque[Future[str]] = deque()
        self._drops: list[Future[None]] = []

    @property
    def admin(self) -> Engine:
        if self._admin is None:
            self._admin = create_engine(
                normalize_url(PG_URL), isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=self.DROPPERS
            )  # a drop's connection is closed after it
        return self._admin

    def sqlite_copy(self, path: Path) -> None:
        if self._sqlite is None:
            template = self.directory / "template.db"
            engine = open_database(str(template), create=True)
            checkpoint_wal(engine)  # the whole schema in the file itself: it is copied without its -wal
            engine.dispose()
            self._sqlite = template
        shutil.copyfile(self._sqlite, path)

    def pg_copy(self) -> str:
        """The name of a new database with the schema, the test's own; `drop` it afterwards."""
        if self._pg is None:
            template = f"t_template_{uuid.uuid4().hex[:12]}"
            with self.admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {template}"))
            open_database(_pg_database_url(template), create=True).dispose()
            self._pg = template
        while len(self._spares) <= self.SPARES:
            self._spares.append(self._maker.submit(self._create))
        return self._spares.popleft().result()

    def _create(self) -> str:
        database = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {database} TEMPLATE {self._pg}"))
        return database

    def drop(self, database: str) -> None:
        self._drops.append(self._dropper.submit(self._drop, database))

    def _drop(self, database: str) -> None:
        with self.admin.connect() as conn:  # FORCE: a server process a test killed may hold a connection
            conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))

    def close(self) -> None:
        self._maker.shutdown(wait=True)  # no copy is being made of the template any more
        for spare in self._spares:
            self.drop(spare.result())
        if self._pg is not None:
            self.drop(self._pg)  # with the last copies: they wait for the same checkpoint
        for dropped in self._drops:
            dropped.result()  # one that failed says so here
        self._dropper.shutdown(wait=True)
        if self._admin is not None:
            self._admin.dispose()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    made = Templates(tmp_path_factory.mktemp("templates"))
    yield made
    made.close()


@pytest.fixture
def migrated_database() -> None:
    """Asks `db_url` for a database that has the schema already (as `ctx` does): for tests that open
    it themselves, with `open_context(settings, create=True)`, and would otherwise migrate it."""


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, templates: Templates) -> Iterator[str]:
    """A fresh database: a SQLite file, or on the PostgreSQL server a new schema. Empty, unless the
    test uses `ctx` or `migrated_database`: then a copy of a database with the schema at its latest
    revision (`ctx` would migrate it to that anyway), on PostgreSQL a database of its own."""
    migrated = not {"ctx", "migrated_database"}.isdisjoint(request.fixturenames)
    if request.param == "sqlite":
        path = tmp_path / "entraide.db"
        if migrated:
            templates.sqlite_copy(path)
        yield str(path)
        return
    if migrated:
        database = templates.pg_copy()
        try:
            yield _pg_database_url(database)
        finally:
            templates.drop(database)
        return
    with pg_schema("t") as url:
        yield url


@contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """The URL of a new, empty schema on the PostgreSQL server, dropped afterwards."""
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
