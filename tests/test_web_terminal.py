"""The web till, `/terminal`, in Chromium (SQLite and PostgreSQL, French and English).

A clerk pairs a tablet with a one-time code (a wrong code is refused first), the browser makes its
own Ed25519 key and signs every /v1/pos request itself (RFC 9421); the resident's card is read as a
scanner reads the wallet's QR code (it types the code, then Enter); the clerk awards points for a
purchase, holds points, takes part of them, cancels another hold and refunds the award from today's
sales; the network drops, two sales are kept on the device, and when it comes back both are sent and
shown accepted, dated when they happened; the city revokes the device, which is told so and goes
back to pairing. Every screen is axe-clean on a desktop, a tablet and a 360-px phone.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.browser import browser, needs_chromium, signed_in, site, visitor
from tests.conftest import Clock
from tests.test_web_wallet import scanned
from tests.world import World

__all__ = ["browser"]  # the fixture, imported for its module


class WallClock(Clock):
    """The real time (µs), moved only by `advance`: the browser signs with its own clock
    (`created`), which the server checks against this one."""

    def __init__(self) -> None:
        super().__init__(start_us=0)

    def __call__(self) -> int:
        return time.time_ns() // 1_000 + self.now_us


@pytest.fixture
def clock() -> Clock:
    return WallClock()


def digits(text: str) -> int:
    return int(re.sub(r"\D", "", text))


@needs_chromium
def test_a_clerk_pairs_a_tablet_and_serves_residents_online_and_offline(browser, ctx) -> None:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.merchant("boulangerie", "brossard", terminals=0)
    alice = world.resident("alice", "brossard", points=1_000)
    code = ctx.pairing.issue("boulangerie", "brossard", "staff:test", None, key="pc-fr").code
    with site(ctx) as base:
        with visitor(browser, base) as resident:  # the card as the wallet shows it, read as a scanner reads it
            signed_in(resident, ctx, alice.id, "brossard")
            resident.open("/wallet/card/full")
            token = scanned(resident.page)
        assert token == alice.card

        with visitor(browser, base, locale="fr-CA") as clerk:
            page = clerk.page
            clerk.open("/terminal")
            page.wait_for_url(f"{base}/terminal/pair")  # not paired yet
            clerk.check("terminal-pair-fr", tablet=True)
            page.get_by_label("Code d’appairage").fill("ZZZZ-ZZZZ")
            page.keyboard.press("Enter")
            status = page.locator("#pair-status")
            status.filter(has_text="Code d’appairage inconnu").wait_for()
            clerk.expect_refused(401)
            page.get_by_label("Code d’appairage").fill(code.lower())
            page.get_by_label("Nom de cet appareil").fill("Caisse 1")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/terminal")
            page.locator("#till").wait_for()
            (key_id,) = [t["key_id"] for t in ctx.terminals.list("boulangerie")]
            page.locator("#today-list li").first.wait_for()  # the card keys are cached, today's list read
            assert page.locator("#till-network").inner_text() == "En ligne."
            clerk.check("terminal-till-fr", tablet=True)

            # The scanner types into the focused field and presses Enter.
            assert page.evaluate("() => document.activeElement.id") == "card-code"
            page.keyboard.insert_text(token)
            page.keyboard.press("Enter")
            page.locator("#card-info").filter(has_text="points disponibles").wait_for()
            assert digits(page.locator("#card-info").inner_text()) == 1_000

            result = page.locator("#till-result")

            def done(title: str) -> int:
                result.filter(has_text=title).wait_for()
                assert "ok" in (result.get_attribute("class") or "")
                return digits(page.locator("#till-result-amount").inner_text())

            page.get_by_label("Montant de l’achat, en dollars").fill("24,50")
            page.get_by_role("button", name="Attribuer les points").click()
            awarded = done("Points attribués")
            assert awarded > 0 and world.available("alice") == 1_000 + awarded
            page.get_by_label("Points à réserver").fill("300")
            page.get_by_label("Points à réserver").press("Enter")
            assert done("Points réservés") == 300
            page.get_by_label("Points à prendre (tous ou moins)").fill("200")
            page.get_by_role("button", name="Prendre les points").click()
            assert done("Points pris") == 200
            page.get_by_label("Points à réserver").fill("100")
            page.get_by_role("button", name="Réserver les points").click()
            done("Points réservés")
            clerk.tab_to(page.get_by_role("button", name="Annuler la réservation"))
            page.keyboard.press("Enter")
            assert done("Réservation annulée") == 100
            assert world.available("alice") == 1_000 + awarded - 200
            page.locator("#today-list li[data-what=purchase_award] button").click()
            assert done("Remboursé") == awarded
            assert world.available("alice") == 800
            clerk.check("terminal-refunded-fr")

            # Offline: two sales are kept on the device, with the time they happened.
            page.context.set_offline(True)
            page.locator("#till-network.offline").wait_for()
            page.get_by_label("Montant de l’achat, en dollars").fill("10")
            page.get_by_role("button", name="Attribuer les points").click()
            done("Conservé hors ligne")
            page.get_by_label("Points à réserver").fill("150")
            page.get_by_role("button", name="Réserver les points").click()
            # The same title as the sale before: wait for this one's amount, not the last one's screen.
            page.locator("#till-result-amount").filter(has_text="150").wait_for()
            done("Conservé hors ligne")
            assert page.locator("#queue-list li[data-outcome=waiting]").count() == 2
            assert "En attente d’envoi : 2." in page.locator("#till-network").inner_text().replace("\u00a0", " ")
            clerk.check("terminal-offline-fr")
            page.context.set_offline(False)
            page.locator("#queue-list li[data-outcome=accepted]").nth(1).wait_for()
            statement = ctx.pos.statement("boulangerie", "brossard", 0, 2**62, None, 20).entries
            offline = [line for line in statement if line.occurred_at_us is not None]
            assert sorted(line.what for line in offline) == ["purchase_award", "redemption"]
            assert all(line.occurred_at_us <= line.time_us for line in offline)
            assert world.available("alice") == 800 - 150 + next(
                line.amount for line in offline if line.what == "purchase_award"
            )

            # The city revokes the device: told so, back to pairing.
            ctx.terminals.revoke(key_id, "staff:test", "brossard")
            page.get_by_label("Code de la carte").fill(token)
            page.get_by_label("Code de la carte").press("Enter")
            result.filter(has_text="n’est plus une caisse").wait_for()
            page.wait_for_url(f"{base}/terminal/pair")
            clerk.expect_refused(401)
            clerk.assert_clean()

        english_code = ctx.pairing.issue("boulangerie", "brossard", "staff:test", "Till 2", key="pc-en").code
        with visitor(browser, base, locale="en-CA") as english:
            page = english.page
            english.open("/terminal/pair")
            page.get_by_label("Pairing code").fill(english_code)
            page.get_by_role("button", name="Pair this device").click()
            page.wait_for_url(f"{base}/terminal")
            page.get_by_label("Card code").fill(token)
            page.get_by_role("button", name="Read the card").click()
            page.locator("#card-info").filter(has_text="points available").wait_for()
            assert page.locator("#card-camera").is_hidden() == (not page.evaluate("() => 'BarcodeDetector' in window"))
            english.check("terminal-till-en", tablet=True)
