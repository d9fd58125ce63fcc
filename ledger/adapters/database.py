"""Engines for the embedded default (SQLite) and the real database (PostgreSQL), and migrations."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, bindparam, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import BindParameter

MIGRATIONS = "ledger:migrations"
SQLITE_BUSY_TIMEOUT_MS = 60_000
POSTGRES_POOL_SIZE = 40
SQLITE_FILE_MODE = 0o600  # the file holds payout bank accounts and wrapped personal-data keys
log = logging.getLogger("entraide.database")


def normalize_url(url: str) -> str:
    """Accept `postgresql://…` (psycopg 3 is our driver) and a bare file path (SQLite)."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Writers serialize on BEGIN IMMEDIATE (below); WAL lets readers run beside them, and
    # synchronous=FULL makes every acknowledged commit survive a power loss. secure_delete zeroes
    # what a write frees, so an erased resident's key leaves no readable bytes behind in a page.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    _make_files_private(cursor)  # before WAL mode: SQLite creates -wal and -shm with the file's mode
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _make_files_private(cursor) -> None:
    """Mode 0600 for the database file and its -wal and -shm: SQLite creates the file 0644 (less the
    umask) when it opens it, still empty; this runs before anything is written. Files created by an
    older version are tightened too; a file we do not own is left as it is."""
    main = next((row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"), "")
    for path in filter(None, (main, main and f"{main}-wal", main and f"{main}-shm")):
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, SQLITE_FILE_MODE)
        except FileNotFoundError:
            continue
        except PermissionError:
            log.warning("%s is readable by others and not ours to chmod", path)


def _sqlite_begin(connection) -> None:
    # pysqlite's own BEGIN is deferred; a deferred writer can fail mid-transaction when another
    # writer commits first. IMMEDIATE takes the write lock up front, as PostgreSQL's row lock does.
    # A connection opened by `reading` never writes: its deferred BEGIN reads one WAL snapshot
    # beside the writer and the other readers, instead of queueing for the write lock.
    connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


READ_ONLY = "entraide_read_only"


def reading(engine: Engine) -> Engine:
    """The same pool for transactions that only read: on SQLite they begin deferred, so they take no
    write lock (a write in one fails there); on PostgreSQL nothing changes."""
    return engine.execution_options(**{READ_ONLY: True})


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # No pre-ping: it costs a round trip on every checkout, and a POS request checks out several
    # times. A connection broken by a server restart fails one request, which the client retries
    # with the same idempotency key; recycling bounds how long a connection lives. No overflow: a
    # connection opened past the pool is closed again on return, and that churn cost more than
    # waiting; the pool matches the worker's thread limit (anyio's 40).
    return create_engine(url, pool_size=POSTGRES_POOL_SIZE, max_overflow=0, pool_timeout=30, pool_recycle=1_800)


def autocommit(engine: Engine) -> Engine:
    """The same pool, each statement its own transaction: for reads and single idempotent writes on
    the POS path, which then cost no BEGIN and no COMMIT or ROLLBACK round trip (psycopg switches
    autocommit on the client, without a round trip). Only on PostgreSQL: SQLite takes its writer lock
    at BEGIN, and a local file has no round trips to save, so there the engine is returned as it is."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def checkpoint_wal(engine: Engine) -> None:
    """SQLite: fold the write-ahead log into the database file and truncate it to zero bytes, so
    that pages the last commits superseded (an erased resident's key) survive in neither file.
    PostgreSQL keeps old row versions until VACUUM and its WAL by its own retention rules (see
    docs/security-model.md, "Personal data"); nothing to do here."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()  # outside any transaction: a checkpoint cannot run inside one
    try:
        cursor = raw.cursor()
        busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cursor.close()
    finally:
        raw.close()
    if busy:  # a reader outlived the busy timeout; the next checkpoint will fold the rest
        log.warning("the SQLite write-ahead log could not be truncated: a reader held it")


def private_directory(path: Path) -> None:
    """Create a directory, and its missing parents, readable by us alone (mode 0700). An existing
    directory is left as it is: it may be shared (`/tmp`, a home), and is the operator's choice."""
    for directory in reversed([p for p in (path, *path.parents) if not p.exists()]):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=0o700)


def _migrations_config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The latest migration's revision, read from the scripts once per process (they do not change
    under it): alembic compiles every script from source to find it. Opening a database at the head
    then costs no alembic run: 6 ms of CPU instead of 20-28 ms (open_context on a migrated copy)."""
    return ScriptDirectory.from_config(_migrations_config()).get_current_head()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the latest migration (idempotent)."""
    config = _migrations_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


# --- opening only what exists: a mistyped URL must not become a new, empty database ---------------

INIT_HINT = "`entraide init` (same --db and --data-dir)"


class DatabaseMissing(Exception):
    """The URL names no database, or one without the Entraide schema. Only `entraide init` and
    `entraide demo` create one; every other command stops here rather than make an empty ledger."""


