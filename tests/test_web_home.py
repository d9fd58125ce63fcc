"""The pages' foundation: the welcome page in French, English and Spanish (browser's language, then
the switch, which sticks), accessible (axe), on a phone, with the keyboard; every page's security
headers (strict CSP, no inline script or style), CSRF on forms, and refusals as pages."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.browser import browser, needs_chromium, site, visitor
from tests.world import World
from web.catalogs import problems as catalog_problems
from web.pages import CONTENT_SECURITY_POLICY

__all__ = ["browser"]  # the fixture, imported for its module


@pytest.fixture
def cities(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.city("wendake", name="Wendake")
    world.city("saint-lambert", name="Saint-Lambert")
    return world


@needs_chromium
def test_the_welcome_page_speaks_the_visitors_language_and_the_switch_sticks(browser, ctx, cities) -> None:
    with site(ctx) as base, visitor(browser, base, locale="fr-CA") as french:
        french.open("/")
        page = french.page
        assert page.locator("html").get_attribute("lang") == "fr"
        assert page.get_by_role("heading", level=1).inner_text().startswith("Gagnez des points")
        assert page.get_by_role("listitem").filter(has_text="Saint-Lambert").count() == 1
        french.check("home-fr")

        with visitor(browser, base, locale="en-US") as english:
            english.open("/")
            assert english.page.locator("html").get_attribute("lang") == "en"
            assert english.page.get_by_role("link", name="Open my wallet").is_visible()
            english.check("home-en")

        # The switch: a form (no script needed); the choice outlives the page and the browser's language.
        page.get_by_role("button", name="Español").click()
        page.wait_for_url(f"{base}/")
        assert page.locator("html").get_attribute("lang") == "es"
        assert page.get_by_role("button", name="Español").get_attribute("aria-pressed") == "true"
        page.reload()
        assert page.get_by_role("heading", level=1).inner_text() == "Gane puntos en su ciudad, gástelos cerca de casa"
        french.check("home-es")


@needs_chromium
def test_the_keyboard_reaches_the_content_and_every_control(browser, ctx, cities) -> None:
    with site(ctx) as base, visitor(browser, base) as someone:
        someone.open("/")
        page = someone.page
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Aller au contenu")
        assert skip.evaluate("element => element === document.activeElement")
        assert skip.is_visible()  # shown when focused
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "main"
        # Every control is reached in order with Tab alone, and each shows where the focus is.
        reached = []
        for _ in range(12):
            page.keyboard.press("Tab")
            reached.append(page.evaluate("() => document.activeElement.textContent.trim()"))
        assert "Ouvrir mon portefeuille" in reached and "Voir les chiffres" in reached
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
        someone.assert_clean()


def test_every_page_has_a_strict_policy_and_no_inline_script_or_style(ctx, cities) -> None:
    with site(ctx) as base, httpx.Client(base_url=base) as client:
        for path in ("/", "/no-such-page"):
            page = client.get(path, headers={"Accept": "text/html"})
            assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["content-type"].startswith("text/html")
            html = page.text
            assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", html))
            assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html), "inline style or handler"
        missing = client.get("/no-such-page", headers={"Accept": "text/html", "Accept-Language": "en"})
        assert missing.status_code == 404 and "Not found" in missing.text
        # The API keeps its problem documents.
        assert (
            client.get("/v1/no-such", headers={"Accept": "text/html"}).headers["content-type"]
            == "application/problem+json"
        )


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(ctx, cities) -> None:
    with site(ctx) as base, httpx.Client(base_url=base) as client:
        client.get("/")  # the visitor has the CSRF cookie, but the form below was forged elsewhere
        forged = client.post("/language", data={"lang": "en", "next": "/"}, headers={"Accept-Language": "es"})
        assert forged.status_code == 403
        assert "Formulario caducado" in forged.text and "csrf_failed" in forged.text
        assert "lang" not in forged.cookies


def test_the_language_switch_sends_back_to_this_site_only(ctx, cities) -> None:
    # The CSRF cookie is Secure; httpx sends it over https only: the test client speaks https to the app.
    from litestar.testing import TestClient

    from api.http.app import create_app

    with TestClient(create_app(ctx), base_url="https://entraide.test") as client:
        client.get("/")
        token = client.cookies["entraide_csrf"]
        for target, expected in (("/public?city=brossard", "/public?city=brossard"), ("https://evil.example/", "/"),
                                 ("//evil.example/", "/"), ("/\\evil.example", "/")):  # fmt: skip
            answer = client.post("/language", data={"lang": "en", "next": target, "_csrf_token": token},
                                 follow_redirects=False)  # fmt: skip
            assert answer.status_code == 303 and answer.headers["location"] == expected
        chosen = answer.headers["set-cookie"]
        assert "lang=en" in chosen and "HttpOnly" in chosen and "Secure" in chosen and "SameSite=lax" in chosen
        unknown = client.post("/language", data={"lang": "xx", "_csrf_token": token}, follow_redirects=False)
        assert unknown.status_code == 303 and "set-cookie" not in unknown.headers


def test_the_pages_catalogs_are_complete() -> None:
    assert catalog_problems() == []


def test_the_pages_french_follows_quebec_typography() -> None:
    # As the problem documents' (tests/test_problems.py): typographic apostrophe, a no-break space
    # before a colon, a semicolon, a question or exclamation mark, so that it never wraps alone.
    from web.i18n import translations

    for msgid, text in translations("fr")._catalog.items():  # type: ignore[attr-defined]
        if msgid and isinstance(text, str):
            assert "'" not in text, msgid
            assert not re.search(r"[^\u00a0\u202f][:;?!](\s|$)", text), msgid
