"""Stripe Connect onboarding on SQLite and PostgreSQL: a merchant's terminal asks for Stripe's hosted
onboarding, Stripe (a local server the real `stripe` library talks to, tests/stripe_server.py) verifies
the account, its `account.updated` webhook says payouts are enabled, and the merchant's payout goes there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api.http.app import create_app
from finance.schemas import OnboardingLink, OnboardingStatus, PayoutsQueued, PayoutWebhookAck
from finance.service_layer.connect import REFRESH_PATH, RETURN_PATH
from ledger.adapters import audit_log
from tests.stripe_server import API_KEY, WEBHOOK_SECRET, StripeServer, signed_event
from tests.test_api import assert_problem
from tests.test_finance import JAN, end_of_january, january_activity
from tests.test_marketplace_api import decoded
from tests.world import World, standard_world

ONBOARDING = "/v1/merchants/payout-onboarding"


@pytest.fixture
def world(ctx, clock) -> Iterator[World]:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        world = standard_world(ctx, client)
        clock.advance(86_400)  # into January in Montréal time
        january_activity(world)  # brossard will owe librairie 1.00
        yield world


def test_a_merchant_links_its_own_stripe_verified_payout_account(world: World, clock) -> None:
    assert_problem(world.pos("librairie", "POST", ONBOARDING, key="k1"), 503, "payments_disabled")  # no Stripe key
    with StripeServer() as server:
        world.ctx.settings = world.ctx.settings.__class__(**{**vars(world.ctx.settings), "stripe_api_key": API_KEY,
                                                             "stripe_api_base": server.url,
                                                             "stripe_connect_webhook_secret": WEBHOOK_SECRET,
                                                             "web_origin": "https://entraide.brossard.example"})  # fmt: skip
        for service in ("payouts", "onboarding"):
            world.ctx.__dict__.pop(service, None)
        assert decoded(world.pos("librairie", "GET", ONBOARDING), OnboardingStatus) == OnboardingStatus(started=False)

        # Two calls with one Idempotency-Key: one account, one link, the same URL.
        first = decoded(world.pos("librairie", "POST", ONBOARDING, key="k1"), OnboardingLink)
        assert decoded(world.pos("librairie", "POST", ONBOARDING, key="k1"), OnboardingLink) == first
        (account,) = server.accounts.values()
        (link,) = server.links
        assert first.url == link["url"] and first.stripe_account_id == account["id"]
        assert (account["type"], account["country"], account["metadata"]) == (
            "express", "CA", {"entraide_merchant_id": "librairie", "city": "brossard"})  # fmt: skip
        assert link["form"]["return_url"] == "https://entraide.brossard.example" + RETURN_PATH
        assert link["form"]["refresh_url"] == "https://entraide.brossard.example" + REFRESH_PATH
        # The link expired: a new key, a new link to the same account.
        again = decoded(world.pos("librairie", "POST", ONBOARDING, key="k2"), OnboardingLink)
        assert again.url != first.url and again.stripe_account_id == first.stripe_account_id
        assert len(server.accounts) == 1 and len(server.links) == 2
        other = decoded(world.pos("boulangerie", "POST", ONBOARDING, key="k1"), OnboardingLink)  # its own account
        assert other.stripe_account_id != first.stripe_account_id

        # Not verified yet: nothing is paid there.
        end_of_january(clock)
        world.ctx.settlement.close("brossard", JAN, "finance:test")
        assert world.ctx.payouts.queue("brossard", JAN, "finance:test") == PayoutsQueued(
            queued=0, without_account=["librairie"]
        )
        status = decoded(world.pos("librairie", "GET", ONBOARDING), OnboardingStatus)
        assert (status.started, status.payouts_enabled) == (True, False)

        # Stripe verified the merchant's identity and bank account, and says so by webhook.
        account |= {"details_submitted": True, "payouts_enabled": True}
        event = {"id": "evt_acct_1", "object": "event", "type": "account.updated", "created": world.now_s(),
                 "account": account["id"], "data": {"object": account}}  # fmt: skip
        payload, signature = signed_event(event)

        def webhook(body: bytes, sig: str) -> PayoutWebhookAck:
            response = world.client.post("/v1/finance/stripe/webhook", content=body, headers={"Stripe-Signature": sig})
            return decoded(response, PayoutWebhookAck)

        assert webhook(payload, signature) == PayoutWebhookAck(event="evt_acct_1", applied=True, account=account["id"])
        assert webhook(payload, signature) == PayoutWebhookAck(event="evt_acct_1", applied=False, duplicate=True)
        status = decoded(world.pos("librairie", "GET", ONBOARDING), OnboardingStatus)  # the return page's read
        assert (status.details_submitted, status.payouts_enabled) == (True, True)

        # The merchant's payout goes to the account it onboarded; nobody typed an account id.
        assert world.ctx.payouts.queue("brossard", JAN, "finance:test").queued == 1
        assert world.ctx.payouts.run("brossard") == {"advanced": 2, "retry_later": 0, "failed": 0}
        (transfer,) = server.made("transfer")
        assert (transfer["destination"], transfer["amount"]) == (account["id"], 100)

    # Stripe unreachable (its server is gone): a 503 to retry, nothing recorded.
    assert_problem(world.pos("librairie", "GET", ONBOARDING), 503, "overloaded")
    with world.ctx.engine.connect() as conn:
        trail = [(r.action, r.actor, r.target) for r in audit_log.page(conn, "brossard", 0, 10_000)]
    assert ("payouts.connect_account_created", "merchant:librairie", "librairie") in trail
    assert ("payouts.connect_account_updated", "stripe:account.updated", "librairie") in trail
