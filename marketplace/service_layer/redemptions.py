"""Redeeming from the wallet: offers, event seats and municipal services, with stock under concurrency.

A redemption moves through durable states, each change a compare-and-set on its row:

    (none) ──reserve──▶ reserved ──hold + capture──────────────▶ completed
                           │      ──hold + PaymentIntent──▶ awaiting_payment ──webhook: succeeded──▶ completed
                           │                                     │  ──failed / canceled / expired──▶ cancelled
                           │                                     └─ succeeded but hold gone ──▶ refunded (card refunded)
                           └── ledger refused (funds…) ──▶ (row deleted, stock and allowance given back)

1. **Reserve** (one transaction): insert the row, take the stock with a conditional UPDATE
   (`remaining >= units`) and the resident's allowance with a conditional upsert; either fails and
   the transaction leaves nothing. The last unit is sold once.
2. **Hold** points in the ledger (pending transfer, linked across cities like the POS), keyed by the
   redemption id, so a retry or a recovery names the same hold.
3. **Capture** at once (offers, services and events paid in points only), or create a Stripe
   PaymentIntent for the cash part and capture only when the verified webhook says it succeeded.

A crash between steps leaves a `reserved` or `awaiting_payment` row: a client retry with the same
Idempotency-Key carries it forward, and `recover()` rolls back what nobody finished (void, give the
stock back), after checking the journal so that a captured hold is never given back. A hold that
nobody resolves expires in the ledger by itself. So no unit is sold unpaid, nor paid unsold.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from community.domain.errors import NotOptedIn, ResidentExpired
from community.service_layer.programs import Programs
from community.service_layer.residents import Residents, wallet_account
from ledger.adapters import journal
from ledger.domain.errors import IdempotencyConflict, InvalidRequest, LedgerError
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.committer import GroupCommitter
from marketplace.adapters import store
from marketplace.adapters.payments_stripe import Intent
from marketplace.domain.catalog import Item, check_redeemable, price_for
from marketplace.domain.errors import (
    CardPaymentsUnavailable,
    RedemptionNotPending,
    ResidentLimitReached,
    SoldOut,
    UnknownItem,
    UnknownRedemption,
)
from marketplace.service_layer.catalog import emit
from marketplace.service_layer.indexing import SearchIndexer

PAYMENT_HOLD_SECONDS = 3_600  # the resident has an hour to pay the cash part by card
RESERVED_GRACE_SECONDS = 300  # a `reserved` row older than this was abandoned by a crash
MAX_RECOVER = 500
MAX_PAGE = 100
VOUCHER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LIVE = ("reserved", "awaiting_payment", "completed")
log = logging.getLogger("entraide.marketplace")


class CardPayments(Protocol):
    def create_intent(self, amount_cents: int, idempotency_key: str, metadata: dict[str, str]) -> Intent: ...
    def cancel(self, intent_id: str, idempotency_key: str) -> Intent: ...
    def refund(self, intent_id: str, idempotency_key: str) -> str: ...
    def verify_webhook(self, raw_body: bytes, signature_header: str | None) -> dict: ...


def redemption_id_for(resident_id: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{resident_id}\x00{idempotency_key}".encode()).hexdigest()[:32]


def hold_transfers(item: Item, home_city: str, wallet: str, key: str, points: int, timeout_seconds: int) -> list[TransferRequest]:
    """The hold: wallet → the item's account in one ledger, or through the interop accounts of both cities."""
    kind, credit = item.transfer_kind(), item.credit_account()
    if home_city == item.city:
        return [TransferRequest(item.city, key, kind, "pending", wallet, credit, points, None, timeout_seconds)]
    return [
        TransferRequest(home_city, key, kind, "pending", wallet, f"interop:{item.city}", points, None, timeout_seconds),
        TransferRequest(item.city, key, kind, "pending", f"interop:{home_city}", credit, points, None, timeout_seconds),
    ]


def redemption_view(row: dict) -> dict:
    view = {k: row[k] for k in ("id", "item_id", "city", "units", "points", "cash_cents", "status", "voucher", "created_at_us",
                                "updated_at_us")}  # fmt: skip
    view["hold_ids"] = [transfer_id for _, transfer_id in row["hold"]]
    if row["payment_intent_id"]:
        view["payment"] = {"provider": "stripe", "payment_intent_id": row["payment_intent_id"],
                           "client_secret": row["client_secret"], "amount_cents": row["cash_cents"]}  # fmt: skip
    return view


