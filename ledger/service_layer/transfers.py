"""Appending transfers: one database transaction per batch (group commit).

A batch is a list of linked groups. Inside one transaction the service locks the chains it
touches, expires due holds, loads the balances and holds the batch needs, lets the domain plan
every group (each group all-or-nothing), seals the new entries with the Rust core (hash chain and
batch signatures), and writes journal, projections and heads. Either the whole transaction commits
or nothing of it exists; a caller is told a transfer happened only after the commit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from sqlalchemy import Connection, Engine

from ledger import core
from ledger.adapters import journal
from ledger.domain.accounts import Balance, check_ledger_name
from ledger.domain.errors import IdempotencyConflict, InvalidRequest, LedgerError, UnknownLedger
from ledger.domain.transfers import (
    MAX_GROUP_SIZE,
    BookView,
    Entry12,
    Hold,
    PlannedEntry,
    TransferRequest,
    check_numbered,
    check_zero_sum,
    plan_expiry,
    plan_group,
)
from ledger.service_layer.keys import Signer, now_us

MAX_BATCH_GROUPS = 10_000
MAX_EXPIRIES_PER_BATCH = 1_000
# On PostgreSQL a batch is sealed and copied into the journal SEAL_SLICE entries at a time while
# the rest of it is planned (see _Sealing).
SEAL_SLICE = 256


class TransferResult(NamedTuple):
    """A committed journal entry, as returned to the caller (and again, identically, on a retry).
    A named tuple: a batch makes one per entry, and a frozen dataclass costs ten times as much."""

    ledger: str
    sequence: int
    transfer_id: str
    kind: str
    phase: str
    debit_account: str
    credit_account: str
    amount: int
    ref: str | None
    group: str | None
    expires_at_us: int | None
    time_us: int
    prev_hash: str
    hash: str
    key_id: str  # the seal: with prev_hash, what a resident's receipt needs to check the entry offline
    signature: str
    replayed: bool = False


@dataclass(frozen=True)
class Outcome:
    """What became of one linked group: its committed transfers, or the error that refused it."""

    transfers: tuple[TransferResult, ...] = ()
    error: LedgerError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _result(row: journal.JournalTuple, replayed: bool) -> TransferResult:
    """From a journal row in `journal.JOURNAL_COLUMNS` order: the Entry16 fields (the sealed entry)."""
    return TransferResult(*row[:16], replayed)


class LedgerService:
    def __init__(self, engine: Engine, signer: Signer, clock: Callable[[], int] = now_us) -> None:
        self.engine = engine
        self.signer = signer
        self.clock = clock

    # --- ledgers and reads ----------------------------------------------------------------------

    def create_ledger(self, name: str) -> bool:
        check_ledger_name(name)
        with self.engine.begin() as conn:
            return journal.create_ledger(conn, name, core.GENESIS_HASH, self.clock())

    def balance(self, ledger: str, account: str) -> Balance:
        with self.engine.begin() as conn:
            return journal.balances(conn, [(ledger, account)]).get((ledger, account), Balance())

    # --- appending ------------------------------------------------------------------------------

    def transfer(self, *requests: TransferRequest) -> tuple[TransferResult, ...]:
        """Commit one linked group or raise its error."""
        (outcome,) = self.submit([list(requests)])
        if outcome.error is not None:
            raise outcome.error
        return outcome.transfers

    def expire_holds(self, ledgers: Sequence[str] | None = None) -> int:
        """Write `expire` entries for every hold past its expiry; returns how many."""
        total = 0
        while True:
            with self.engine.begin() as conn:
                names = list(ledgers) if ledgers is not None else journal.ledger_names(conn)
                expired = self._append(conn, names, [], [])
            total += expired
            if expired < MAX_EXPIRIES_PER_BATCH:
                return total

    def submit(self, groups: Sequence[Sequence[TransferRequest]], conn: Connection | None = None) -> list[Outcome]:
        """Plan and commit a batch of linked groups in one transaction; one Outcome per group.

        With `conn`, the batch joins the caller's transaction instead (which then owns the commit), so
        that records kept beside the journal, such as an award's explanation, commit with it.
        """
        if len(groups) > MAX_BATCH_GROUPS:
            raise InvalidRequest(
                f"at most {MAX_BATCH_GROUPS} groups per batch", reason="too_many", max_items=MAX_BATCH_GROUPS
            )
        outcomes: list[Outcome | None] = [None] * len(groups)
        valid = []
        for index, group in enumerate(groups):
            try:
                if not 1 <= len(group) <= MAX_GROUP_SIZE:
                    raise InvalidRequest(
                        f"a linked group has 1 to {MAX_GROUP_SIZE} transfers",
                        field="transfers",
                        reason="out_of_range",
                        min_value=1,
                        max_value=MAX_GROUP_SIZE,
                    )
                for request in group:
                    request.validate()
                valid.append(index)
            except LedgerError as exc:
                outcomes[index] = Outcome(error=exc)
        if valid:
            names = sorted({r.ledger for i in valid for r in groups[i]})
            with nullcontext(conn) if conn is not None else self.engine.begin() as conn:
                self._append(conn, names, [(i, list(groups[i])) for i in valid], outcomes)
        return outcomes  # type: ignore[return-value]

    def _append(
        self,
        conn: Connection,
        names: list[str],
        groups: list[tuple[int, list[TransferRequest]]],
        outcomes: list[Outcome | None],
    ) -> int:
        """The body of one append transaction; fills `outcomes` and returns the number of expiries."""
        heads = journal.lock_ledgers(conn, names)
        key_id, seed, key_from_us = self.signer.active(conn)
        now = max([self.clock(), key_from_us] + [h.time_us for h in heads.values()])

        due = journal.due_holds(conn, heads.keys(), now, MAX_EXPIRIES_PER_BATCH)
        requests = [r for _, g in groups for r in g]
        existing, view = self._read(conn, requests, due)
        holds_before = set(view.holds)
        balances_before = dict(view.balances)  # the planner replaces balances, never changes them in place

        sealing = _Sealing(conn, heads, now, key_id, seed)
        try:
            placed = self._plan(view, heads, groups, due, existing, now, sealing, outcomes)
            check_zero_sum(balances_before, view.balances, view.changed)
        except BaseException:
            sealing.abandon()
            raise
        rows = sealing.close()
        # The projections go out together; the outcomes are built while the server writes them.
        with journal.pipelined(conn):
            journal.save_balances(conn, {k: view.balances[k] for k in view.changed})
            opened = [h for key, h in view.holds.items() if key not in holds_before]
            journal.save_holds(conn, opened, [key for key in holds_before if key not in view.holds])
            journal.set_heads(conn, heads)
            first_claim: dict[int, int] = {}
            for index, positions in placed.items():
                first_claim.setdefault(positions[0], index)
            for index, positions in placed.items():
                replayed = first_claim.get(positions[0]) != index
                outcomes[index] = Outcome(tuple(_result(rows[p], replayed) for p in positions))
        return len(due)

    def _plan(
        self,
        view: BookView,
        heads: dict[str, journal.Head],
        groups: list[tuple[int, list[TransferRequest]]],
        due: list[Hold],
        existing: dict[tuple[str, str], journal.StoredTransfer],
        now: int,
        sealing: _Sealing,
        outcomes: list[Outcome | None],
    ) -> dict[int, list[int]]:
        """Plan expiries, then every group, handing the entries to `sealing` as they come; fills the
        refused groups' outcomes and returns, per planned group, its positions among the entries."""
        planned = sealing.planned
        sealing.extend([plan_expiry(view, hold) for hold in due])
        placed: dict[int, list[int]] = {}  # group index -> positions in `planned`
        in_batch: dict[tuple[str, str], tuple[str, int, int]] = {}  # transfer -> (request hash, group, position)
        for index, group in groups:
            if any(r.ledger not in heads for r in group):
                missing = next(r.ledger for r in group if r.ledger not in heads)
                outcomes[index] = Outcome(error=UnknownLedger(f"no ledger named {missing!r}", ledger=missing))
                continue
            replay = self._replay(group, existing, in_batch)
            if isinstance(replay, Outcome):
                outcomes[index] = replay
                continue
            if replay is not None:  # a duplicate of a group earlier in this very batch
                placed[index] = replay
                continue
            try:
                entries = plan_group(view, group, now)
            except LedgerError as exc:
                outcomes[index] = Outcome(error=exc)
                continue
            start = len(planned)
            sealing.extend(entries)
            placed[index] = list(range(start, len(planned)))
            for position, request in zip(placed[index], group, strict=True):
                in_batch[(request.ledger, request.transfer_id)] = (request.request_hash, index, position)
        return placed

    @staticmethod
    def _replay(
        group: list[TransferRequest],
        existing: dict[tuple[str, str], journal.StoredTransfer],
        in_batch: dict[tuple[str, str], tuple[str, int, int]],
    ) -> Outcome | list[int] | None:
        """For a retried group: the original Outcome (or its positions in this batch), a conflict, or None."""
        keys = [(r.ledger, r.transfer_id) for r in group]
        stored = [s for s in (existing.get(k) for k in keys) if s is not None]
        earlier = [e for e in (in_batch.get(k) for k in keys) if e is not None]
        if not stored and not earlier:
            return None
        hashes = [r.request_hash for r in group]
        if len(stored) == len(keys) and all(s["request_hash"] == h for s, h in zip(stored, hashes, strict=True)):
            return Outcome(tuple(_result(journal.row_values(s), replayed=True) for s in stored))
        if (
            len(earlier) == len(keys)
            and all(e[0] == h for e, h in zip(earlier, hashes, strict=True))
            and len({e[1] for e in earlier}) == 1
        ):
            return [e[2] for e in earlier]
        key = group[0].idempotency_key
        return Outcome(error=IdempotencyConflict(f"idempotency key {key!r} was used for another request", key=key))

    @staticmethod
    def _read(
        conn: Connection, requests: list[TransferRequest], due: list[Hold]
    ) -> tuple[dict[tuple[str, str], journal.StoredTransfer], BookView]:
        """The stored transfers of the batch's ids (for retries), and the view its planner needs:
        balances, holds, resolutions of closed holds, originals of refunds."""
        # validate() gave every post and void the ref of its hold
        hold_refs = [(r.ledger, r.ref) for r in requests if r.phase in ("post", "void") and r.ref is not None]
        refund_refs = [(r.ledger, r.ref) for r in requests if r.phase == "single" and r.ref is not None]
        accounts = {
            (r.ledger, a)
            for r in requests
            if r.phase in ("single", "pending")
            for a in (r.debit_account, r.credit_account)
        }
        accounts |= {(h.ledger, a) for h in due for a in (h.debit_account, h.credit_account)}
        read = journal.batch_reads(
            conn, [(r.ledger, r.transfer_id) for r in requests], hold_refs, refund_refs, accounts
        )
        holds = read.holds | {(h.ledger, h.transfer_id): h for h in due}
        # The accounts of the holds a post or void names were not known before they were read.
        more = {(h.ledger, a) for h in read.holds.values() for a in (h.debit_account, h.credit_account)} - accounts
        balances = (read.balances | journal.balances(conn, more)) if more else read.balances
        view = BookView(balances=balances, holds=holds, originals=read.originals, resolved=read.resolutions)
        return read.transfers, view


