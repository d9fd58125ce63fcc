"""Redeeming from the wallet: offers, event seats and municipal services, with stock under concurrency.

A redemption moves through durable states, each change a compare-and-set on its row (status, attempt):

    (none) ─reserve─▶ reserved ─hold + capture─────────────▶ completed
    failed ─retry: reserve again, attempt + 1─▶ reserved
                         │     ─hold + PaymentIntent or Checkout Session─▶ awaiting_payment ─webhook: succeeded─▶ completed
                         │                                │  ─failed / canceled / unpaid / cancel─▶ cancelled
                         │                                └─ succeeded but hold gone ─▶ refunded (card refunded)
                         └─ ledger refused (funds…), card processor down, abandoned ─▶ failed

1. **Reserve** (one transaction): insert the row (or move a `failed` one back to `reserved`, one attempt
   further), take the stock with a conditional UPDATE (`remaining >= units`) and the resident's
   allowance with a conditional upsert; either fails and the transaction leaves nothing.
2. **Hold** points in the ledger (pending transfer, linked across cities like the POS), keyed by the
   redemption id and its attempt, so that a retry or a recovery names the same hold — and a new
   attempt a new one.
3. **Capture** at once (offers, services and events paid in points only), or start the card payment
   of the cash part and capture only when Stripe says it succeeded (the verified webhook, or the
   resident coming back from the hosted page, which reads it from Stripe). An API client gets a
   PaymentIntent to confirm with its own Stripe SDK; the wallet's pages get a Checkout Session, whose
   hosted page takes the card, so no card field or third-party script is ever on our pages.

**Attempts.** A failed attempt leaves its row `failed`, with the error and the attempt number, and
gives back everything it held (stock, allowance, the hold voided). The retry with the same
Idempotency-Key then runs the whole operation again as the next attempt, under new ledger and Stripe
keys; the retry of a live or finished redemption returns it as it stands. So the ledger's
idempotency can never hand back a dead attempt's hold as if it were live: its key is never asked
for again, and a hold the ledger *replays* is used only while the journal shows it still open.

**Claims.** Two calls may carry one attempt at once (a client retry racing another, or the sweep).
Before going forward a call records the hold on the row (`hold` set: the claim); an attempt whose
hold was refused fails only while nothing is claimed, and a failure claims the row before it voids
the hold. A points-only attempt, once claimed, is only ever carried forward (captured); a card
attempt is captured only from `awaiting_payment`, so failing it from `reserved` never races a
capture. The call that loses a compare-and-set reads the row again and follows it.

A crash between steps leaves a `reserved` row: a client retry carries it forward, and `recover()`
settles what nobody finished, after checking the journal so that a captured hold is never given
back. A hold that nobody resolves expires in the ledger by itself. So no unit is sold unpaid, nor
paid unsold.
"""

from __future__ import annotations

import builtins  # `Redemptions.list` shadows the builtin in the class's annotations
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from community.domain.errors import NotOptedIn, ResidentExpired
from community.service_layer.programs import Programs
from community.service_layer.residents import Residents
from ledger.adapters import journal
from ledger.domain import accounts
from ledger.domain.errors import IdempotencyConflict, InvalidRequest, LedgerError
from ledger.domain.transfers import Phase, TransferRequest, linked_transfers, transfer_id_for
from ledger.schemas import Receipt
from ledger.service_layer.committer import GroupCommitter
from ledger.service_layer.receipts import receipt_of_rows
from marketplace import schemas
from marketplace.adapters import store
from marketplace.adapters.payments_stripe import Checkout, Intent
from marketplace.domain.catalog import Item, Price, check_redeemable, price_for, title_in
from marketplace.domain.errors import (
    CardPaymentsUnavailable,
    PaymentProviderUnavailable,
    RedemptionContended,
    RedemptionNotPending,
    ResidentLimitReached,
    SoldOut,
    TooManyAttempts,
    UnknownItem,
    UnknownRedemption,
)
from marketplace.service_layer.catalog import emit
from marketplace.service_layer.indexing import SearchIndexer

PAYMENT_HOLD_SECONDS = 3_600  # the resident has an hour to pay the cash part by card
RESERVED_GRACE_SECONDS = 300  # a `reserved` row older than this was abandoned by a crash
MAX_ATTEMPTS = 20  # tries of one Idempotency-Key; past this the resident starts again with a new key
MAX_PASSES = 3  # times one call reads the row again after a concurrent call moved it
MAX_RECOVER = 500
MAX_REDEMPTION_PAGE = 100
VOUCHER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ABANDONED = "abandoned"  # the error of an attempt the sweep gave back (a crash left it); others are problem codes
log = logging.getLogger("entraide.marketplace")