class Redemptions:
    def __init__(self, engine: Engine, committer: GroupCommitter, programs: Programs, residents: Residents,
                 indexer: SearchIndexer, payments: CardPayments | None, clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.committer, self.programs, self.residents = engine, committer, programs, residents
        self.indexer, self.payments, self.clock = indexer, payments, clock

    # --- redeeming ------------------------------------------------------------------------------

    def redeem(self, resident_id: str, idempotency_key: str, item_id: str, units: int) -> dict:
        rid = redemption_id_for(resident_id, idempotency_key)
        request_hash = hashlib.sha256(f"{item_id}\x00{units}".encode()).hexdigest()
        existing = self._find(rid)
        if existing is None:
            try:
                existing = self._reserve(rid, request_hash, resident_id, idempotency_key, item_id, units)
            except IntegrityError:  # the same key, raced by a concurrent retry: that one reserved
                existing = self._find(rid)
                if existing is None:
                    raise
            else:
                return self._advance(existing)
        if existing["request_hash"] != request_hash:
            raise IdempotencyConflict(f"idempotency key {idempotency_key!r} was used for another request", key=idempotency_key)
        return self._advance(existing) | {"replayed": True}

    def _find(self, rid: str) -> dict | None:
        with self.engine.connect() as conn:
            return store.redemption(conn, rid)

    def _reserve(self, rid: str, request_hash: str, resident_id: str, key: str, item_id: str, units: int) -> dict:
        resident = self.residents.get(resident_id)
        now = self.clock()
        if resident["valid_until_us"] <= now:
            raise ResidentExpired("the resident's identifier has lapsed", valid_until=resident["valid_until_us"])
        cities = (resident["city"], *self.residents.opt_ins(resident_id))
        with self.engine.connect() as conn:
            row = store.item(conn, item_id) if isinstance(item_id, str) else None
            if row is None:
                raise UnknownItem("no such item", item_id=item_id)
            shop = store.shop(conn, row["merchant_id"])
            approved = row["merchant_id"] is None or store.merchant_status(conn, row["merchant_id"]) == "approved"
        item = Item.from_row(row)
        if item.city not in cities:
            raise NotOptedIn(f"the resident has not opted in to {item.city}", city=item.city)
        check_redeemable(item, now, shop is None or bool(shop["is_open"]), approved)
        price = price_for(item, units)
        if item.card_payment and self.payments is None:
            raise CardPaymentsUnavailable("card payments are not available here")
        with self.engine.begin() as conn:
            store.add_redemption(conn, id=rid, resident_id=resident_id, idempotency_key=key, request_hash=request_hash,
                                 item_id=item.id, city=item.city, home_city=resident["city"], units=units, points=price.points,
                                 cash_cents=price.cash_cents, status="reserved", hold=None, voucher=_voucher(),
                                 created_at_us=now, updated_at_us=now)  # fmt: skip
            left = store.take_stock(conn, item.id, units)
            if left is False:
                raise SoldOut("not enough left", item_id=item.id)
            limit = item.per_resident_limit
            if limit is not None and not store.take_allowance(conn, item.id, resident_id, units, limit):
                raise ResidentLimitReached("the resident's limit for this item is reached", item_id=item.id, limit=limit)
            if left == 0:
                emit(conn, item.id, now)  # sold out: "available now" searches stop showing it
            reserved = store.redemption(conn, rid)
        if left == 0:
            self.indexer.deliver_quietly()
        return reserved  # type: ignore[return-value]

    def _advance(self, row: dict) -> dict:
        """Carry a `reserved` redemption forward: hold, then capture or start the card payment."""
        if row["status"] != "reserved":
            return redemption_view(row)
        item = self._item(row)
        timeout = PAYMENT_HOLD_SECONDS if item.card_payment else self.programs.get(item.city).hold_timeout_seconds
        group = hold_transfers(item, row["home_city"], wallet_account(row["resident_id"]), f"mkt:{row['id']}:hold",
                               row["points"], timeout)  # fmt: skip
        try:
            results = self.committer.transfer(*group)
        except LedgerError:
            self._release(row, "reserved", None)  # refused (funds, limits): as if it never happened
            raise
        row = row | {"hold": [[r.ledger, r.transfer_id] for r in results]}
        if item.card_payment:
            return self._start_payment(row)
        try:
            self._resolve(row, "post")
        except LedgerError:
            self._roll_back(row, "reserved", None)
            raise
        return self._move(row, ("reserved",), "completed", hold=row["hold"])

    def _start_payment(self, row: dict) -> dict:
        assert self.payments is not None
        try:
            intent = self.payments.create_intent(row["cash_cents"], f"entraide-redemption-{row['id']}",
                                                 {"redemption_id": row["id"], "city": row["city"]})  # fmt: skip
        except LedgerError:
            self._roll_back(row, "reserved", None)
            raise
        return self._move(row, ("reserved",), "awaiting_payment", hold=row["hold"], payment_intent_id=intent.id,
                          client_secret=intent.client_secret)  # fmt: skip

    # --- the card payment's outcome (webhooks) --------------------------------------------------

    def payment_succeeded(self, intent_id: str, amount_cents: int) -> str:
        """Capture the hold; if the hold is gone (expired, voided), refund the card instead."""
        with self.engine.connect() as conn:
            row = store.redemption_by_payment(conn, intent_id)
        if row is None:
            return "ignored"  # not a redemption's payment (another part of the product, or another system)
        if amount_cents != row["cash_cents"]:
            log.error("payment %s: amount %s differs from redemption %s", intent_id, amount_cents, row["id"])
            return "ignored"
        if row["status"] == "awaiting_payment":
            try:
                self._resolve(row, "post")
            except LedgerError:
                self._refund(row)
                self._release(row, "awaiting_payment", "refunded")
                return "refunded"
            self._move(row, ("awaiting_payment",), "completed")
            return "completed"
        if row["status"] == "cancelled":  # paid after we gave up on it: the unit is no longer held
            self._refund(row)
            self._move(row, ("cancelled",), "refunded")
            return "refunded"
        return "unchanged"

    def payment_failed(self, intent_id: str) -> str:
        """Failed, canceled or expired: cancel the intent (so it cannot succeed later), void the hold, release."""
        with self.engine.connect() as conn:
            row = store.redemption_by_payment(conn, intent_id)
        if row is None or row["status"] != "awaiting_payment":
            return "ignored" if row is None else "unchanged"
        assert self.payments is not None
        intent = self.payments.cancel(intent_id, f"entraide-cancel-{row['id']}")
        if intent.status == "succeeded":
            return self.payment_succeeded(intent_id, intent.amount_cents)
        self._roll_back(row, "awaiting_payment", "cancelled")
        return "cancelled"

    def cancel(self, resident_id: str, redemption_id: str) -> dict:
        """The resident abandons a card payment they have not made."""
        row = self._own(resident_id, redemption_id)
        if row["status"] != "awaiting_payment":
            raise RedemptionNotPending("only a redemption awaiting its payment can be cancelled", status=row["status"])
        outcome = self.payment_failed(row["payment_intent_id"])
        if outcome == "completed":
            raise RedemptionNotPending("the payment went through meanwhile", status="completed")
        return redemption_view(self._find(redemption_id))  # type: ignore[arg-type]

    # --- recovery -------------------------------------------------------------------------------

    def recover(self) -> dict:
        """Finish or undo what a crash or a silent payment left: bounded work, safe to run any time."""
        now = self.clock()
        counts = {"reserved": 0, "awaiting_payment": 0}
        with self.engine.connect() as conn:
            stale = store.stale_redemptions(conn, "reserved", now - RESERVED_GRACE_SECONDS * 1_000_000, MAX_RECOVER)
            unpaid = store.stale_redemptions(conn, "awaiting_payment", now - PAYMENT_HOLD_SECONDS * 1_000_000, MAX_RECOVER)
        for row in stale:
            row = row | {"hold": [[r.ledger, r.transfer_id] for r in self._hold_requests(row)]}
            if self._hold_phase(row) == "post":
                self._move(row, ("reserved",), "completed", hold=row["hold"])
            else:
                self._roll_back(row, "reserved", None)
            counts["reserved"] += 1
        for row in unpaid:
            self.payment_failed(row["payment_intent_id"])
            counts["awaiting_payment"] += 1
        return counts

    # --- reading --------------------------------------------------------------------------------

    def get(self, resident_id: str, redemption_id: str) -> dict:
        return redemption_view(self._own(resident_id, redemption_id))

    def list(self, resident_id: str, before_us: int | None, limit: int) -> dict:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit is 1 to {MAX_PAGE}", message="limit")
        with self.engine.connect() as conn:
            rows = store.redemptions_of(conn, resident_id, before_us if before_us is not None else 2**62, limit)
        views = [redemption_view(r) for r in rows]
        return {"redemptions": views, "next_before_us": views[-1]["created_at_us"] if len(views) == limit else None}

    def _own(self, resident_id: str, redemption_id: str) -> dict:
        row = self._find(redemption_id) if isinstance(redemption_id, str) else None
        if row is None or row["resident_id"] != resident_id:
            raise UnknownRedemption("no such redemption")
        return row

    # --- steps ----------------------------------------------------------------------------------

    def _item(self, row: dict) -> Item:
        with self.engine.connect() as conn:
            return Item.from_row(store.item(conn, row["item_id"]))  # type: ignore[arg-type]

    def _hold_requests(self, row: dict) -> list[TransferRequest]:
        """The hold's halves, derived from the row alone: ids follow from the idempotency key."""
        return hold_transfers(self._item(row), row["home_city"], wallet_account(row["resident_id"]), f"mkt:{row['id']}:hold", row["points"], 1)

    def _hold_phase(self, row: dict) -> str | None:
        """How the hold stands in the journal: None (never written), pending, post, void or expire."""
        pairs = [(ledger, transfer_id) for ledger, transfer_id in row["hold"]]
        with self.engine.connect() as conn:
            written = journal.transfers(conn, pairs)
            resolved = journal.resolutions(conn, pairs)
        if not written:
            return None
        return next(iter(resolved.values()), "pending")

    def _resolve(self, row: dict, phase: str) -> None:
        action, kind = "capture" if phase == "post" else "void", self._item(row).transfer_kind()
        requests = [TransferRequest(ledger, f"mkt:{row['id']}:{action}", kind, phase, ref=transfer_id)
                    for ledger, transfer_id in row["hold"]]  # fmt: skip
        self.committer.transfer(*requests)

    def _roll_back(self, row: dict, from_status: str, to_status: str | None) -> None:
        """Void the hold unless it was captured, then give the stock back."""
        if self._hold_phase(row) == "pending":
            try:
                self._resolve(row, "void")
            except LedgerError as exc:  # it expired or closed meanwhile; what matters is how it stands now
                log.info("void of redemption %s: %s", row["id"], exc.code)
        if self._hold_phase(row) == "post":
            log.error("redemption %s: the hold was captured; it is not rolled back", row["id"])
            self._move(row, (from_status,), "completed", hold=row["hold"])
            return
        self._release(row, from_status, to_status)

    def _release(self, row: dict, from_status: str, to_status: str | None) -> None:
        """Give the units and the allowance back, and delete (None) or close the row, in one transaction."""
        now = self.clock()
        with self.engine.begin() as conn:
            if to_status is None:
                moved = store.delete_redemption(conn, row["id"], from_status)
            else:
                moved = store.move_redemption(conn, row["id"], (from_status,), now, status=to_status)
            if not moved:
                return  # someone else settled it
            left = store.give_back_stock(conn, row["item_id"], row["units"])
            store.give_back_allowance(conn, row["item_id"], row["resident_id"], row["units"])
            if left == row["units"]:
                emit(conn, row["item_id"], now)  # back in stock
        if left == row["units"]:
            self.indexer.deliver_quietly()

    def _refund(self, row: dict) -> None:
        assert self.payments is not None
        self.payments.refund(row["payment_intent_id"], f"entraide-refund-{row['id']}")

    def _move(self, row: dict, from_status: tuple[str, ...], to_status: str, **values) -> dict:
        with self.engine.begin() as conn:
            store.move_redemption(conn, row["id"], from_status, self.clock(), status=to_status, **values)
            return redemption_view(store.redemption(conn, row["id"]))  # type: ignore[arg-type]


def _voucher() -> str:
    return "".join(secrets.choice(VOUCHER_ALPHABET) for _ in range(10))
