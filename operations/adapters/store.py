"""Every query on the `jobs` table (schema 0005), inside a caller's transaction.

A claim is a compare-and-set on the job's row: one UPDATE whose WHERE holds the condition (due, and
no live lease). PostgreSQL locks the row and re-checks the condition against the committed value;
SQLite has one writer at a time (BEGIN IMMEDIATE); of any number of runners, in any number of
processes, exactly one gets the row.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from ledger.adapters.database import insert_once
from ledger.adapters.tables import JobRow

J = JobRow.__table__
MAX_ERROR_CHARS = 500  # the column's width


def register(conn: Connection, name: str, now_us: int, interval_us: int) -> None:
    """Add the job, due now, unless it is known; a schedule shortened since brings its next run
    forward to at most one interval from now."""
    insert_once(conn, J, name=name, lease_owner=None, lease_until_us=0, next_run_us=now_us, runs=0, failures=0)
    conn.execute(update(J).where(J.c.name == name, J.c.next_run_us > now_us + interval_us)
                 .values(next_run_us=now_us + interval_us))  # fmt: skip


def claim(conn: Connection, name: str, owner: str, now_us: int, lease_until_us: int, due_only: bool) -> int | None:
    """Take the job's lease if it is free (and, with `due_only`, if the job is due); returns its
    failures in a row, or None when someone else holds it or it is not due."""
    free = [J.c.name == name, J.c.lease_until_us <= now_us] + ([J.c.next_run_us <= now_us] if due_only else [])
    claimed = conn.execute(update(J).where(*free).values(lease_owner=owner, lease_until_us=lease_until_us,
                                                         last_started_us=now_us).returning(J.c.failures))  # fmt: skip
    row = claimed.first()
    return None if row is None else row[0]


def finish(conn: Connection, name: str, owner: str, now_us: int, next_run_us: int, result_json: str | None,
           error: str | None) -> bool:  # fmt: skip
    """Record a run and free the lease; False if the lease is no longer `owner`'s (it expired and
    another runner took the job over, whose record then stands)."""
    failures = 0 if error is None else J.c.failures + 1
    done = conn.execute(update(J).where(J.c.name == name, J.c.lease_owner == owner).values(
        lease_owner=None, lease_until_us=now_us, next_run_us=next_run_us, last_finished_us=now_us,
        last_result=result_json, last_error=None if error is None else error[:MAX_ERROR_CHARS], runs=J.c.runs + 1,
        failures=failures))  # fmt: skip
    return done.rowcount == 1


def rows(conn: Connection, names: list[str]) -> dict[str, dict]:
    return {r["name"]: dict(r) for r in conn.execute(select(J).where(J.c.name.in_(names))).mappings()}