class CardPayments(Protocol):
    def create_intent(self, amount_cents: int, idempotency_key: str, metadata: dict[str, str]) -> Intent: ...
    def create_checkout(self, amount_cents: int, idempotency_key: str, metadata: dict[str, str],
                        checkout: Checkout) -> Intent: ...  # fmt: skip
    def retrieve(self, intent_id: str) -> Intent: ...
    def cancel(self, intent_id: str, idempotency_key: str) -> Intent: ...
    def refund(self, intent_id: str, idempotency_key: str) -> str: ...
    def verify_webhook(self, raw_body: bytes, signature_header: str | None) -> dict[str, Any]: ...


def redemption_id_for(resident_id: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{resident_id}\x00{idempotency_key}".encode()).hexdigest()[:32]


def step_key(row: dict[str, Any], step: str) -> str:
    """The ledger idempotency key of one step (hold, capture, void) of the row's attempt. The first
    attempt keeps the keys of redemptions made before attempts were numbered."""
    attempt = f":{row['attempt']}" if row["attempt"] else ""
    return f"mkt:{row['id']}{attempt}:{step}"


def stripe_key(row: dict[str, Any], step: str) -> str:
    """The Stripe idempotency key of a step (redemption, cancel, refund) of the row's attempt."""
    attempt = f"-{row['attempt']}" if row["attempt"] else ""
    return f"entraide-{step}-{row['id']}{attempt}"


def hold_transfers(
    item: Item, home_city: str, wallet: str, key: str, points: int, timeout_seconds: int
) -> list[TransferRequest]:
    """The hold: wallet → the item's account in one ledger, or through the interop accounts of both cities."""
    return linked_transfers(key, item.transfer_kind(), "pending", home_city, wallet, item.city, item.credit_account(), points,
                            timeout_seconds)  # fmt: skip


PAYMENT_STATES = {"awaiting_payment": "pending", "completed": "succeeded", "refunded": "refunded"}  # else: cancelled


def redemption_view(row: dict[str, Any], redeemed: dict[str, Any], lang: str) -> schemas.Redemption:
    """A redemption in business terms: what was redeemed (title in `lang`, kind, seller), and its raw ids."""
    title_lang, title = title_in(redeemed["title"], lang)
    payment = None
    if row["payment_intent_id"] or row["checkout_session_id"]:
        payment = schemas.CardPayment(provider="stripe", payment_intent_id=row["payment_intent_id"],
                                      client_secret=row["client_secret"], checkout_session_id=row["checkout_session_id"],
                                      checkout_url=row["checkout_url"] if row["status"] == "awaiting_payment" else None,
                                      amount_cents=row["cash_cents"],
                                      state=PAYMENT_STATES.get(row["status"], "cancelled"))  # type: ignore[arg-type]  # fmt: skip
    return schemas.Redemption(
        id=row["id"], item_id=row["item_id"], kind=redeemed["kind"], title=title, title_lang=title_lang,
        seller_name=redeemed["merchant_name"] or redeemed["city"], merchant_id=redeemed["merchant_id"], city=row["city"],
        quantity=row["units"], points=row["points"], cash_cents=row["cash_cents"], status=row["status"], attempt=row["attempt"],
        error=row["error"], voucher=row["voucher"], hold_ids=[transfer_id for _, transfer_id in row["hold"]], payment=payment,
        created_at_us=row["created_at_us"], updated_at_us=row["updated_at_us"],
    )  # fmt: skip


def give_back_units(conn: Connection, row: dict[str, Any], now_us: int) -> bool:
    """Give a redemption's units (seats) and the resident's allowance back, in the caller's transaction;
    True when that put the item back in stock (its search document is then queued)."""
    left = store.give_back_stock(conn, row["item_id"], row["units"])
    store.give_back_allowance(conn, row["item_id"], row["resident_id"], row["units"])
    back_in_stock: bool = left == row["units"]
    if back_in_stock:
        emit(conn, row["item_id"], now_us)
    return back_in_stock


class Redemptions:
    def __init__(self, engine: Engine, committer: GroupCommitter, programs: Programs, residents: Residents,
                 indexer: SearchIndexer, payments: CardPayments | None, clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.committer, self.programs, self.residents = engine, committer, programs, residents
        self.indexer, self.payments, self.clock = indexer, payments, clock

    # --- redeeming ------------------------------------------------------------------------------

    def redeem(
        self, resident_id: str, idempotency_key: str, item_id: str, units: int, lang: str = "fr",
        checkout_return_url: str | None = None,
    ) -> schemas.Redemption:  # fmt: skip
        """A new redemption, the next attempt of a failed one, or the one this key made, as it stands.
        `lang` is the language the caller reads (the item's title is given in it when it has one). A
        cash part is paid through a PaymentIntent the caller confirms, or, with `checkout_return_url`
        (an absolute URL of ours: the wallet's voucher page), on Stripe's hosted Checkout page, which
        sends the resident back there (with `?paid=1` once paid)."""
        rid = redemption_id_for(resident_id, idempotency_key)
        request_hash = hashlib.sha256(f"{item_id}\x00{units}".encode()).hexdigest()
        replayed = True
        for _ in range(MAX_PASSES):
            row = self._find(rid)
            if row is not None and row["request_hash"] != request_hash:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} was used for another request", key=idempotency_key
                )
            if row is None or row["status"] == "failed":
                row = self._reserve(rid, request_hash, resident_id, idempotency_key, item_id, units, row,
                                    checkout_return_url)  # fmt: skip
                if row is None:
                    continue  # a concurrent retry reserved first: follow what it did
                replayed = False
            advanced = self._advance(row, lang)
            if advanced is not None:
                return msgspec.structs.replace(self._view(advanced, lang), replayed=replayed,
                                               receipts=self._receipts(advanced))  # fmt: skip
        raise RedemptionContended("concurrent retries of this redemption: try again", retry_after_seconds=1)

    def _find(self, rid: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return store.redemption(conn, rid)

    def _checked(self, resident_id: str, item_id: str, units: int) -> tuple[Item, Price, str]:
        """The item, its price and the resident's city, once every rule allows this redemption now."""
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
        return item, price, resident["city"]

    def _reserve(self, rid: str, request_hash: str, resident_id: str, key: str, item_id: str, units: int,
                 failed: dict[str, Any] | None, checkout_return_url: str | None) -> dict[str, Any] | None:  # fmt: skip
        """Take the stock for a new attempt: the first (a new row) or the next after a failed one (a
        compare-and-set on that row and its attempt). None if a concurrent retry took it first."""
        item, price, home_city = self._checked(resident_id, item_id, units)
        if failed is not None:
            if failed["attempt"] + 1 >= MAX_ATTEMPTS:
                closed = f"this redemption failed {MAX_ATTEMPTS} times: start again with a new Idempotency-Key"
                raise TooManyAttempts(closed, reason="too_many_attempts", max_attempts=MAX_ATTEMPTS)
            self._settle_failed(failed)  # a hold the failed attempt may still have open is voided first
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                if failed is None:
                    store.add_redemption(conn, id=rid, resident_id=resident_id, idempotency_key=key, request_hash=request_hash,
                                         item_id=item.id, city=item.city, home_city=home_city, units=units,
                                         points=price.points, cash_cents=price.cash_cents, status="reserved", attempt=0,
                                         hold=None, voucher=_voucher(), created_at_us=now, updated_at_us=now,
                                         checkout_return_url=checkout_return_url)  # fmt: skip
                elif not store.move_redemption(conn, rid, ("failed",), now, when_attempt=failed["attempt"], status="reserved",
                                               attempt=failed["attempt"] + 1, points=price.points, cash_cents=price.cash_cents,
                                               hold=None, error=None):  # fmt: skip
                    return None
                sold_out = _take_stock(conn, item, resident_id, units, now)
                reserved = store.redemption(conn, rid)
        except IntegrityError:  # the same key, raced by a concurrent first try: that one reserved
            if failed is None and self._find(rid) is not None:
                return None
            raise
        if sold_out:
            self.indexer.deliver_quietly()
        return reserved

    def _advance(self, row: dict[str, Any], lang: str) -> dict[str, Any] | None:
        """Carry a `reserved` attempt forward: hold, then capture or start the card payment; the row as
        it then stands. None when a concurrent call moved the row meanwhile (the caller reads it again)."""
        if row["status"] != "reserved":
            return row
        item = self._item(row)
        timeout = PAYMENT_HOLD_SECONDS if item.card_payment else self.programs.get(item.city).hold_timeout_seconds
        claimed = bool(row["hold"])
        try:
            results = self.committer.transfer(*self._hold_requests(row, item, timeout))
        except LedgerError as exc:  # refused (funds, limits): this attempt fails, holding nothing
            if self._fail(row, exc.code, when_held=False):
                raise
            return None
        row = row | {"hold": [[r.ledger, r.transfer_id] for r in results]}
        if any(r.replayed for r in results):  # an earlier call's hold: live only if the journal says it is open
            state = self._hold_state(row)
            if state == "post":  # captured by a call that crashed before saying so: never given back
                return self._complete(row)
            if state != "open":
                self._fail(row, "hold_expired", when_held=None)
                return None  # the next pass runs a new attempt
        if not claimed and not self._move(row, ("reserved",), None, hold=row["hold"]):
            self._void_if_dead(row)
            return None
        if item.card_payment:
            return self._start_payment(row, item, lang)
        try:
            self._resolve(row, "post")
        except LedgerError:  # it closed before its capture: this attempt is over
            self._fail(row, "hold_expired", when_held=None)
            return None
        return self._complete(row)

    def _start_payment(self, row: dict[str, Any], item: Item, lang: str) -> dict[str, Any] | None:
        metadata = {"redemption_id": row["id"], "city": row["city"], "attempt": str(row["attempt"])}
        back = row["checkout_return_url"]
        try:
            if back is None:
                intent = self._payments().create_intent(row["cash_cents"], stripe_key(row, "redemption"), metadata)
                started: dict[str, Any] = {"payment_intent_id": intent.id, "client_secret": intent.client_secret}
            else:
                # The session lasts as long as the hold (Stripe allows 30 minutes to a day).
                checkout = Checkout(title_in(item.title, lang)[1], lang, f"{back}?paid=1", back,
                                    (self.clock() // 1_000_000) + PAYMENT_HOLD_SECONDS)  # fmt: skip
                intent = self._payments().create_checkout(row["cash_cents"], stripe_key(row, "checkout"), metadata,
                                                          checkout)  # fmt: skip
                started = {"checkout_session_id": intent.id, "checkout_url": intent.url}
        except (PaymentProviderUnavailable, CardPaymentsUnavailable) as exc:
            if self._fail(row, exc.code, when_held=None):
                raise
            return None
        if self._move(row, ("reserved",), "awaiting_payment", hold=row["hold"], **started):
            return self._find(row["id"])
        current = self._find(row["id"]) or {}
        if intent.id not in (current.get("checkout_session_id"), current.get("payment_intent_id")):
            self._cancel_quietly(row, intent.id)  # the attempt failed meanwhile: nobody may pay this intent
        return None

    def _complete(self, row: dict[str, Any]) -> dict[str, Any] | None:
        if not self._move(row, ("reserved",), "completed", hold=row["hold"]):
            return None
        return self._find(row["id"])

    # --- the card payment's outcome (webhooks) --------------------------------------------------

    def payment_succeeded(self, intent_id: str, amount_cents: int, paid_by: str | None = None) -> str:
        """Capture the hold; if the hold is gone (expired, voided), refund the card instead. A Checkout
        Session's PaymentIntent (`paid_by`) is kept on the row: a dispute names its charge."""
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
            kept: dict[str, Any] = {"payment_intent_id": paid_by} if paid_by and not row["payment_intent_id"] else {}
            self._move(row, ("awaiting_payment",), "completed", **kept)
            return "completed"
        if row["status"] == "cancelled":  # paid after we gave up on it: the unit is no longer held
            self._refund(row)
            self._move(row, ("cancelled",), "refunded")
            return "refunded"
        return "unchanged"

    def payment_failed(self, intent_id: str) -> str:
        """Failed, canceled or expired: cancel the intent (so it cannot succeed later), void the hold, release.
        Stripe not answering raises before anything changed."""
        with self.engine.connect() as conn:
            row = store.redemption_by_payment(conn, intent_id)
        if row is None or row["status"] != "awaiting_payment":
            return "ignored" if row is None else "unchanged"
        intent = self._payments().cancel(intent_id, stripe_key(row, "cancel"))
        if intent.status == "succeeded":
            return self.payment_succeeded(intent_id, intent.amount_cents)
        self._roll_back(row, "awaiting_payment", "cancelled")
        return "cancelled"

    def cancel(self, resident_id: str, redemption_id: str, lang: str = "fr") -> schemas.Redemption:
        """The resident abandons a card payment they have not made."""
        row = self._own(resident_id, redemption_id)
        if row["status"] != "awaiting_payment":
            raise RedemptionNotPending("only a redemption awaiting its payment can be cancelled", status=row["status"])
        outcome = self.payment_failed(payment_id(row))
        if outcome == "completed":
            raise RedemptionNotPending("the payment went through meanwhile", status="completed")
        cancelled: dict[str, Any] = self._find(redemption_id)  # type: ignore[assignment]
        return msgspec.structs.replace(self._view(cancelled, lang), receipts=self._receipts(cancelled))

    def paid(self, resident_id: str, redemption_id: str, lang: str = "fr") -> schemas.Redemption:
        """The resident is back from the hosted page saying it is paid: ask Stripe rather than wait for
        the webhook, and capture if it is (the same step as the webhook's, so whichever comes first
        does it and the other changes nothing). Not paid (yet): the redemption as it stands."""
        row = self._own(resident_id, redemption_id)
        if row["status"] == "awaiting_payment":
            found = self._payments().retrieve(payment_id(row))
            if found.status == "succeeded":
                self.payment_succeeded(found.id, found.amount_cents, found.payment_intent)
                row = self._own(resident_id, redemption_id)
        return msgspec.structs.replace(self._view(row, lang), receipts=self._receipts(row))

    def _receipts(self, row: dict[str, Any]) -> builtins.list[Receipt]:
        """The resident's receipts of this attempt's ledger groups, as far as the journal has them: the
        hold, then its capture or its void (each step's transfer ids derive from its key)."""
        holds = [(ledger, transfer_id) for ledger, transfer_id in self._hold_pairs(row)]
        steps = [
            [(ledger, transfer_id_for(ledger, step_key(row, step))) for ledger, _ in holds]
            for step in ("capture", "void")
        ]
        with self.engine.connect() as conn:
            found = journal.transfers(conn, holds + [pair for pairs in steps for pair in pairs])
        return [
            receipt_of_rows([found[p] for p in pairs]) for pairs in (holds, *steps) if all(p in found for p in pairs)
        ]

    # --- recovery -------------------------------------------------------------------------------

    def recover(self) -> dict[str, Any]:
        """Finish or undo what a crash or a silent payment left: bounded work, safe to run any time.
        An unpaid payment that cannot be cancelled now (Stripe not answering) is deferred to the next run."""
        now = self.clock()
        counts = {"reserved": 0, "awaiting_payment": 0, "failed": 0, "deferred": 0}
        with self.engine.connect() as conn:
            stale = store.stale_redemptions(conn, "reserved", now - RESERVED_GRACE_SECONDS * 1_000_000, MAX_RECOVER)
            unpaid = store.stale_redemptions(
                conn, "awaiting_payment", now - PAYMENT_HOLD_SECONDS * 1_000_000, MAX_RECOVER
            )
            failed = store.failed_with_hold(conn, MAX_RECOVER)
        for row in stale:
            self._recover_reserved(row)
            counts["reserved"] += 1
        for row in unpaid:
            try:
                self.payment_failed(payment_id(row))
            except (PaymentProviderUnavailable, CardPaymentsUnavailable) as exc:
                log.warning("unpaid redemption %s: not cancelled yet (%s)", row["id"], exc.code)
                counts["deferred"] += 1
            else:
                counts["awaiting_payment"] += 1
        for row in failed:
            self._settle_failed(row)
            counts["failed"] += 1
        return counts

    def _recover_reserved(self, row: dict[str, Any]) -> None:
        """An attempt nobody finished: a captured hold completes it, a claimed points-only hold is
        carried forward, anything else fails (stock given back, hold voided)."""
        item, claimed = self._item(row), bool(row["hold"])
        row = row | {"hold": self._hold_pairs(row, item)}
        state = self._hold_state(row)
        if state == "post" or (state == "open" and claimed and not item.card_payment and self._captured(row)):
            self._complete(row)
            return
        self._fail(row, ABANDONED, when_held=None if claimed else False)

    # --- reading --------------------------------------------------------------------------------

    def get(self, resident_id: str, redemption_id: str, lang: str = "fr") -> schemas.Redemption:
        return self._view(self._own(resident_id, redemption_id), lang)

    def list(self, resident_id: str, before_us: int | None, limit: int, lang: str = "fr") -> schemas.RedemptionPage:
        if not 1 <= limit <= MAX_REDEMPTION_PAGE:
            raise InvalidRequest(f"limit is 1 to {MAX_REDEMPTION_PAGE}", field="limit", reason="out_of_range", min_value=1,
                                 max_value=MAX_REDEMPTION_PAGE)  # fmt: skip
        with self.engine.connect() as conn:
            rows = store.redemptions_of(conn, resident_id, before_us if before_us is not None else 2**62, limit)
        views = self._views(rows, lang)
        return schemas.RedemptionPage(
            redemptions=views, next_before_us=views[-1].created_at_us if len(views) == limit else None
        )

    def _view(self, row: dict[str, Any], lang: str) -> schemas.Redemption:
        return self._views([row], lang)[0]

    def _views(self, rows: builtins.list[dict[str, Any]], lang: str) -> builtins.list[schemas.Redemption]:
        with self.engine.connect() as conn:
            redeemed = store.redeemed_items(conn, {r["item_id"] for r in rows})
        return [redemption_view(r, redeemed[r["item_id"]], lang) for r in rows]

    def _own(self, resident_id: str, redemption_id: str) -> dict[str, Any]:
        row = self._find(redemption_id) if isinstance(redemption_id, str) else None
        if row is None or row["resident_id"] != resident_id:
            raise UnknownRedemption("no such redemption")
        return row

    # --- steps ----------------------------------------------------------------------------------

    def _payments(self) -> CardPayments:
        if self.payments is None:  # the key was removed while a card payment was under way
            raise CardPaymentsUnavailable("card payments are not configured")
        return self.payments

    def _item(self, row: dict[str, Any]) -> Item:
        with self.engine.connect() as conn:
            return Item.from_row(store.item(conn, row["item_id"]))  # type: ignore[arg-type]

    def _hold_requests(
        self, row: dict[str, Any], item: Item, timeout_seconds: int = 1
    ) -> builtins.list[TransferRequest]:
        """The hold of the row's attempt, derived from the row alone: ids follow from the idempotency key."""
        wallet = accounts.wallet(row["resident_id"])
        return hold_transfers(item, row["home_city"], wallet, step_key(row, "hold"), row["points"], timeout_seconds)

    def _hold_pairs(self, row: dict[str, Any], item: Item | None = None) -> builtins.list[builtins.list[str]]:
        return [[r.ledger, r.transfer_id] for r in self._hold_requests(row, item or self._item(row))]

    def _hold_state(self, row: dict[str, Any]) -> str:
        """How the attempt's hold stands in the journal: none (never written), open, post, closed (voided
        or expired), or lapsed (past its expiry, which the ledger writes at its next append there)."""
        pairs = [(ledger, transfer_id) for ledger, transfer_id in row["hold"]]
        if not pairs:
            return "none"
        with self.engine.connect() as conn:
            written = journal.transfers(conn, pairs)
            resolved = set(journal.resolutions(conn, pairs).values())
        if not written:
            return "none"
        if "post" in resolved:
            return "post"
        if resolved or len(written) < len(pairs):
            return "closed"
        now = self.clock()
        return (
            "lapsed"
            if any(w["expires_at_us"] is not None and w["expires_at_us"] <= now for w in written.values())
            else "open"
        )

    def _resolve(self, row: dict[str, Any], phase: Phase) -> None:
        action, kind = "capture" if phase == "post" else "void", self._item(row).transfer_kind()
        requests = [TransferRequest(ledger, step_key(row, action), kind, phase, ref=transfer_id)
                    for ledger, transfer_id in row["hold"]]  # fmt: skip
        self.committer.transfer(*requests)

    def _captured(self, row: dict[str, Any]) -> bool:
        try:
            self._resolve(row, "post")
        except LedgerError:
            return False
        return True

    def _void_if_open(self, row: dict[str, Any]) -> None:
        """Void the hold if it still reserves points; a lapsed one is asked too, so that the ledger
        writes its expiry now and the points show as free at once."""
        if self._hold_state(row) not in ("open", "lapsed"):
            return
        try:
            self._resolve(row, "void")
        except LedgerError as exc:  # it expired or closed meanwhile; what matters is that it is not open
            log.info("void of redemption %s: %s", row["id"], exc.code)

    def _void_if_dead(self, row: dict[str, Any]) -> None:
        """After a lost claim: void this attempt's hold if the attempt is over (failed, or a later one runs)."""
        current = self._find(row["id"])
        if current is not None and (current["status"] == "failed" or current["attempt"] != row["attempt"]):
            self._void_if_open(row)

    def _fail(self, row: dict[str, Any], error: str, when_held: bool | None) -> bool:
        """End a `reserved` attempt as failed: the row is claimed and the stock and allowance given back
        in one transaction, then the hold is voided. False if a concurrent call moved the row first."""
        hold = self._hold_pairs(row)
        if not self._release(row, "reserved", "failed", when_held=when_held, error=error[:200], hold=hold):
            return False
        self._settle_failed(row | {"hold": hold})
        return True

    def _settle_failed(self, row: dict[str, Any]) -> None:
        """A failed attempt holds nothing: void its hold if still open, then forget it (hold NULL)."""
        self._void_if_open(row | {"hold": self._hold_pairs(row)})
        if row["hold"]:
            self._move(row, ("failed",), None, when_held=True, hold=None)

    def _roll_back(self, row: dict[str, Any], from_status: str, to_status: str) -> None:
        """Void the hold unless it was captured, then give the stock back."""
        self._void_if_open(row)
        if self._hold_state(row) == "post":
            log.error("redemption %s: the hold was captured; it is not rolled back", row["id"])
            self._move(row, (from_status,), "completed", hold=row["hold"])
            return
        self._release(row, from_status, to_status)

    def _release(self, row: dict[str, Any], from_status: str, to_status: str, *, when_held: bool | None = None,
                 **values: object) -> bool:  # fmt: skip
        """Close the row (compare-and-set) and give the units and the allowance back, in one transaction."""
        now = self.clock()
        with self.engine.begin() as conn:
            if not store.move_redemption(conn, row["id"], (from_status,), now, when_attempt=row["attempt"],
                                         when_held=when_held, status=to_status, **values):  # fmt: skip
                return False  # someone else settled it
            back_in_stock = give_back_units(conn, row, now)
        if back_in_stock:
            self.indexer.deliver_quietly()
        return True

    def _refund(self, row: dict[str, Any]) -> None:
        self._payments().refund(payment_id(row), stripe_key(row, "refund"))

    def _cancel_quietly(self, row: dict[str, Any], intent_id: str) -> None:
        try:
            self._payments().cancel(intent_id, stripe_key(row, "cancel"))
        except LedgerError as exc:  # unpaid and unknown to the resident: it lapses at Stripe
            log.warning("intent %s of failed redemption %s not cancelled: %s", intent_id, row["id"], exc.code)

    def _move(self, row: dict[str, Any], from_status: tuple[str, ...], to_status: str | None, *,
              when_held: bool | None = None, **values: object) -> bool:  # fmt: skip
        """Compare-and-set on status and attempt; `to_status` None keeps the status (a claim)."""
        if to_status is not None:
            values["status"] = to_status
        with self.engine.begin() as conn:
            return store.move_redemption(conn, row["id"], from_status, self.clock(), when_attempt=row["attempt"],
                                         when_held=when_held, **values)  # fmt: skip


def _take_stock(conn: Connection, item: Item, resident_id: str, units: int, now_us: int) -> bool:
    """Take the units and the resident's allowance, or raise (the caller's transaction rolls back).
    True when this took the last unit."""
    left = store.take_stock(conn, item.id, units)
    if left is False:
        raise SoldOut("not enough left", item_id=item.id)
    limit = item.per_resident_limit
    if limit is not None and not store.take_allowance(conn, item.id, resident_id, units, limit):
        raise ResidentLimitReached("the resident's limit for this item is reached", item_id=item.id, limit=limit)
    if left == 0:
        emit(conn, item.id, now_us)  # sold out: "available now" searches stop showing it
    return left == 0


def payment_id(row: dict[str, Any]) -> str:
    """The Stripe object that pays for the row's attempt (it has one): its Checkout Session, else its PaymentIntent."""
    found = row["checkout_session_id"] or row["payment_intent_id"]
    assert isinstance(found, str), row["id"]
    return found


def _voucher() -> str:
    return "".join(secrets.choice(VOUCHER_ALPHABET) for _ in range(10))
