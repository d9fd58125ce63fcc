"""A merchant owner's money pages, on SQLite (French) and PostgreSQL (English): today's and a month's
sales with their totals, the closed months with their payout's status, a closed month's statement
as a page, a CSV that sums to its net and a PDF of the same page; another merchant's owner never
sees this one's, and a resident's or a program officer's session is sent to the portal's sign-in."""

from __future__ import annotations

import csv
import io

import pytest
from litestar.testing import TestClient
from pypdf import PdfReader

from api.http.app import create_app
from community.domain.access import operator
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.test_finance import JAN, end_of_january, payout_account, world
from tests.test_web_signin import HTTPS
from tests.world import World
from web import i18n
from web.auth import OFFICE, PORTAL, WALLET, open_session
from web.pages import SESSION_COOKIE
from web.routes.portal_sales import PDF_BASE_URL, StaticFiles

__all__ = ["browser", "world"]  # the fixtures, imported for this module


def owner_of(world: World, merchant: str, city: str = "brossard") -> str:
    return world.ctx.activation.issue_principal(operator("test"), city, "merchant", f"owner-{merchant}",
                                                key=f"owner-{merchant}", merchant_id=merchant).principal_id  # fmt: skip


def closed_january_and_a_sale_today(world: World, clock) -> None:
    """January (world's activity) closed, the bookshop's payout queued; on February 1st a new sale."""
    end_of_january(clock)
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    payout_account(world, "brossard", "librairie", stripe_account_id="acct_librairie")
    assert world.ctx.payouts.queue("brossard", JAN, "finance:test").queued == 1
    alice = world.residents["alice"].card
    award = world.pos("librairie", "POST", "/v1/pos/awards", {"card": alice, "purchase_cents": 2_000}, key="today")
    assert award.status_code == 201, award.text


@needs_chromium
def test_an_owner_reads_sales_and_a_closed_month_and_downloads_its_csv_and_pdf(browser, world: World, clock) -> None:
    ctx, lang = world.ctx, locale_of(world.ctx)
    closed_january_and_a_sale_today(world, clock)
    now, before = (
        ctx.merchant_statements.sales("brossard", "librairie"),
        ctx.merchant_statements.sales("brossard", "librairie", JAN),
    )
    today = now.today_statement.totals
    assert (now.previous_period, now.next_period, before.next_period) == (JAN, None, "2026-02")
    january = ctx.merchant_statements.closed("brossard", "librairie", JAN)
    assert (january.payable_cents, january.payment, today.awarded_points) == (100, "pending", 100)

    def _(message: str) -> str:
        return i18n.gettext(lang.split("-")[0], message)

    page_lang = lang.split("-")[0]
    with site(ctx) as base, visitor(browser, base, locale=lang) as seen:
        page = seen.page
        signed_in(seen, ctx, owner_of(world, "librairie"), "brossard", PORTAL)
        seen.open("/portal")
        page.get_by_role("navigation", name=_("Merchant portal")).get_by_role(
            "link", name=_("Sales"), exact=True
        ).click()
        page.wait_for_url(f"{base}/portal/sales")
        today_box = page.locator("section", has=page.locator("#today-heading"))
        assert today_box.locator("dd").first.inner_text() == i18n.points(page_lang, 100)
        assert today_box.get_by_role("cell", name=i18n.dollars(page_lang, 2_000)).is_visible()
        seen.check("portal-sales")
        page.get_by_role("link", name=_("Previous month")).click()
        page.wait_for_url(f"{base}/portal/sales?month={JAN}")
        month_box = page.locator("section", has=page.locator("#month-heading"))
        assert month_box.locator("dd").nth(1).inner_text() == i18n.points(page_lang, 100)  # redeemed at the bookshop

        seen.open("/portal/statements")
        row = page.get_by_role("row").filter(has_text=JAN)
        assert row.get_by_role("cell").nth(1).inner_text() == i18n.dollars(page_lang, 100)
        assert row.get_by_role("cell").nth(3).inner_text() == _("Payout on its way")
        seen.check("portal-statements")
        row.get_by_role("link").click()
        page.wait_for_url(f"{base}/portal/statements/{JAN}")
        assert page.locator(".statement-total").inner_text() == i18n.dollars(page_lang, 100)
        seen.check("portal-statement")

        with page.expect_download() as csv_download:
            page.get_by_role("link", name=_("Download the CSV")).click()
        rows = list(csv.DictReader(io.StringIO(csv_download.value.path().read_text(encoding="utf-8"))))
        by_item = {r["item"]: int(r["amount_cents"]) for r in rows}
        assert sum(int(r["amount_cents"]) for r in rows[:4]) == by_item["net"] == 100
        assert (by_item["payable"], by_item["collectable"]) == (100, 0)
        with page.expect_download() as pdf_download:
            page.get_by_role("link", name=_("Download the PDF")).click()
        pdf = pdf_download.value.path().read_bytes()
        seen.assert_clean()

    # The PDF: the statement page's content (its amounts, in the page's language), not its controls.
    text = pdf_text(pdf)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert (
        i18n.dollars(page_lang, 100).replace("\u00a0", " ").replace("\u202f", " ") in text
        and _("Statement of %(period)s") % {"period": JAN} in text
    )
    assert _("Download the PDF") not in text and _("Sign out") not in text


