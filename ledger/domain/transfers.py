"""Transfers: what a caller asks for, and the pure rules that turn requests into journal entries.

The planner works on an in-memory view of the accounts, open holds and originals that the service
layer loaded inside the locked database transaction. It never does I/O; it either returns the
entries to append (without hashes or signatures, which the core adds) or raises a LedgerError, in
which case the group it was planning leaves no trace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Literal, NamedTuple

from ledger.domain.accounts import (
    PROGRAM_BUDGET,
    Balance,
    check_account_name,
    check_ledger_name,
    interop,
    is_non_negative,
)
from ledger.domain.errors import (
    BudgetExceeded,
    ExceedsOriginal,
    HoldExpired,
    HoldNotOpen,
    InsufficientFunds,
    InvalidRequest,
    InvariantViolation,
    LedgerError,
    NotRefundable,
    UnknownTransfer,
)

MAX_AMOUNT_POINTS = 2**53 - 1
MAX_HOLD_SECONDS = 30 * 24 * 3600
MAX_GROUP_SIZE = 16
MAX_KEY_LENGTH = 128
KIND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
# What a refund (a `single` with a `ref`) may reverse: a merchant's own sales, a captured redemption
# and an award it funded. Never what the program wrote itself (settlement, expiry, budget funding)
# nor a municipal service: a settlement reversed puts points back where the next close pays them
# again. The verifier checks the same list (ledger_core_rs/src/verify.rs, ledger/oracle.py).
REFUNDABLE_KINDS = frozenset({"redeem", "earn_purchase"})


@lru_cache(maxsize=1024)  # a program uses a handful of kinds
def _valid_kind(kind: str) -> bool:
    return 1 <= len(kind) <= 32 and set(kind) <= KIND_CHARS and kind[0].isalpha()


Phase = Literal["single", "pending", "post", "void"]
# A journal entry as the Rust core seals it (ledger/_core.pyi, docs/ledger-format.md): ledger,
# sequence, transfer_id, kind, phase, debit_account, credit_account, amount, ref, group,
# expires_at_us, time_us.
Entry12 = tuple[str, int, str, str, str, str, str, int, str | None, str | None, int | None, int]
REQUEST_PHASES = ("single", "pending", "post", "void")


def transfer_id_for(ledger: str, idempotency_key: str) -> str:
    """Transfer ids derive from the idempotency key, so a retry names the same transfer."""
    return hashlib.sha256(f"{ledger}\x00{idempotency_key}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TransferRequest:
    """One transfer a caller asks for.

    - single: move `amount_points` from debit to credit now. With `ref`, it compensates (refunds or
      corrects) the transfer `ref`: accounts reversed, never more than what is left of the original.
    - pending: reserve `amount_points` until `timeout_seconds` from now.
    - post: settle the hold `ref`, in full (`amount_points` None) or in part, the rest released.
    - void: release the hold `ref`.
    For post and void the accounts are those of the hold and may be left empty.
    """

    ledger: str
    idempotency_key: str
    kind: str
    phase: Phase = "single"
    debit_account: str = ""
    credit_account: str = ""
    amount_points: int | None = None
    ref: str | None = None
    timeout_seconds: int | None = None

    @cached_property
    def transfer_id(self) -> str:
        return transfer_id_for(self.ledger, self.idempotency_key)

    @cached_property
    def request_hash(self) -> str:
        """Fingerprint of the body: the same key with another body is a conflict."""
        body = (self.ledger, self.kind, self.phase, self.debit_account, self.credit_account, self.amount_points,
                self.ref, self.timeout_seconds)  # fmt: skip
        return hashlib.sha256(repr(body).encode()).hexdigest()

    def validate(self) -> None:
        """Shape checks that need no state. Raises InvalidRequest."""
        check_ledger_name(self.ledger)
        if not isinstance(self.idempotency_key, str) or not 1 <= len(self.idempotency_key) <= MAX_KEY_LENGTH:
            raise InvalidRequest(
                "an idempotency key of 1 to 128 characters is required",
                field="idempotency_key",
                reason="length",
                min_chars=1,
                max_chars=MAX_KEY_LENGTH,
            )
        if not isinstance(self.kind, str) or not _valid_kind(self.kind):
            raise InvalidRequest(f"invalid kind {self.kind!r}", field="kind", reason="invalid_value")
        if self.phase not in REQUEST_PHASES:
            raise InvalidRequest(
                f"invalid phase {self.phase!r}", field="phase", reason="not_one_of", allowed=", ".join(REQUEST_PHASES)
            )
        amount = self.amount_points
        if amount is not None and (type(amount) is not int or not 1 <= amount <= MAX_AMOUNT_POINTS):
            raise InvalidRequest(
                "amount_points must be a positive integer",
                field="amount_points",
                reason="out_of_range",
                min_value=1,
                max_value=MAX_AMOUNT_POINTS,
            )
        if self.phase in ("post", "void"):
            if not self.ref:
                raise InvalidRequest(
                    f"a {self.phase} needs the hold's transfer id in ref", field="ref", reason="required"
                )
            return
        if amount is None:
            raise InvalidRequest("amount_points is required", field="amount_points", reason="required")
        check_account_name(self.debit_account)
        check_account_name(self.credit_account)
        if self.debit_account == self.credit_account:
            raise InvalidRequest(
                "debit and credit accounts must differ",
                field="credit_account",
                reason="must_differ",
                other_field="debit_account",
            )
        timeout = self.timeout_seconds
        if self.phase == "pending":
            if type(timeout) is not int or not 1 <= timeout <= MAX_HOLD_SECONDS:
                raise InvalidRequest(
                    "a hold needs timeout_seconds between 1 and 30 days",
                    field="timeout_seconds",
                    reason="out_of_range",
                    min_value=1,
                    max_value=MAX_HOLD_SECONDS,
                )
        elif timeout is not None:
            raise InvalidRequest("timeout_seconds applies to holds only", field="timeout_seconds", reason="holds_only")


def linked_transfers(key: str, kind: str, phase: Phase, debit_ledger: str, debit_account: str, credit_ledger: str,
                     credit_account: str, points: int | None, timeout_seconds: int | None = None) -> list[TransferRequest]:  # fmt: skip
    """One transfer from an account of `debit_ledger` to one of `credit_ledger`: a single request
    when the ledgers are the same, else a linked group of two through the interop accounts
    (debit → interop:<credit ledger> at home, interop:<debit ledger> → credit there), committed all
    or nothing. Both halves share the idempotency key; each ledger derives its own transfer id."""
    if debit_ledger == credit_ledger:
        return [
            TransferRequest(
                debit_ledger, key, kind, phase, debit_account, credit_account, points, None, timeout_seconds
            )
        ]
    return [
        TransferRequest(debit_ledger, key, kind, phase, debit_account, interop(credit_ledger), points, None, timeout_seconds),
        TransferRequest(credit_ledger, key, kind, phase, interop(debit_ledger), credit_account, points, None, timeout_seconds),
    ]  # fmt: skip


@dataclass
class Hold:
    """An open pending transfer (the `holds` projection)."""

    ledger: str
    transfer_id: str
    kind: str
    debit_account: str
    credit_account: str
    amount: int
    expires_at_us: int


@dataclass
class Original:
    """A posted transfer that a refund or correction may compensate, with what is left of it."""

    kind: str
    debit_account: str
    credit_account: str
    remaining: int


def check_refundable(kind: str, transfer_id: str) -> None:
    """Raise NotRefundable unless a transfer of `kind` is one a refund may reverse."""
    if kind not in REFUNDABLE_KINDS:
        raise NotRefundable(f"transfer {transfer_id} of kind {kind} cannot be refunded", ref=transfer_id, kind=kind)


class PlannedEntry(NamedTuple):
    """A journal entry before sealing: Entry12 of docs/ledger-format.md without the sequence and
    the time (a named tuple: a batch plans one per entry)."""

    ledger: str
    transfer_id: str
    kind: str
    phase: str
    debit_account: str
    credit_account: str
    amount: int
    ref: str | None
    group: str | None
    expires_at_us: int | None
    request_hash: str | None


@dataclass
class BookView:
    """What the planner knows: balances, open holds, originals and resolved holds it may touch."""

    balances: dict[tuple[str, str], Balance] = field(default_factory=dict)
    holds: dict[tuple[str, str], Hold] = field(default_factory=dict)
    originals: dict[tuple[str, str], Original] = field(default_factory=dict)
    resolved: dict[tuple[str, str], str] = field(default_factory=dict)  # hold -> phase that closed it
    changed: set[tuple[str, str]] = field(default_factory=set)  # balances to write back


class _Overlay:
    """Changes of one linked group, applied to the view only when the whole group succeeds."""

    def __init__(self, view: BookView) -> None:
        self.view = view
        self.balances: dict[tuple[str, str], Balance] = {}
        self.holds_opened: dict[tuple[str, str], Hold] = {}
        self.holds_closed: dict[tuple[str, str], str] = {}
        self.originals: dict[tuple[str, str], Original] = {}

    def balance(self, ledger: str, account: str) -> Balance:
        key = (ledger, account)
        if key not in self.balances:
            stored = self.view.balances.get(key)
            self.balances[key] = stored.copy() if stored is not None else Balance()
        return self.balances[key]

    def hold(self, ledger: str, transfer_id: str) -> Hold | None:
        key = (ledger, transfer_id)
        if key in self.holds_closed:
            return None
        return self.holds_opened.get(key) or self.view.holds.get(key)

    def original(self, ledger: str, transfer_id: str) -> Original | None:
        key = (ledger, transfer_id)
        return self.originals.get(key) or self.view.originals.get(key)

    def commit(self) -> None:
        self.view.balances.update(self.balances)
        self.view.changed.update(self.balances)
        self.view.holds.update(self.holds_opened)
        for key in self.holds_closed:
            self.view.holds.pop(key, None)
        self.view.resolved.update(self.holds_closed)
        self.view.originals.update(self.originals)


def _debit(overlay: _Overlay, ledger: str, account: str, amount: int, pending: bool) -> None:
    balance = overlay.balance(ledger, account)
    if is_non_negative(account) and balance.available < amount:
        error = BudgetExceeded if account == PROGRAM_BUDGET else InsufficientFunds
        raise error(f"{account} has {balance.available} points available, {amount} needed", account=account,
                    available_points=balance.available, requested_points=amount)  # fmt: skip
    if pending:
        balance.debits_pending += amount
    else:
        balance.debits_posted += amount


def _credit(overlay: _Overlay, ledger: str, account: str, amount: int, pending: bool) -> None:
    balance = overlay.balance(ledger, account)
    if pending:
        balance.credits_pending += amount
    else:
        balance.credits_posted += amount


def _release(overlay: _Overlay, hold: Hold, phase: str) -> None:
    overlay.balance(hold.ledger, hold.debit_account).debits_pending -= hold.amount
    overlay.balance(hold.ledger, hold.credit_account).credits_pending -= hold.amount
    overlay.holds_closed[(hold.ledger, hold.transfer_id)] = phase


def _open_hold(overlay: _Overlay, request: TransferRequest, now_us: int) -> Hold:
    assert request.ref is not None, "validate() requires a post or void to name its hold"
    hold = overlay.hold(request.ledger, request.ref)
    if hold is None:
        closed_by = overlay.view.resolved.get((request.ledger, request.ref))
        if closed_by == "expire":
            raise HoldExpired(f"hold {request.ref} expired", ref=request.ref)
        if closed_by is not None:
            raise HoldNotOpen(f"hold {request.ref} was already {closed_by}ed", ref=request.ref)
        raise UnknownTransfer(f"no hold {request.ref} in ledger {request.ledger}", ref=request.ref)
    if now_us >= hold.expires_at_us:
        raise HoldExpired(f"hold {request.ref} expired", ref=request.ref)
    return hold


def plan_one(overlay: _Overlay, request: TransferRequest, group: str | None, now_us: int) -> PlannedEntry:
    """Validate one request against the overlay, apply it there, and return its entry."""
    ledger, phase = request.ledger, request.phase
    debit, credit, amount, expires_at_us = request.debit_account, request.credit_account, request.amount_points, None
    if phase in ("post", "void"):
        hold = _open_hold(overlay, request, now_us)
        if request.kind != hold.kind:  # a posted hold keeps its purpose: what a refund may reverse depends on it
            raise InvalidRequest(
                f"a {phase} of a {hold.kind} hold has kind {hold.kind}, not {request.kind}",
                field="kind",
                reason="must_match_hold",
                expected=hold.kind,
            )
        debit, credit = hold.debit_account, hold.credit_account
        if phase == "void" or amount is None:
            amount = hold.amount
        elif amount > hold.amount:
            raise ExceedsOriginal(f"cannot post {amount} points of a {hold.amount}-point hold", ref=request.ref)
        _release(overlay, hold, phase)
        if phase == "post":
            _debit(overlay, ledger, debit, amount, pending=False)
            _credit(overlay, ledger, credit, amount, pending=False)
            overlay.originals[(ledger, request.transfer_id)] = Original(request.kind, debit, credit, amount)
    else:
        assert amount is not None, "validate() requires the amount of a single or pending transfer"
        if request.ref is not None:
            original = overlay.original(ledger, request.ref)
            if original is None:
                raise UnknownTransfer(f"no posted transfer {request.ref} to compensate", ref=request.ref)
            check_refundable(original.kind, request.ref)
            if (debit, credit) != (original.credit_account, original.debit_account):
                raise InvalidRequest(
                    "a refund or correction reverses the original's accounts",
                    field="debit_account",
                    reason="refund_reverses_original",
                )
            if amount > original.remaining:
                raise ExceedsOriginal(
                    f"only {original.remaining} points of {request.ref} remain to refund", ref=request.ref
                )
            overlay.originals[(ledger, request.ref)] = Original(original.kind, original.debit_account, original.credit_account,
                                                                original.remaining - amount)  # fmt: skip
        pending = phase == "pending"
        _debit(overlay, ledger, debit, amount, pending)
        _credit(overlay, ledger, credit, amount, pending)
        if pending:
            assert request.timeout_seconds is not None, "validate() requires the timeout of a hold"
            expires_at_us = now_us + request.timeout_seconds * 1_000_000
            key = (ledger, request.transfer_id)
            overlay.holds_opened[key] = Hold(
                ledger, request.transfer_id, request.kind, debit, credit, amount, expires_at_us
            )
        elif request.ref is None:
            overlay.originals[(ledger, request.transfer_id)] = Original(request.kind, debit, credit, amount)
    return PlannedEntry(ledger, request.transfer_id, request.kind, phase, debit, credit, amount, request.ref,
                        group, expires_at_us, request.request_hash)  # fmt: skip


def group_id_for(requests: list[TransferRequest]) -> str | None:
    if len(requests) == 1:
        return None
    joined = "\x00".join(f"{r.ledger}/{r.transfer_id}" for r in requests)
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


def plan_group(view: BookView, requests: list[TransferRequest], now_us: int) -> list[PlannedEntry]:
    """All entries of a linked group, or a LedgerError and no change to the view."""
    if not 1 <= len(requests) <= MAX_GROUP_SIZE:
        raise InvalidRequest(
            f"a linked group has 1 to {MAX_GROUP_SIZE} transfers",
            field="transfers",
            reason="out_of_range",
            min_value=1,
            max_value=MAX_GROUP_SIZE,
        )
    group = group_id_for(requests)
    overlay = _Overlay(view)
    entries = []
    for index, request in enumerate(requests):
        try:
            entries.append(plan_one(overlay, request, group, now_us))
        except LedgerError as exc:
            exc.context["failed_index"] = index
            raise
    overlay.commit()
    return entries


def plan_expiry(view: BookView, hold: Hold) -> PlannedEntry:
    """Release a hold past its expiry; the entry keeps the hold's kind and names it in ref."""
    overlay = _Overlay(view)
    _release(overlay, hold, "expire")
    overlay.commit()
    return PlannedEntry(hold.ledger, transfer_id_for(hold.ledger, f"expire:{hold.transfer_id}"), hold.kind,
                        "expire", hold.debit_account, hold.credit_account, hold.amount, hold.transfer_id,
                        None, None, None)  # fmt: skip


