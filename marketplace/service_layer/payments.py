"""Stripe webhooks: verify, remember, and hand the payment's outcome to the redemption it pays for.

`payment_intent.*` events (API clients' payments) and `checkout.session.*` events (the wallet's
pages) settle redemptions; `charge.dispute.*` events record the card payment's dispute for finance
(`disputes`); anything else is acknowledged and ignored (Stripe stops resending what we answer
2xx). A session's own PaymentIntent is no redemption's: its `payment_intent.*` events are ignored. A
redelivered event is recognised by its id and changes nothing;
even without that record, every step it triggers is idempotent (state compare-and-set, ledger
idempotency keys, Stripe idempotency keys), so a crash between two steps is repaired by the redelivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import Engine

from marketplace.adapters import store
from marketplace.domain.errors import CardPaymentsUnavailable, InvalidWebhook
from marketplace.schemas import Dispute, DisputeList, WebhookAck, WebhookOutcome
from marketplace.service_layer.redemptions import CardPayments, Redemptions

SUCCESSES = ("payment_intent.succeeded", "checkout.session.completed", "checkout.session.async_payment_succeeded")
FAILURES = ("payment_intent.payment_failed", "payment_intent.canceled", "checkout.session.expired",
            "checkout.session.async_payment_failed")  # fmt: skip
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
                  "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated")  # fmt: skip
MAX_DISPUTES_LISTED = 1_000


def _paid(event_type: str, paid: dict[str, Any]) -> bool:
    """A session completes when the card is taken, or before a delayed method settles (then `unpaid`)."""
    return not event_type.startswith("checkout.") or paid.get("payment_status") in ("paid", "no_payment_required")


def _amount_cents(paid: dict[str, Any]) -> int:
    amount = paid.get("amount_total") if "amount_total" in paid else paid.get("amount")
    return amount if type(amount) is int else 0


class PaymentEvents:
    def __init__(
        self, engine: Engine, payments: CardPayments | None, redemptions: Redemptions, clock: Callable[[], int]
    ) -> None:
        self.engine, self.payments, self.redemptions, self.clock = engine, payments, redemptions, clock

    def handle(self, raw_body: bytes, signature_header: str | None) -> WebhookAck:
        if self.payments is None:
            raise CardPaymentsUnavailable("card payments are not configured")
        event = self.payments.verify_webhook(raw_body, signature_header)
        event_id, event_type = event.get("id"), event.get("type")
        intent = (event.get("data") or {}).get("object") or {}
        if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(intent, dict):
            raise InvalidWebhook("the event has no id, type or object", reason="payload")
        if event_type in DISPUTE_EVENTS:
            return WebhookAck(event=event_id, outcome=self._dispute(event_id, event_type, event.get("created"), intent))
        with self.engine.connect() as conn:
            seen = store.payment_event_seen(conn, event_id)
        if seen:
            return WebhookAck(event=event_id, outcome="duplicate")
        outcome = "ignored"
        if event_type in SUCCESSES and isinstance(intent.get("id"), str) and _paid(event_type, intent):
            paid_by = intent.get("payment_intent") if event_type.startswith("checkout.") else None
            outcome = self.redemptions.payment_succeeded(intent["id"], _amount_cents(intent),
                                                         paid_by if isinstance(paid_by, str) else None)  # fmt: skip
        elif event_type in FAILURES and isinstance(intent.get("id"), str):
            outcome = self.redemptions.payment_failed(intent["id"])
        with self.engine.begin() as conn:
            store.claim_payment_event(conn, event_id[:255], event_type[:100], self.clock())
        return WebhookAck(event=event_id, outcome=outcome)  # type: ignore[arg-type]

    def _dispute(self, event_id: str, event_type: str, event_created_s: object, obj: dict[str, Any]) -> WebhookOutcome:
        """Record the dispute's state, with the event in the same transaction: once per event, and an
        event older than the one the dispute holds changes nothing (Stripe does not keep their order)."""
        dispute = _dispute_fields(obj, event_created_s)
        if dispute is None:
            return "ignored"
        now = self.clock()
        with self.engine.begin() as conn:
            if not store.claim_payment_event(conn, event_id[:255], event_type[:100], now):
                return "duplicate"
            redemption = store.redemption_by_payment(conn, dispute["payment_intent_id"] or "")
            item = store.item(conn, redemption["item_id"]) if redemption else None
            withdrawn = {"charge.dispute.funds_withdrawn": True, "charge.dispute.funds_reinstated": False}.get(
                event_type
            )
            closed_at = now if event_type == "charge.dispute.closed" else None
            changes = {"status": dispute["status"], "amount_cents": dispute["amount_cents"],
                       "reason": dispute["reason"], "evidence_due_by_us": dispute["evidence_due_by_us"],
                       "event_created_s": dispute["event_created_s"], "updated_at_us": now}  # fmt: skip
            changes |= {} if withdrawn is None else {"funds_withdrawn": withdrawn}
            changes |= {} if closed_at is None else {"closed_at_us": closed_at}
            store.record_dispute(conn, dispute | {"redemption_id": redemption and redemption["id"],
                                                  "city": redemption and redemption["city"],
                                                  "merchant_id": item and item["merchant_id"],
                                                  "funds_withdrawn": bool(withdrawn), "updated_at_us": now,
                                                  "closed_at_us": closed_at}, changes)  # fmt: skip
        return "dispute_recorded"

    def disputes(self, city: str, limit: int = MAX_DISPUTES_LISTED) -> DisputeList:
        """The city's card payment disputes, newest first, each with its redemption and merchant."""
        with self.engine.connect() as conn:
            rows = store.disputes(conn, city, min(limit, MAX_DISPUTES_LISTED))
        fields = set(Dispute.__struct_fields__)
        return DisputeList(city=city, disputes=[msgspec.convert({k: v for k, v in r.items() if k in fields}, Dispute)
                                                for r in rows])  # fmt: skip


def _dispute_fields(obj: dict[str, Any], event_created_s: object) -> dict[str, Any] | None:
    """A dispute object's fields as stored, or None if it is not a dispute (a signed event: no more checks)."""
    id_, charge, amount = obj.get("id"), obj.get("charge"), obj.get("amount")
    if obj.get("object") != "dispute" or not isinstance(id_, str) or not isinstance(charge, str):
        return None
    if type(amount) is not int or amount < 0 or type(event_created_s) is not int:
        return None
    intent, due = obj.get("payment_intent"), (obj.get("evidence_details") or {}).get("due_by")
    created = obj.get("created")
    return {"id": id_[:64], "charge_id": charge[:64], "payment_intent_id": intent[:64] if isinstance(intent, str) else None,
            "amount_cents": amount, "currency": str(obj.get("currency") or "")[:3],
            "reason": str(obj.get("reason") or "general")[:64], "status": str(obj.get("status") or "")[:32],
            "evidence_due_by_us": due * 1_000_000 if type(due) is int else None,
            "created_at_us": (created if type(created) is int else event_created_s) * 1_000_000,
            "event_created_s": event_created_s}  # fmt: skip
