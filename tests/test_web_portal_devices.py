"""The portal's terminals, activity and payout account (SQLite in French, PostgreSQL in English).

In Chromium: the owner pairs a new device from `/portal/terminals`; a tablet opens the QR code's
address, finds the code filled in, names itself and pairs; the owner sees it listed, renames it and
revokes it; the tablet's next request is refused and it goes back to pairing; the owner reads it all
in the activity. Without a browser: another merchant's owner can neither revoke nor see it (pages and
API), and the payout account is linked through Stripe's hosted onboarding (a local server that plays
Stripe, tests/stripe_server.py, with the real `stripe` library).
"""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from api.http.app import create_app
from community.domain.access import operator
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.stripe_server import API_KEY, StripeServer
from tests.test_api import assert_problem
from tests.test_web_portal_offers import owner_of
from tests.test_web_signin import HTTPS
from tests.test_web_terminal import clock
from tests.world import World
from web.auth import PORTAL, open_session
from web.i18n import gettext
from web.pages import SESSION_COOKIE

__all__ = ["browser", "clock"]  # the fixtures, imported for this module (the wall clock: the tablet signs)


@pytest.fixture
def brossard(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.merchant("boulangerie", "brossard", terminals=0)
    world.merchant("librairie", "brossard")
    world.resident("alice", "brossard", points=100)
    return world


@needs_chromium
def test_a_device_is_paired_from_the_portal_renamed_and_revoked(browser, ctx, brossard) -> None:
    locale = locale_of(ctx)
    lang = locale[:2]

    def _(message: str) -> str:
        return gettext(lang, message)

    with (
        site(ctx) as base,
        visitor(browser, base, locale=locale) as owner,
        visitor(browser, base, locale=locale) as tablet,
    ):
        signed_in(owner, ctx, owner_of(ctx, "boulangerie", "marie"), "brossard", PORTAL)
        page = owner.page
        owner.open("/portal/terminals")
        page.get_by_text(_("No terminal yet: pair a device above.")).wait_for()
        page.get_by_role("button", name=_("Get a pairing code")).click()
        page.wait_for_url(f"{base}/portal/terminals/pairing?code=*")
        code = page.locator("#pairing-code").inner_text()
        url = page.locator("#pairing-url").get_attribute("href")
        assert url == f"{base}/terminal/pair?code={code}" and page.locator("#pairing-url").inner_text() == url
        owner.check(f"portal-terminals-pairing-{lang}")

        tablet.open(url.removeprefix(base))  # what the tablet's camera opens from the QR code
        code_field = tablet.page.get_by_label(_("Pairing code"))
        tablet.page.wait_for_function("() => document.getElementById('pair-code').value !== ''")
        assert code_field.input_value() == code
        assert tablet.page.evaluate("() => document.activeElement.id") == "pair-name"  # the name is next
        tablet.page.keyboard.type("Till 1")
        tablet.page.keyboard.press("Enter")
        tablet.page.wait_for_url(f"{base}/terminal")
        tablet.page.locator("#till").wait_for()
        (key_id,) = [t.key_id for t in ctx.terminals.of_merchant("boulangerie", "brossard").terminals]

        owner.open("/portal/terminals")
        card = page.locator(f"#terminal-{key_id}")
        assert card.get_by_role("heading", level=3).inner_text() == "Till 1"
        assert _("Web till (this site)") in card.inner_text()
        owner.check(f"portal-terminals-{lang}")
        name = card.get_by_label(_("New name"))
        name.fill("Comptoir")
        name.press("Enter")  # the keyboard alone
        page.get_by_text(_("The terminal’s new name is saved.")).wait_for()
        assert card.get_by_role("heading", level=3).inner_text() == "Comptoir"
        card.get_by_role("button", name=_("Revoke this terminal")).click()
        page.get_by_text(_("The terminal is revoked: its next request is refused.")).wait_for()
        assert card.get_attribute("data-status") == "revoked" and card.get_by_role("button").count() == 0

        tablet.page.get_by_label(_("Card code")).fill(brossard.residents["alice"].card)
        tablet.page.get_by_label(_("Card code")).press("Enter")
        tablet.page.wait_for_url(f"{base}/terminal/pair")  # refused at once, back to pairing
        tablet.expect_refused(401)
        tablet.assert_clean()

        owner.open("/portal/activity")
        actions = page.locator("tbody tr td:nth-child(3)").all_inner_texts()
        assert actions == ["terminal.revoke", "terminal.rename", "terminal.pairing_use", "terminal.register",
                           "terminal.pairing_code", "principal.sign_in", "activation.issue", "merchant.set_status",
                           "merchant.add"]  # fmt: skip
        owner.check(f"portal-activity-{lang}")
        owner.open("/portal/payout-onboarding")
        page.get_by_role("button", name=_("Link my payout account on Stripe")).wait_for()
        owner.check(f"portal-payout-{lang}")


def test_owners_see_and_change_only_their_own_terminals_and_link_their_payout_account(ctx, brossard) -> None:
    marie, luc = owner_of(ctx, "boulangerie", "marie"), owner_of(ctx, "librairie", "luc")
    theirs = brossard.terminals["librairie"].key_id
    bearer = {
        who: {"Authorization": f"Bearer {ctx.access.issue_principal(who, 3_600, 'test')}"} for who in (marie, luc)
    }
    with StripeServer() as stripe, TestClient(create_app(ctx), base_url=HTTPS) as client:
        ctx.settings = ctx.settings.__class__(**{**vars(ctx.settings), "stripe_api_key": API_KEY,
                                                 "stripe_api_base": stripe.url, "web_origin": HTTPS})  # fmt: skip
        ctx.__dict__.pop("onboarding", None)

        # The API, with an owner's token: a code, the list, a name, a revocation; only its own.
        issued = client.post("/v1/merchants/pairing-codes", json={"name": "Till 2"},
                             headers={**bearer[marie], "Idempotency-Key": "pc1"})  # fmt: skip
        assert issued.status_code == 201 and issued.json()["merchant_id"] == "boulangerie", issued.text
        assert client.get("/v1/merchants/terminals", headers=bearer[marie]).json() == {"terminals": []}
        listed = client.get("/v1/merchants/terminals", headers=bearer[luc]).json()["terminals"]
        assert [(t["key_id"], t["kind"], t["status"], t["name"]) for t in listed] == [(theirs, "pos", "active", None)]
        for who, status in ((marie, 404), (luc, 200)):
            renamed = client.put(f"/v1/merchants/terminals/{theirs}/name", json={"name": "Caisse"}, headers=bearer[who])
            assert renamed.status_code == status, renamed.text
        assert_problem(client.post(f"/v1/merchants/terminals/{theirs}/revoke", headers=bearer[marie]), 404,
                       "unknown_merchant")  # fmt: skip
        assert_problem(client.put(f"/v1/merchants/terminals/{theirs}/name", json={"name": "x" * 101},
                                  headers=bearer[luc]), 400, "validation_error")  # fmt: skip
        staff = ctx.access.grant(operator("test"), "brossard", "staff", "sam", key="t").token
        assert_problem(client.get("/v1/merchants/terminals", headers={"Authorization": f"Bearer {staff}"}), 403,
                       "forbidden")  # fmt: skip

        # The pages: Marie's session can neither revoke Luc's terminal nor read about it.
        client.cookies.set(SESSION_COOKIE, open_session(ctx, marie, "brossard", "test:web", PORTAL).value)
        client.get("/portal/terminals")  # the CSRF cookie
        csrf = {"_csrf_token": client.cookies["entraide_csrf"]}
        refused = client.post(f"/portal/terminals/{theirs}/revoke", data=csrf, follow_redirects=False)
        assert refused.status_code == 404 and "unknown_merchant" in refused.text
        assert [t.status for t in ctx.terminals.of_merchant("librairie", "brossard").terminals] == ["active"]
        assert theirs not in client.get("/portal/activity").text
        assert client.get(f"/portal/terminals/pairing?code={issued.json()['code']}").status_code == 200
        luc_code = ctx.pairing.issue("librairie", "brossard", "staff:test", None, key="pc-luc").code
        assert client.get(f"/portal/terminals/pairing?code={luc_code}").status_code == 401  # not Marie's code

        # The payout account: the button goes to Stripe's page; back, the status; an expired link, a new one.
        assert "payout-state" in client.get("/portal/payout-onboarding").text
        to_stripe = client.post("/portal/payout-onboarding", data={**csrf, "idempotency_key": "once"},
                                follow_redirects=False)  # fmt: skip
        assert to_stripe.status_code == 303 and to_stripe.headers["location"] == stripe.links[-1]["url"]
        assert stripe.links[-1]["form"]["return_url"] == f"{HTTPS}/portal/payout-onboarding/return"
        again = client.post(
            "/portal/payout-onboarding", data={**csrf, "idempotency_key": "once"}, follow_redirects=False
        )
        assert again.headers["location"] == to_stripe.headers["location"] and len(stripe.links) == 1  # a double click
        back = client.get("/portal/payout-onboarding/return", headers={"Accept-Language": "en"})
        assert back.status_code == 200 and gettext("en", "Started: Stripe still needs some information.") in back.text
        expired = client.get("/portal/payout-onboarding/refresh", headers={"Accept-Language": "en"})  # Stripe sent them
        assert gettext("en", "Stripe’s link expired. Continue to get a new one: what you already gave Stripe is kept.") in (
            expired.text.replace("&#39;", "'").replace("&rsquo;", "’"))  # fmt: skip
        anew = client.post(
            "/portal/payout-onboarding", data={**csrf, "idempotency_key": "anew"}, follow_redirects=False
        )
        assert anew.headers["location"] == stripe.links[-1]["url"] != to_stripe.headers["location"]
        assert len(stripe.links) == 2 and len(stripe.accounts) == 1
        activity = client.get("/v1/merchants/activity", headers=bearer[marie]).json()["entries"]
        actions = [e["action"] for e in activity]
        assert actions[:2] == ["payouts.connect_account_created", "principal.sign_in"]  # Marie's portal session
        assert "terminal.pairing_code" in actions and "principal.sign_in" in actions[2:]  # and its API token
        assert {e["target"] for e in activity}.isdisjoint({theirs, "librairie"})
