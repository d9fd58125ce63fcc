"""Idempotency-Keys of creating requests, kept in the creation's own transaction.

`once` claims the key before the creation runs and stores the result before the transaction
commits, so a key and what it created are written together or not at all: a crash leaves neither,
and the retry runs the creation again. A retry with the same key and the same request gets the
stored result; the same key with a different request is refused (409 `idempotency_conflict`).
Two concurrent first uses of one key: on PostgreSQL the second waits on the first's unique key and
then replays its result; SQLite has one writer at a time, so the second starts after the first.
A request that fails (any error raised by the creation) rolls its claim back with it, so its retry
runs again rather than replaying the failure. Keys are kept a day (`KEEP_SECONDS`): the
`request_keys_prune` job forgets older ones, so the table holds a day of creations, not all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger.adapters.tables import RequestKeyRow
from ledger.domain.errors import IdempotencyConflict

T = TypeVar("T")
KEEP_SECONDS = 86_400  # a key is honoured for a day (as Stripe's are); `forget` drops older ones
_TABLE = RequestKeyRow.__table__


def fingerprint(request: Any) -> str:
    """The SHA-256 of the request's canonical JSON (msgspec encodes struct fields in order, dicts sorted)."""
    return hashlib.sha256(msgspec.json.encode(request, order="sorted")).hexdigest()


def once(conn: Connection, scope: str, key: str, request: Any, result_type: type[T], produce: Callable[[], T],
         now_us: int) -> T:  # fmt: skip
    """`produce()`'s result, run once per (`scope`, `key`) inside `conn`'s transaction.

    `scope` names who creates what (e.g. "brossard:staff:staff-brossard/…:residents.enrol"), so that
    two callers' keys never meet; `request` is what the key must keep meaning.
    """
    digest = fingerprint(request)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    claim = (dialect.insert(_TABLE).values(scope=scope, key=key, fingerprint=digest, result=None, time_us=now_us)
             .on_conflict_do_nothing(index_elements=["scope", "key"]).returning(_TABLE.c.key))  # fmt: skip
    if conn.execute(claim).first() is not None:
        result = produce()
        stored = msgspec.json.encode(result)
        conn.execute(update(_TABLE).where(_TABLE.c.scope == scope, _TABLE.c.key == key).values(result=stored))
        return result
    row = conn.execute(
        select(_TABLE.c.fingerprint, _TABLE.c.result).where(_TABLE.c.scope == scope, _TABLE.c.key == key)
    ).one()
    if row.fingerprint != digest:
        raise IdempotencyConflict("this Idempotency-Key was used for a different request", key=key)
    if row.result is None:  # only a transaction that claimed it and has not finished: not possible after the wait
        raise IdempotencyConflict("a request with this Idempotency-Key is still running", key=key)
    return msgspec.json.decode(row.result, type=result_type)


def forget(conn: Connection, before_us: int) -> int:
    """Drop the keys claimed before `before_us`; how many were dropped."""
    return conn.execute(delete(_TABLE).where(_TABLE.c.time_us < before_us)).rowcount
