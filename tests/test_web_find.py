"""The wallet's "Find": a resident searches the catalog with a typo and filters (a GET form, no
script needed), sees the results as a list and on a map (Leaflet from our own origin, no tile
fetched), opens an item, redeems it with points and sees the voucher and the balance drop; a
redemption the wallet cannot pay is refused next to the form and changes nothing; a double submit
redeems once. In French and English (Spanish once), axe-clean, with the keyboard."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import msgspec
import pytest
from litestar.testing import TestClient

from api.bootstrap import Settings
from api.http.app import create_app
from marketplace.domain.catalog import ItemSpec, Location
from marketplace.service_layer.catalog import Owner
from tests.browser import browser, needs_chromium, signed_in, site, visitor
from tests.stripe_checkout import CheckoutServer
from tests.test_payments import API_KEY, SECRET
from tests.world import World
from web.auth import open_session
from web.pages import CONTENT_SECURITY_POLICY, SESSION_COOKIE

__all__ = ["browser"]  # the fixture, imported for this module

BAKERY = Owner("brossard", "boulangerie", "merchant:boulangerie")
BOOKSHOP = Owner("brossard", "librairie", "merchant:librairie")
CITY = Owner("brossard", None, "staff:test")
CROISSANT = ItemSpec(title={"fr": "Croissant au beurre", "en": "Butter croissant"}, category="food", price_points=100,
                     description={"fr": "Cuit ce matin, pur beurre.", "en": "Baked this morning."}, quantity=5,
                     per_resident_limit=2)  # fmt: skip
NOVEL = ItemSpec(title={"fr": "Roman québécois", "en": "Québec novel"}, category="retail", price_points=900, quantity=3)
POOL = ItemSpec(title={"fr": "Abonnement piscine", "en": "Pool pass"}, category="sports", price_points=400,
                location=Location(45.44, -73.45, "Centre aquatique"))  # fmt: skip

PARKING = ItemSpec(title={"fr": "Vignette de stationnement", "en": "Parking permit"}, category="services",
                   price_points=200, cash_cents=1_500)  # fmt: skip


class Market(msgspec.Struct):
    world: World
    croissant: str
    novel: str
    pool: str


@pytest.fixture
def market(ctx) -> Market:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.merchant("boulangerie", "brossard", "food")
    world.merchant("librairie", "brossard", "retail")
    ctx.catalog.set_shop(BAKERY, Location(45.4501, -73.4601, "12 rue Principale"), True)
    ctx.catalog.set_shop(BOOKSHOP, Location(45.4602, -73.4702, "3 rue du Livre"), True)
    items = [ctx.catalog.create(owner, kind, spec).id for owner, kind, spec in
             ((BAKERY, "offer", CROISSANT), (BOOKSHOP, "offer", NOVEL), (CITY, "service", POOL))]  # fmt: skip
    world.resident("alice", "brossard", points=1_000)
    world.resident("bob", "brossard", points=50)
    return Market(world, *items)


def available(market: Market, who: str) -> int:
    return market.world.available(who)


@needs_chromium
def test_a_resident_finds_with_a_typo_filters_sees_the_map_and_redeems(browser, ctx, market, checkout) -> None:
    """One walk per database (Chromium is the costly part): in French every page and the refusal,
    then in English a second redemption and one with a card part paid on the card processor's page,
    then a bad filter in Spanish."""
    alice = market.world.residents["alice"]
    with site(ctx) as base:
        checkout.webhook_url = f"{base}/v1/payments/stripe/webhook"
        with visitor(browser, base, locale="fr-CA") as resident:
            signed_in(resident, ctx, alice.id, "brossard")
            page = resident.page
            resident.open("/wallet/find")
            assert page.locator(".find-hit").count() == 3  # everything offered, before any search
            page.wait_for_selector("#find-map[data-markers='3']")  # the map shows the same results

            # With the keyboard: the query field, a typo, Enter; the form needs no script.
            page.get_by_label("Que cherchez-vous ?").focus()
            page.keyboard.type("croisant")
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r"q=croisant"))
            assert page.locator("#results-count").inner_text().strip() == "1 résultat"
            assert page.get_by_role("link", name="Croissant au beurre").is_visible()

            # Filters: a category, then a points range.
            page.get_by_label("Que cherchez-vous ?").fill("")
            page.get_by_label("Catégorie").select_option(label="Alimentation")
            page.get_by_role("button", name="Rechercher").click()
            page.wait_for_url(re.compile(r"category=food"))
            assert page.locator(".find-hit").count() == 1
            page.get_by_label("Catégorie").select_option(value="")
            page.get_by_label("Points, au plus").fill("500")
            page.get_by_role("button", name="Rechercher").click()
            page.wait_for_url(re.compile(r"max_points=500"))
            assert page.locator(".find-hit").count() == 2  # the croissant and the pool, not the 900-point novel
            page.wait_for_selector("#find-map[data-markers='2']")
            assert page.locator(".find-marker").count() == 2
            resident.check("wallet-find-fr")

            # The item: reached and opened with the keyboard, redeemed with the keyboard.
            page.get_by_role("link", name="Croissant au beurre").focus()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/wallet/find/items/{market.croissant}")
            assert "Commerce boulangerie" in page.locator(".find-facts").inner_text()
            resident.check("wallet-find-item-fr")
            page.get_by_label("Combien").fill("2")
            page.get_by_role("button", name="Échanger").focus()
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r"/wallet/redemptions/[0-9a-f]{32}$"))
            assert page.get_by_role("heading", level=1).inner_text() == "Mon bon"
            code = page.locator(".voucher-number").inner_text()
            assert re.fullmatch(r"[A-Z2-9]{6,}", code), code
            assert page.get_by_role("img", name=re.compile(code)).is_visible()  # the QR to show at the counter
            assert "Il vous reste 800 points disponibles." in page.locator("main").inner_text()
            assert available(market, "alice") == 800
            resident.check("wallet-voucher-fr")

            # Not enough points for the novel: said next to the form; nothing taken.
            resident.open(f"/wallet/find/items/{market.novel}")
            page.get_by_role("button", name="Échanger").click()
            assert "Solde de points insuffisant" in page.get_by_role("alert").inner_text()
            assert page.get_by_label("Combien").get_attribute("aria-describedby").endswith("redeem-refusal")
            assert available(market, "alice") == 800
            assert ctx.catalog_search.item(alice.id, market.novel).remaining == 3
            resident.expect_refused(422)
            resident.check("wallet-find-refused-fr")

        with visitor(browser, base, locale="en-CA", elsewhere=(checkout.url,)) as resident:
            signed_in(resident, ctx, alice.id, "brossard")
            page = resident.page
            resident.open("/wallet/find?q=piscne")  # one letter missing
            assert page.locator("#results-count").inner_text().strip() == "1 result"
            page.wait_for_selector("#find-map[data-markers='1']")
            resident.check("wallet-find-en")
            page.get_by_role("link", name="Pool pass").click()
            assert "The city of Brossard" in page.locator(".find-facts").inner_text()
            resident.check("wallet-find-item-en")
            page.get_by_role("button", name="Redeem").click()
            page.wait_for_url(re.compile(r"/wallet/redemptions/[0-9a-f]{32}$"))
            assert page.get_by_role("heading", level=1).inner_text() == "My voucher"
            assert "You now have 400 points available." in page.locator("main").inner_text()
            assert available(market, "alice") == 400
            resident.check("wallet-voucher-en")

            # A card part: paid on the processor's page (its webhook comes first here), then back here.
            parking = ctx.catalog.create(CITY, "service", PARKING).id
            resident.open(f"/wallet/find/items/{parking}")
            page.get_by_role("button", name="Redeem").click()
            page.wait_for_url(re.compile(r"/wallet/redemptions/[0-9a-f]{32}$"))
            assert "Waiting for the card payment" in page.locator("main").inner_text()
            resident.check("wallet-card-payment-en")
            resident.tab_to(page.get_by_role("link", name="Pay $15.00 by card"))
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(re.escape(checkout.url) + "/pay/"))
            page.get_by_role("button", name="Pay").click()
            page.wait_for_url(re.compile(r"/wallet/redemptions/[0-9a-f]{32}\?paid=1$"))
            assert "Ready: show this voucher at the counter" in page.locator("main").inner_text()
            assert "$15.00 · paid" in page.locator("main").inner_text() and available(market, "alice") == 200
            resident.check("wallet-card-paid-en")

        with visitor(browser, base, locale="es-MX") as resident:
            signed_in(resident, ctx, market.world.residents["bob"].id, "brossard")
            answer = resident.open("/wallet/find?min_points=900&max_points=100")
            assert answer.status == 400
            field = resident.page.get_by_label("Puntos, como máximo")
            assert field.get_attribute("aria-invalid") == "true"
            message = resident.page.locator("#" + field.get_attribute("aria-describedby")).inner_text()
            assert message == "El máximo no puede ser inferior al mínimo."
            assert resident.page.locator(".find-hit").count() == 0
            resident.expect_refused(400)
            resident.check("wallet-find-error-es")


# --- without a browser -----------------------------------------------------------------------------


@pytest.fixture
def client(ctx, market) -> Iterator[TestClient]:
    """The app over https (the cookies are Secure), signed in as alice, with the CSRF cookie."""
    with TestClient(create_app(ctx), base_url="https://entraide.test") as http:
        http.cookies.set(
            SESSION_COOKIE, open_session(ctx, market.world.residents["alice"].id, "brossard", "test:web").value
        )
        http.get("/wallet/find")
        yield http


def form(http: TestClient, key: str, units: str = "1") -> dict[str, str]:
    return {"_csrf_token": http.cookies["entraide_csrf"], "idempotency_key": key, "units": units}


def test_leaflet_is_ours_and_the_tile_server_is_a_setting(ctx, market, settings, monkeypatch) -> None:
    with TestClient(create_app(ctx), base_url="https://entraide.test") as http:
        signed_out = http.get("/wallet/find?q=croissant", follow_redirects=False)  # no session yet: sign in first
        assert signed_out.status_code == 303
        assert signed_out.headers["location"] == "/wallet/sign-in?next=/wallet/find%3Fq%3Dcroissant"
        leaflet = http.get("/static/leaflet/leaflet-src.esm.js")
        assert leaflet.status_code == 200 and "javascript" in leaflet.headers["content-type"]
        assert http.get("/static/leaflet/leaflet.css").status_code == 200
        http.cookies.set(
            SESSION_COOKIE, open_session(ctx, market.world.residents["alice"].id, "brossard", "test:web").value
        )
        blank = http.get("/wallet/find")
        assert blank.headers["content-security-policy"] == CONTENT_SECURITY_POLICY and 'data-tiles=""' in blank.text
        assert all(
            "src=" in tag or 'type="application/json"' in tag for tag in re.findall(r"<script\b[^>]*>", blank.text)
        )
    tiles = "https://tiles.example.org/{z}/{x}/{y}.png"
    with pytest.raises(ValueError, match="ENTRAIDE_MAP_TILES_ATTRIBUTION"):  # providers require their credit
        dataclasses.replace(settings, map_tiles_url=tiles)
    credit = "© Tiles & Co <contributors>"
    ctx.settings = dataclasses.replace(settings, map_tiles_url=tiles, map_tiles_attribution=credit)
    with TestClient(create_app(ctx), base_url="https://entraide.test") as http:
        http.cookies.set(
            SESSION_COOKIE, open_session(ctx, market.world.residents["alice"].id, "brossard", "test:web").value
        )
        mapped = http.get("/wallet/find")
        policy = mapped.headers["content-security-policy"]
        assert "img-src 'self' data: https://tiles.example.org;" in policy and "script-src 'self';" in policy
        assert f'data-tiles="{tiles}"' in mapped.text
        assert "Carte\u00a0: © Tiles &amp; Co &lt;contributors&gt;</p>" in mapped.text  # page text, escaped
        assert urlsplit(tiles).netloc not in http.get("/").headers["content-security-policy"]  # only the map's page
    monkeypatch.setenv("ENTRAIDE_MAP_TILES_URL", tiles)
    monkeypatch.setenv("ENTRAIDE_MAP_TILES_ATTRIBUTION", credit)
    assert Settings.load(settings.database_url, settings.data_dir).map_tiles_url == tiles
    monkeypatch.setenv("ENTRAIDE_MAP_TILES_URL", "")
    assert Settings.load(settings.database_url, settings.data_dir).map_tiles_url is None
    with pytest.raises(ValueError, match="ENTRAIDE_MAP_TILES_URL"):
        dataclasses.replace(settings, map_tiles_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png")


@pytest.fixture
def checkout(ctx) -> Iterator[CheckoutServer]:
    """Card payments on, against Stripe's Checkout on a local server (tests/stripe_checkout.py)."""
    server = CheckoutServer(lambda: ctx.clock() // 1_000_000)
    assert "redemptions" not in vars(ctx) and "card_payments" not in vars(ctx)  # built from these settings
    ctx.settings = dataclasses.replace(ctx.settings, stripe_api_key=API_KEY, stripe_api_base=server.url,
                                       stripe_webhook_secret=SECRET)  # fmt: skip
    yield server
    server.close()


def test_a_card_remainder_is_paid_on_the_processors_page_then_the_voucher_is_ready(ctx, market, checkout) -> None:
    """The page holds the points and links to Stripe's hosted page (no card field, no third-party
    script here); cancelling expires the session and gives the points back; back from paying
    (`?paid=1`), the page asks Stripe and the voucher is ready before any webhook, which then
    changes nothing."""
    parking = ctx.catalog.create(CITY, "service", PARKING).id
    alice = market.world.residents["alice"]
    with TestClient(create_app(ctx), base_url="https://entraide.test") as http:
        http.cookies.set(SESSION_COOKIE, open_session(ctx, alice.id, "brossard", "test:web").value)
        http.headers["Accept-Language"] = "en"
        assert "The card part is paid after the points" in http.get(f"/wallet/find/items/{parking}").text
        given_up = http.post(f"/wallet/find/items/{parking}/redeem", data=form(http, "card-1"))
        assert given_up.status_code == 200 and "Waiting for the card payment" in given_up.text
        assert "$15.00 · to be paid" in given_up.text and "You now have 800 points available." in given_up.text
        assert 'class="voucher-number"' not in given_up.text  # no voucher before the card is paid
        (session,) = checkout.sessions.values()
        page_url = f"https://entraide.test{given_up.url.path}"
        assert (session["success_url"], session["cancel_url"]) == (f"{page_url}?paid=1", page_url)
        assert (session["amount_total"], session["locale"], session["title"]) == (1_500, "en", "Parking permit")
        assert f'href="{session["url"]}"' in given_up.text and "Pay $15.00 by card" in given_up.text
        cancelled = http.post(f"{given_up.url.path}/cancel", data={"_csrf_token": http.cookies["entraide_csrf"]})
        assert "Cancelled: the points came back to your wallet" in cancelled.text
        assert available(market, "alice") == 1_000 and session["status"] == "expired"
        assert "Pay $15.00 by card" not in cancelled.text

        waiting = http.post(f"/wallet/find/items/{parking}/redeem", data=form(http, "card-2"))
        redemption = ctx.redemptions.get(alice.id, waiting.url.path.rsplit("/", 1)[1])
        assert redemption.status == "awaiting_payment" and redemption.payment is not None
        session_id = redemption.payment.checkout_session_id
        assert session_id is not None and len(session_id) > 64 and redemption.payment.payment_intent_id is None
        # Back from the hosted page before paying (its Back link, or a forged ?paid=1): nothing changes.
        not_yet = http.get(f"{waiting.url.path}?paid=1")
        assert "has not confirmed your payment yet" in not_yet.text and available(market, "alice") == 800
        back = urlsplit(checkout.pay(session_id))  # the resident pays on Stripe's page, which sends them back
        ready = http.get(f"{back.path}?{back.query}")
        assert "Ready: show this voucher at the counter" in ready.text and "$15.00 · paid" in ready.text
        assert 'class="mono voucher-number"' in ready.text and available(market, "alice") == 800
        paid_by = ctx.redemptions.get(alice.id, redemption.id).payment
        assert paid_by is not None and paid_by.payment_intent_id == checkout.sessions[session_id]["payment_intent"]
        body, signature = checkout.events[-1]  # Stripe's webhook, after: verified, and nothing left to do
        headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
        assert http.post("/v1/payments/stripe/webhook", content=body, headers=headers).json()["outcome"] == "unchanged"
        assert http.post("/v1/payments/stripe/webhook", content=body, headers=headers).json()["outcome"] == "duplicate"
        forged = http.post("/v1/payments/stripe/webhook", content=body.replace(b"1500", b"1"), headers=headers)
        assert forged.status_code == 400
    # A session is refunded through the PaymentIntent it made (what a hold gone meanwhile calls for).
    ctx.card_payments.refund(session_id, "entraide-refund-test")
    assert checkout.refunds[-1]["payment_intent"] == checkout.sessions[session_id]["payment_intent"]


def test_the_redeem_form_refuses_bad_input_and_a_double_submit_redeems_once(client, ctx, market) -> None:
    alice = market.world.residents["alice"].id
    for units in ("0", "abc", "11", ""):
        refused = client.post(f"/wallet/find/items/{market.croissant}/redeem", data=form(client, f"k{units}", units))
        assert refused.status_code == 400, units
        assert 'id="redeem-units-error"' in refused.text and 'aria-invalid="true"' in refused.text
    over = client.post(f"/wallet/find/items/{market.croissant}/redeem", data=form(client, "limit", "3"))
    assert over.status_code == 409 and "Limite par personne atteinte" in over.text
    # Without the form's CSRF token: refused before anything.
    forged = client.post(f"/wallet/find/items/{market.croissant}/redeem", data={"idempotency_key": "x", "units": "1"})
    assert forged.status_code == 403
    # No such item (or another city's): the 404 page; a voucher that is not hers too.
    assert client.get("/wallet/find/items/nope").status_code == 404
    assert client.get("/wallet/redemptions/" + "0" * 32).status_code == 404
    # A card remainder where card payments are off (the embedded default): said plainly.
    parking = ctx.catalog.create(CITY, "service", PARKING).id
    assert (
        "200 points + $15.00 by card"
        in client.get(f"/wallet/find/items/{parking}", headers={"Accept-Language": "en"}).text
    )
    card = client.post(f"/wallet/find/items/{parking}/redeem", data=form(client, "card"))
    assert card.status_code == 503 and "Paiements désactivés" in card.text
    assert available(market, "alice") == 1_000 and ctx.catalog_search.item(alice, market.croissant).remaining == 5

    # The same form sent twice (a double click, a reload): one redemption.
    first = client.post(
        f"/wallet/find/items/{market.croissant}/redeem", data=form(client, "same-key"), follow_redirects=False
    )
    again = client.post(
        f"/wallet/find/items/{market.croissant}/redeem", data=form(client, "same-key"), follow_redirects=False
    )
    assert first.status_code == again.status_code == 303 and first.headers["location"] == again.headers["location"]
    assert available(market, "alice") == 900 and ctx.catalog_search.item(alice, market.croissant).remaining == 4
    voucher = client.get(first.headers["location"])
    assert voucher.status_code == 200 and "Prêt\u00a0: montrez ce bon au comptoir" in voucher.text


def test_bad_filters_are_said_next_to_them_and_pages_keep_the_filters(client, ctx, market) -> None:
    for query, field in (("min_points=-5", "min_points"), ("max_points=lots", "max_points"), ("category=weapons", "category"),
                         ("city=montreal", "city")):  # fmt: skip
        bad = client.get(f"/wallet/find?{query}")
        assert bad.status_code == 400 and f'id="find-{field}-error"' in bad.text, query
    assert client.get("/wallet/find?offset=-1").status_code == 400
    for n in range(11):
        spec = ItemSpec(title={"fr": f"Muffin numéro {n}"}, category="food", price_points=10 + n)
        ctx.catalog.create(BAKERY, "offer", spec, deliver_now=False)
    ctx.search_indexer.deliver_quietly()
    first = client.get("/wallet/find?q=muffin&category=food&open_now=1")
    assert (
        first.text.count('class="find-hit"') == 10 and "12 résultats" not in first.text and "11 résultats" in first.text
    )
    following = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert following is not None and 'rel="prev"' not in first.text
    link = following.group(1).replace("&amp;", "&")
    assert all(part in link for part in ("q=muffin", "category=food", "open_now=1", "offset=10"))
    second = client.get(link)
    assert (
        second.text.count('class="find-hit"') == 1 and 'rel="prev"' in second.text and 'rel="next"' not in second.text
    )
    assert '<ol class="find-list" start="11">' in second.text
