"""The back office's money safeguards: a finance officer proposes where a merchant is paid and
another confirms it, the proposer cannot; a closed month is adjusted, applied by the next close;
card disputes are listed. In a browser on both databases in the two languages (tests/browser.py
`locale_of`), then without one what each role may not do."""

from __future__ import annotations

import secrets

from litestar.testing import TestClient

from api.http.app import create_app
from community.domain.access import operator
from ledger.service_layer import audit_trail
from ledger.service_layer.audit_trail import AuditFilter
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.test_finance import JAN, world
from tests.test_web_office_finance import january_to_close
from tests.test_web_signin import HTTPS
from tests.world import World
from web import i18n
from web.auth import OFFICE, open_session
from web.pages import SESSION_COOKIE

__all__ = ["browser", "world"]  # the fixtures, imported for this module


def officer(ctx, role: str, subject: str) -> str:
    return ctx.activation.issue_principal(operator("test"), "brossard", role, subject,
                                          key=secrets.token_hex(8)).principal_id  # fmt: skip


def pending(ctx) -> list:
    return ctx.payouts.account_changes("brossard", "pending").changes


@needs_chromium
def test_an_account_is_proposed_by_one_officer_and_confirmed_by_another_and_a_closed_month_adjusted(
    browser, world: World, clock
) -> None:
    ctx = world.ctx
    january_to_close(world, clock)
    ctx.settlement.close("brossard", JAN, "finance:test")
    locale = locale_of(ctx)
    lang = locale[:2]

    def say(msgid: str, **values: str) -> str:
        return i18n.gettext(lang, msgid) % values if values else i18n.gettext(lang, msgid)

    with site(ctx) as base:
        with visitor(browser, base, locale=locale) as fanny:
            page = fanny.page
            signed_in(fanny, ctx, officer(ctx, "finance", "fanny"), "brossard", OFFICE)
            fanny.open("/office")
            page.get_by_role("link", name=say("Payout accounts")).click()
            page.get_by_label(say("Merchant"), exact=True).select_option("boulangerie")
            page.get_by_label(say("Account holder")).fill("Boulangerie Brossard inc.")
            page.get_by_label(say("Institution number (3 digits)")).fill("004")
            page.get_by_label(say("Transit number (5 digits)")).fill("00022")
            page.get_by_label(say("Account number (7 to 12 digits)")).fill("12345678")
            page.get_by_role("button", name=say("Propose the account")).click()
            page.wait_for_url(f"{base}/office/payout-accounts?done=proposed")
            (proposed,) = [c for c in pending(ctx) if c.holder_name == "Boulangerie Brossard inc."]
            assert proposed.account_number.endswith("678") and "12345678" not in page.content()  # masked
            assert page.get_by_text(say("Someone else must confirm your proposal.")).is_visible()
            fanny.check("office-payout-accounts")

            page.get_by_role("link", name=say("Adjustments")).click()
            page.get_by_label(say("Month it corrects")).select_option(JAN)
            page.get_by_label(say("Merchant"), exact=True).select_option("boulangerie")
            page.get_by_label(say("Taken from the merchant")).check()
            page.get_by_label(say("Amount, in dollars")).fill(i18n.cents_input(lang, 250))
            page.get_by_label(say("Reason")).fill("Double award on the 12th")
            page.get_by_role("button", name=say("Record the adjustment")).click()
            page.wait_for_url(f"{base}/office/adjustments?done=adjusted")
            fanny.check("office-adjustments")
            (record,) = audit_trail.search(ctx.engine, "brossard", AuditFilter(family="settlement", target="boulangerie"),
                                           None, 10).entries  # fmt: skip
            assert record.action == "settlement.adjust" and record.after["amount_cents"] == -250

            page.get_by_role("link", name=say("Card disputes")).click()
            page.get_by_text(say("No card payment is disputed.")).wait_for()
            fanny.check("office-disputes")

        with visitor(browser, base, locale=locale) as felix:
            page = felix.page
            signed_in(felix, ctx, officer(ctx, "finance", "felix"), "brossard", OFFICE)
            felix.open("/office/payout-accounts")
            page.get_by_role("button", name=say("Confirm the account of %(merchant)s", merchant="boulangerie")).click()
            page.wait_for_url(f"{base}/office/payout-accounts?done=confirmed")
            assert proposed.id in {c.id for c in ctx.payouts.account_changes("brossard", "confirmed").changes}
            felix.assert_clean()


def test_the_proposer_cannot_confirm_and_other_roles_only_read_or_are_refused(world: World, clock) -> None:
    ctx = world.ctx
    january_to_close(world, clock)
    fanny = officer(ctx, "finance", "fanny")
    sessions = {role: open_session(ctx, principal, "brossard", "test:web", OFFICE).value
                for role, principal in (("finance", fanny), ("auditor", officer(ctx, "auditor", "aude")),
                                        ("staff", officer(ctx, "staff", "sam")))}  # fmt: skip
    with TestClient(create_app(ctx), base_url=HTTPS) as client:

        def as_(role: str) -> str:
            client.cookies.set(SESSION_COOKIE, sessions[role])
            client.get("/office")
            return client.cookies["entraide_csrf"]

        token = as_("finance")
        form = {"merchant_id": "librairie", "holder_name": "Librairie", "institution": "004", "transit": "00022",
                "account_number": "7777777", "idempotency_key": "k1", "_csrf_token": token}  # fmt: skip
        for _ in range(2):  # the same form twice proposes once
            sent = client.post("/office/payout-accounts", data=form, follow_redirects=False)
            assert sent.status_code == 303, sent.text
        (change,) = [c for c in pending(ctx) if c.merchant_id == "librairie"]
        assert len([c for c in pending(ctx) if c.merchant_id == "librairie"]) == 1
        own = client.post(f"/office/payout-accounts/{change.id}/confirm", data={"_csrf_token": token},
                          headers={"Accept-Language": "en"})  # fmt: skip
        assert own.status_code == 403 and "second" in own.text.lower()
        bad = client.post("/office/adjustments", data={"merchant_id": "librairie", "amount": "2,5,0", "reason": "x",
                                                      "ref_period": JAN, "_csrf_token": token})  # fmt: skip
        assert bad.status_code == 400 and change.id in {c.id for c in pending(ctx)}

        token = as_("auditor")
        seen = client.get("/office/payout-accounts")
        assert seen.status_code == 200 and 'action="/office/payout-accounts"' not in seen.text  # reads, no form
        adjustment = {"merchant_id": "librairie", "amount": "2.50", "reason": "x", "ref_period": JAN}
        for path, data in (("/office/payout-accounts", form), (f"/office/payout-accounts/{change.id}/confirm", {}),
                           ("/office/adjustments", adjustment)):  # fmt: skip
            assert client.post(path, data={**data, "_csrf_token": token}).status_code == 403
        assert client.get("/office/disputes").status_code == 200

        as_("staff")
        for path in ("/office/payout-accounts", "/office/adjustments", "/office/disputes"):
            assert client.get(path).status_code == 403
    assert [c.id for c in pending(ctx) if c.merchant_id == "librairie"] == [change.id]
