"""Reading and writing the journal and its projections, inside a caller's transaction.

Every function takes an open SQLAlchemy Connection; the service layer owns the transaction, so one
batch of transfers is appended, projected and committed all at once or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import (
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import Cast

from ledger.adapters.database import dialect_insert, text_array
from ledger.adapters.tables import AccountRow, CheckpointRow, HoldRow, JournalRow, LedgerRow, SigningKeyRow
from ledger.domain.accounts import INTEROP_PREFIX, WALLET_PREFIX, Balance, is_non_negative, is_wallet
from ledger.domain.transfers import Hold, Original

IN_CHUNK = 2_000  # bound on the ids of one IN (...) clause (SQLite allows 32,766 parameters)
ARRAY_CHUNK = 20_000  # bound on the pairs of one PostgreSQL array lookup

J = JournalRow.__table__
A = AccountRow.__table__
H = HoldRow.__table__
L = LedgerRow.__table__
K = SigningKeyRow.__table__
C = CheckpointRow.__table__

ENTRY_COLUMNS = (
    J.c.ledger,
    J.c.sequence,
    J.c.transfer_id,
    J.c.kind,
    J.c.phase,
    J.c.debit_account,
    J.c.credit_account,
    J.c.amount,
    J.c.ref,
    J.c.group_id,
    J.c.expires_at_us,
    J.c.time_us,
    J.c.prev_hash,
    J.c.hash,
    J.c.key_id,
    J.c.signature,
)  # fmt: skip  (the Entry16 layout of docs/ledger-format.md)


@dataclass
class Head:
    sequence: int
    hash: str
    time_us: int


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _by_ledger(pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """(ledger, chunk of ids): `ledger = ? AND id IN (...)` uses the primary or unique index on both
    databases, where SQLite would scan the whole table for a row-value `(ledger, id) IN (...)`."""
    grouped: dict[str, set[str]] = {}
    for ledger, key in pairs:
        grouped.setdefault(ledger, set()).add(key)
    for ledger, keys in sorted(grouped.items()):
        for chunk in _chunks(sorted(keys), IN_CHUNK):
            yield ledger, chunk


def create_ledger(conn: Connection, name: str, genesis_hash: str, now_us: int) -> bool:
    """Create the ledger if it does not exist; True if it was created."""
    if conn.execute(select(L.c.name).where(L.c.name == name)).first():
        return False
    conn.execute(
        insert(L).values(name=name, head_sequence=0, head_hash=genesis_hash, head_time_us=0, created_at_us=now_us)
    )
    return True


def ledger_names(conn: Connection) -> list[str]:
    return list(conn.scalars(select(L.c.name).order_by(L.c.name)))


def heads(conn: Connection) -> dict[str, Head]:
    rows = conn.execute(select(L.c.name, L.c.head_sequence, L.c.head_hash, L.c.head_time_us))
    return {r.name: Head(r.head_sequence, r.head_hash, r.head_time_us) for r in rows}


def lock_ledgers(conn: Connection, names: Iterable[str]) -> dict[str, Head]:
    """Lock the ledgers' head rows, in name order so that two writers never deadlock.

    On PostgreSQL this is a row lock per chain, so cities append in parallel. SQLite has already
    taken its single write lock at BEGIN IMMEDIATE.
    """
    rows = conn.execute(_LOCK_LEDGERS, {"names": sorted(names)})
    return {name: Head(sequence, head_hash, time_us) for name, sequence, head_hash, time_us in rows}


# The statements every append runs are built once (see PairLookup).
_LOCK_LEDGERS = (
    select(L.c.name, L.c.head_sequence, L.c.head_hash, L.c.head_time_us)
    .where(L.c.name.in_(bindparam("names", expanding=True)))
    .order_by(L.c.name)
    .with_for_update()
)


_SET_HEAD = (
    update(L)
    .where(L.c.name == bindparam("b_name"))
    .values(head_sequence=bindparam("b_sequence"), head_hash=bindparam("b_hash"), head_time_us=bindparam("b_time_us"))
)


def set_heads(conn: Connection, new_heads: dict[str, Head]) -> None:
    """One executemany (pipelined on PostgreSQL: one round trip) for every chain of the batch."""
    if new_heads:
        rows = [{"b_name": name, "b_sequence": h.sequence, "b_hash": h.hash, "b_time_us": h.time_us}
                for name, h in new_heads.items()]  # fmt: skip
        if conn.dialect.name == "postgresql":
            _driver(conn).cursor().executemany(_driver_sql(_SET_HEAD, conn.dialect)[0], rows)
        else:
            conn.execute(_SET_HEAD, rows)


def _driver(conn: Connection):
    """The driver's connection under `conn` (the same transaction). A statement run on it skips
    SQLAlchemy's execution layer, and inside `pipelined` is only queued."""
    return conn.connection.driver_connection


