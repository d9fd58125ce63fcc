"""Paying merchants from a durable queue, exactly once, and reconciling statements, payouts and bank file.

A payout is one merchant's positive net for one closed period. Its state moves
`queued → transferred → in_transit → paid | failed`; each step is one Stripe call under a fixed
idempotency key, recorded in the database only after Stripe answered. A worker claims a payout with
a lease: if it crashes mid-call or Stripe times out, the lease runs out, another attempt makes the
same call with the same key, and Stripe answers with the object it already made. Webhooks (payout
paid or failed), verified on the raw body, finish the state machine; redelivered events change nothing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any, Literal

import msgspec
import stripe
from sqlalchemy import Connection, Engine

from community.adapters import store as community_store
from community.domain.access import SecondPrincipalRequired, identity
from community.domain.errors import NotFound
from community.domain.program import is_bank_account
from finance.adapters import exports, store
from finance.adapters.stripe_connect import RETRYABLE, StripeConnect, account_from_event, verified_event
from finance.schemas import (
    Difference,
    Payout,
    PayoutAccountChange,
    PayoutAccountChanges,
    PayoutList,
    PayoutsQueued,
    PayoutWebhookAck,
    Reconciliation,
    Statement,
)
from finance.service_layer.connect import record_account
from finance.service_layer.settlement import Settlement
from ledger.adapters import idempotency
from ledger.domain.errors import InvalidRequest, LedgerError
from ledger.service_layer.audit_trail import AuditTrail
from marketplace.domain.errors import InvalidWebhook
from merchants.adapters.tables import MERCHANTS

LEASE_SECONDS = 120  # longer than a Stripe call may take
MAX_ATTEMPTS = 8
BACKOFF_SECONDS = (5, 30, 120, 600, 1_800, 3_600, 3_600, 3_600)
MAX_PAYOUTS_PER_RUN = 1_000


class PaymentsDisabled(LedgerError):
    code = "payments_disabled"


class InvalidBankFile(LedgerError):
    """A bank file that cannot be read safely, is not a pain.001, or is another city's or period's."""

    code = "invalid_bank_file"


class UnknownChange(LedgerError):
    code = "unknown_change"


class ChangeNotPending(LedgerError):
    code = "change_not_pending"


def _masked(change: dict[str, Any]) -> PayoutAccountChange:
    """A payout account change as shown and audited: the account number reduced to its last three digits."""
    return msgspec.convert(change | {"account_number": "…" + change["account_number"][-3:]}, PayoutAccountChange)


class Payouts:
    def __init__(self, engine: Engine, settlement: Settlement, gateway: StripeConnect | None, webhook_secret: str | None,
                 audit: AuditTrail, clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.settlement, self.gateway, self.webhook_secret, self.audit, self.clock = (
            engine, settlement, gateway, webhook_secret, audit, clock)  # fmt: skip

    # --- payout accounts: proposed by one person, confirmed by another -------------------------

    def propose_account(
        self, city: str, merchant_id: str, account: dict[str, Any], actor: str, *, key: str
    ) -> PayoutAccountChange:
        """Propose where a merchant is paid (bank account for pain.001, Stripe connected account).

        Nothing pays to it until a second principal confirms it (`decide_account`): a single
        finance credential, stolen or misused, cannot divert a payout. A newer proposal for the
        same merchant supersedes a pending one. Audited, the account number masked. A retry with the
        same idempotency `key` returns the first proposal and supersedes nothing.
        """
        if not is_bank_account(account.get("institution"), account.get("transit"), account.get("account_number")):
            raise InvalidRequest(
                "institution: 3 digits, transit: 5 digits, account_number: 7 to 12 digits",
                field="account",
                reason="invalid_value",
            )
        stripe_account = account.get("stripe_account_id")
        if stripe_account is not None and not re.fullmatch(r"acct_[A-Za-z0-9]{1,60}", stripe_account):
            raise InvalidRequest(
                "stripe_account_id looks like acct_…", field="stripe_account_id", reason="invalid_value"
            )
        now = self.clock()
        with self.engine.begin() as conn:
            return idempotency.once(conn, f"{city}:{actor}:finance.propose_payout_account", key,
                                    {"merchant_id": merchant_id, "account": account}, PayoutAccountChange,
                                    lambda: self._propose(conn, city, merchant_id, account, actor, now), now)  # fmt: skip

    def _propose(
        self, conn: Connection, city: str, merchant_id: str, account: dict[str, Any], actor: str, now: int
    ) -> PayoutAccountChange:
        merchant = community_store.member(conn, MERCHANTS, merchant_id)
        if merchant is None or merchant["city"] != city:
            raise NotFound(f"no merchant {merchant_id!r} in {city}")
        store.supersede_account_changes(conn, merchant_id, actor, now)
        change = {"id": "pc" + secrets.token_hex(10), "city": city, "merchant_id": merchant_id,
                  "holder_name": str(account.get("holder_name") or merchant["name"])[:140],
                  "institution": account["institution"], "transit": account["transit"],
                  "account_number": account["account_number"], "stripe_account_id": account.get("stripe_account_id"),
                  "status": "pending", "proposed_by": actor, "proposed_at_us": now}  # fmt: skip
        store.add_account_change(conn, **change)
        view = _masked(store.account_change(conn, change["id"]))  # type: ignore[arg-type]
        self.audit.record(conn, actor=actor, action="payouts.propose_account", city=city, target=merchant_id,
                          before=None, after=msgspec.to_builtins(view), now_us=now)  # fmt: skip
        return view

    def decide_account(self, city: str, change_id: str, decision: str, actor: str) -> PayoutAccountChange:
        """Confirm (a principal other than the proposer) or reject (anyone of finance, the proposer
        too) a proposed payout account; a confirmed one replaces the merchant's account at once."""
        assert decision in ("confirm", "reject")
        now = self.clock()
        with self.engine.begin() as conn:
            change = store.account_change(conn, change_id, for_update=True) if isinstance(change_id, str) else None
            if change is None or change["city"] != city:
                raise UnknownChange("no such payout account change in this city")
            if change["status"] != "pending":
                raise ChangeNotPending("this change was already decided", status=change["status"])
            if decision == "confirm" and identity(actor) == identity(change["proposed_by"]):
                raise SecondPrincipalRequired("the proposer cannot confirm their own change")
            status = "confirmed" if decision == "confirm" else "rejected"
            if not store.decide_account_change(conn, change_id, status, actor, now):
                raise ChangeNotPending("this change was decided meanwhile", status="decided")
            if status == "confirmed":
                columns = (
                    "merchant_id",
                    "holder_name",
                    "institution",
                    "transit",
                    "account_number",
                    "stripe_account_id",
                )
                store.set_payout_account(conn, **{k: change[k] for k in columns})
            view = _masked(store.account_change(conn, change_id))  # type: ignore[arg-type]
            self.audit.record(conn, actor=actor, action=f"payouts.{decision}_account", city=city, target=change["merchant_id"],
                              before={"status": "pending"}, after=msgspec.to_builtins(view), now_us=now)  # fmt: skip
        return view

    def account_changes(self, city: str, status: str | None = "pending") -> PayoutAccountChanges:
        """The city's payout account changes in `status` (None: all), newest first."""
        with self.engine.connect() as conn:
            return PayoutAccountChanges(changes=[_masked(c) for c in store.account_changes(conn, city, status)])

    def queue(self, city: str, period: str, actor: str) -> PayoutsQueued:
        """Queue a payout for every merchant the closed statement owes; queuing again adds nothing."""
        statement = self.settlement.closed_statement(city, period)
        owed = [line for line in statement.merchants if line.net_cents > 0]
        now = self.clock()
        with self.engine.begin() as conn:
            destinations = store.stripe_destinations(conn, [line.merchant_id for line in owed])
            queued, without_account = 0, []
            for line in owed:
                if line.merchant_id not in destinations:
                    without_account.append(line.merchant_id)
                    continue
                queued += store.add_payout(conn, id=f"{city}:{period}:{line.merchant_id}", city=city, period=period,
                                           merchant_id=line.merchant_id, amount_cents=line.net_cents, status="queued",
                                           attempts=0, lease_until_us=now, created_at_us=now, updated_at_us=now)  # fmt: skip
            self.audit.record(conn, actor=actor, action="payouts.queue", city=city, target=period, before=None,
                                  after={"queued": queued, "without_account": without_account}, now_us=now)  # fmt: skip
        return PayoutsQueued(queued=queued, without_account=without_account)

    # --- the worker -----------------------------------------------------------------------------

    def run(self, city: str, max_payouts: int = MAX_PAYOUTS_PER_RUN) -> dict[str, int]:
        """Advance the city's due payouts one Stripe call at a time; returns how many steps ended how.
        One city only, always: a job that pays every city calls this once per city."""
        gateway = self.gateway
        if gateway is None:
            raise PaymentsDisabled("card payments and payouts are off (no Stripe key configured)")
        counts = {"advanced": 0, "retry_later": 0, "failed": 0}
        for _ in range(max_payouts):
            with self.engine.begin() as conn:
                payout = store.claim_payout(conn, city, self.clock(), LEASE_SECONDS * 1_000_000)
                account = (
                    store.stripe_destinations(conn, [payout["merchant_id"]]).get(payout["merchant_id"])
                    if payout
                    else None
                )
            if payout is None:
                break
            assert account is not None  # a payout is queued only for a merchant with a Stripe account
            counts[self._advance(gateway, payout, account)] += 1
        return counts

    def _advance(self, gateway: StripeConnect, payout: dict[str, Any], stripe_account: str) -> str:
        """One Stripe call for this payout, then its new state; the call is repeated safely after a crash."""
        metadata = {"entraide_payout_id": payout["id"], "city": payout["city"], "period": payout["period"]}
        key = f"entraide-payout-{payout['id']}"
        try:
            if payout["status"] == "queued":
                transfer_id = gateway.transfer(
                    payout["amount_cents"], "CAD", stripe_account, f"{key}-transfer", metadata
                )
                return self._update(
                    payout, status="transferred", stripe_transfer_id=transfer_id, lease_until_us=self.clock()
                )
            payout_id = gateway.payout(payout["amount_cents"], "CAD", stripe_account, f"{key}-payout", metadata)
            return self._update(payout, status="in_transit", stripe_payout_id=payout_id)
        except RETRYABLE as exc:
            if payout["attempts"] >= MAX_ATTEMPTS:
                return self._update(payout, status="failed", last_error=f"gave up: {exc}"[:500], result="failed")
            delay = BACKOFF_SECONDS[min(payout["attempts"], len(BACKOFF_SECONDS)) - 1]
            return self._update(payout, last_error=str(exc)[:500], lease_until_us=self.clock() + delay * 1_000_000,
                                result="retry_later")  # fmt: skip
        except stripe.StripeError as exc:  # refused for good (bad account, invalid request): a person must look
            return self._update(payout, status="failed", last_error=str(exc)[:500], result="failed")

    def _update(self, payout: dict[str, Any], result: str = "advanced", **values: object) -> str:
        with self.engine.begin() as conn:
            store.update_payout(conn, payout["id"], self.clock(), **values)
        return result

    # --- webhooks -------------------------------------------------------------------------------

    def webhook(self, payload: bytes, signature_header: str | None) -> PayoutWebhookAck:
        """Apply a Stripe Connect event (payout.paid, payout.failed, account.updated) once; anything else
        is acknowledged."""
        if self.webhook_secret is None:
            raise PaymentsDisabled("payout webhooks are off (no webhook secret configured)")
        try:
            event = verified_event(payload, signature_header or "", self.webhook_secret)
        except (stripe.SignatureVerificationError, ValueError):
            raise InvalidWebhook("the webhook signature does not verify") from None
        obj = event.data.object.to_dict()
        if event.type == "account.updated":
            return self._account_updated(event.id, event.type, obj)
        if event.type not in ("payout.paid", "payout.failed"):
            return PayoutWebhookAck(event=event.id, applied=False)
        with self.engine.begin() as conn:
            if not store.record_event(conn, event.id, event.type, self.clock()):
                return PayoutWebhookAck(event=event.id, applied=False, duplicate=True)
            payout = store.payout(conn, (obj.get("metadata") or {}).get("entraide_payout_id", ""), for_update=True)
            if payout is None or payout["stripe_payout_id"] not in (None, obj.get("id")):
                return PayoutWebhookAck(event=event.id, applied=False)
            status: Literal["paid", "failed"] = "paid" if event.type == "payout.paid" else "failed"
            error = (
                None
                if status == "paid"
                else str(obj.get("failure_message") or obj.get("failure_code") or "failed")[:500]
            )
            store.update_payout(
                conn, payout["id"], self.clock(), status=status, stripe_payout_id=obj.get("id"), last_error=error
            )
        return PayoutWebhookAck(event=event.id, applied=True, payout=payout["id"], status=status)

    def _account_updated(self, event_id: str, event_type: str, obj: dict[str, Any]) -> PayoutWebhookAck:
        """What Stripe now says of a merchant's connected account (payouts enabled or not), once per event."""
        account = account_from_event(obj)
        if account is None:
            return PayoutWebhookAck(event=event_id, applied=False)
        with self.engine.begin() as conn:
            if not store.record_event(conn, event_id, event_type, self.clock()):
                return PayoutWebhookAck(event=event_id, applied=False, duplicate=True)
            applied = record_account(conn, self.audit, account, "stripe:account.updated", self.clock())
        return PayoutWebhookAck(event=event_id, applied=applied, account=account.id if applied else None)

    def list(self, city: str, period: str) -> PayoutList:
        """A period's payouts, by merchant."""
        with self.engine.connect() as conn:
            return PayoutList(payouts=[msgspec.convert(p, Payout) for p in store.payouts(conn, city, period)])

    # --- reconciliation -------------------------------------------------------------------------

    def reconcile(self, city: str, period: str, bank_file: bytes | None = None) -> Reconciliation:
        """Statement vs payouts vs bank file (pain.001), merchant by merchant; lists every difference."""
        statement = self.settlement.closed_statement(city, period)
        owed = {line.merchant_id: line.net_cents for line in statement.merchants if line.net_cents > 0}
        paid = {p.merchant_id: p for p in self.list(city, period).payouts}
        bank = _bank_transfers(bank_file, statement) if bank_file is not None else None
        differences = []
        for merchant in sorted(set(owed) | set(paid) | set(bank or {})):
            expected, payout = owed.get(merchant), paid.get(merchant)
            if expected is None:
                differences.append(Difference(merchant_id=merchant, issue="paid_without_statement"))
            elif payout is not None and payout.amount_cents != expected:
                differences.append(Difference(merchant_id=merchant, issue="payout_amount", statement_cents=expected,
                                              payout_cents=payout.amount_cents))  # fmt: skip
            elif payout is not None and payout.status == "failed":
                differences.append(Difference(merchant_id=merchant, issue="payout_failed", error=payout.last_error))
            elif payout is None and bank is None:
                differences.append(Difference(merchant_id=merchant, issue="not_paid", statement_cents=expected))
            if bank is not None and expected is not None and bank.get(merchant) != expected:
                differences.append(Difference(merchant_id=merchant, issue="bank_file_amount", statement_cents=expected,
                                              bank_cents=bank.get(merchant)))  # fmt: skip
        return Reconciliation(
            city=city, period=period, statement_cents=sum(owed.values()),
            payouts_cents=sum(p.amount_cents for p in paid.values() if p.status != "failed"),
            paid_cents=sum(p.amount_cents for p in paid.values() if p.status == "paid"),
            bank_file_cents=None if bank is None else sum(bank.values()), differences=differences,
        )  # fmt: skip


def _bank_transfers(document: bytes, statement: Statement) -> dict[str, int]:
    """Merchant → cents from the city's pain.001 file of the period (end-to-end ids `<period>-<merchant>`)."""
    try:
        bank = exports.read_pain001(document)
    except exports.BankFileError as exc:
        raise InvalidBankFile(str(exc), reason="unreadable_bank_file") from None
    expected = exports.pain001_message_id(statement)
    if bank.message_id != expected:
        problem = f"this is the bank file {bank.message_id!r}, not {expected!r}"
        raise InvalidBankFile(
            problem, reason="wrong_bank_file", message_id=bank.message_id, expected_message_id=expected
        )
    found: dict[str, int] = {}
    for transfer in bank.transfers:
        merchant = transfer.end_to_end_id.removeprefix(f"{statement.period}-")
        if merchant == transfer.end_to_end_id or transfer.currency != statement.currency:
            problem = f"a transfer that is not of {statement.period} in {statement.currency}: {transfer.end_to_end_id}"
            raise InvalidBankFile(problem, reason="foreign_transfer", end_to_end_id=transfer.end_to_end_id)
        found[merchant] = found.get(merchant, 0) + transfer.amount_cents
    return found
