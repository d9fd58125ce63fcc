"""The back office's resident care, services and events, and corrections: a staff officer finds a
resident by card, changes the level with evidence, asks a wallet correction above the threshold that
a second officer approves, enrols a resident and sees the code once, schedules and cancels an
erasure; a proposer cannot approve their own correction and an auditor can do none of it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from litestar.testing import TestClient

from api.http.app import create_app
from community.domain.access import operator
from ledger.service_layer import audit_trail
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.smtp_server import smtp_server
from tests.test_web_signin import HTTPS
from tests.world import World
from web import i18n
from web.auth import OFFICE, open_session
from web.pages import SESSION_COOKIE

__all__ = ["browser"]  # the fixture, imported for its module
THRESHOLD = 500  # the program's correction_approval_points


@pytest.fixture
def brossard(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard", correction_approval_points=THRESHOLD)
    world.resident("alice", "brossard", points=1_000)
    return world


def principal(ctx, role: str, subject: str) -> str:
    return ctx.activation.issue_principal(
        operator("test"), "brossard", role, subject, key=f"{role}-{subject}"
    ).principal_id


def mailing(ctx, smtp_url: str):
    """The context with a mail server: its mailer and activation service made again from the settings."""
    ctx.settings = dataclasses.replace(ctx.settings, smtp_url=smtp_url)
    vars(ctx).pop("mailer", None), vars(ctx).pop("activation", None)
    return ctx


def test_a_proposer_cannot_approve_their_own_correction_and_an_auditor_cannot_act(ctx, brossard) -> None:
    alice = brossard.residents["alice"].id
    sessions = {who: open_session(ctx, principal(ctx, role, who), "brossard", "test:web", OFFICE).value
                for role, who in (("staff", "sam"), ("auditor", "ava"))}  # fmt: skip
    with (
        smtp_server() as (smtp_url, received),
        TestClient(create_app(mailing(ctx, smtp_url)), base_url=HTTPS) as client,
    ):
        client.cookies.set(SESSION_COOKIE, sessions["sam"])
        form = client.get("/office/corrections", headers={"Accept-Language": "en"})
        assert form.status_code == 200 and "/office/residents" in form.text
        csrf = client.cookies["entraide_csrf"]
        missed = client.get("/office/residents?q=c-nobody", headers={"Accept-Language": "en"})  # exact, or nothing
        assert missed.status_code == 404 and 'aria-invalid="true"' in missed.text
        asked = client.post("/office/corrections", data={"_csrf_token": csrf, "key": "k" * 16, "kind": "wallet", "target": alice,
                                                         "direction": "credit", "points": "600", "reason": "lost points"},
                            follow_redirects=False)  # fmt: skip
        assert asked.status_code == 303 and asked.headers["location"] == "/office/corrections?done=pending#done"
        (pending,) = ctx.corrections.list("brossard").corrections
        listed = client.get("/office/corrections", headers={"Accept-Language": "en"})
        assert f"/office/corrections/{pending.id}/approve" not in listed.text  # not offered to the proposer,
        assert "another staff officer or a city administrator must approve it" in listed.text  # and why
        own = client.post(
            f"/office/corrections/{pending.id}/approve", data={"_csrf_token": csrf}, headers={"Accept-Language": "en"}
        )  # and refused anyway
        assert own.status_code == 403 and "second" in own.text.lower()
        assert ctx.corrections.get("brossard", pending.id).status == "pending" and brossard.available("alice") == 1_000

        enrolled = client.post(
            "/office/residents",
            data={
                "_csrf_token": csrf,
                "key": "e" * 16,
                "name": "Chloé",
                "email": "chloe@example.org",
                "language": "en",
                "email_code": "yes",
            },
            follow_redirects=False,
        )  # with a mail server, the code goes by e-mail, unseen here
        resident_id = enrolled.headers["location"].split("/")[3].split("?")[0]
        assert enrolled.headers["location"] == f"/office/residents/{resident_id}?done=code-sent#done"
        (mail,) = received
        assert mail["To"] == "chloe@example.org" and "code" not in enrolled.text
        emailed = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", mail.get_payload(decode=True).decode())
        assert emailed and ctx.activation.redeem(emailed.group()) == (resident_id, "brossard")

        concert = {"_csrf_token": csrf, "key": "v" * 16, "kind": "event", "title_fr": "Concert au parc", "price_points": "30",
                   "quantity": "20", "seats_total": "200", "starts_at": "2026-07-01T19:30", "status": "draft"}  # fmt: skip
        assert client.post("/office/services", data=concert, follow_redirects=False).status_code == 303
        (event,) = ctx.catalog.list(brossard_owner(), ("event",)).items  # at 19:30 in the city's time zone
        assert (event.status, event.quantity, event.seats_total) == ("draft", 20, 200)
        assert event.starts_at_us == int(dt.datetime(2026, 7, 1, 23, 30, tzinfo=dt.UTC).timestamp()) * 1_000_000

        client.cookies.set(SESSION_COOKIE, sessions["ava"])
        home = client.get("/office", headers={"Accept-Language": "en"})
        assert home.status_code == 200
        for path in ("/office/residents", "/office/services", "/office/corrections"):
            assert path not in home.text  # not shown to an auditor
            assert client.get(path).status_code == 403, path  # and refused
        for path, data in ((f"/office/corrections/{pending.id}/approve", {}), (f"/office/residents/{alice}/erasure", {}),
                           (f"/office/residents/{alice}/level", {"level": "checked", "evidence": "x"}),
                           ("/office/services", {"title_fr": "Piscine", "price_points": "5"})):  # fmt: skip
            assert client.post(path, data={"_csrf_token": csrf, **data}).status_code == 403, path
    assert ctx.corrections.get("brossard", pending.id).status == "pending"
    assert ctx.residents.record(alice, "brossard").level == "basic" and ctx.residents.erasure(alice).status == "none"
    assert ctx.catalog.list(brossard_owner(), ("service",)).items == []


def brossard_owner():
    from marketplace.service_layer.catalog import Owner

    return Owner("brossard", None, "staff:test")


@needs_chromium
def test_staff_care_for_residents_and_a_second_officer_approves_a_large_correction(browser, ctx, brossard) -> None:
    alice = brossard.residents["alice"].id
    card = ctx.residents.current_card(alice)["id"]
    locale = locale_of(ctx)
    lang = locale[:2]

    def _(message: str) -> str:
        return i18n.gettext(lang, message)

    checked = ctx.engine.dialect.name == "sqlite"  # axe and screenshots once: both runs render the same HTML

    def check(name: str) -> None:
        seen.check(name) if checked else seen.assert_clean()

    sam, sue = principal(ctx, "staff", "sam"), principal(ctx, "staff", "sue")
    with site(ctx) as base, visitor(browser, base, locale=locale) as seen:
        page = seen.page
        signed_in(seen, ctx, sam, "brossard", OFFICE)
        seen.open("/office/residents")
        check("office-residents")
        page.get_by_label(_("Resident id or card number")).fill(card)  # the number printed on the card
        page.get_by_role("button", name=_("Find"), exact=True).click()
        page.wait_for_url(f"{base}/office/residents/{alice}")
        assert page.locator("#resident-balance").inner_text() == i18n.points(lang, 1_000)
        check("office-resident")

        page.get_by_label(_("Verification level")).select_option("checked")
        page.get_by_label(_("Evidence seen")).fill("health card seen at the counter")
        page.get_by_role("button", name=_("Change the level"), exact=True).click()
        page.wait_for_url(f"{base}/office/residents/{alice}?done=level#done")
        assert page.locator("#resident-level").inner_text() == _("Checked in person")
        (audited,) = [
            e for e in audit_trail.page(ctx.engine, "brossard", 0, 100).entries if e.action == "resident.set_level"
        ]
        assert audited.after == {"level": "checked", "evidence": "health card seen at the counter"}

        seen.open("/office/corrections")  # above the threshold: it waits for someone else
        page.get_by_label(_("Target")).fill(alice)
        page.get_by_label(_("For a wallet: credit or debit")).select_option("credit")
        page.get_by_label(_("Points")).fill(str(THRESHOLD + 100))
        page.get_by_label(_("Reason")).fill("points lost at a broken till")
        page.get_by_role("button", name=_("Ask for the correction")).click()
        page.wait_for_url(f"{base}/office/corrections?done=pending#done")
        (asked,) = ctx.corrections.list("brossard").corrections
        assert page.locator(f"#correction-{asked.id}").is_visible() and brossard.available("alice") == 1_000
        check("office-corrections")

        with visitor(browser, base, locale=locale) as second:
            signed_in(second, ctx, sue, "brossard", OFFICE)
            second.open("/office/corrections")
            second.page.get_by_role("button", name=_("Approve correction %(id)s") % {"id": asked.id}).click()
            second.page.wait_for_url(f"{base}/office/corrections?done=posted#done")
            second.assert_clean()
        assert brossard.available("alice") == 1_000 + THRESHOLD + 100
        seen.open(f"/office/residents/{alice}")
        assert page.locator("#resident-balance").inner_text() == i18n.points(lang, 1_000 + THRESHOLD + 100)

        page.get_by_role("button", name=_("Schedule the erasure")).click()  # with the delay, cancellable
        page.wait_for_url(f"{base}/office/residents/{alice}?done=erasure-scheduled#done")
        assert ctx.residents.erasure(alice).status == "pending"
        assert page.get_by_role("button", name=_("Cancel the erasure")).is_visible()
        page.get_by_role("button", name=_("Cancel the erasure")).click()
        page.wait_for_url(f"{base}/office/residents/{alice}?done=erasure-cancelled#done")
        assert ctx.residents.erasure(alice).status == "none"

        seen.open("/office/residents")  # enrol: the code is shown once, and works
        page.get_by_label(_("Name")).fill("Bruno Tremblay")
        page.get_by_label(_("E-mail")).fill("bruno@example.org")
        page.get_by_role("button", name=_("Enrol"), exact=True).click()
        code = page.locator("#activation-code").inner_text()
        assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", code), code
        check("office-resident-code")
        enrolled, city = ctx.activation.redeem(code)
        assert city == "brossard" and ctx.residents.record(enrolled, "brossard").status == "active"

        seen.open("/office/services")  # a municipal service: published, then suspended
        page.get_by_label(_("Title in %(language)s") % {"language": i18n.LANGUAGE_NAMES["fr"]}).fill("Piscine : entrée")
        page.get_by_label(_("Price in points")).fill("40")
        page.get_by_role("button", name=_("Save"), exact=True).click()
        page.wait_for_url(re.compile(r".*/office/services/[^/?]+\?done=created$"))
        check("office-service")
        page.get_by_role("button", name=_("Suspend"), exact=True).click()
        page.wait_for_url(re.compile(r".*\?done=suspended$"))
        (service,) = ctx.catalog.list(brossard_owner(), ("service",)).items
        assert service.suspended and service.price_points == 40
        seen.open("/office/services")
        check("office-services")
