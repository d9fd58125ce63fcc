"""Merchant payouts through Stripe Connect, with the `stripe` library: a transfer to the merchant's
connected account, then a payout from it to their bank; every call carries an idempotency key, so
a retry after a timeout or a crash makes the same transfer and the same payout, never a second one.
Onboarding: the merchant's Express account, made once, and the account links to Stripe's hosted pages."""

from __future__ import annotations

from dataclasses import dataclass

import stripe
from stripe import RequestOptions
from stripe.params import AccountCreateParams, AccountLinkCreateParams, PayoutCreateParams, TransferCreateParams

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

    # --- onboarding: an Express account per merchant, and Stripe's hosted pages to complete it ----

    def create_account(self, merchant_id: str, city: str, idempotency_key: str) -> ConnectedAccount:
        """An Express connected account in Canada that receives transfers; the key makes it once per merchant."""
        params: AccountCreateParams = {"type": "express", "country": "CA",
                  "capabilities": {"transfers": {"requested": True}},
                  "metadata": {"entraide_merchant_id": merchant_id, "city": city}}  # fmt: skip
        return _account(self.client.v1.accounts.create(params=params, options={"idempotency_key": idempotency_key}))

    def account(self, account_id: str) -> ConnectedAccount:
        return _account(self.client.v1.accounts.retrieve(account_id))

    def account_link(self, account_id: str, refresh_url: str, return_url: str) -> AccountLinkUrl:
        """Stripe's hosted onboarding page for the account (a single-use URL that expires within minutes)."""
        params: AccountLinkCreateParams = {"account": account_id, "refresh_url": refresh_url, "return_url": return_url,
                                           "type": "account_onboarding"}  # fmt: skip
        link = self.client.v1.account_links.create(params=params)
        return AccountLinkUrl(url=link.url, expires_at_s=link.expires_at)


@dataclass(frozen=True)
class ConnectedAccount:
    id: str
    details_submitted: bool
    payouts_enabled: bool


@dataclass(frozen=True)
class AccountLinkUrl:
    url: str
    expires_at_s: int


def _account(found: stripe.Account) -> ConnectedAccount:
    return ConnectedAccount(found.id, bool(found.details_submitted), bool(found.payouts_enabled))


def account_from_event(obj: dict) -> ConnectedAccount | None:
    """The account of an `account.updated` event's object, or None if it is not an account."""
    if obj.get("object") != "account" or not isinstance(obj.get("id"), str):
        return None
    return ConnectedAccount(obj["id"], bool(obj.get("details_submitted")), bool(obj.get("payouts_enabled")))


def verified_event(payload: bytes, signature_header: str, secret: str) -> stripe.Event:
    """The event, if Stripe's signature over the raw body checks out (the library's own check)."""
    return stripe.Webhook.construct_event(payload, signature_header, secret)
