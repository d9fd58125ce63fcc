"""Merchant payouts through Stripe Connect, with the `stripe` library: a transfer to the merchant's
connected account, then a payout from it to their bank; every call carries an idempotency key, so
a retry after a timeout or a crash makes the same transfer and the same payout, never a second one."""

from __future__ import annotations

from dataclasses import dataclass

import stripe
from stripe import RequestOptions
from stripe.params import PayoutCreateParams, TransferCreateParams

RETRYABLE = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)  # timeouts, 429, Stripe 5xx


@dataclass
class StripeConnect:
    api_key: str
    api_base: str | None = None  # a local emulator in tests
    timeout_seconds: float = 20

    def __post_init__(self) -> None:
        self.client = stripe.StripeClient(
            self.api_key,
            base_addresses={"api": self.api_base} if self.api_base else None,
            max_network_retries=0,  # our queue retries, with backoff, under the same idempotency key
            http_client=stripe.RequestsClient(timeout=self.timeout_seconds),
        )

    def transfer(
        self, amount_cents: int, currency: str, destination: str, idempotency_key: str, metadata: dict[str, str]
    ) -> str:
        params: TransferCreateParams = {"amount": amount_cents, "currency": currency.lower(), "destination": destination, "metadata": metadata,
                  "transfer_group": metadata.get("entraide_payout_id", "")}  # fmt: skip
        return self.client.v1.transfers.create(params=params, options={"idempotency_key": idempotency_key}).id

    def payout(
        self, amount_cents: int, currency: str, account: str, idempotency_key: str, metadata: dict[str, str]
    ) -> str:
        params: PayoutCreateParams = {"amount": amount_cents, "currency": currency.lower(), "metadata": metadata}
        options: RequestOptions = {"idempotency_key": idempotency_key, "stripe_account": account}
        return self.client.v1.payouts.create(params=params, options=options).id


def verified_event(payload: bytes, signature_header: str, secret: str) -> stripe.Event:
    """The event, if Stripe's signature over the raw body checks out (the library's own check)."""
    return stripe.Webhook.construct_event(payload, signature_header, secret)