class _Sealing:
    """The batch's journal rows: numbered, hash-chained, signed and written as planning goes.

    On PostgreSQL the batch is sealed every SEAL_SLICE planned entries, each slice continuing the
    chains of the one before, and the rows go at once into one COPY that stays open until planning
    ends: the server ingests them while the rest of the batch is planned (the planner does not
    touch the connection meanwhile). On SQLite, and for the last slice, the entries are sealed and
    written when planning ends.
    """

    def __init__(self, conn: Connection, heads: dict[str, journal.Head], now: int, key_id: str, seed: bytes) -> None:
        self.planned: list[PlannedEntry] = []
        self.rows: list[journal.JournalTuple] = []
        self._seal = partial(_seal, heads=heads, now=now, key_id=key_id, seed=seed)
        self._stream = journal.streams_appends(conn)
        self._conn = conn
        self._copy = ExitStack()
        self._write: Callable[[list[journal.JournalTuple]], None] | None = None

    def extend(self, entries: list[PlannedEntry]) -> None:
        self.planned.extend(entries)
        if self._stream and len(self.planned) - len(self.rows) >= SEAL_SLICE:
            self._seal_rest()

    def close(self) -> list[journal.JournalTuple]:
        """Every row, in planned order, once all are in the journal."""
        self._seal_rest()
        self._copy.close()  # the end of the COPY: the server has every row
        return self.rows

    def abandon(self) -> None:
        """Planning failed: abort the COPY, so that the caller's rollback finds the connection free."""
        self._copy.__exit__(*sys.exc_info())

    def _seal_rest(self) -> None:
        if len(self.planned) == len(self.rows):
            return
        rows = self._seal(self.planned[len(self.rows) :])
        self.rows.extend(rows)
        if self._write is None:
            self._write = self._copy.enter_context(journal.appending(self._conn))
        self._write(rows)


