"""The merchant portal's offers and shop: the owner creates an offer with a bad price (said next to the
field, nothing saved), fixes it in the page's language ("1 200" points and "2,50" dollars in French),
publishes it, a resident finds it in the wallet's catalog, the owner changes its stock and archives
it, then sets the shop closed and places it (fields first, the map beside them). In French on SQLite
and English on PostgreSQL, axe-clean, with the keyboard. Another merchant's owner can neither read
nor change the offer."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from litestar.testing import TestClient

from api.http.app import create_app
from community.domain.access import operator
from ledger.service_layer import audit_trail
from marketplace.domain.catalog import ItemSpec
from marketplace.service_layer.catalog import Owner
from tests.browser import browser, locale_of, needs_chromium, signed_in, site, visitor
from tests.test_web_signin import HTTPS
from tests.world import World
from web.auth import PORTAL, open_session
from web.i18n import cents_input, day, gettext, points
from web.pages import SESSION_COOKIE

__all__ = ["browser"]  # the fixture, imported for this module
BAKERY = Owner("brossard", "boulangerie", "merchant:boulangerie")
TITLES = {"fr": "Pain de campagne", "en": "Country bread"}
TILES = "https://tiles.example.org/{z}/{x}/{y}.png"


@pytest.fixture
def brossard(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.merchant("boulangerie", "brossard")
    world.merchant("quincaillerie", "brossard", "retail")
    world.resident("alice", "brossard", points=5_000)
    return world


def owner_of(ctx, merchant_id: str, subject: str) -> str:
    return ctx.activation.issue_principal(operator("test"), "brossard", "merchant", subject, key=f"code-{subject}",
                                          merchant_id=merchant_id).principal_id  # fmt: skip


@needs_chromium
def test_an_owner_creates_fixes_publishes_restocks_and_archives_an_offer_then_closes_and_places_the_shop(
    browser, ctx, brossard
) -> None:
    locale = locale_of(ctx)
    lang = locale[:2]
    title = TITLES[lang]

    def _(message: str) -> str:
        return gettext(lang, message)

    with (
        site(ctx) as base,
        visitor(browser, base, locale=locale) as owner,
        visitor(browser, base, locale=locale) as alice,
    ):
        signed_in(owner, ctx, owner_of(ctx, "boulangerie", "marie"), "brossard", PORTAL)
        signed_in(alice, ctx, brossard.residents["alice"].id, "brossard")
        page = owner.page
        owner.open("/portal")
        page.get_by_role("link", name=_("My offers")).click()
        page.wait_for_url(f"{base}/portal/offers")
        page.get_by_role("link", name=_("New offer")).click()
        page.wait_for_url(f"{base}/portal/offers/new")

        # A price that is not a number: said next to the field, the form kept, nothing saved.
        page.locator("#offer-title_fr").fill(TITLES["fr"])
        page.locator("#offer-title_en").fill(TITLES["en"])
        page.locator("#offer-description_fr").fill("Levain, cuit au bois.")
        page.get_by_label(_("Category")).select_option("food")
        page.get_by_label(_("Price in points")).fill("douze")
        page.get_by_label(_("Stock")).fill("12")
        page.get_by_role("button", name=_("Save as a draft")).click()
        error = page.locator("#offer-price_points-error")
        error.wait_for()
        owner.expect_refused(400)
        expected = _("Enter a whole number of points from 1 to %(most)s, such as %(example)s.")
        assert error.inner_text() == expected % {"most": points(lang, 10**9), "example": points(lang, 250)}
        price = page.get_by_label(_("Price in points"))
        assert "offer-price_points-error" in (price.get_attribute("aria-describedby") or "")
        assert price.get_attribute("aria-invalid") == "true"
        assert page.locator("#offer-title_en").input_value() == TITLES["en"]
        assert ctx.catalog.list(BAKERY).items == []
        owner.check(f"portal-offer-form-{lang}")

        # Fixed as the language writes numbers, with the keyboard: saved as a draft.
        price.fill("")
        price.focus()
        page.keyboard.type(points(lang, 1_200))  # "1 200" (a no-break space) in French, "1,200" in English
        page.get_by_label(_("Cash part, paid at the counter")).fill(cents_input(lang, 250))
        page.get_by_label(_("Last day")).fill("2026-12-31")
        page.get_by_role("button", name=_("Save as a draft")).focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/portal/offers?done=created")
        (offer,) = ctx.catalog.list(BAKERY).items
        assert (offer.price_points, offer.cash_cents, offer.quantity, offer.status) == (1_200, 250, 12, "draft")
        assert offer.title == TITLES and offer.valid_until_us is not None
        card = page.locator(f"#offer-{offer.id}")
        assert _("Draft") in card.inner_text()
        assert _("until %(when)s") % {"when": day(lang, dt.date(2026, 12, 31))} in card.inner_text()  # its last day

        # Published: a resident finds it in the wallet's catalog at once.
        card.get_by_role("button").click()
        page.wait_for_url(f"{base}/portal/offers?done=published")
        assert _("Published") in card.inner_text()
        owner.check(f"portal-offers-{lang}")
        alice.open("/wallet/find")
        alice.page.get_by_role("link", name=title).wait_for()

        # More stock, from the offer's form: the list says it.
        card.get_by_role("link").click()
        page.wait_for_url(f"{base}/portal/offers/{offer.id}")
        assert page.get_by_label(_("Price in points")).input_value() == points(lang, 1_200)
        page.get_by_label(_("Stock")).fill("20")
        page.get_by_role("button", name=_("Save the changes")).click()
        page.wait_for_url(f"{base}/portal/offers?done=saved")
        stock = _("%(left)s left of %(total)s") % {"left": "20", "total": "20"}
        assert card.locator(".offer-stock").inner_text() == stock

        # Archived: residents no longer find it.
        card.get_by_role("button").click()
        page.wait_for_url(f"{base}/portal/offers?done=archived")
        assert ctx.catalog.get(BAKERY, offer.id).status == "archived"
        alice.open("/wallet/find")
        assert alice.page.locator(".find-hit").count() == 0

        # The shop: closed, and placed with the fields (the map follows them; a click on it fills them).
        page.get_by_role("link", name=_("My shop")).click()
        page.wait_for_url(f"{base}/portal/shop")
        shop_map = page.locator("#shop-map[data-ready='1']")
        shop_map.wait_for()
        shop_map.click()
        assert page.get_by_label(_("Latitude")).input_value() != ""
        closed = page.get_by_label(_("Closed"), exact=True)
        closed.focus()
        page.keyboard.press("Space")
        assert closed.is_checked()
        page.get_by_label(_("Address")).fill("12 rue Principale")
        for field, value in ((_("Latitude"), "45.4501"), (_("Longitude"), "-73.4601")):
            page.get_by_label(field).fill(value)
            page.get_by_label(field).dispatch_event("change")
        page.wait_for_selector("#shop-map[data-place='45.450100,-73.460100']")
        page.get_by_role("button", name=_("Save the shop")).click()
        page.wait_for_url(f"{base}/portal/shop?done=saved")
        shop = ctx.catalog.shop(BAKERY)
        assert shop.is_open is False and shop.location is not None
        assert (shop.location.lat, shop.location.lng, shop.location.address) == (45.4501, -73.4601, "12 rue Principale")
        assert page.get_by_label(_("Closed"), exact=True).is_checked()
        owner.check(f"portal-shop-{lang}")
        alice.assert_clean()
    # Each change is audited in the owner's name (the principal, then its session).
    records = audit_trail.page(ctx.engine, "brossard", 0, 200).entries
    changes = [(r.action, r.actor.split("/")[0]) for r in records if r.action.startswith("catalog.")]
    assert changes == [("catalog.offer.create", "merchant:marie"), *[("catalog.offer.update", "merchant:marie")] * 3,
                       ("catalog.shop", "merchant:marie")]  # fmt: skip


def test_another_merchants_owner_can_neither_read_nor_change_the_offer_and_bad_fields_change_nothing(
    ctx, brossard
) -> None:
    offer = ctx.catalog.create(BAKERY, "offer", ItemSpec(title={"fr": "Baguette"}, category="food", price_points=90))
    hardware = open_session(ctx, owner_of(ctx, "quincaillerie", "henri"), "brossard", "test:web", PORTAL).value
    bakery = open_session(ctx, owner_of(ctx, "boulangerie", "marie"), "brossard", "test:web", PORTAL).value
    form = {"title_fr": "Baguette volée", "category": "food", "price_points": "1"}
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        client.cookies.set(SESSION_COOKIE, hardware)
        listed = client.get("/portal/offers", headers={"Accept-Language": "en"})
        assert listed.status_code == 200 and "Baguette" not in listed.text
        token = client.cookies["entraide_csrf"]
        for method, path, data in (("GET", f"/portal/offers/{offer.id}", None),
                                   ("POST", f"/portal/offers/{offer.id}", form),
                                   ("POST", f"/portal/offers/{offer.id}/status", {"status": "archived"})):  # fmt: skip
            answer = client.request(method, path, data=None if data is None else data | {"_csrf_token": token},
                                    headers={"Accept-Language": "en"}, follow_redirects=False)  # fmt: skip
            assert (answer.status_code, "wrong_tenant" in answer.text) == (403, True), (path, answer.text)
        # The owner's own form: in Spanish "1.200" is twelve hundred; three decimals of dollars and a day past
        # what the catalog's times hold are refused.
        client.cookies.set(SESSION_COOKIE, bakery)
        bad = client.post(f"/portal/offers/{offer.id}", data=form | {"price_points": "1.200", "cash": "2,505",
                          "valid_until": "9999-12-31", "_csrf_token": token}, headers={"Accept-Language": "es"})  # fmt: skip
        assert bad.status_code == 400 and 'id="offer-cash-error"' in bad.text
        assert 'id="offer-valid_until-error"' in bad.text
        assert "offer-price_points-error" not in bad.text  # "1.200" was read
        unknown = client.post(f"/portal/offers/{offer.id}/status", data={"status": "deleted", "_csrf_token": token})
        assert unknown.status_code == 422
        # The shop: a latitude that is not one is said next to it, and nothing changes; the map's tiles, when
        # configured, are the one other origin its page may show images from.
        lost = client.post("/portal/shop", data={"lat": "nord", "lng": "-73.46", "is_open": "0", "_csrf_token": token})
        assert lost.status_code == 400 and 'id="shop-lat-error"' in lost.text and "shop-lng-error" not in lost.text
        assert ctx.catalog.shop(BAKERY).is_open is True
        ctx.settings = dataclasses.replace(ctx.settings, map_tiles_url=TILES, map_tiles_attribution="© Tiles")
        mapped = client.get("/portal/shop")
        assert "img-src 'self' data: https://tiles.example.org;" in mapped.headers["content-security-policy"]
        assert f'data-tiles="{TILES}"' in mapped.text
    after = ctx.catalog.get(BAKERY, offer.id)
    unchanged = ({"fr": "Baguette"}, 90, "published", offer.version)
    assert (after.title, after.price_points, after.status, after.version) == unchanged
