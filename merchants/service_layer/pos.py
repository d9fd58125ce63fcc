"""The point of sale: terminals, identification, awards, redemption holds, refunds, offline batches, statements.

Every money-moving call carries the terminal's idempotency key, scoped to its merchant
(`pos:<merchant>:<key>`), so a retry names the same ledger transfer and two merchants never collide.
Redemption at a merchant of another city that the resident opted in to is one linked group on both
ledgers (wallet → interop:B at home, interop:A → merchant at B): all or nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, TypeVar

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from sqlalchemy import Connection, Engine

from community.domain.access import identity
from community.domain.errors import Conflict, WrongTenant
from community.domain.program import purchase_award
from community.schemas import MerchantListing, Merchants, TerminalKey, TerminalRegistration
from community.service_layer.awards import AwardRequest, Awards, body_hash
from community.service_layer.organizations import Members
from community.service_layer.programs import Programs
from community.service_layer.residents import CardHolder, Residents
from finance.domain.settlement import SETTLEMENT_KINDS, merchant_lines
from finance.schemas import StatementLine as SettlementLine
from ledger.adapters import idempotency, journal
from ledger.adapters.database import autocommit
from ledger.domain import accounts
from ledger.domain.errors import ExceedsOriginal, InvalidRequest, LedgerError, UnknownTransfer
from ledger.domain.transfers import Phase, TransferRequest, check_refundable, linked_transfers
from ledger.schemas import Receipt
from ledger.service_layer.audit_trail import AuditTrail
from ledger.service_layer.committer import GroupCommitter
from ledger.service_layer.receipts import receipt
from ledger.service_layer.transfers import LedgerService, TransferResult
from merchants.adapters import store
from merchants.adapters.tables import MERCHANTS
from merchants.errors import FloorLimitExceeded, MerchantNotApproved, UnknownMerchant
from merchants.schemas import (
    AwardResult,
    CaptureResult,
    CardKeys,
    HoldResult,
    Identity,
    MerchantTerminal,
    MerchantTerminals,
    OfflineItemResult,
    OfflineResults,
    RefundResult,
    Revocations,
    Statement,
    StatementLine,
    StatementTotals,
    StatementWhat,
    VoidResult,
)

MAX_OFFLINE_ITEMS = 500
# How far an offline sale's `occurred_at_us` may be from the server's clock: at most the signatures'
# clock skew ahead, at most a week behind (a till offline longer sends its sales as a new sale).
OCCURRED_AT_SKEW_US = 30 * 1_000_000
OCCURRED_AT_MAX_AGE_US = 7 * 86_400 * 1_000_000
MAX_STATEMENT_PAGE = 500
SIGNATURE_WINDOW_SECONDS = 300
MAX_TERMINAL_NAME = 100
MAX_TERMINALS = 200  # a merchant's terminals listed at once (a shop has a few; revoked ones stay listed)
R = TypeVar("R")
# A redemption's transfers and how to present their committed results: the caller commits them.
Operation = tuple[list[TransferRequest], Callable[[tuple[TransferResult, ...]], R]]
# How a refused offline item is worded for the caller: (code, params) -> (title, detail). The API
# passes one bound to the request's language, so the service needs to know neither.
Describe = Callable[[LedgerError], tuple[str, str]]


class OfflineItem(Protocol):
    """One item of an offline batch: a redemption (`points`) or a purchase (`purchase_cents`).
    Read-only, so that the API's frozen request struct is one."""

    @property
    def idempotency_key(self) -> str: ...
    @property
    def card(self) -> str: ...
    @property
    def points(self) -> int | None: ...
    @property
    def purchase_cents(self) -> int | None: ...
    @property
    def occurred_at_us(self) -> int | None: ...


@dataclass(frozen=True)
class Terminal:
    key_id: str
    merchant_id: str
    city: str

    @property
    def redeemed(self) -> str:
        return accounts.merchant_redeemed(self.merchant_id)

    @property
    def issued(self) -> str:
        return accounts.merchant_issued(self.merchant_id)

    def key(self, idempotency_key: str) -> str:
        return f"pos:{self.merchant_id}:{idempotency_key}"


