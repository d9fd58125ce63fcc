"""The wallet's "My account" in a browser, on both databases: a resident opts in to a city and out
again (with the keyboard), downloads their data, asks to be erased, sees the date, undoes it, asks
again; the erasures job runs once the delay is over (the tests' clock) and their session ends.
French, English and Spanish, axe-clean on a desktop and a phone. Then the cheap checks without a
browser: forms refused (no CSRF token, box not ticked) change nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.http.app import create_app
from community.service_layer.residents import ERASURE_DELAY_DAYS
from ledger.domain import accounts
from ledger.service_layer.audit import verify_database
from operations.service_layer.jobs import scheduler
from tests.browser import browser, needs_chromium, signed_in, site, visitor
from tests.world import World
from web.auth import open_session

__all__ = ["browser"]  # the fixture, imported for its module

SPACES = re.compile(r"[\u00a0\u202f]")  # French groups digits and sets "$" apart with no-break spaces


@pytest.fixture
def world(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.city("wendake", name="Wendake")
    world.city("saint-lambert", name="Saint-Lambert")
    world.resident("alice", "brossard", points=1_234)
    world.resident("bob", "wendake", points=50)
    return world


def text_of(page) -> str:
    return SPACES.sub(" ", page.locator("main").inner_text())


@needs_chromium
def test_a_resident_manages_cities_data_and_erasure(browser, ctx, world, tmp_path: Path) -> None:
    alice = world.residents["alice"]
    with site(ctx) as base, visitor(browser, base, locale="fr-CA") as french:
        signed_in(french, ctx, alice.id, "brossard")
        page = french.page
        french.open("/wallet/account")
        assert page.get_by_role("heading", level=1).inner_text() == "Mon compte"
        assert page.get_by_role("link", name="Mon compte").get_attribute("aria-current") == "page"
        assert "Votre ville de résidence est Brossard" in text_of(page)
        french.check("account-fr")

        # With the keyboard alone: Tab to "Adhérer à Wendake", Enter.
        french.tab_to(page.get_by_role("button", name="Adhérer à Wendake"))
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"done=joined"))
        assert page.get_by_role("status").inner_text() == "Vous avez adhéré à Wendake."
        assert ctx.residents.opt_ins(alice.id) == ["wendake"]
        page.get_by_role("button", name="Me retirer de Wendake").click()
        page.wait_for_url(re.compile(r"done=left"))
        assert page.get_by_role("status").inner_text() == "Vous vous êtes retiré·e de Wendake."
        assert ctx.residents.opt_ins(alice.id) == []

        # My data: a download, named by the day, holding the export.
        with page.expect_download() as download:
            page.get_by_role("link", name="Télécharger mes données (JSON)").click()
        assert download.value.suggested_filename == "entraide-my-data-2025-12-31.json"  # the clock's day in Brossard
        saved = tmp_path / "mine.json"
        download.value.save_as(saved)
        mine = json.loads(saved.read_text())
        assert mine["resident"]["id"] == alice.id and mine["personal"] == {
            "name": "Alice",
            "email": "alice@example.org",
        }
        assert [line["points"] for line in mine["history"]] == [1_234]

        # Erase me: the warning in numbers; the box must be ticked.
        page.get_by_role("link", name="M’effacer…").click()
        page.wait_for_url(f"{base}/wallet/account/erase")
        warning = text_of(page)
        assert "Vos 1 234 points (12,34 $) iront aux points expirés du programme" in warning
        assert "14 jours après votre demande : le 14 janv. 2026" in warning
        french.check("account-erase-fr")
        page.get_by_role("button", name="Demander mon effacement").click()
        box = page.get_by_role("checkbox")
        assert box.get_attribute("aria-invalid") == "true"
        assert "cochez la case" in page.locator("#confirm-error").inner_text()
        assert ctx.residents.erasure(alice.id).status == "none"
        french.expect_refused(422)
        french.check("account-erase-refused-fr")
        box.check()
        page.get_by_role("button", name="Demander mon effacement").click()
        page.wait_for_url(re.compile(r"done=erasure-asked"))
        assert "Votre effacement est prévu le 14 janv. 2026" in text_of(page)
        french.check("account-pending-fr")
        page.get_by_role("button", name="Annuler mon effacement").click()
        page.wait_for_url(re.compile(r"done=erasure-undone"))
        assert "Votre effacement est annulé" in page.get_by_role("status").inner_text()
        assert ctx.residents.erasure(alice.id).status == "none"

        # Asked again; the job carries it out once the delay is over, and the session ends.
        page.get_by_role("link", name="M’effacer…").click()
        page.get_by_label(re.compile("Je comprends")).check()
        page.get_by_role("button", name="Demander mon effacement").click()
        page.wait_for_url(re.compile(r"done=erasure-asked"))
        french.open("/wallet")  # the wallet's home says it too, with the way back
        assert "Votre effacement est prévu le 14 janv. 2026" in page.locator("#erasure-planned").inner_text()
        french.check("wallet-erasure-planned-fr")
        page.locator("#erasure-planned").get_by_role("link", name="Annuler mon effacement").click()
        page.wait_for_url(re.compile(r"/wallet/account#erasure$"))
        french.assert_clean()
        ctx.clock.advance(ERASURE_DELAY_DAYS * 86_400)
        assert scheduler(ctx).run_now("erasures").result == {"erased": 1, "deferred": 0}
        assert ctx.ledger.balance("brossard", alice.wallet).posted == 0
        assert ctx.ledger.balance("brossard", accounts.BREAKAGE).posted == 1_234

        def sent_to_sign_in(path: str) -> bool:  # with the browser's cookies, without loading the sign-in page
            answer = page.request.get(base + path, max_redirects=0)
            return answer.status == 303 and answer.headers["location"] == f"/wallet/sign-in?next={path}"

        assert sent_to_sign_in("/wallet/account")
        # Signing in again fails: a new session for the erased resident opens nothing.
        signed_in(french, ctx, alice.id, "brossard")
        assert sent_to_sign_in("/wallet/account/erase")

        # The same pages in English and Spanish. They render the same templates from the same
        # services as above, so one database suffices for them: the browser's time is the budget.
        if ctx.engine.dialect.name == "sqlite":
            others_speak(browser, base, ctx, world)
    assert verify_database(ctx.engine)["ok"]


def others_speak(browser, base: str, ctx, world: World) -> None:
    bob = world.residents["bob"]
    ctx.residents.opt_in(bob.id, "brossard", "resident:test")
    with visitor(browser, base, locale="en-CA") as english:
        signed_in(english, ctx, bob.id, "wendake")
        english.open("/wallet/account")
        page = english.page
        assert page.get_by_role("button", name="Opt out of Brossard").is_visible()
        assert page.get_by_role("button", name="Opt in to Saint-Lambert").is_visible()
        english.check("account-en")
        english.open("/wallet/account/erase")
        assert "Your 50 points ($0.50) go to the program’s expired points" in text_of(page)
        english.check("account-erase-en")
    with visitor(browser, base, locale="es") as spanish:
        signed_in(spanish, ctx, bob.id, "wendake")
        spanish.open("/wallet/account")
        assert spanish.page.get_by_role("heading", level=1).inner_text() == "Mi cuenta"
        spanish.check("account-es")


def test_the_forms_refuse_what_they_must_and_change_nothing(ctx, world) -> None:
    alice = world.residents["alice"]
    with TestClient(create_app(ctx), base_url="https://entraide.test") as client:
        assert (
            client.get("/wallet/account", follow_redirects=False).headers["location"]
            == "/wallet/sign-in?next=/wallet/account"
        )
        session = open_session(ctx, alice.id, "brossard", "test:web")
        client.cookies.set(session.key, session.value)
        page = client.get("/wallet/account", headers={"Accept-Language": "en"})
        assert page.status_code == 200 and "Opt in to Wendake" in page.text
        token = client.cookies["entraide_csrf"]
        forged = client.post("/wallet/account/erase", data={"confirm": "yes"})
        assert forged.status_code == 403 and ctx.residents.erasure(alice.id).status == "none"
        unticked = client.post("/wallet/account/erase", data={"_csrf_token": token}, headers={"Accept-Language": "en"})
        assert unticked.status_code == 422 and 'aria-describedby="confirm-error"' in unticked.text
        assert "tick the box" in unticked.text and ctx.residents.erasure(alice.id).status == "none"
        unknown = client.post("/wallet/account/opt-ins", data={"city": "atlantis", "_csrf_token": token})
        assert (
            unknown.status_code == 404 and "unknown_program" in unknown.text and ctx.residents.opt_ins(alice.id) == []
        )
        home = client.post("/wallet/account/opt-outs", data={"city": "brossard", "_csrf_token": token})
        assert home.status_code == 409 and "home_city" in home.text
        assert client.get("/wallet/account?done=<script>").status_code == 400
        export = client.get("/wallet/account/export")
        assert export.headers["content-disposition"] == 'attachment; filename="entraide-my-data-2025-12-31.json"'
        assert export.headers["content-security-policy"] and json.loads(export.content)["resident"]["id"] == alice.id
