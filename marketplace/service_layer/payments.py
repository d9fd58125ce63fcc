"""Stripe webhooks: verify, remember, and hand the payment's outcome to the redemption it pays for.

Only `payment_intent.*` events (API clients' payments) and `checkout.session.*` events (the wallet's
pages) matter here; anything else is acknowledged and ignored (Stripe stops resending what we answer
2xx). A session's own PaymentIntent is no redemption's: its `payment_intent.*` events are ignored. A redelivered event is recognised by its id and changes nothing;
even without that record, every step it triggers is idempotent (state compare-and-set, ledger
idempotency keys, Stripe idempotency keys), so a crash between two steps is repaired by the redelivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from marketplace.adapters import store
from marketplace.domain.errors import CardPaymentsUnavailable, InvalidWebhook
from marketplace.schemas import WebhookAck
from marketplace.service_layer.redemptions import CardPayments, Redemptions

SUCCESSES = ("payment_intent.succeeded", "checkout.session.completed", "checkout.session.async_payment_succeeded")
FAILURES = ("payment_intent.payment_failed", "payment_intent.canceled", "checkout.session.expired",
            "checkout.session.async_payment_failed")  # fmt: skip


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
        with self.engine.connect() as conn:
            seen = store.payment_event_seen(conn, event_id)
        if seen:
            return WebhookAck(event=event_id, outcome="duplicate")
        outcome = "ignored"
        if event_type in SUCCESSES and isinstance(intent.get("id"), str) and _paid(event_type, intent):
            outcome = self.redemptions.payment_succeeded(intent["id"], _amount_cents(intent))
        elif event_type in FAILURES and isinstance(intent.get("id"), str):
            outcome = self.redemptions.payment_failed(intent["id"])
        with self.engine.begin() as conn:
            store.claim_payment_event(conn, event_id[:255], event_type[:100], self.clock())
        return WebhookAck(event=event_id, outcome=outcome)  # type: ignore[arg-type]
