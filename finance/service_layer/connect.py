"""A merchant links its payout account itself, through Stripe Connect's hosted onboarding.

Our server makes the merchant's Express connected account (once: a fixed idempotency key per
merchant) and an account link to Stripe's pages, where the merchant gives Stripe its identity and
bank account; nobody at the city types an account id. When Stripe says the account's payouts are
enabled (on the merchant's return, `status`, or the `account.updated` webhook), the merchant's
payouts go there (`finance.adapters.store.stripe_destinations`; why no second principal confirms it:
docs/security-model.md, "Two people for a payout account"). Every change Stripe reports is audited.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine

from community.adapters import store as community_store
from community.domain.errors import NotFound
from finance.adapters import store
from finance.adapters.stripe_connect import ConnectedAccount, StripeConnect
from finance.schemas import OnboardingLink, OnboardingStatus
from ledger.adapters import idempotency
from ledger.service_layer.audit_trail import AuditTrail
from marketplace.adapters.payments_stripe import answered
from marketplace.domain.errors import CardPaymentsUnavailable
from merchants.adapters.tables import MERCHANTS

RETURN_PATH = "/portal/payout-onboarding/return"  # the portal's page: it calls `status`
REFRESH_PATH = "/portal/payout-onboarding/refresh"  # an expired or used link: the portal asks `start` again


def record_account(conn: Connection, audit: AuditTrail, account: ConnectedAccount, actor: str, now_us: int) -> bool:
    """Store what Stripe says of a connected account of ours; True if it changed (then audited)."""
    row = store.connect_account_by_stripe_id(conn, account.id, for_update=True)
    if row is None:
        return False  # not an account we made
    before = {"details_submitted": row["details_submitted"], "payouts_enabled": row["payouts_enabled"]}
    after = {"details_submitted": account.details_submitted, "payouts_enabled": account.payouts_enabled}
    if before == after:
        return False
    store.update_connect_account(conn, account.id, now_us, **after)
    audit.record(conn, actor=actor, action="payouts.connect_account_updated", city=row["city"],
                 target=row["merchant_id"], before=before, after=after | {"stripe_account_id": account.id},
                 now_us=now_us)  # fmt: skip
    return True


class Onboarding:
    def __init__(self, engine: Engine, gateway: StripeConnect | None, origin: str | None, audit: AuditTrail,
                 clock: Callable[[], int]) -> None:  # fmt: skip
        """`origin`: the site's public origin (ENTRAIDE_WEB_ORIGIN), where Stripe sends the merchant back."""
        self.engine, self.gateway, self.audit, self.clock = engine, gateway, audit, clock
        self.origin = origin.rstrip("/") if origin else None

    def _stripe(self) -> StripeConnect:
        if self.gateway is None:
            raise CardPaymentsUnavailable("Stripe Connect is off (no Stripe key configured)")
        return self.gateway

    def start(self, city: str, merchant_id: str, actor: str, *, key: str) -> OnboardingLink:
        """The URL of Stripe's onboarding page for the merchant's connected account (made on the first call),
        which sends the merchant back to its portal on our site. A retry with the same
        Idempotency-Key returns the same link and asks Stripe for nothing. The Stripe calls run inside
        the key's transaction: if Stripe fails, nothing is stored and the retry asks again, and the
        account itself is made once whatever happens (Stripe's idempotency key names the merchant)."""
        gateway, now, origin = self._stripe(), self.clock(), self.origin
        if origin is None:  # a link back to an address a request named could send merchants anywhere
            raise CardPaymentsUnavailable("Stripe Connect onboarding needs the site's origin (ENTRAIDE_WEB_ORIGIN)")
        with self.engine.begin() as conn:
            return idempotency.once(conn, f"{city}:{actor}:finance.payout_onboarding", key,
                                    {"merchant_id": merchant_id, "origin": origin}, OnboardingLink,
                                    lambda: self._link(conn, gateway, city, merchant_id, origin, actor, now), now)  # fmt: skip

    def _link(self, conn: Connection, gateway: StripeConnect, city: str, merchant_id: str, origin: str, actor: str,
              now: int) -> OnboardingLink:  # fmt: skip
        merchant = community_store.member(conn, MERCHANTS, merchant_id)
        if merchant is None or merchant["city"] != city:
            raise NotFound(f"no merchant {merchant_id!r} in {city}")
        row = store.connect_account(conn, merchant_id)
        with answered("Stripe Connect could not be reached", every_error=True):
            if row is None:
                account = gateway.create_account(merchant_id, city, f"entraide-connect-account-{merchant_id}")
                store.add_connect_account(conn, merchant_id=merchant_id, city=city, stripe_account_id=account.id,
                                          details_submitted=account.details_submitted,
                                          payouts_enabled=account.payouts_enabled, created_at_us=now,
                                          updated_at_us=now)  # fmt: skip
                self.audit.record(conn, actor=actor, action="payouts.connect_account_created", city=city,
                                  target=merchant_id, before=None, after={"stripe_account_id": account.id},
                                  now_us=now)  # fmt: skip
                account_id = account.id
            else:
                account_id = row["stripe_account_id"]
            link = gateway.account_link(account_id, origin + REFRESH_PATH, origin + RETURN_PATH)
        return OnboardingLink(stripe_account_id=account_id, url=link.url, expires_at_us=link.expires_at_s * 1_000_000)

    def status(self, city: str, merchant_id: str, actor: str) -> OnboardingStatus:
        """The merchant's connected account as Stripe says now (recorded, and audited if it changed)."""
        with self.engine.connect() as conn:
            row = store.connect_account(conn, merchant_id)
        if row is None or row["city"] != city:
            return OnboardingStatus(started=False)
        with answered("Stripe Connect could not be reached", every_error=True):
            account = self._stripe().account(row["stripe_account_id"])
        with self.engine.begin() as conn:
            record_account(conn, self.audit, account, actor, self.clock())
        return OnboardingStatus(started=True, stripe_account_id=account.id, details_submitted=account.details_submitted,
                                payouts_enabled=account.payouts_enabled)  # fmt: skip
