"""The back office's program, audit trail, merchants and organizations: a program officer previews a
changed earning rate on an example purchase, saves it, finds it in the audit trail filtered to program
changes, approves a pending merchant and suspends another (in Chromium); an auditor reads every page
but has no button, and each POST is refused all the same; wrong values are said by their field."""

from __future__ import annotations

import re

import pytest
from litestar.testing import TestClient

from api.http.app import create_app
from community.domain.access import operator
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.test_web_signin import HTTPS
from tests.world import World
from web.auth import OFFICE, open_session
from web.i18n import gettext
from web.pages import CSRF_COOKIE, SESSION_COOKIE

__all__ = ["browser"]  # the fixture, imported for its module
POSTS = ("/office/program", "/office/merchants", "/office/merchants/fournil/status", "/office/organizations",
         "/office/organizations/entraide-sud/status")  # fmt: skip


@pytest.fixture
def brossard(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard", merchant_points_per_dollar=5)
    world.merchant("boulangerie", "brossard")  # approved, with a terminal
    ctx.merchants.add("brossard", "fournil", "Le Fournil", "staff:test", key="add-fournil", category="food")  # pending
    world.organization("entraide-sud", "brossard")
    return world


def officer(ctx, role: str, subject: str) -> str:
    return ctx.activation.issue_principal(operator("test"), "brossard", role, subject,
                                          key=f"{role}-{subject}").principal_id  # fmt: skip


def test_an_auditor_reads_the_pages_without_buttons_and_staff_see_wrong_values_by_their_field(ctx, brossard) -> None:
    auditor = open_session(ctx, officer(ctx, "auditor", "aude"), "brossard", "test:web", OFFICE).value
    staff = open_session(ctx, officer(ctx, "staff", "sam"), "brossard", "test:web", OFFICE).value
    english = {"Accept-Language": "en"}
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        client.cookies.set(SESSION_COOKIE, auditor)
        for path in ("/office/program", "/office/merchants", "/office/merchants/fournil", "/office/organizations",
                     "/office/audit?kind=merchant"):  # fmt: skip
            seen = client.get(path, headers=english)
            assert seen.status_code == 200, (path, seen.text)
            assert not re.search(r'name="(intent|status|idempotency_key)"', seen.text), path  # no button but sign out
        assert "Le Fournil" in client.get("/office/merchants").text and "/office/merchants/fournil" in seen.text
        token = client.cookies[CSRF_COOKIE]
        before = ctx.programs.get("brossard")
        for path in POSTS:
            refused = client.post(path, data={"_csrf_token": token, "status": "approved", "intent": "save",
                                              "id": "x", "name": "X", "category": "food"}, headers=english)  # fmt: skip
            assert refused.status_code == 403 and "Action not allowed" in refused.text, path
        assert ctx.programs.get("brossard") == before and ctx.merchants.get("fournil")["status"] == "pending"
        assert client.get("/office/audit?since=2026-02-31", headers=english).status_code == 400  # not a day
        for n in range(26):  # 52 more records: more than a page of the trail
            for status in ("approved", "suspended"):
                ctx.merchants.set_status("boulangerie", status, f"staff:page{n}", "brossard")
        newest = client.get("/office/audit?subject=boulangerie", headers=english).text
        assert newest.count("<tr><td") == 50 and "staff:page25" in newest and "staff:page0<" not in newest
        older = re.search(r'href="/office/audit\?(subject=boulangerie&amp;before=\d+)"', newest)[1].replace(
            "&amp;", "&"
        )
        rest = client.get(f"/office/audit?{older}", headers=english).text
        assert "staff:page0<" in rest and "merchant.add" in rest and "/office/audit?subject=boulangerie" in rest
        assert client.get("/office/audit?actor=staff:page7&kind=merchant", headers=english).text.count("<tr><td") == 2
        assert "No record matches." in client.get("/office/audit?until=2025-12-30", headers=english).text

        client.cookies.set(SESSION_COOKIE, staff)
        client.get("/office/program")
        form = {"_csrf_token": client.cookies[CSRF_COOKIE], "intent": "preview", "campaign_rows": "1",
                "merchant_points_per_dollar": "five", "hold_timeout_seconds": "5", "collection_method": "invoice",
                **dict.fromkeys(("point_value_cents_per_100_points", "daily_cap_points", "monthly_cap_points", "yearly_budget_points", "expiry_days", "offline_floor_points", "redemption_rate_percent", "funding_rate_percent", "settlement_fee_cents", "correction_approval_points"), "1"),
                "timezone": "America/Toronto", "campaign-0-id": "ete", "campaign-0-starts_on": "2026-07-01",
                "campaign-0-ends_on": "2026-06-01", "campaign-0-multiplier_percent": "200"}  # fmt: skip
        wrong = client.post("/office/program", data=form, headers=english)
        assert wrong.status_code == 422
        assert (
            'aria-describedby="f-merchant_points_per_dollar-hint f-merchant_points_per_dollar-error" aria-invalid'
            in wrong.text
        )
        assert gettext("en", "Enter a whole number, such as 500.") in wrong.text
        wrong = client.post("/office/program", data={**form, "merchant_points_per_dollar": "10"}, headers=english)
        assert wrong.status_code == 422 and 'id="f-hold_timeout_seconds-error"' in wrong.text  # the program's own rule
        wrong = client.post("/office/program", data={**form, "merchant_points_per_dollar": "10",
                                                     "hold_timeout_seconds": "900"}, headers=english)  # fmt: skip
        assert wrong.status_code == 422 and 'id="f-campaign-0-ends_on-error"' in wrong.text  # by the campaign's row
        taken = client.post("/office/merchants", data={"_csrf_token": client.cookies[CSRF_COOKIE], "id": "fournil",
                                                       "name": "Encore", "category": "food", "idempotency_key": "k1"},
                            headers=english)  # fmt: skip
        assert taken.status_code == 422 and 'id="enrol-id-error"' in taken.text
        bad = client.post("/office/merchants", data={"_csrf_token": client.cookies[CSRF_COOKIE], "id": "neuf",
                                                     "name": "Neuf", "category": "casino", "idempotency_key": "k2"},
                          headers=english)  # fmt: skip
        assert bad.status_code == 422 and 'id="enrol-category-error"' in bad.text
        assert ctx.programs.get("brossard") == before and len(ctx.merchants.list("brossard")) == 2


@needs_chromium
def test_a_program_officer_changes_an_earning_rule_sees_it_audited_and_approves_and_suspends_merchants(
    browser, ctx, brossard
) -> None:
    lang = locale_of(ctx)
    _ = lambda message: gettext(lang[:2], message)  # noqa: E731  # the page's own words, in its language
    with site(ctx) as base, visitor(browser, base, locale=lang) as seen:
        page = seen.page
        signed_in(seen, ctx, officer(ctx, "staff", "sam"), "brossard", OFFICE)
        seen.open("/office")
        page.get_by_role("navigation", name=_("Back office")).get_by_role("link", name=_("The program")).click()
        rate = page.get_by_role("textbox", name=_("Points per dollar spent"))
        assert rate.input_value() == "5"
        rate.fill("10")  # twice the base rate
        page.get_by_role("textbox", name=_("Amount, in dollars")).fill("20.00")
        page.get_by_role("button", name=_("Preview")).focus()
        page.keyboard.press("Enter")  # the keyboard alone
        preview = page.locator("#preview-title")
        preview.wait_for()
        assert re.search(r"\b200\b.*\b100\b", preview.inner_text()), preview.inner_text()  # $20 × 10 now, × 5 before
        assert ctx.programs.get("brossard").merchant_points_per_dollar == 5  # a preview saves nothing
        seen.check("office-program")
        page.get_by_role("button", name=_("Save the program")).click()
        page.wait_for_url(f"{base}/office/program?done=saved")
        assert ctx.programs.get("brossard").merchant_points_per_dollar == 10

        page.get_by_role("link", name=_("Audit trail")).click()
        page.get_by_role("combobox", name=_("Kind of action")).select_option("program")
        page.get_by_role("button", name=_("Filter")).click()
        page.wait_for_url(re.compile(r".*/office/audit\?.*kind=program"))
        rows = page.locator("tbody tr")
        assert "program.configure" in rows.first.inner_text() and "staff:sam" in rows.first.inner_text()
        actions = rows.locator("td:nth-child(4)").all_inner_texts()
        assert len(actions) == 3 and all(
            a.startswith("program.") for a in actions
        )  # program changes only, newest first
        assert rows.first.get_by_role("link").get_attribute("href") == "/office/program"
        seen.check("office-audit")

        page.get_by_role("link", name=_("Merchants")).click()
        page.get_by_role("button", name=_("Approve %(name)s") % {"name": "Le Fournil"}).click()
        page.wait_for_url(f"{base}/office/merchants/fournil?done=approved")
        assert page.locator("#merchant-status").inner_text() == _("Approved")
        seen.check("office-merchant")
        page.get_by_role("link", name=_("All merchants")).click()
        seen.check("office-merchants")
        page.get_by_role("button", name=_("Suspend %(name)s") % {"name": "Commerce boulangerie"}).click()
        page.wait_for_url(f"{base}/office/merchants/boulangerie?done=suspended")
        assert page.locator("#merchant-status").inner_text() == _("Suspended")
        assert [ctx.merchants.get(m)["status"] for m in ("fournil", "boulangerie")] == ["approved", "suspended"]
        seen.open("/office/organizations")
        seen.check("office-organizations")