@cache
def _driver_sql(statement, dialect) -> tuple[str, dict]:
    """A constant statement in the driver's parameter style, with the values it binds itself (such
    as a phase). Those must be plain comparisons: an IN of a list is expanded at execution time,
    which the driver cannot do."""
    compiled = statement.compile(dialect=dialect)
    assert "POSTCOMPILE" not in str(compiled), "a constant condition must be a comparison, not IN (list)"
    return str(compiled), {name: value for name, value in compiled.params.items() if value is not None}


def _send(conn: Connection, statement, params: dict):
    """Run a constant statement on the driver: its cursor (rows as named tuples), executed, or
    inside `pipelined` only queued."""
    sql, constants = _driver_sql(statement, conn.dialect)
    return _driver(conn).cursor(row_factory=namedtuple_row).execute(sql, constants | params)


class PairLookup:
    """One query over many (ledger, id) pairs, built once in both shapes and reused.

    - PostgreSQL: one statement per batch, the pairs travelling as two text arrays that the server
      unnests and joins (one round trip, parameters sent as single strings: see `text_array`). It
      runs on a cursor of the driver, the same transaction as `conn`, so that inside `pipelined`
      it is only queued and several lookups share one round trip.
    - SQLite: `ledger = ? AND id IN (...)` per ledger chunk, which uses the primary or unique index,
      where SQLite would scan the whole table for a row-value `(ledger, id) IN (...)`.

    The statements are module constants: building a SQLAlchemy select and its cache key costs more
    than running it for the one-pair lookups of a POS request.
    """

    def __init__(self, build, ledger_col, id_col) -> None:
        def cast_array(name: str) -> Cast[Any]:
            return cast(bindparam(name, type_=String), ARRAY(String))

        keys = select(
            func.unnest(cast_array("pair_ledgers")).label("l"), func.unnest(cast_array("pair_ids")).label("i")
        ).subquery()
        self.postgresql = build(tuple_(ledger_col, id_col).in_(select(keys.c.l, keys.c.i)))
        self.sqlite = build(
            and_(ledger_col == bindparam("pair_ledger"), id_col.in_(bindparam("pair_ids", expanding=True)))
        )

    def run(self, conn: Connection, pairs: Iterable[tuple[str, str]]) -> list:
        """Execute (or, in a pipeline, queue) for every pair: one cursor or result per statement,
        none for no pairs. `fetch` reads and closes them."""
        if conn.dialect.name == "postgresql":
            return [_send(conn, self.postgresql, {"pair_ledgers": text_array(p[0] for p in chunk),
                                                  "pair_ids": text_array(p[1] for p in chunk)})
                    for chunk in _chunks(sorted(set(pairs)), ARRAY_CHUNK)]  # fmt: skip
        return [conn.execute(self.sqlite, {"pair_ledger": ledger, "pair_ids": chunk})
                for ledger, chunk in _by_ledger(pairs)]  # fmt: skip

    def rows(self, conn: Connection, pairs: Iterable[tuple[str, str]]) -> Iterator:
        return fetch(self.run(conn, pairs))


