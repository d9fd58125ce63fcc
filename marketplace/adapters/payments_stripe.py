"""Card payments through Stripe, with the official `stripe` library: PaymentIntents and webhook checks.

Every call that creates or changes something carries an idempotency key derived from the
redemption, so a retry (ours, or the library's own network retries) never charges twice. Webhooks
are verified by `stripe.Webhook.construct_event` on the raw body: the library's own HMAC-SHA256
check of `Stripe-Signature` (`t=…,v1=…`) with a five-minute tolerance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import stripe

from marketplace.domain.errors import CardPaymentsUnavailable, InvalidWebhook, PaymentProviderUnavailable

TIMEOUT_SECONDS = 10
NETWORK_RETRIES = 2
MAX_WEBHOOK_BYTES = 64 * 1024
RETRY_AFTER_SECONDS = 5
# Stripe unreachable, timing out, rate limiting or failing on its side: worth trying again later.
UNAVAILABLE = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


@contextmanager
def answered(what: str, every_error: bool = False) -> Iterator[None]:
    """Stripe not answering becomes PaymentProviderUnavailable (a 503 with Retry-After), raised before
    the caller changed anything; with `every_error`, so does any refusal (nothing was started)."""
    try:
        yield
    except stripe.StripeError as exc:
        if not every_error and not isinstance(exc, UNAVAILABLE):
            raise
        raise PaymentProviderUnavailable(
            f"{what}: {type(exc).__name__}", reason="provider_unreachable", retry_after_seconds=RETRY_AFTER_SECONDS
        ) from None


@dataclass(frozen=True)
class Intent:
    """A payment as Stripe holds it: a PaymentIntent (`pi_…`, confirmed by the client with
    `client_secret`) or a Checkout Session (`cs_…`, paid on Stripe's hosted page at `url`). `status`
    is a PaymentIntent's; a session's reads the same way (paid: `succeeded`, expired: `canceled`)."""

    id: str
    client_secret: str | None
    status: str
    amount_cents: int
    url: str | None = None
    payment_intent: str | None = None  # a paid session's PaymentIntent (its charge is what a dispute names)


def is_checkout(payment_id: str) -> bool:
    return payment_id.startswith("cs_")


@dataclass(frozen=True)
class Checkout:
    """What Stripe's hosted page shows and where it sends the resident back (absolute https URLs of ours)."""

    title: str
    locale: str  # fr, en or es: the hosted page speaks the resident's language
    success_url: str
    cancel_url: str
    expires_at_s: int


class StripeCardPayments:
    def __init__(self, api_key: str, webhook_secret: str | None, api_base: str | None = None, currency: str = "cad",
                 network_retries: int = NETWORK_RETRIES) -> None:  # fmt: skip
        self.webhook_secret = webhook_secret
        self.currency = currency
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,  # a local emulator in tests
            max_network_retries=network_retries,
            http_client=stripe.new_default_http_client(timeout=TIMEOUT_SECONDS),
        )

    @staticmethod
    def _intent(found: stripe.PaymentIntent) -> Intent:
        return Intent(found.id, found.client_secret, found.status, found.amount)

    def create_intent(self, amount_cents: int, idempotency_key: str, metadata: dict[str, str]) -> Intent:
        assert type(amount_cents) is int and amount_cents > 0
        params = {"amount": amount_cents, "currency": self.currency, "metadata": metadata,
                  "payment_method_types": ["card"]}  # fmt: skip
        with answered("the card payment could not be started", every_error=True):
            found = self.client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})  # type: ignore[arg-type]
        return self._intent(found)

    def create_checkout(self, amount_cents: int, idempotency_key: str, metadata: dict[str, str],
                        checkout: Checkout) -> Intent:  # fmt: skip
        """A Checkout Session for one line of `amount_cents`: the browser is sent to its hosted page,
        so no card field and no third-party script is ever on our pages (PCI SAQ A, a strict CSP)."""
        assert type(amount_cents) is int and amount_cents > 0
        params = {
            "mode": "payment", "locale": checkout.locale, "metadata": metadata, "client_reference_id": metadata["redemption_id"],
            "line_items": [{"quantity": 1, "price_data": {"currency": self.currency, "unit_amount": amount_cents,
                                                          "product_data": {"name": checkout.title[:250]}}}],
            "payment_method_types": ["card"], "payment_intent_data": {"metadata": metadata},
            "success_url": checkout.success_url, "cancel_url": checkout.cancel_url, "expires_at": checkout.expires_at_s,
        }  # fmt: skip
        with answered("the card payment could not be started", every_error=True):
            found = self.client.v1.checkout.sessions.create(params=params, options={"idempotency_key": idempotency_key})  # type: ignore[arg-type]
        return self._session(found)

    @staticmethod
    def _session(found: stripe.checkout.Session) -> Intent:
        status = {"complete": "succeeded" if found.payment_status != "unpaid" else "processing", "expired": "canceled"}
        paid = found.payment_intent
        return Intent(found.id, None, status.get(found.status or "", "requires_payment_method"), found.amount_total or 0,
                      found.url, paid if isinstance(paid, str) or paid is None else paid.id)  # fmt: skip

    def retrieve(self, intent_id: str) -> Intent:
        with answered("the card payment could not be read"):
            if is_checkout(intent_id):
                return self._session(self.client.v1.checkout.sessions.retrieve(intent_id))
            return self._intent(self.client.v1.payment_intents.retrieve(intent_id))

    def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        """Cancel an unpaid intent (expire an open session); a paid one cannot be, and is returned as it is."""
        with answered("the card payment could not be cancelled"):
            if is_checkout(intent_id):
                try:
                    return self._session(self.client.v1.checkout.sessions.expire(
                        intent_id, options={"idempotency_key": idempotency_key}))  # fmt: skip
                except stripe.InvalidRequestError:  # not open any more: paid, or expired already
                    return self._session(self.client.v1.checkout.sessions.retrieve(intent_id))
            try:
                found = self.client.v1.payment_intents.cancel(intent_id, options={"idempotency_key": idempotency_key})
            except stripe.InvalidRequestError:
                found = self.client.v1.payment_intents.retrieve(intent_id)
        return self._intent(found)

    def refund(self, intent_id: str, idempotency_key: str) -> str:
        with answered("the card payment could not be refunded"):
            if is_checkout(intent_id):  # a session is refunded through the PaymentIntent it created
                paid = self.client.v1.checkout.sessions.retrieve(intent_id).payment_intent
                intent_id = paid if isinstance(paid, str) else paid.id  # type: ignore[union-attr]
            found = self.client.v1.refunds.create(params={"payment_intent": intent_id},
                                                  options={"idempotency_key": idempotency_key})  # fmt: skip
        return found.id

    def verify_webhook(self, raw_body: bytes, signature_header: str | None) -> dict:
        """The event, once its signature checks out; InvalidWebhook otherwise."""
        if self.webhook_secret is None:
            raise CardPaymentsUnavailable("no webhook secret is configured")
        if len(raw_body) > MAX_WEBHOOK_BYTES:
            raise InvalidWebhook("the webhook body is too large", reason="too_large")
        try:
            event = stripe.Webhook.construct_event(raw_body.decode("utf-8"), signature_header, self.webhook_secret)
        except stripe.SignatureVerificationError:
            raise InvalidWebhook("the webhook signature was refused", reason="signature") from None
        except (ValueError, UnicodeDecodeError):
            raise InvalidWebhook("the webhook body is not a Stripe event", reason="payload") from None
        return event.to_dict()