# --- invariants the append path asserts on every batch (cheap: one pass over entries or accounts) ----


def check_numbered(entries: Sequence[Entry12], sequences: dict[str, int]) -> None:
    """Entry12 tuples about to be sealed, against each chain's sequence before them: every sequence
    is the previous one plus one, every amount a positive integer within the format's bound, and
    the two accounts differ. Raises InvariantViolation."""
    last = dict(sequences)
    for ledger, sequence, transfer_id, _, _, debit, credit, amount, *_ in entries:
        if sequence != last[ledger] + 1:
            raise InvariantViolation(f"{ledger}: sequence {sequence} after {last[ledger]}")
        last[ledger] = sequence
        if type(amount) is not int or not 1 <= amount <= MAX_AMOUNT_POINTS:
            raise InvariantViolation(f"{ledger}: transfer {transfer_id} moves {amount!r} points")
        if debit == credit:
            raise InvariantViolation(f"{ledger}: transfer {transfer_id} debits and credits {debit}")


def check_zero_sum(before: dict[tuple[str, str], Balance], after: dict[tuple[str, str], Balance],
                   changed: set[tuple[str, str]]) -> None:  # fmt: skip
    """Double entry: whatever a batch planned, each ledger's posted and pending balances moved by a
    total of zero. `before` is a shallow copy of the view's balances taken before planning (the
    planner replaces a Balance, never changes one in place), `after` and `changed` the view's after
    it; an account the batch opened started at zero. One pass over the changed accounts only.
    Raises InvariantViolation."""
    zero = Balance()
    moved: dict[str, list[int]] = {}
    for key in changed:
        old, new = before.get(key, zero), after[key]
        sums = moved.setdefault(key[0], [0, 0])
        sums[0] += new.posted - old.posted
        sums[1] += new.pending - old.pending
    for ledger, (posted, pending) in moved.items():
        if posted or pending:
            raise InvariantViolation(
                f"{ledger}: a batch moved the posted balances by {posted}, the pending by {pending}"
            )
