"""The back office's finance pages: a finance officer previews and closes January, downloads its
pain.001 (valid against the exporter's schema) and its CSV, imports the bank's camt.053 made from
that pain.001 and sees it matched, and reads the budget's chart; in a browser, on both databases in
the two languages (tests/browser.py `locale_of`). Then, without a browser, what each role may not do:
staff neither close nor see the periods, an auditor reads but neither closes nor uploads, and a
bad upload is a problem page that changes nothing."""

from __future__ import annotations

import csv
import io
import secrets
from pathlib import Path
from xml.etree import ElementTree as ET

from litestar.testing import TestClient

from api.http.app import create_app
from community.domain.access import operator
from community.domain.program import Program
from finance.adapters.bank_statements import MAX_STATEMENT_BYTES
from finance.adapters.exports import PAIN_NAMESPACE, pain001_schema
from ledger.service_layer import audit_trail
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.test_bank_statements import camt053
from tests.test_finance import JAN, TREASURY, end_of_january, payout_account, world
from tests.test_web_signin import HTTPS
from tests.world import World
from web import i18n
from web.auth import OFFICE, open_session
from web.pages import SESSION_COOKIE

__all__ = ["browser", "world"]  # the fixtures, imported for this module


def january_to_close(world: World, clock) -> None:
    """January is over; the program pays from its treasury and both merchants have a bank account."""
    end_of_january(clock)
    world.ctx.programs.configure(Program(city="brossard", daily_cap_points=300, monthly_cap_points=1_000,
                                         treasury=TREASURY), "t")  # fmt: skip
    for merchant in ("boulangerie", "librairie"):
        payout_account(world, "brossard", merchant)


def officer(ctx, role: str, subject: str) -> str:
    return ctx.activation.issue_principal(operator("test"), "brossard", role, subject,
                                          key=secrets.token_hex(8)).principal_id  # fmt: skip


def camt_of(pain001: bytes, message_id: str) -> bytes:
    """The bank's statement after it executed every credit transfer of the pain.001 file."""
    ns = {"p": PAIN_NAMESPACE}
    transfers = ET.fromstring(pain001).findall(".//p:CdtTrfTxInf", ns)
    entries = [(t.findtext("p:PmtId/p:EndToEndId", namespaces=ns), -int(t.findtext("p:Amt/p:InstdAmt", namespaces=ns).replace(".", "")),
                "Entraide") for t in transfers]  # fmt: skip
    return camt053(message_id, TREASURY.account_number, entries)