def fetch(results: list) -> Iterator:
    """The rows of what `PairLookup.run` sent, each result fetched at once (row by row costs a
    driver call per row) and closed."""
    for result in results:
        yield from result.fetchall()
        result.close()


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, the statements run inside on the driver go out together (psycopg's pipeline
    mode): the server runs each while the caller reads the one before or prepares the next, and an
    error arrives at the latest when the block ends. Elsewhere, or with a libpq older than 14,
    nothing changes: each statement runs when it is issued."""
    if conn.dialect.name != "postgresql" or not psycopg.Pipeline.is_supported():
        yield
        return
    with _driver(conn).pipeline():
        yield


_TRANSFERS = PairLookup(
    lambda where: select(*ENTRY_COLUMNS, J.c.request_hash).where(where), J.c.ledger, J.c.transfer_id
)


def transfers(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Journal rows by (ledger, transfer_id), with the request fingerprint."""
    return _transfers(_TRANSFERS.rows(conn, pairs))


# A stored journal row by column name (JOURNAL_COLUMNS): what a retry compares and answers with.
StoredTransfer = dict[str, Any]


def _transfers(rows: Iterable[Any]) -> dict[tuple[str, str], StoredTransfer]:
    return {(row.ledger, row.transfer_id): row._asdict() for row in rows}


_BALANCES = PairLookup(
    lambda where: select(A.c.ledger, A.c.name, A.c.debits_posted, A.c.credits_posted, A.c.debits_pending,
                         A.c.credits_pending).where(where),
    A.c.ledger, A.c.name,
)  # fmt: skip


def balances(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Balance]:
    return _balances(_BALANCES.rows(conn, pairs))


def _balances(rows: Iterable) -> dict[tuple[str, str], Balance]:
    return {(ledger, name): Balance(*counters) for ledger, name, *counters in rows}


def all_balances(conn: Connection, ledger: str) -> dict[str, Balance]:
    query = select(A.c.name, A.c.debits_posted, A.c.credits_posted, A.c.debits_pending, A.c.credits_pending)
    rows = conn.execute(query.where(A.c.ledger == ledger))
    return {r.name: Balance(r.debits_posted, r.credits_posted, r.debits_pending, r.credits_pending) for r in rows}


BALANCE_COUNTERS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")