def merchants(engine: Engine, audit: AuditTrail, clock: Callable[[], int]) -> Members:
    return Members(engine, MERCHANTS, "merchant", UnknownMerchant, MerchantNotApproved, audit, clock)


def terminal_key_id(public_key: bytes) -> str:
    return "t-" + hashlib.sha256(public_key).hexdigest()[:20]


class Terminals:
    """Terminal public keys, and the check every signed POS request passes before anything else."""

    def __init__(self, engine: Engine, members: Members, audit: AuditTrail, clock: Callable[[], int]) -> None:
        self.engine, self.members, self.audit, self.clock = engine, members, audit, clock
        self.reads = autocommit(engine)  # lookups and the nonce claim of every signed request
        self._claims = 0

    def register(
        self, merchant_id: str, public_key_pem: str, actor: str, city: str, *, key: str
    ) -> TerminalRegistration:
        """Register a terminal's Ed25519 public key for a merchant of the city. A retry with the same
        `key` (per city and actor) returns the first registration."""
        self.members.get(merchant_id, city)
        try:
            loaded = load_pem_public_key(public_key_pem.encode())
        except (ValueError, TypeError, AttributeError):
            loaded = None
        if not isinstance(loaded, Ed25519PublicKey):
            raise InvalidRequest(
                "public_key_pem must be an Ed25519 public key in PEM", field="public_key_pem", reason="invalid_key"
            )
        raw = loaded.public_bytes(Encoding.Raw, PublicFormat.Raw)
        key_id, now = terminal_key_id(raw), self.clock()
        request = {"merchant_id": merchant_id, "key_id": key_id}
        with self.engine.begin() as conn:
            return idempotency.once(conn, f"{city}:{identity(actor)}:terminals.register", key, request, TerminalRegistration,
                                    lambda: self.add(conn, merchant_id, raw, actor, city, now), now)  # fmt: skip

    def add(
        self, conn: Connection, merchant_id: str, raw: bytes, actor: str, city: str, now: int, name: str | None = None
    ) -> TerminalRegistration:
        """Register a raw Ed25519 public key in the caller's transaction, audited as `terminal.register`
        (`register` above, and a device's pairing, merchants/service_layer/pairing.py)."""
        key_id = terminal_key_id(raw)
        if store.terminal(conn, key_id) is not None:
            raise Conflict("this key is already registered", field="public_key_pem", reason="already_exists")
        store.add_terminal(conn, key_id=key_id, merchant_id=merchant_id, public_key=raw, status="active",
                           created_at_us=now, name=name)  # fmt: skip
        self.audit.record(conn, actor=actor, action="terminal.register", city=city, target=key_id, before=None,
                          after={"merchant_id": merchant_id}, now_us=now)  # fmt: skip
        return TerminalRegistration(terminal_key_id=key_id, merchant_id=merchant_id)

    def _own(self, conn: Connection, key_id: str, city: str, merchant_id: str | None) -> dict[str, Any]:
        """The terminal, refused alike if it is of another city or (given `merchant_id`) another merchant."""
        row = store.terminal(conn, key_id)
        if row is None or row["city"] != city or merchant_id not in (None, row["merchant_id"]):
            raise UnknownMerchant("no such terminal in this city")
        return row

    def revoke(self, key_id: str, actor: str, city: str, *, merchant_id: str | None = None) -> None:
        """Revoke a terminal of the city (the city's staff), or of `merchant_id` (its owner): its
        next request is refused."""
        now = self.clock()
        with self.engine.begin() as conn:
            self._own(conn, key_id, city, merchant_id)
            store.revoke_terminal(conn, key_id)
            self.audit.record(conn, actor=actor, action="terminal.revoke", city=city, target=key_id, before=None,
                                  after=None, now_us=now)  # fmt: skip

    def rename(self, key_id: str, name: str | None, actor: str, city: str, *, merchant_id: str) -> None:
        """Name one of the merchant's terminals ("Till 1"; None: no name), audited `terminal.rename`."""
        if name is not None and not 1 <= len(name) <= MAX_TERMINAL_NAME:
            raise InvalidRequest(f"name is 1 to {MAX_TERMINAL_NAME} characters", field="name", reason="out_of_range",
                                 min_value=1, max_value=MAX_TERMINAL_NAME)  # fmt: skip
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._own(conn, key_id, city, merchant_id)
            store.rename_terminal(conn, key_id, name)
            self.audit.record(conn, actor=actor, action="terminal.rename", city=city, target=key_id,
                              before={"name": row["name"]}, after={"name": name}, now_us=now)  # fmt: skip

    def of_merchant(self, merchant_id: str, city: str) -> MerchantTerminals:
        """The merchant's terminals as its owner sees them, newest first (at most MAX_TERMINALS)."""
        self.members.get(merchant_id, city)
        with self.engine.connect() as conn:
            rows = store.terminal_views(conn, merchant_id, MAX_TERMINALS)
        return MerchantTerminals(terminals=[
            MerchantTerminal(key_id=r["key_id"], name=r["name"], kind="web" if r["paired"] else "pos", status=r["status"],
                             paired_at_us=r["created_at_us"],
                             last_seen_at_us=None if r["last_seen_s"] is None else r["last_seen_s"] * 1_000_000)
            for r in rows])  # fmt: skip

    def list(self, merchant_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return store.terminals_of(conn, merchant_id)

    def merchants(self, city: str) -> Merchants:
        """The city's merchants, each with its terminal keys."""
        with self.engine.connect() as conn:
            return Merchants(merchants=[MerchantListing(**m, terminals=[TerminalKey(**t) for t in store.terminals_of(conn, m["id"])])
                                        for m in self.members.list(city)])  # fmt: skip

    def admit(self, verify: Callable[[Callable[[str], bytes | None]], tuple[str, str, int]],
              admitted: Callable[[str], None]) -> Terminal | None:  # fmt: skip
        """Check a signed request: look up its key, verify, let the caller refuse it, then record
        its nonce, last, so that a refused request writes nothing (the claim is one atomic insert,
        its own transaction on PostgreSQL, durable once it returns).

        `verify(resolve)` checks the signature with the key `resolve(key_id)` returns (None for an
        unknown or revoked terminal) and returns (key_id, nonce, created_s), or raises; the
        database is first touched when it calls `resolve`. `admitted(key_id)` may raise to refuse
        a verified request (its request budget, its body). Returns None if the nonce was seen
        before (a replay). Nonces older than twice the window are swept.
        """
        with contextlib.ExitStack() as scope:
            lookup = _KeyLookup(self.reads, scope)
            key_id, nonce, created_s = verify(lookup)
            row, conn = lookup.row, lookup.conn
            assert row is not None and conn is not None and row["key_id"] == key_id
            if row["merchant_status"] != "approved":
                raise MerchantNotApproved("the merchant is not approved")
            admitted(key_id)
            if not store.claim_nonce(conn, key_id, nonce, created_s):
                return None
            self._claims += 1
            if self._claims % 1_000 == 0:
                store.forget_nonces(conn, self.clock() // 1_000_000 - 2 * SIGNATURE_WINDOW_SECONDS)
        return Terminal(row["key_id"], row["merchant_id"], row["city"])


class _KeyLookup:
    """The terminal lookup of one signed request, on a connection opened only then (a request
    refused before it, by its shape or a failure budget, never touches the database)."""

    def __init__(self, engine: Engine, scope: contextlib.ExitStack) -> None:
        self.engine, self.scope = engine, scope
        self.conn: Connection | None = None
        self.row: dict[str, Any] | None = None

    def __call__(self, key_id: str) -> bytes | None:
        self.conn = self.scope.enter_context(self.engine.begin())
        row = store.terminal(self.conn, key_id)
        if row is None or row["status"] != "active":
            return None
        self.row = row
        public_key: bytes = row["public_key"]
        return public_key


def _mine(results: tuple[TransferResult, ...], terminal: Terminal) -> TransferResult:
    """The merchant's side of a group (a cross-city one has a half on each ledger)."""
    return next(r for r in results if r.ledger == terminal.city)


class _PostingFields(TypedDict):
    """The fields of a `Posting`, typed so that unpacking them into a result struct is checked."""

    transfer_id: str
    city: str
    sequence: int
    phase: str
    points: int
    time_us: int
    replayed: bool
    receipt: Receipt


def _posting(result: TransferResult, group: tuple[TransferResult, ...]) -> _PostingFields:
    """The fields of a `Posting` (every result that wrote a transfer) from the ledger's result, with
    the resident's receipt of its whole linked group."""
    return {
        "transfer_id": result.transfer_id, "city": result.ledger, "sequence": result.sequence, "phase": result.phase,
        "points": result.amount, "time_us": result.time_us, "replayed": result.replayed, "receipt": receipt(group),
    }  # fmt: skip


class PointOfSale:
    def __init__(self, engine: Engine, ledger: LedgerService, committer: GroupCommitter, programs: Programs,
                 residents: Residents, members: Members, awards: Awards, clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.ledger, self.committer, self.programs = engine, ledger, committer, programs
        self.reads = autocommit(engine)
        self.residents, self.members, self.awards, self.clock = residents, members, awards, clock

    def _commit(self, group: list[TransferRequest]) -> tuple[TransferResult, ...]:
        return self.committer.transfer(*group)

    # --- identify and award -----------------------------------------------------------------------

    def identify(self, terminal: Terminal, card: str) -> Identity:
        holder = self.residents.resolve_card(card)
        holder.require_city(terminal.city)
        balance = self.ledger.balance(holder.city, holder.wallet)
        return Identity(
            card_id=holder.card_id, city=holder.city, level=holder.level, available_points=balance.available
        )

    def award(self, terminal: Terminal, idempotency_key: str, card: str, purchase_cents: int) -> AwardResult:
        holder = self.residents.resolve_card(card)
        holder.require_city(terminal.city)
        merchant = self.members.get(terminal.merchant_id)
        body = {"card": card, "purchase_cents": purchase_cents}
        answer = self.awards.grant(AwardRequest(
            city=terminal.city, holder=holder, source="purchase", actor_id=terminal.merchant_id,
            idempotency_key=terminal.key(idempotency_key), kind="earn_purchase", debit_account=terminal.issued,
            body_hash=body_hash(body), purchase_cents=purchase_cents,
            compute=lambda program, usage, now: purchase_award(program, purchase_cents=purchase_cents,
                                                               category=merchant["category"], merchant_id=terminal.merchant_id,
                                                               time_us=now, usage=usage),
        ))  # fmt: skip
        return msgspec.convert(answer, AwardResult)

    # --- redemption: hold, capture, void --------------------------------------------------------

    def _redemption(self, terminal: Terminal, holder: CardHolder, key: str, phase: Phase, points: int,
                    timeout_seconds: int | None) -> list[TransferRequest]:  # fmt: skip
        """The transfers of a redemption at this merchant: one ledger, or two linked across cities."""
        return linked_transfers(key, "redeem", phase, holder.city, holder.wallet, terminal.city, terminal.redeemed, points,
                                timeout_seconds)  # fmt: skip

    def hold(self, terminal: Terminal, idempotency_key: str, card: str, points: int) -> HoldResult:
        group, view = self.hold_operation(terminal, idempotency_key, card, points)
        return view(self._commit(group))

    def hold_operation(self, terminal: Terminal, idempotency_key: str, card: str, points: int) -> Operation[HoldResult]:
        """The hold's transfers and how to present their result; the caller commits them (the API
        awaits the group commit without holding a thread)."""
        holder = self.residents.resolve_card(card)
        holder.require_city(terminal.city)
        program = self.programs.current(terminal.city)
        group = self._redemption(
            terminal, holder, terminal.key(idempotency_key), "pending", points, program.hold_timeout_seconds
        )

        def view(results: tuple[TransferResult, ...]) -> HoldResult:
            mine = results[-1]  # the merchant's side names the hold
            return HoldResult(
                **_posting(mine, results), hold_id=mine.transfer_id, status="pending", expires_at_us=mine.expires_at_us
            )

        return group, view

    def _own_hold(self, terminal: Terminal, hold_id: str) -> list[dict[str, Any]]:
        """The hold's entries (both halves when cross-city), refused unless it is this merchant's."""
        with self.reads.connect() as conn:
            found = journal.transfers(conn, [(terminal.city, hold_id)]) if isinstance(hold_id, str) else {}
            entry = found.get((terminal.city, hold_id))
            if entry is None or entry["phase"] != "pending":
                raise UnknownTransfer("no such hold", transfer_id=hold_id)
            if entry["credit_account"] != terminal.redeemed:
                raise WrongTenant("the hold belongs to another merchant")
            if entry["group_id"] is None:
                return [entry]
            return journal.linked_entries(conn, entry["group_id"])

    def _resolution(self, terminal: Terminal, idempotency_key: str, hold_id: str, phase: Phase,
                    points: int | None) -> list[TransferRequest]:  # fmt: skip
        """Post (in full or in part) or void a hold; both halves together when cross-city."""
        entries = self._own_hold(terminal, hold_id)
        key = terminal.key(idempotency_key)
        return [
            TransferRequest(e["ledger"], key, "redeem", phase, amount_points=points, ref=e["transfer_id"])
            for e in entries
        ]

    def capture_operation(self, terminal: Terminal, idempotency_key: str, hold_id: str,
                          points: int | None) -> Operation[CaptureResult]:  # fmt: skip
        """Capture a hold, in full or in part: its transfers and how to present their result."""
        group = self._resolution(terminal, idempotency_key, hold_id, "post", points)
        return group, lambda results: CaptureResult(
            **_posting(_mine(results, terminal), results), hold_id=hold_id, status="captured"
        )

    def void_operation(self, terminal: Terminal, idempotency_key: str, hold_id: str) -> Operation[VoidResult]:
        """Void a hold: its transfers and how to present their result."""
        group = self._resolution(terminal, idempotency_key, hold_id, "void", None)
        return group, lambda results: VoidResult(
            **_posting(_mine(results, terminal), results), hold_id=hold_id, status="voided"
        )

    # --- refunds --------------------------------------------------------------------------------

    def refund(self, terminal: Terminal, idempotency_key: str, transfer_id: str, points: int | None) -> RefundResult:
        """Reverse an award or a captured redemption of this merchant, never beyond what is left of it.

        The kind is checked before the tenant, so that a merchant's own settlement, or an expiry that
        names no merchant at all, is refused as what it is (not refundable), not as someone else's."""
        with self.engine.connect() as conn:
            found = journal.transfers(conn, [(terminal.city, transfer_id)]) if isinstance(transfer_id, str) else {}
            entry = found.get((terminal.city, transfer_id))
            if (
                entry is None
                or entry["phase"] not in ("single", "post")
                or (entry["ref"] is not None and entry["phase"] == "single")
            ):
                raise UnknownTransfer("no refundable transfer with that id", transfer_id=transfer_id)
            check_refundable(entry["kind"], transfer_id)
            if terminal.merchant_id not in (
                accounts.merchant_of(entry["debit_account"]),
                accounts.merchant_of(entry["credit_account"]),
            ):
                raise WrongTenant("the transfer belongs to another merchant")
            entries = journal.linked_entries(conn, entry["group_id"]) if entry["group_id"] else [entry]
            left = journal.originals(conn, [(e["ledger"], e["transfer_id"]) for e in entries])
        amount = points if points is not None else min((o.remaining for o in left.values()), default=0)
        if amount == 0:
            raise ExceedsOriginal(
                "nothing is left to refund", transfer_id=transfer_id, remaining_points=0, requested_points=0
            )
        key = terminal.key(idempotency_key)
        group = [TransferRequest(e["ledger"], key, "refund", "single", e["credit_account"], e["debit_account"], amount, e["transfer_id"])
                 for e in entries]  # fmt: skip
        results = self._commit(group)
        return RefundResult(**_posting(_mine(results, terminal), results), refunded_transfer_id=transfer_id)

    # --- offline batches ------------------------------------------------------------------------

    def offline(self, terminal: Terminal, items: Sequence[OfflineItem], describe: Describe) -> OfflineResults:
        """What a terminal recorded while offline: redemptions (`points`) and purchases (`purchase_cents`).

        Each item is idempotent (its own key) and gets its own result; none is half-applied.
        Redemptions are accepted up to the program's floor limit and all go to the ledger in one
        batch, each decided on its own; purchase awards go one by one, as online. A refusal is
        worded by `describe`, in the caller's language.
        """
        if not 1 <= len(items) <= MAX_OFFLINE_ITEMS:
            raise InvalidRequest(
                f"an offline batch has 1 to {MAX_OFFLINE_ITEMS} items",
                field="items",
                reason="out_of_range",
                min_value=1,
                max_value=MAX_OFFLINE_ITEMS,
            )
        floor = self.programs.current(terminal.city).offline_floor_points
        results: list[OfflineItemResult | None] = [None] * len(items)
        groups, positions = [], []
        occurred: list[tuple[str, int]] = []  # (transfer id, occurred_at_us) of the accepted items that said when
        now = self.clock()
        for index, item in enumerate(items):
            try:
                if (item.points is None) == (item.purchase_cents is None):
                    raise InvalidRequest(
                        "an offline item has either points (redemption) or purchase_cents (award)",
                        reason="points_or_purchase",
                    )
                at = item.occurred_at_us
                if at is not None and not now - OCCURRED_AT_MAX_AGE_US <= at <= now + OCCURRED_AT_SKEW_US:
                    raise InvalidRequest("occurred_at_us is at most a week ago and not in the future",
                                         field="occurred_at_us", reason="out_of_range",
                                         min_value=now - OCCURRED_AT_MAX_AGE_US, max_value=now + OCCURRED_AT_SKEW_US)  # fmt: skip
                if item.purchase_cents is not None:
                    award = self.award(terminal, item.idempotency_key, item.card, item.purchase_cents)
                    results[index] = _accepted(item, msgspec.structs.asdict(award))
                    if at is not None and award.transfer_id is not None:
                        occurred.append((award.transfer_id, at))
                    continue
                assert item.points is not None
                if item.points > floor:
                    raise FloorLimitExceeded(
                        "above the offline floor limit", points=item.points, floor_limit_points=floor
                    )
                holder = self.residents.resolve_card(item.card)
                holder.require_city(terminal.city)
                groups.append(
                    self._redemption(terminal, holder, terminal.key(item.idempotency_key), "single", item.points, None)
                )
                positions.append(index)
            except LedgerError as exc:
                results[index] = _refused(item, exc, describe)
        for index, outcome in zip(positions, self.ledger.submit(groups) if groups else [], strict=True):
            item = items[index]
            if outcome.error is not None:
                results[index] = _refused(item, outcome.error, describe)
            else:
                posting = _posting(_mine(outcome.transfers, terminal), outcome.transfers)
                results[index] = _accepted(item, posting)
                if item.occurred_at_us is not None:
                    occurred.append((posting["transfer_id"], item.occurred_at_us))
        if occurred:
            with self.engine.begin() as conn:
                for transfer_id, at in occurred:
                    store.record_occurred_at(conn, terminal.city, transfer_id, terminal.key_id, at)
        assert all(result is not None for result in results)
        return OfflineResults(results=results)  # type: ignore[arg-type]

    # --- statements -----------------------------------------------------------------------------

    def statement(self, merchant_id: str, city: str, since_us: int, until_us: int, before_sequence: int | None,
                  limit: int) -> Statement:  # fmt: skip
        """The merchant's own entries in [since_us, until_us), newest first, one keyset page at a time,
        each in business terms beside the raw entry, with the totals of the whole range."""
        if not 1 <= limit <= MAX_STATEMENT_PAGE:
            raise InvalidRequest(
                f"limit is 1 to {MAX_STATEMENT_PAGE}",
                field="limit",
                reason="out_of_range",
                min_value=1,
                max_value=MAX_STATEMENT_PAGE,
            )
        issued, redeemed = accounts.merchant_issued(merchant_id), accounts.merchant_redeemed(merchant_id)
        with self.engine.connect() as conn:
            program = self.programs.get(city, conn)  # not the cached one: totals as the close will count them
            rows = journal.account_entries(conn, city, [issued, redeemed], before_sequence=before_sequence, since_us=since_us,
                                           until_us=until_us, limit=limit)  # fmt: skip
            awards = [r["transfer_id"] for r in rows if r["kind"] == "earn_purchase" and r["phase"] == "single"]
            purchases = store.purchase_amounts(conn, city, awards) if awards else {}
            occurred = store.occurred_at(conn, city, [r["transfer_id"] for r in rows]) if rows else {}
            flows = journal.account_flows(
                conn, city, [issued, redeemed], since_us, until_us, exclude_kinds=SETTLEMENT_KINDS
            )
        page = journal.entry_page(rows, limit)
        # The close's own line for this merchant (both accounts are always in `flows`, so there is one).
        (line,) = merchant_lines(program, flows, {}, {})
        return Statement(
            merchant_id=merchant_id, city=city, since_us=since_us, until_us=until_us,
            entries=[_statement_line(entry, issued, redeemed, purchases, occurred) for entry in page["entries"]],
            next_before_sequence=page["next_before_sequence"], totals=_totals(program.currency, flows, issued, line),
        )  # fmt: skip

    # --- cards a terminal checks offline -------------------------------------------------------

    def card_keys(self) -> CardKeys:
        """The card public keys of every city, for checking cards offline."""
        return msgspec.convert(self.residents.card_keys(self.programs.cities()), CardKeys)

    def revocations(self, terminal: Terminal, since_us: int) -> Revocations:
        """Cards of the terminal's city revoked since `since_us`: what an offline terminal must refuse."""
        revoked = self.residents.revocations(terminal.city, since_us)
        return msgspec.convert({"city": terminal.city, "revoked": revoked}, Revocations)


def _accepted(item: OfflineItem, fields: Mapping[str, object]) -> OfflineItemResult:
    status = "replayed" if fields["replayed"] else "accepted"
    return msgspec.convert({**fields, "idempotency_key": item.idempotency_key, "status": status}, OfflineItemResult)


def _refused(item: OfflineItem, exc: LedgerError, describe: Describe) -> OfflineItemResult:
    title, detail = describe(exc)
    return OfflineItemResult(
        idempotency_key=item.idempotency_key, status="refused", code=exc.code, title=title, detail=detail
    )


_HOLD_PHASES: dict[str, StatementWhat] = {"pending": "redemption_hold", "void": "hold_voided", "expire": "hold_expired"}
Counterpart = Literal["resident", "resident_of_another_city", "program"]
_COUNTERPARTS: dict[str, Counterpart] = {"citizen": "resident", "interop": "resident_of_another_city"}


def _statement_line(entry: dict[str, Any], issued: str, redeemed: str, purchases: dict[str, int],
                    occurred: dict[str, int]) -> StatementLine:  # fmt: skip
    """One entry in the merchant's words: what it was, and who was on the other side."""
    mine = entry["credit_account"] in (issued, redeemed)
    other = entry["debit_account"] if mine else entry["credit_account"]
    what: StatementWhat
    if entry["kind"] in SETTLEMENT_KINDS:
        what = "settlement"
    elif entry["kind"] == "earn_purchase":
        what = "purchase_award"
    elif entry["kind"] == "refund":
        what = "award_refund" if entry["credit_account"] == issued else "redemption_refund"
    elif entry["credit_account"] == redeemed:
        what = _HOLD_PHASES.get(entry["phase"], "redemption")
    else:
        what = "other"
    kind_of_other, _, rest = other.partition(":")
    counterpart = _COUNTERPARTS.get(kind_of_other, "program")
    return StatementLine(what=what, counterpart=counterpart, counterpart_city=rest if kind_of_other == "interop" else None,
                         purchase_cents=purchases.get(entry["transfer_id"]), occurred_at_us=occurred.get(entry["transfer_id"]),
                         **entry)  # fmt: skip


def _totals(
    currency: str, flows: list[tuple[str, str, int, int]], issued: str, line: SettlementLine
) -> StatementTotals:
    """The range's totals: gross points from the accounts' flows, net points and cents from the
    close's own merchant line (the same rates and rounding as a close)."""
    sides = {account: (debits, credits) for _, account, debits, credits in flows}
    awarded, award_refunds = sides.pop(issued)
    ((redemption_refunds, redeemed),) = sides.values()
    return StatementTotals(
        currency=currency, awarded_points=awarded, award_refunds_points=award_refunds, redeemed_points=redeemed,
        redemption_refunds_points=redemption_refunds, refunded_points=award_refunds + redemption_refunds,
        issued_net_points=line.issued_points, redeemed_net_points=line.redeemed_points,
        net_points=line.redeemed_points - line.issued_points, funding_cents=line.funding_cents,
        reimbursement_cents=line.reimbursement_cents, net_cents=line.net_cents,
    )  # fmt: skip
