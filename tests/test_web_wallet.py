"""The wallet's home, card and history pages (SQLite and PostgreSQL), and the services behind them:
when points expire (`Expiry.schedule`), the open holds (`Wallet.holds`), the history paged both ways.

A resident with a purchase, a volunteering attestation, a municipal service redeemed and a hold at
the bakery sees their balance and its value, the hold, the expiry dates, the card (full screen and
printed), their history in French, English and Spanish with each line's receipt; replaces a lost
card, and the old one is refused at the till.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass

import pytest
import zxingcpp
from litestar.testing import TestClient

from api.http.app import create_app
from community.domain.errors import CardRevoked
from ledger.domain.transfers import TransferRequest
from ledger.service_layer import audit, receipts
from marketplace.domain.catalog import ItemSpec
from marketplace.service_layer.catalog import Owner
from merchants.service_layer.pos import Terminal
from tests.browser import DESKTOP, PHONE, SCREENSHOTS, browser, needs_chromium, signed_in, site, visitor
from tests.world import World

__all__ = ["browser"]  # the fixture, imported for its module

DAY_S = 86_400
POOL = ItemSpec(title={"fr": "Entrée à la piscine", "en": "Pool entry", "es": "Entrada a la piscina"},
                category="sports", price_points=300)  # fmt: skip


@dataclass
class Wallet:
    world: World
    alice_id: str
    purchase_points: int
    bakery: Terminal


@pytest.fixture
def wallet(ctx, clock) -> Wallet:
    """Alice of Brossard (opted in to Wendake): 1 000 points from the city on day 0, a purchase at the
    bakery on day 1, an hour of volunteering on day 2, then the pool (300) and a 50-point hold at the bakery."""
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard", expiry_days=30)
    world.city("wendake", name="Wendake")
    world.merchant("boulangerie", "brossard")
    world.organization("maison-jeunes", "brossard")
    alice = world.resident("alice", "brossard", points=1_000)
    ctx.residents.opt_in(alice.id, "wendake", "resident:test")
    bakery = Terminal(world.terminals["boulangerie"].key_id, "boulangerie", "brossard")
    clock.advance(DAY_S)
    purchase = ctx.pos.award(bakery, "a1", alice.card, 2_400).points
    clock.advance(DAY_S)
    ctx.attestations.attest("maison-jeunes", "v1", alice.card, "volunteer_hour", 1)
    clock.advance(3_600)
    pool = ctx.catalog.create(Owner("brossard", None, "staff:test"), "service", POOL)
    ctx.redemptions.redeem(alice.id, "r1", pool.id, 1)
    ctx.pos.hold(bakery, "h1", alice.card, 50)
    return Wallet(world, alice.id, purchase, bakery)


# --- the services and the API -------------------------------------------------------------------


def test_expiry_takes_the_oldest_points_first_and_the_schedule_says_when(ctx, clock, wallet: Wallet) -> None:
    schedule = ctx.expiry.schedule(wallet.alice_id, "brossard")
    # The pool and the hold took 350 of the oldest lot (day 0, 19:00 in Brossard on 31 December).
    assert [(d.day, d.points) for d in schedule.dates] == [
        (dt.date(2026, 1, 30), 650), (dt.date(2026, 1, 31), wallet.purchase_points), (dt.date(2026, 2, 1), 100)
    ]  # fmt: skip
    assert schedule.later_points == 0 and schedule.expiry_days == 30
    assert sum(d.points for d in schedule.dates) == ctx.wallet.balance(wallet.alice_id, "brossard").available

    clock.advance(28 * DAY_S)  # 30 January, 20:00: the first lot is past its 30 days, due until the nightly run
    assert ctx.expiry.schedule(wallet.alice_id, "brossard").dates == schedule.dates
    clock.advance(DAY_S)  # a day later the purchase's lot is due too: both today, in one sum
    assert [(d.day, d.points) for d in ctx.expiry.schedule(wallet.alice_id, "brossard").dates] == [
        (dt.date(2026, 1, 31), 650 + wallet.purchase_points), (dt.date(2026, 2, 1), 100)
    ]  # fmt: skip
    ctx.expiry.run(["brossard"])
    # The run took what was due; the bakery's hold had lapsed meanwhile, and its 50 points, from the
    # oldest lot, are due at the next run.
    assert [(d.day, d.points) for d in ctx.expiry.schedule(wallet.alice_id, "brossard").dates] == [
        (dt.date(2026, 1, 31), 50), (dt.date(2026, 2, 1), 100)
    ]  # fmt: skip


def test_the_schedule_lists_twelve_dates_and_sums_the_rest(ctx, clock) -> None:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", expiry_days=365)
    alice = world.resident("alice", "brossard", points=10)
    bob = world.resident("bob", "brossard")
    for n in range(14):
        clock.advance(DAY_S)
        ctx.ledger.transfer(_earn(alice.wallet, f"alice-{n}"))
        ctx.ledger.transfer(_earn(bob.wallet, f"bob-{n}"))  # another wallet's entries change nothing of Alice's
    schedule = ctx.expiry.schedule(alice.id, "brossard")
    assert len(schedule.dates) == 12 and {d.points for d in schedule.dates} == {10}
    assert schedule.later_points == 30
    assert [d.day for d in schedule.dates] == sorted({d.day for d in schedule.dates})
    nothing = ctx.expiry.schedule(world.resident("carole", "brossard").id, "brossard")
    assert nothing.dates == [] and nothing.later_points == 0
    world.city("forever", expiry_days=9_000_000)  # 24 000 years: past the calendar's end, all "later"
    dana = world.resident("dana", "forever", points=5)
    assert (
        ctx.expiry.schedule(dana.id, "forever").dates == []
        and ctx.expiry.schedule(dana.id, "forever").later_points == 5
    )


def _earn(wallet: str, transfer_id: str) -> TransferRequest:
    return TransferRequest("brossard", transfer_id, "earn_civic", "single", "program:budget", wallet, 10)


def test_the_api_tells_holds_expiry_and_pages_the_history_both_ways(ctx, wallet: Wallet) -> None:
    with TestClient(create_app(ctx), base_url="https://entraide.test") as client:
        world = wallet.world
        world.client = client
        holds = world.bearer("alice", "GET", "/v1/wallet/holds").json()["holds"]
        assert len(holds) == 1 and holds[0]["line"]["points"] == -50
        assert (
            holds[0]["line"]["counterparty"]["name"] == "Commerce boulangerie"
            and holds[0]["expires_at_us"] > ctx.clock()
        )
        expiry = world.bearer("alice", "GET", "/v1/wallet/expiry").json()
        assert expiry["dates"][0] == {"day": "2026-01-30", "points": 650}

        newest = world.bearer("alice", "GET", "/v1/wallet/history?limit=2").json()
        older = world.bearer(
            "alice", "GET", f"/v1/wallet/history?limit=2&before_sequence={newest['next_before_sequence']}"
        ).json()
        back = world.bearer(
            "alice", "GET", f"/v1/wallet/history?limit=2&after_sequence={older['newer_after_sequence']}"
        ).json()
        assert newest["newer_after_sequence"] is None and older["newer_after_sequence"] is not None
        assert [e["entry"]["sequence"] for e in back["entries"]] == [e["entry"]["sequence"] for e in newest["entries"]]
        assert back["entries"][0]["balance_after_points"] is not None  # back on the newest page: its balances
        both = world.bearer("alice", "GET", "/v1/wallet/history?before_sequence=5&after_sequence=2")
        assert both.status_code == 400 and both.json()["code"] == "invalid_request"

        qr = world.bearer("alice", "GET", "/v1/wallet/card/qr.svg")
        assert qr.content.startswith(b'<svg xmlns="http://www.w3.org/2000/svg" viewBox=')  # a standalone image


def test_the_pages_need_a_session_and_refuse_bad_input(ctx, wallet: Wallet) -> None:
    with TestClient(create_app(ctx), base_url="https://entraide.test") as client:
        for path in ("/wallet", "/wallet/card", "/wallet/history", "/wallet/receipts/3", "/wallet/card/qr.svg"):
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/wallet/sign-in?next=/wallet")
        from web.auth import open_session

        cookie = open_session(ctx, wallet.alice_id, "brossard", "test:client")
        client.cookies.set(cookie.key, cookie.value)
        bad = client.get("/wallet/history?before=abc", headers={"Accept-Language": "en", "Accept": "text/html"})
        assert (
            bad.status_code == 400
            and bad.headers["content-type"].startswith("text/html")
            and "validation_error" in bad.text
        )
        assert client.get("/wallet/receipts/999999", headers={"Accept-Language": "en"}).status_code == 404
        card_before = ctx.residents.card(wallet.alice_id).card_id
        forged = client.post("/wallet/card/replace", data={}, follow_redirects=False)  # no CSRF token
        assert forged.status_code == 403 and ctx.residents.card(wallet.alice_id).card_id == card_before


# --- the pages in a browser ---------------------------------------------------------------------


@needs_chromium
def test_a_resident_reads_their_wallet_card_and_history(browser, ctx, clock, wallet: Wallet, tmp_path) -> None:
    world = wallet.world
    audit.make_checkpoints(ctx.engine, ctx.signer, ctx.clock)  # every entry so far has its proof
    for n in range(20):  # enough movements for a second page of history
        ctx.pos.award(wallet.bakery, f"small-{n}", world.residents["alice"].card, 100)
    old_card = world.residents["alice"].card
    with site(ctx) as base:
        with visitor(browser, base, locale="fr-CA") as alice:
            signed_in(alice, ctx, wallet.alice_id, "brossard")
            page = alice.page
            alice.open("/wallet")
            available = ctx.wallet.balance(wallet.alice_id, "brossard").available
            balance = page.locator(".wallet-balance")
            assert available == 970 and "970 points" in balance.inner_text()
            assert "Valeur de 9,70\u00a0$" in balance.inner_text()  # one point, one cent
            holds = page.get_by_role("table", name="Points réservés par des échanges pas encore conclus")
            assert "Commerce boulangerie" in holds.inner_text() and "50" in holds.inner_text()
            expiry = page.get_by_role("table", name="Les prochaines dates d’expiration, les plus proches d’abord")
            assert "30 janvier 2026" in expiry.inner_text() and "650" in expiry.inner_text()
            assert "Wendake" in page.locator(".wallet-cities").inner_text()
            alice.check("wallet-home-fr")

            # The card: the code, full screen (the page that is just the code), and the printed card.
            page.locator(".wallet-nav").get_by_role("link", name="Ma carte").click()
            page.wait_for_url(f"{base}/wallet/card")
            qr = page.get_by_role("img", name="Code QR de ma carte citoyenne, à montrer à la caisse")
            assert qr.evaluate("img => img.naturalWidth > 0")  # the SVG loads as an image
            alice.check("wallet-card-fr")
            page.emulate_media(media="print")
            page.screenshot(path=SCREENSHOTS / "wallet-card-print.png", full_page=True)  # check() made the folder
            assert page.locator(".wallet-nav").is_hidden() and page.locator("#citizen-card").is_visible()
            page.emulate_media(media="screen")
            page.get_by_role("link", name="Afficher en plein écran").focus()
            page.keyboard.press("Enter")  # the keyboard operates it as the mouse does
            page.wait_for_function("() => document.fullscreenElement !== null")
            assert page.evaluate("() => document.fullscreenElement.id") == "citizen-card"
            page.evaluate("() => document.exitFullscreen()")
            alice.open("/wallet/card/full")
            assert page.get_by_role("img").evaluate("img => img.getBoundingClientRect().width") >= 600
            page.set_viewport_size(PHONE)  # a phone held to the till's scanner: the code reads back as the card
            assert scanned(page) == ctx.residents.card(wallet.alice_id).token
            page.set_viewport_size(DESKTOP)
            alice.check("wallet-card-full-fr")

            # The history, in the resident's words, page by page, and a receipt to download.
            alice.open("/wallet/history")
            lines = page.locator(".history-what")
            assert lines.count() == 20
            assert lines.first.inner_text().startswith("Achat chez Commerce boulangerie, +")
            alice.check("wallet-history-fr")
            page.get_by_role("link", name="Mouvements plus anciens").focus()
            page.keyboard.press("Enter")
            page.wait_for_url("**/wallet/history?before=*")
            older = page.locator(".history-what").all_inner_texts()
            assert any(t.startswith("Bénévolat avec Organisme maison-jeunes, +100") for t in older)
            assert any(t.startswith("Entrée à la piscine, −300") for t in older)
            assert any(t.startswith("Participation citoyenne à Brossard, +1\u00a0000") for t in older)
            page.get_by_role("link", name="Mouvements plus récents").click()
            page.wait_for_url("**/wallet/history?after=*")
            assert page.locator(".history-what").first.inner_text().startswith("Achat chez Commerce boulangerie")
            page.get_by_role("link", name="Mouvements plus anciens").click()
            page.wait_for_url("**/wallet/history?before=*")
            pool = page.locator(".history-line").filter(has_text="Entrée à la piscine").first
            with page.expect_download() as downloaded:
                pool.get_by_role("link", name="Reçu").click()
            receipt = downloaded.value
            saved = tmp_path / receipt.suggested_filename
            receipt.save_as(saved)
            keys = audit.keys_document(ctx.engine)
            check = receipts.verify(json.loads(saved.read_text()), keys)  # offline, as the CLI does
            assert check.checkpoints and len(check.entries) == 1
            assert receipt.suggested_filename == f"entraide-receipt-{check.entries[0].replace('#', '-')}.json"
            # A movement after the last checkpoint: its receipt comes with the next one.
            alice.open("/wallet/history")
            newest = page.locator(".history-line").first.get_by_role("link", name="Reçu")
            pending = page.goto(base + newest.get_attribute("href"))
            assert pending.status == 409
            assert (
                "disponible après le prochain point de contrôle du registre, d’ici 5 minutes"
                in page.locator("main").inner_text()
            )
            assert [m for m in alice.problems if "409" not in m] == []  # the browser logs the page's status itself
            alice.problems.clear()
            alice.check("wallet-receipt-pending-fr")

            # Replace a lost card, with the keyboard alone: the old card is refused at the till.
            alice.open("/wallet/card")
            replace = page.get_by_role("link", name="Remplacer une carte perdue")
            replace.focus()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/wallet/card/replace")
            alice.check("wallet-card-replace-fr")
            page.get_by_role("button", name="Oui, remplacer ma carte").focus()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/wallet/card?replaced=true")
            assert page.get_by_role("status").inner_text().startswith("Votre nouvelle carte est prête")
            with pytest.raises(CardRevoked):
                ctx.pos.identify(wallet.bakery, old_card)
            assert ctx.pos.identify(wallet.bakery, ctx.residents.card(wallet.alice_id).token).card_id

        with visitor(browser, base, locale="en-CA") as english:
            signed_in(english, ctx, wallet.alice_id, "brossard")
            english.open("/wallet")
            assert english.page.get_by_role("heading", name="When my points expire").is_visible()
            english.check("wallet-home-en")
            english.open("/wallet/history")
            assert (
                english.page.locator(".history-what")
                .first.inner_text()
                .startswith("Purchase at Commerce boulangerie, +")
            )
            english.check("wallet-history-en")
            english.page.get_by_role("link", name="Older movements").click()
            english.page.wait_for_url("**/wallet/history?before=*")
            texts = english.page.locator(".history-what").all_inner_texts()
            assert any(t.startswith("Volunteering with Organisme maison-jeunes, +100") for t in texts)
            assert any(t.startswith("Pool entry, −300") for t in texts)
            english.open("/wallet/card")
            english.check("wallet-card-en")

        with visitor(browser, base, locale="es") as spanish:
            signed_in(spanish, ctx, wallet.alice_id, "brossard")
            spanish.open("/wallet/history")
            spanish.page.get_by_role("link", name="Movimientos más antiguos").click()
            spanish.page.wait_for_url("**/wallet/history?before=*")
            assert any(
                t.startswith("Entrada a la piscina, −300")
                for t in spanish.page.locator(".history-what").all_inner_texts()
            )
            spanish.check("wallet-history-es")


# The image as the page shows it (its displayed size, in grey), for a QR decoder.
GREY_PIXELS = """img => {
  const { width, height } = img.getBoundingClientRect();
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(width); canvas.height = Math.round(height);
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0, canvas.width, canvas.height);
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let grey = "";
  for (let i = 0; i < rgba.length; i += 4) grey += String.fromCharCode(rgba[i + 3] === 0 ? 255 : rgba[i]);
  return [canvas.width, canvas.height, btoa(grey)];
}"""


def scanned(page) -> str:
    """What a QR decoder (zxing-cpp, as in many scanners) reads from the page's image at its size."""
    width, height, grey = page.get_by_role("img").evaluate(GREY_PIXELS)
    assert width >= 300  # large on a 360-px phone
    pixels = memoryview(base64.b64decode(grey)).cast("B", shape=(height, width))
    found = zxingcpp.read_barcodes(pixels, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1
    return found[0].text