def _array_params(names: tuple[str, ...], rows: list[tuple]) -> dict[str, str]:
    """Rows (at least one) as one array literal per column: the parameters of an `unnest` insert."""
    return {name: text_array(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}


_UPSERT_BALANCES_FROM_ARRAYS = text(
    "INSERT INTO accounts (ledger, name, non_negative, debits_posted, credits_posted, debits_pending, credits_pending) "
    "SELECT * FROM unnest(CAST(:ledgers AS text[]), CAST(:names AS text[]), CAST(:non_negative AS boolean[]), "
    "CAST(:debits_posted AS bigint[]), CAST(:credits_posted AS bigint[]), CAST(:debits_pending AS bigint[]), "
    "CAST(:credits_pending AS bigint[])) "
    "ON CONFLICT (ledger, name) DO UPDATE SET debits_posted = excluded.debits_posted, "
    "credits_posted = excluded.credits_posted, debits_pending = excluded.debits_pending, "
    "credits_pending = excluded.credits_pending"
)


def save_balances(conn: Connection, changed: dict[tuple[str, str], Balance]) -> None:
    """Write changed balances in one upsert instead of one UPDATE each.

    On PostgreSQL the rows travel as seven arrays (one statement, seven parameters, whatever the
    batch size), which costs a third of a multi-row VALUES list; SQLite takes the multi-row upsert.
    """
    if not changed:
        return
    keys = sorted(changed)
    if conn.dialect.name == "postgresql":
        rows = [(ledger, name, is_non_negative(name), *changed[(ledger, name)].as_tuple()) for ledger, name in keys]
        names = ("ledgers", "names", "non_negative", *BALANCE_COUNTERS)  # as_tuple() is in BALANCE_COUNTERS order
        _send(conn, _UPSERT_BALANCES_FROM_ARRAYS, _array_params(names, rows))
        return
    records = [
        {"ledger": ledger, "name": name, "non_negative": is_non_negative(name)}
        | {c: getattr(changed[(ledger, name)], c) for c in BALANCE_COUNTERS}
        for ledger, name in keys
    ]
    stmt = dialect_insert(conn, A)
    conn.execute(stmt.on_conflict_do_update(index_elements=[A.c.ledger, A.c.name],
                                            set_={c: stmt.excluded[c] for c in BALANCE_COUNTERS}), records)  # fmt: skip


def _hold(row) -> Hold:
    return Hold(
        row.ledger, row.transfer_id, row.kind, row.debit_account, row.credit_account, row.amount, row.expires_at_us
    )


_HOLDS = PairLookup(lambda where: select(H).where(where), H.c.ledger, H.c.transfer_id)
_DELETE_HOLDS = PairLookup(lambda where: delete(H).where(where), H.c.ledger, H.c.transfer_id)


def holds(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Hold]:
    return _holds(_HOLDS.rows(conn, pairs))


def _holds(rows: Iterable) -> dict[tuple[str, str], Hold]:
    return {(row.ledger, row.transfer_id): _hold(row) for row in rows}


def due_holds(conn: Connection, ledgers: Iterable[str], now_us: int, limit: int) -> list[Hold]:
    """Open holds past their expiry, oldest first, at most `limit`."""
    rows = conn.execute(_DUE_HOLDS, {"ledgers": sorted(ledgers), "now_us": now_us, "limit": limit})
    return [_hold(r) for r in rows]


_DUE_HOLDS = (
    select(H)
    .where(H.c.ledger.in_(bindparam("ledgers", expanding=True)), H.c.expires_at_us <= bindparam("now_us"))
    .order_by(H.c.expires_at_us, H.c.ledger, H.c.transfer_id)
    .limit(bindparam("limit", type_=Integer))
)


def open_holds(conn: Connection, ledger: str, debit_account: str | None = None) -> dict[str, Hold]:
    """A ledger's open holds (those taking from `debit_account` only, when given)."""
    query = select(H).where(H.c.ledger == ledger)
    if debit_account is not None:
        query = query.where(H.c.debit_account == debit_account)
    return {r.transfer_id: _hold(r) for r in conn.execute(query)}


def hold_entries(conn: Connection, ledger: str, debit_account: str) -> list[dict]:
    """The pending entries of the open holds that take from `debit_account`, newest first."""
    query = (
        select(*ENTRY_COLUMNS)
        .join(H, and_(H.c.ledger == J.c.ledger, H.c.transfer_id == J.c.transfer_id))
        .where(J.c.ledger == ledger, H.c.debit_account == debit_account, J.c.phase == "pending")
    )
    return [r._asdict() for r in conn.execute(query.order_by(J.c.sequence.desc()))]


def open_holds_of(conn: Connection, ledger: str, debit_account: str) -> list[Hold]:
    """The open holds that reserve points of one account (a wallet), soonest to expire first."""
    query = select(H).where(H.c.ledger == ledger, H.c.debit_account == debit_account).order_by(H.c.expires_at_us)
    return [_hold(r) for r in conn.execute(query)]


_INSERT_HOLDS_FROM_ARRAYS = text(
    "INSERT INTO holds (ledger, transfer_id, kind, debit_account, credit_account, amount, expires_at_us) "
    "SELECT * FROM unnest(CAST(:ledgers AS text[]), CAST(:ids AS text[]), CAST(:kinds AS text[]), "
    "CAST(:debits AS text[]), CAST(:credits AS text[]), CAST(:amounts AS bigint[]), CAST(:expiries AS bigint[]))"
)


def save_holds(conn: Connection, opened: list[Hold], closed: list[tuple[str, str]]) -> None:
    """Insert the holds a batch opened and delete those it closed (on PostgreSQL the new rows
    travel as arrays, one statement, as balances do)."""
    if opened and conn.dialect.name == "postgresql":
        rows = [(h.ledger, h.transfer_id, h.kind, h.debit_account, h.credit_account, h.amount, h.expires_at_us)
                for h in opened]  # fmt: skip
        names = ("ledgers", "ids", "kinds", "debits", "credits", "amounts", "expiries")
        _send(conn, _INSERT_HOLDS_FROM_ARRAYS, _array_params(names, rows))
    elif opened:
        conn.execute(insert(H), [vars(h) for h in opened])
    _DELETE_HOLDS.run(conn, closed)


_RESOLUTIONS = PairLookup(
    lambda where: select(J.c.ledger, J.c.ref, J.c.phase).where(where, or_(*(J.c.phase == p for p in ("post", "void", "expire")))),
    J.c.ledger, J.c.ref,
)  # fmt: skip


def resolutions(conn: Connection, holds: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """How closed holds were closed: (ledger, hold id) -> post, void or expire."""
    return _resolutions(_RESOLUTIONS.rows(conn, holds))


def _resolutions(rows: Iterable) -> dict[tuple[str, str], str]:
    return {(r.ledger, r.ref): r.phase for r in rows}


_REFUNDABLE = PairLookup(
    lambda where: select(J.c.ledger, J.c.transfer_id, J.c.kind, J.c.debit_account, J.c.credit_account, J.c.amount)
    .where(where, or_(J.c.phase == "post", and_(J.c.phase == "single", J.c.ref.is_(None)))),
    J.c.ledger, J.c.transfer_id,
)  # fmt: skip
_COMPENSATED = PairLookup(
    lambda where: select(J.c.ledger, J.c.ref, func.sum(J.c.amount).label("total"))
    .where(where, J.c.phase == "single").group_by(J.c.ledger, J.c.ref),
    J.c.ledger, J.c.ref,
)  # fmt: skip


def originals(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Original]:
    """Posted transfers that a refund may name, with their kind (the domain decides which kinds are
    refundable) and what previous compensations left of them."""
    pairs = list(pairs)
    return _originals(_REFUNDABLE.rows(conn, pairs), _COMPENSATED.rows(conn, pairs))


def _originals(refundable: Iterable, compensated: Iterable) -> dict[tuple[str, str], Original]:
    found = {
        (r.ledger, r.transfer_id): Original(r.kind, r.debit_account, r.credit_account, r.amount) for r in refundable
    }
    for r in compensated:
        if (r.ledger, r.ref) in found:
            found[(r.ledger, r.ref)].remaining -= int(r.total)
    return found


class BatchReads(NamedTuple):
    """What an append reads before planning (see `batch_reads`)."""

    transfers: dict[tuple[str, str], StoredTransfer]
    holds: dict[tuple[str, str], Hold]
    resolutions: dict[tuple[str, str], str]
    originals: dict[tuple[str, str], Original]
    balances: dict[tuple[str, str], Balance]


def batch_reads(conn: Connection, transfer_ids: list[tuple[str, str]], hold_refs: list[tuple[str, str]],
                refund_refs: list[tuple[str, str]], accounts: Iterable[tuple[str, str]]) -> BatchReads:  # fmt: skip
    """The stored transfers, open holds, resolutions of closed holds, refundable originals and
    balances a batch needs, by (ledger, id) pairs: six lookups that need nothing from each other,
    sent together (`pipelined`). Resolutions are read for every hold ref and compensations for
    every refund ref; those of open holds and of transfers that are not refundable are empty."""
    with pipelined(conn):
        sent = [lookup.run(conn, pairs) for lookup, pairs in (
            (_BALANCES, accounts), (_TRANSFERS, transfer_ids), (_HOLDS, hold_refs), (_RESOLUTIONS, hold_refs),
            (_REFUNDABLE, refund_refs), (_COMPENSATED, refund_refs))]  # fmt: skip
        balances_ = _balances(fetch(sent[0]))
        transfers_ = _transfers(fetch(sent[1]))
        holds_ = _holds(fetch(sent[2]))
        resolutions_ = _resolutions(fetch(sent[3]))
        return BatchReads(transfers_, holds_, resolutions_, _originals(fetch(sent[4]), fetch(sent[5])), balances_)


JOURNAL_COLUMNS = tuple(c.name for c in J.columns)
assert JOURNAL_COLUMNS[:16] == tuple(c.name for c in ENTRY_COLUMNS) and JOURNAL_COLUMNS[16:] == ("request_hash",)
# A journal row in JOURNAL_COLUMNS order: the Entry12 of the domain, then prev_hash, hash, key_id,
# signature (the Entry16 layout of ledger/_core.pyi) and the request fingerprint.
JournalTuple = tuple[str, int, str, str, str, str, str, int, str | None, str | None, int | None, int,
                     str, str, str, str, str | None]  # fmt: skip
row_values = itemgetter(*JOURNAL_COLUMNS)  # a journal row as a dict -> the tuple `appending` writes


def streams_appends(conn: Connection) -> bool:
    """Whether `appending` ingests rows while the caller prepares the next ones (PostgreSQL's COPY),
    so that sealing a batch in slices pays; elsewhere rows are written when they are handed over."""
    return conn.dialect.name == "postgresql"


@contextmanager
def appending(conn: Connection) -> Iterator[Callable[[list[JournalTuple]], None]]:
    """A writer of journal rows (tuples in JOURNAL_COLUMNS order: the Entry16 layout, then the
    request fingerprint), for the slices of one batch. On PostgreSQL it is one COPY, several times
    faster than a multi-row INSERT, open until the block ends: the server ingests each slice while
    the caller prepares the next, and no other statement may run on the connection meanwhile."""
    if conn.dialect.name != "postgresql":

        def insert_rows(rows: list[JournalTuple]) -> None:
            conn.execute(insert(J), [dict(zip(JOURNAL_COLUMNS, row, strict=True)) for row in rows])

        yield insert_rows
        return
    with _driver(conn).cursor().copy(f"COPY journal ({', '.join(JOURNAL_COLUMNS)}) FROM STDIN") as copy:

        def write(rows: list[JournalTuple]) -> None:
            for row in rows:
                copy.write_row(row)

        yield write


def _streamed(conn: Connection, query, chunk_rows: int = 20_000) -> Iterator[list[tuple]]:
    """Rows in chunks (a server-side cursor on PostgreSQL). The options go on the statement, not the
    connection, where they would stay on for the caller's later statements."""
    result = conn.execute(query.execution_options(stream_results=True, yield_per=chunk_rows))
    for partition in result.partitions(chunk_rows):
        yield [tuple(row) for row in partition]


def stream_entries(conn: Connection, ledger: str | None = None, chunk_rows: int = 20_000) -> Iterator[list[tuple]]:
    """Entry16 tuples ordered by ledger then sequence, in chunks."""
    query = select(*ENTRY_COLUMNS).order_by(J.c.ledger, J.c.sequence)
    if ledger is not None:
        query = query.where(J.c.ledger == ledger)
    return _streamed(conn, query, chunk_rows)


def leaf_hashes(conn: Connection, ledger: str, tree_size: int, after_sequence: int = 0) -> bytes:
    """Raw entry hashes of sequences after_sequence+1..tree_size, concatenated (the Merkle leaves)."""
    query = select(J.c.hash).where(J.c.ledger == ledger, J.c.sequence > after_sequence, J.c.sequence <= tree_size)
    query = query.order_by(J.c.sequence)
    return b"".join(bytes.fromhex(h) for h in conn.scalars(query.execution_options(yield_per=50_000)))


def entry(conn: Connection, ledger: str, sequence: int) -> tuple | None:
    row = conn.execute(select(*ENTRY_COLUMNS).where(J.c.ledger == ledger, J.c.sequence == sequence)).first()
    return None if row is None else tuple(row)


# --- keys and checkpoints -----------------------------------------------------------------------


def signing_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(K).order_by(K.c.valid_from_us, K.c.key_id))
    return [r._asdict() for r in rows]


_ACTIVE_KEY = select(K).where(K.c.valid_until_us.is_(None))


def active_key(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(_ACTIVE_KEY).first()
    return None if row is None else row._asdict()


def add_key(conn: Connection, key_id: str, public_key_hex: str, valid_from_us: int) -> None:
    conn.execute(
        insert(K).values(key_id=key_id, algorithm="ed25519", public_key=public_key_hex, valid_from_us=valid_from_us)
    )


def retire_key(conn: Connection, key_id: str, valid_until_us: int) -> None:
    conn.execute(
        update(K).where(K.c.key_id == key_id, K.c.valid_until_us.is_(None)).values(valid_until_us=valid_until_us)
    )


def add_checkpoint(conn: Connection, ledger: str, tree_size: int, root_hex: str, time_us: int, note: str) -> None:
    conn.execute(insert(C).values(ledger=ledger, tree_size=tree_size, root_hash=root_hex, time_us=time_us, note=note))


# A checkpoints row by column name.
CheckpointRecord = dict[str, Any]


def checkpoint(conn: Connection, ledger: str, tree_size: int | None = None) -> CheckpointRecord | None:
    """The checkpoint of that size, or the latest one."""
    query = select(C).where(C.c.ledger == ledger)
    query = query.where(C.c.tree_size == tree_size) if tree_size is not None else query.order_by(C.c.tree_size.desc())
    row = conn.execute(query.limit(1)).first()
    return None if row is None else row._asdict()


def latest_checkpoints(conn: Connection) -> list[CheckpointRecord]:
    latest = select(C.c.ledger, func.max(C.c.tree_size).label("size")).group_by(C.c.ledger).subquery()
    query = select(C).join(latest, and_(C.c.ledger == latest.c.ledger, C.c.tree_size == latest.c.size))
    return [r._asdict() for r in conn.execute(query.order_by(C.c.ledger))]


# --- reads for wallets and statements -----------------------------------------------------------


def account_entries(conn: Connection, ledger: str, accounts: list[str], *, before_sequence: int | None = None,
                    after_sequence: int | None = None, since_us: int | None = None, until_us: int | None = None,
                    limit: int = 50) -> list[dict]:  # fmt: skip
    """Entries that touch any of `accounts`, newest first: one page of a history or statement.

    Keyset paging on the sequence (pass the last page's smallest one as `before_sequence`, or to go
    back, the page's largest one as `after_sequence`: the `limit` entries just newer) stays fast on any page.
    """
    query = select(*ENTRY_COLUMNS).where(
        J.c.ledger == ledger, or_(J.c.debit_account.in_(accounts), J.c.credit_account.in_(accounts))
    )
    if before_sequence is not None:
        query = query.where(J.c.sequence < before_sequence)
    if after_sequence is not None:
        query = query.where(J.c.sequence > after_sequence)
        rows = [r._asdict() for r in conn.execute(query.order_by(J.c.sequence).limit(limit))]
        return rows[::-1]
    if since_us is not None:
        query = query.where(J.c.time_us >= since_us)
    if until_us is not None:
        query = query.where(J.c.time_us < until_us)
    return [r._asdict() for r in conn.execute(query.order_by(J.c.sequence.desc()).limit(limit))]


PAGE_FIELDS = ("sequence", "transfer_id", "kind", "phase", "debit_account", "credit_account", "amount", "ref",
               "time_us", "hash")  # fmt: skip


def entry_page(rows: list[dict], limit: int) -> dict:
    """A page of `account_entries` as callers see it, with the cursor of the next page (None at the end)."""
    return {"entries": [{k: r[k] for k in PAGE_FIELDS} for r in rows],
            "next_before_sequence": rows[-1]["sequence"] if len(rows) == limit else None}  # fmt: skip


def account_flows(conn: Connection, ledger: str, accounts: list[str], since_us: int, until_us: int,
                  exclude_kinds: tuple[str, ...] = ()) -> list[tuple[str, str, int, int]]:  # fmt: skip
    """(ledger, account, debits, credits) of `accounts` over the posted entries (single, post) of
    [since_us, until_us): what `movements` sums for a period's close, read through the accounts' entries."""
    sums = {account: [0, 0] for account in accounts}
    for side, column in enumerate((J.c.debit_account, J.c.credit_account)):
        query = select(column, func.sum(J.c.amount)).where(
            J.c.ledger == ledger, column.in_(accounts), J.c.phase.in_(("single", "post")), J.c.time_us >= since_us,
            J.c.time_us < until_us, J.c.kind.not_in(exclude_kinds),
        )  # fmt: skip
        for account, points in conn.execute(query.group_by(column)):
            sums[account][side] += int(points)
    return [(ledger, account, debits, credits) for account, (debits, credits) in sums.items()]


def linked_entries(conn: Connection, group_id: str) -> list[dict]:
    """Every entry of one linked group, on every ledger (both halves of a cross-city transfer)."""
    query = select(*ENTRY_COLUMNS).where(J.c.group_id == group_id).order_by(J.c.ledger, J.c.sequence)
    return [r._asdict() for r in conn.execute(query)]


def _in_period(columns: tuple[str, ...], ledger: str, since_us: int, until_us: int, exclude_kinds: tuple[str, ...]):
    query = select(*(J.c[name] for name in columns)).where(
        J.c.ledger == ledger, J.c.time_us >= since_us, J.c.time_us < until_us
    )
    return query.where(J.c.kind.not_in(exclude_kinds)) if exclude_kinds else query


def period_entries(
    conn: Connection, ledger: str, since_us: int, until_us: int, exclude_kinds: tuple[str, ...] = ()
) -> Iterator[list[tuple]]:
    """(ledger, debit, credit, amount, phase, time_us) of a period's entries, in chunks, in journal order."""
    columns = ("ledger", "debit_account", "credit_account", "amount", "phase", "time_us")
    return _streamed(conn, _in_period(columns, ledger, since_us, until_us, exclude_kinds).order_by(J.c.sequence))


def wallet_events(conn: Connection, ledger: str, wallet: str | None = None) -> Iterator[list[tuple[str, int, int]]]:
    """(wallet, time_us, ±points) of every posted wallet movement of a ledger (or of one `wallet`), in journal order."""
    touches = (
        or_(J.c.debit_account.like(f"{WALLET_PREFIX}%"), J.c.credit_account.like(f"{WALLET_PREFIX}%"))
        if wallet is None
        else or_(J.c.debit_account == wallet, J.c.credit_account == wallet)
    )
    query = select(J.c.debit_account, J.c.credit_account, J.c.amount, J.c.time_us).where(
        J.c.ledger == ledger, J.c.phase.in_(("single", "post")), touches
    )
    for chunk in _streamed(conn, query.order_by(J.c.sequence)):
        events = []
        for debit, credit, amount, time_us in chunk:
            if is_wallet(credit):
                events.append((credit, time_us, amount))
            if is_wallet(debit):
                events.append((debit, time_us, -amount))
        yield events


def interop_credits(
    conn: Connection, since_us: int, until_us: int, exclude_kinds: tuple[str, ...]
) -> list[tuple[str, str, int]]:
    """(ledger, interop account, points) of every ledger: the posted credits to each `interop:<city>`
    account in the period, summed (what each city owes the others)."""
    query = (
        select(J.c.ledger, J.c.credit_account, func.sum(J.c.amount).label("points"))
        .where(
            and_(
                J.c.time_us >= since_us,
                J.c.time_us < until_us,
                J.c.credit_account.like(f"{INTEROP_PREFIX}%"),
                J.c.phase.in_(("single", "post")),
                J.c.kind.not_in(exclude_kinds),
            )
        )
        .group_by(J.c.ledger, J.c.credit_account)
    )
    return [(r.ledger, r.credit_account, int(r.points)) for r in conn.execute(query)]


def entry_count(conn: Connection) -> int:
    """Entries in the journal, all ledgers."""
    return conn.scalar(select(func.count()).select_from(J)) or 0


def period_rows(conn: Connection, ledger: str, since_us: int, until_us: int, columns: tuple[str, ...],
                exclude_kinds: tuple[str, ...] = ()) -> list[tuple]:  # fmt: skip
    """Selected columns of a period's posted entries (single and post), for reports."""
    query = _in_period(columns, ledger, since_us, until_us, exclude_kinds).where(J.c.phase.in_(("single", "post")))
    return [tuple(row) for row in conn.execute(query)]