def pdf_text(pdf: bytes) -> str:
    """The text the PDF shows, as a reader extracts it (pypdf), spaces of any kind as plain spaces."""
    return (
        " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
        .replace("\u00a0", " ")
        .replace("\u202f", " ")
    )


def test_only_the_merchants_own_owner_reads_its_statements(world: World, clock) -> None:
    ctx = world.ctx
    closed_january_and_a_sale_today(world, clock)
    bakery = open_session(ctx, owner_of(world, "boulangerie"), "brossard", "test:web", PORTAL).value
    elsewhere = open_session(ctx, owner_of(world, "cafe-delson", "delson"), "delson", "test:web", PORTAL).value
    staff_id = ctx.activation.issue_principal(operator("test"), "brossard", "finance", "fanny", key="f").principal_id
    finance = open_session(ctx, staff_id, "brossard", "test:web", OFFICE).value
    resident = open_session(ctx, world.residents["alice"].id, "brossard", "test:web", WALLET).value
    path = f"/portal/statements/{JAN}"
    printing = StaticFiles()  # the PDF's fetcher: our static files, nothing else
    assert printing.fetch(f"{PDF_BASE_URL}static/css/statement-print.css").read().startswith(b"/*")
    for url in ("https://example.org/a.css", f"{PDF_BASE_URL}static/../pages.py", "file:///etc/passwd"):
        with pytest.raises(ValueError):
            printing.fetch(url)
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        client.cookies.set(SESSION_COOKIE, bakery)  # the bakery's own line: collected, not the bookshop's payout
        csv_rows = list(csv.DictReader(io.StringIO(client.get(f"{path}/statement.csv").text)))
        assert {r["merchant_id"] for r in csv_rows} == {"boulangerie"}
        assert {r["item"]: int(r["amount_cents"]) for r in csv_rows}["collectable"] == 62
        client.cookies.set(SESSION_COOKIE, elsewhere)  # another city's merchant: January is not closed there
        for suffix in ("", "/statement.csv", "/statement.pdf"):
            refused = client.get(path + suffix, headers={"Accept-Language": "en"})
            assert refused.status_code == 404 and "not found" in refused.text.lower(), suffix
        bad = client.get("/portal/sales?month=2026-13", headers={"Accept-Language": "en"})
        assert bad.status_code == 400
        for session in (finance, resident):
            client.cookies.set(SESSION_COOKIE, session)
            for where in (path, f"{path}/statement.pdf", "/portal/sales", "/portal/statements"):
                seen = client.get(where, follow_redirects=False)
                assert seen.status_code == 303 and seen.headers["location"].startswith("/portal/sign-in?next="), where
