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
    id: str
    client_secret: str | None
    status: str
    amount_cents: int


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

    def retrieve(self, intent_id: str) -> Intent:
        with answered("the card payment could not be read"):
            return self._intent(self.client.v1.payment_intents.retrieve(intent_id))

    def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        """Cancel an unpaid intent; a paid one cannot be cancelled, and is returned as it is."""
        with answered("the card payment could not be cancelled"):
            try:
                found = self.client.v1.payment_intents.cancel(intent_id, options={"idempotency_key": idempotency_key})
            except stripe.InvalidRequestError:
                found = self.client.v1.payment_intents.retrieve(intent_id)
        return self._intent(found)

    def refund(self, intent_id: str, idempotency_key: str) -> str:
        with answered("the card payment could not be refunded"):
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