@needs_chromium
def test_finance_previews_and_closes_a_period_downloads_its_pain001_and_reconciles_the_bank(
    browser, world: World, clock, tmp_path
) -> None:
    ctx = world.ctx
    january_to_close(world, clock)
    preview = ctx.settlement.preview("brossard", JAN)
    locale = locale_of(ctx)
    lang = locale[:2]

    def say(msgid: str, **values: str) -> str:
        return i18n.gettext(lang, msgid) % values if values else i18n.gettext(lang, msgid)

    def amount(cents: int) -> str:
        return i18n.dollars(lang, cents)

    with site(ctx) as base, visitor(browser, base, locale=locale) as seen:
        page = seen.page
        signed_in(seen, ctx, officer(ctx, "finance", "fanny"), "brossard", OFFICE)
        seen.open("/office")
        page.get_by_role("navigation", name=say("Back office")).get_by_role("link", name=say("Periods")).click()
        page.wait_for_url(f"{base}/office/periods")
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=JAN, exact=True))
        assert row.get_by_role("cell").inner_text() == say("Over, not closed yet")
        seen.check("office-periods")
        row.get_by_role("link", name=JAN).click()
        page.wait_for_url(f"{base}/office/periods/{JAN}")
        assert page.locator("[data-total=payable]").inner_text() == amount(preview.totals.payable_cents)
        assert page.locator("[data-total=receivable]").inner_text() == amount(preview.totals.receivable_cents)
        seen.check("office-period-preview")
        page.get_by_role("link", name=say("Close %(period)s…", period=JAN)).click()
        page.wait_for_url(f"{base}/office/periods/{JAN}/close")
        assert ctx.settlement.periods("brossard").periods[1].status == "ended"  # the confirmation closes nothing
        seen.check("office-period-close")
        page.get_by_role("button", name=say("Close %(period)s now", period=JAN)).click()
        page.wait_for_url(f"{base}/office/periods/{JAN}?done=closed")
        page.get_by_role("status").wait_for()
        closed = ctx.settlement.closed("brossard", JAN)
        assert closed.closed_by.startswith("finance:fanny") and closed.statement.merchants == preview.merchants
        assert page.get_by_text(closed.statement_sha256).is_visible()
        seen.check("office-period-closed")

        with page.expect_download() as pain_download:
            page.get_by_role("link", name=say("Credit transfers to merchants (pain.001 XML)")).click()
        assert pain_download.value.suggested_filename == f"entraide-brossard-{JAN}.xml"
        pain_download.value.save_as(tmp_path / "pain.xml")
        pain001 = (tmp_path / "pain.xml").read_bytes()
        assert pain001_schema().is_valid(pain001.decode()), list(pain001_schema().iter_errors(pain001.decode()))[:1]
        with page.expect_download() as csv_download:
            page.get_by_role("link", name=say("Statement (CSV)")).click()
        rows = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text(encoding="utf-8"))))
        assert {r["merchant_id"]: int(r["net_cents"]) for r in rows} == {
            l.merchant_id: l.net_cents for l in preview.merchants
        }

        (tmp_path / "camt.xml").write_bytes(camt_of(pain001, "STMT-2026-02"))
        page.get_by_role("navigation", name=say("Back office")).get_by_role(
            "link", name=say("Bank reconciliation")
        ).click()
        page.wait_for_url(f"{base}/office/reconciliation")
        page.get_by_label(say("The bank's statement of the treasury account (camt.053 XML, at most %(size)s MB)",
                              size=str(MAX_STATEMENT_BYTES // 1_000_000))).set_input_files(tmp_path / "camt.xml")  # fmt: skip
        page.get_by_role("button", name=say("Import and match")).click()
        page.wait_for_url(f"{base}/office/reconciliation/bs*")
        payable = sum(1 for line in preview.merchants if line.net_cents > 0)
        assert (page.locator("[data-count=matched]").inner_text(), page.locator("[data-count=differences]").inner_text()) == (
            str(payable), "0")  # fmt: skip
        assert page.get_by_role("cell", name=say("Matched"), exact=True).count() == payable
        seen.check("office-reconciliation")

        page.get_by_role("navigation", name=say("Back office")).get_by_role("link", name=say("Budget")).click()
        page.wait_for_url(f"{base}/office/budget")
        report = ctx.reports.budget("brossard")
        chart = page.get_by_role("img", name=say("Budget funded, used and left, in points"))
        assert chart.locator("rect").count() == 3
        funded = page.get_by_role("row", name=say("Funded"))
        assert funded.get_by_role("cell").inner_text() == i18n.points(lang, report.funded_points)
        assert page.get_by_role("button", name=say("Fund the budget")).count() == 0  # staff fund it, not finance
        seen.check("office-budget")
    actions = [e.action for e in audit_trail.page(ctx.engine, "brossard", 0, 1_000).entries]
    assert actions.count("settlement.close") == 1 and actions.count("bank_statements.import") == 1


def test_each_role_gets_only_its_finance_pages_and_a_bad_statement_changes_nothing(world: World, clock) -> None:
    ctx = world.ctx
    january_to_close(world, clock)
    sessions = {role: open_session(ctx, officer(ctx, role, f"{role}-1"), "brossard", "test:web", OFFICE).value
                for role in ("staff", "finance", "auditor")}  # fmt: skip
    english = {"Accept-Language": "en"}
    with TestClient(create_app(ctx), base_url=HTTPS) as client:

        def as_role(role: str) -> str:
            client.cookies.set(SESSION_COOKIE, sessions[role])
            client.get("/office")  # the CSRF cookie
            return client.cookies["entraide_csrf"]

        token = as_role("staff")  # staff fund the budget, see it, and neither see nor close the periods
        budget = client.get("/office/budget", headers=english)
        assert budget.status_code == 200 and 'role="img"' in budget.text and "/office/periods" not in budget.text
        key = budget.text.split('name="idempotency_key" value="')[1].split('"')[0]
        before = ctx.reports.budget("brossard").funded_points
        for _ in range(2):  # the same form sent twice funds once
            funded = client.post("/office/budget", data={"points": "5000", "idempotency_key": key, "_csrf_token": token},
                                 follow_redirects=False)  # fmt: skip
            assert (funded.status_code, funded.headers["location"]) == (303, "/office/budget?done=funded")
        assert ctx.reports.budget("brossard").funded_points == before + 5_000
        for path in ("/office/periods", f"/office/periods/{JAN}", "/office/reconciliation", "/office/statement"):
            assert client.get(path, headers=english).status_code == 403, path
        refused = client.post(f"/office/periods/{JAN}/close", data={"_csrf_token": token}, headers=english)
        assert refused.status_code == 403 and "forbidden" in refused.text

        token = as_role("auditor")  # auditors read the month and its files, and neither close nor upload
        assert ctx.settlement.periods("brossard").periods[1].status == "ended"
        assert client.post(f"/office/periods/{JAN}/close", data={"_csrf_token": token}).status_code == 403
        ctx.settlement.close("brossard", JAN, "finance:test")
        assert client.get(f"/office/periods/{JAN}").status_code == 200
        erp = client.get(f"/office/periods/{JAN}/export?format=erp")
        assert erp.headers["content-disposition"] == f'attachment; filename="entraide-brossard-{JAN}.erp.csv"'
        camt = camt_of(ctx.exports.render("brossard", JAN, "pain001")[0], "STMT-AUDITOR")
        upload = {"statement": ("camt.xml", camt, "application/xml")}
        assert client.post("/office/reconciliation", files=upload, data={"_csrf_token": token}).status_code == 403
        assert client.get("/office/reconciliation").status_code == 200

        token = as_role("finance")  # a file that is not a camt.053 is a problem page, and imports nothing
        assert client.get("/office/statement", follow_redirects=False).headers["location"] == "/office/periods/2026-02"
        foreign = {"statement": ("pain.xml", ctx.exports.render("brossard", JAN, "pain001")[0], "application/xml")}
        bad = client.post("/office/reconciliation", files=foreign, data={"_csrf_token": token}, headers=english)
        assert bad.status_code == 422 and "invalid_bank_statement" in bad.text, bad.text[:500]
        assert ctx.bank_reconciliation.list("brossard").statements == []
        queued = client.post(f"/office/periods/{JAN}/payouts", data={"_csrf_token": token}, follow_redirects=False)
        assert queued.headers["location"] == f"/office/periods/{JAN}?done=queued#payouts"
        debits = client.post(f"/office/periods/{JAN}/direct-debits", data={"_csrf_token": token})
        assert debits.status_code == 422 and "export_unavailable" in debits.text  # the city collects by invoice
        issued = client.post(f"/office/periods/{JAN}/invoices", data={"_csrf_token": token}, follow_redirects=False)
        assert issued.headers["location"] == f"/office/periods/{JAN}?done=invoiced#collections"
        invoice = client.get(f"/office/periods/{JAN}/invoices/boulangerie?format=json")
        assert invoice.json()["total_cents"] == ctx.collections.owed("brossard", JAN).total_cents
    audited = [(e.action, e.actor.split("/")[0]) for e in audit_trail.page(ctx.engine, "brossard", 0, 1_000).entries]
    assert (
        audited.count(("program.fund_budget", "staff:staff-1")) == 1
        and ("payouts.queue", "finance:finance-1") in audited
    )
    assert not [a for a in audited if a[0] == "bank_statements.import"]