def _seal(
    planned: list[PlannedEntry], heads: dict[str, journal.Head], now: int, key_id: str, seed: bytes
) -> list[journal.JournalTuple]:
    """Number the entries per chain, hash-chain and sign them (one Rust call for every chain of
    the batch, its signing spread over the cores), and build journal rows: tuples in
    `journal.JOURNAL_COLUMNS` order, the Entry12 followed by what sealing adds. `heads` move on to
    the last entry of each chain."""
    next_sequence = {ledger: head.sequence for ledger, head in heads.items()}
    e12: list[Entry12] = []
    for e in planned:
        next_sequence[e.ledger] += 1
        e12.append((e.ledger, next_sequence[e.ledger], e.transfer_id, e.kind, e.phase, e.debit_account,
                    e.credit_account, e.amount, e.ref, e.group, e.expires_at_us, now))  # fmt: skip
    check_numbered(e12, {ledger: head.sequence for ledger, head in heads.items()})
    sealed = core.seal(e12, {ledger: head.hash for ledger, head in heads.items()}, seed)
    rows = [f + (prev_hash, digest, key_id, signature, e.request_hash)
            for e, f, (prev_hash, digest, signature) in zip(planned, e12, sealed, strict=True)]  # fmt: skip
    last = {row[0]: row for row in rows}
    for ledger, row in last.items():
        heads[ledger] = journal.Head(next_sequence[ledger], row[13], now)
    return rows