def display_url(url: str) -> str:
    """The URL as an error message may show it: the password masked, a SQLite path resolved."""
    path = sqlite_path(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL or bare path names; None for a server database (or SQLite in memory)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def schema_revision(url: str) -> str | None:
    """The schema revision of the database `url` names, or None when it has no schema yet. Only
    reads, and creates nothing; raises DatabaseMissing when there is no database at all."""
    path = sqlite_path(url)
    if path is not None:
        return _sqlite_revision(path)
    if make_url(normalize_url(url)).get_backend_name() == "sqlite":
        return None  # in memory: never a schema before this process makes one
    return _server_revision(url)


def _sqlite_revision(path: Path) -> str | None:
    if not path.exists():
        raise DatabaseMissing(f"no database at {path}: create it with {INIT_HINT}")
    # Read-only, without the engine: its first connection would switch a stranger's file to WAL.
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            if (
                conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone()
                is None
            ):
                return None
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path} is not a SQLite database ({exc})") from None
    return None if row is None else row[0]


def _server_revision(url: str) -> str | None:
    probe = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with probe.connect() as conn:
            if conn.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError:
        name = make_url(url).database
        if _server_lacks_database(url):
            raise DatabaseMissing(f"database {name!r} does not exist on {display_url(url)}: create it on the server "
                                  f"(createdb {name}), then its schema with {INIT_HINT}") from None  # fmt: skip
        raise  # the server did not answer: that error says why
    finally:
        probe.dispose()


def _server_lacks_database(url: str) -> bool:
    """Whether the server answers and lists no database of that name. libpq reports a missing database
    as a connection failure without an SQLSTATE, so the server's `postgres` database is asked; if that
    fails too, nothing can be said and the first error stands."""
    parsed = make_url(normalize_url(url))
    probe = create_engine(parsed.set(database="postgres"), poolclass=NullPool)
    try:
        with probe.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            ).first()
        return found is None
    except SQLAlchemyError:
        return False
    finally:
        probe.dispose()


def open_database(url: str, create: bool = False) -> Engine:
    """An engine on an initialised database, its schema upgraded in place to the latest revision
    (upgrading is not creating). With `create` (`entraide init`, the demo, tests), a database without
    the schema gets it, and a missing SQLite file is made; a server database must exist already."""
    path = sqlite_path(url)
    try:
        revision = schema_revision(url)
    except DatabaseMissing:
        if not (create and path is not None):
            raise
        revision = None
    if revision is None and not create:
        raise DatabaseMissing(f"{display_url(url)} has no Entraide schema: create it with {INIT_HINT}")
    if path is not None:
        private_directory(path.parent)
    engine = make_engine(url)
    if revision != head_revision():  # at the head already, alembic would load every script to do nothing
        upgrade(engine)
    return engine


# --- small helpers every adapter's queries share ------------------------------------------------


def first_row(conn, query) -> dict | None:
    """The first row of a query as a dict, or None."""
    row = conn.execute(query).first()
    return None if row is None else row._asdict()


def _dialect_insert(dialect: str, table):
    return (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table)


def dialect_insert(conn, table):
    """An INSERT that knows `ON CONFLICT` (upserts), for the connection's database."""
    return _dialect_insert(conn.dialect.name, table)


@lru_cache(maxsize=256)
def _insert_once_statement(dialect: str, table, columns: tuple[str, ...]):
    params: dict[str, BindParameter[Any]] = {column: bindparam(f"v_{column}") for column in columns}
    return _dialect_insert(dialect, table).values(params).on_conflict_do_nothing().returning(*table.primary_key.columns)


def insert_once(conn, table, **values) -> bool:
    """Insert a row unless its key exists (False then). The unique index decides, so of two racing
    writers exactly one succeeds, and the caller's transaction stays usable either way. The
    statement is built once per table and set of columns (a nonce is claimed per signed request)."""
    statement = _insert_once_statement(conn.dialect.name, table, tuple(values))
    return conn.execute(statement, {f"v_{k}": v for k, v in values.items()}).first() is not None


def text_array(values: Iterable[str | int | bool]) -> str:
    """A PostgreSQL array literal (`{"a","b"}`, `{1,2}`, `{t,f}`) for a parameter cast to an array type.

    psycopg adapts a Python list element by element in Python; one string is sent as it is, and
    PostgreSQL parses it in C, about four times faster for the thousands of keys of one batch.
    The values are all strings (quoted, and escaped where needed), all integers, or all booleans;
    no NULLs.
    """
    items = list(values)
    if not items:
        return "{}"
    first = items[0]
    if isinstance(first, bool):
        return "{" + ",".join("t" if v else "f" for v in items) + "}"
    if isinstance(first, int):
        return "{" + ",".join(map(str, items)) + "}"
    texts = cast("list[str]", items)  # the first is a string, so all are (see above)
    plain = "".join(texts)
    if '"' in plain or "\\" in plain:
        texts = [v.replace("\\", "\\\\").replace('"', '\\"') for v in texts]
    return '{"' + '","'.join(texts) + '"}'
