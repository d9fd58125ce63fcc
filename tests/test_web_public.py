"""The public transparency site, no sign-in, on SQLite and PostgreSQL: every community's checkpoints
and keys, the CLI commands it prints (run here, as printed), the program in numbers of the last
closed month (charts and tables), and the receipt checker (web/static/js/receipt.js) that verifies
a genuine receipt in the browser and rejects tampered ones, each with its plain reason."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from litestar.testing import TestClient

from api.http.app import create_app
from ledger.domain.transfers import TransferRequest, linked_transfers
from ledger.service_layer import audit, public_log
from tests.browser import browser, needs_chromium, site, visitor
from tests.world import World

__all__ = ["browser"]  # the fixture, imported for its module

ROOT = Path(__file__).resolve().parents[1]
VECTOR = json.loads((ROOT / "tests" / "vectors" / "receipt-v1.json").read_text(encoding="utf-8"))
DAY = 86_400
JAN = "2026-01"
END_OF_JANUARY_US = 1_769_922_000_000_000 + 3_600 * 1_000_000  # 2026-02-01 06:00 UTC, January over in Montréal
RESIDENTS = 12  # more than 10: the month's cells are published, not withheld


class Town(msgspec.Struct):
    world: World
    receipt: dict  # a genuine receipt of alice's, with its inclusion proof
    cross_city: dict  # alice's purchase in Delson: an entry in each ledger, each proved in its own


@pytest.fixture
def town(ctx, clock) -> Town:
    """Brossard with a month of activity, closed and published; Wendake with no checkpoint yet."""
    world = World(ctx, client=None)  # type: ignore[arg-type]
    clock.advance(DAY)  # into January in Montréal
    world.city("brossard", name="Brossard")
    ctx.merchants.add("brossard", "boulangerie", "Boulangerie Fleur", "staff:test", key="m1", category="food")
    for n in range(RESIDENTS):
        wallet = world.resident(f"r{n}", "brossard", points=100 + n).wallet
        ctx.ledger.transfer(  # a purchase and a pool entry, one commit
            TransferRequest(
                "brossard", f"buy-{n}", "redeem", "single", wallet, "merchant:boulangerie:redeemed", 10 + n
            ),
            TransferRequest("brossard", f"pool-{n}", "service_pool", "single", wallet, "services:revenue", 5),
        )
    alice = world.resident("alice", "brossard")
    (earned,) = ctx.ledger.transfer(TransferRequest("brossard", "alice-civic", "earn_civic", "single",
                                                    "program:budget", alice.wallet, 150))  # fmt: skip
    world.city("delson", name="Delson")
    home, _ = ctx.ledger.transfer(*linked_transfers("alice-delson", "redeem", "single", "brossard", alice.wallet,
                                                    "delson", "merchant:cafe:redeemed", 40))  # fmt: skip
    clock.now_us = END_OF_JANUARY_US
    ctx.settlement.close("brossard", JAN, "finance:test")
    audit.make_checkpoints(ctx.engine, ctx.signer, ctx.clock)
    world.city("wendake", name="Wendake")  # after the checkpoint: a community with no checkpoint yet
    receipt = msgspec.to_builtins(ctx.receipts.get(alice.id, "brossard", earned.sequence))
    return Town(world, receipt, msgspec.to_builtins(ctx.receipts.get(alice.id, "brossard", home.sequence)))


# --- tampering, as docs/ledger-format.md's checks name them ----------------------------------------


def _amount_changed(receipt: dict) -> dict:
    changed = copy.deepcopy(receipt)
    changed["entries"][0]["amount"] += 1000
    return changed


def _proof_hash_flipped(receipt: dict) -> dict:
    changed = copy.deepcopy(receipt)
    path = changed["proof"]["ledgers"][0]["inclusions"][0]["path"]
    path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]
    return changed


def _signature_flipped(receipt: dict) -> dict:
    changed = copy.deepcopy(receipt)
    signature = changed["entries"][0]["signature"]
    changed["entries"][0]["signature"] = signature[:10] + ("0" if signature[10] != "0" else "1") + signature[11:]
    return changed


def _signed_by_another_key(receipt: dict) -> dict:
    """The entry re-sealed by a key that is not the city's: every check passes but whose key it is."""
    changed = copy.deepcopy(receipt)
    other = Ed25519PrivateKey.generate()
    public = other.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    entry = changed["entries"][0]
    entry["key_id"] = hashlib.sha256(public).hexdigest()[:16]
    entry["signature"] = other.sign(bytes.fromhex(entry["hash"])).hex()
    return changed


TAMPERED = {
    "hash_mismatch": _amount_changed,
    "bad_path": _proof_hash_flipped,
    "bad_signature": _signature_flipped,
    "unknown_key": _signed_by_another_key,
}


def _verify_in_page(page, receipt: dict, keys: dict) -> dict:
    """The verifier module itself, imported by the page, on a receipt and a keys document."""
    return page.evaluate(
        """async ([receipt, keys]) => {
            const m = await import("/static/js/receipt.js");
            try { return {ok: true, ...(await m.verifyReceipt(receipt, keys))}; }
            catch (e) { return {ok: false, code: e.code}; }
        }""",
        [receipt, keys],
    )


def _check_receipt(page, receipt: dict | str) -> str:
    """Paste a receipt, press the button, read the verdict."""
    page.get_by_label(re.compile("^(Collez le reçu|Paste the receipt|Pegue el recibo)$")).fill(
        receipt if isinstance(receipt, str) else json.dumps(receipt, ensure_ascii=False)
    )
    result = page.locator("#receipt-result")
    page.locator("#receipt-form button[type=submit]").click()
    result.locator("h2").wait_for()
    page.wait_for_function("() => !document.querySelector('#receipt-result').textContent.includes('…')")
    return result.inner_text()


@needs_chromium
def test_the_public_site_shows_each_ledger_its_numbers_and_checks_receipts(browser, ctx, town) -> None:
    receipt = town.receipt
    entry = receipt["entries"][0]
    with site(ctx) as base, visitor(browser, base, locale="fr-CA") as french:
        page = french.page
        french.open("/public")
        assert page.get_by_role("heading", level=1).inner_text() == "Le registre public de chaque communauté"
        brossard = page.get_by_role("region", name="Brossard")
        size = receipt["proof"]["ledgers"][0]["tree_size"]
        assert brossard.get_by_text(f"{size}", exact=True).is_visible()
        assert (
            page.get_by_role("region", name="Wendake")
            .get_by_text("Aucun point de contrôle signé pour l’instant.")
            .is_visible()
        )
        french.check("public-fr")

        # A city's ledger: the note as published, keys, history, and how to check it all.
        page.get_by_role("link", name="Le registre de Brossard").click()
        page.wait_for_url(f"{base}/public/brossard")
        assert receipt["proof"]["ledgers"][0]["checkpoint"].splitlines()[2] in page.locator("pre.note").inner_text()
        assert page.get_by_role("row").filter(has_text=entry["key_id"]).count() == 1
        assert page.get_by_role("table", name="Points de contrôle de Brossard, du plus ancien au plus récent").get_by_role(
            "row").count() == 2  # fmt: skip
        french.check("public-city-fr")

        # The program in numbers: January, closed; charts (images with their words) and tables.
        page.get_by_role("link", name="Brossard en chiffres").click()
        page.wait_for_url(f"{base}/public/brossard/numbers")
        chart = page.get_by_role("img", name=re.compile("Points gagnés en janvier 2026"))
        assert chart.count() == 1 and chart.locator("rect").count() >= 1
        earned = page.get_by_role("table", name="Points gagnés en janvier 2026, par source")
        civic = sum(100 + n for n in range(RESIDENTS)) + 150
        assert earned.get_by_role("row", name=re.compile("Participation citoyenne")).inner_text().split("\t")[1:] == [
            f"{civic // 1000}\u00a0{civic % 1000:03d}", "13"]  # fmt: skip
        spent = page.get_by_role("table", name=re.compile("Points dépensés en janvier 2026"))
        assert spent.get_by_role("row", name=re.compile("Alimentation")).inner_text().split("\t")[1:] == [
            str(sum(10 + n for n in range(RESIDENTS))), str(RESIDENTS)]  # fmt: skip
        assert spent.get_by_role("row", name=re.compile("Services municipaux")).inner_text().split("\t")[1:] == [
            str(5 * RESIDENTS), str(RESIDENTS)]  # fmt: skip
        budget = page.get_by_role("region", name="Points payés par le budget de la ville")
        assert budget.locator(".figure").inner_text() == f"{civic // 1000}\u00a0{civic % 1000:03d}"
        csv = page.get_by_role("link", name="Le mois de janvier 2026 en CSV").get_attribute("href")
        assert httpx.get(base + csv).text.startswith("city,period,metric")
        french.check("public-numbers-fr")

        # The receipt checker: the genuine receipt, then each tampered one, with its reason.
        page.get_by_role("link", name="Vérifier un reçu").first.click()
        page.wait_for_url(f"{base}/public/check")
        assert not page.locator("#receipt-needs-js").count()  # the script replaced the no-JS words
        verdict = _check_receipt(page, receipt)
        assert (
            "Cette écriture est dans le registre public de la ville" in verdict
            and f"brossard#{entry['sequence']}" in verdict
        )
        french.check("public-check-fr")
        reasons = {
            "hash_mismatch": "a été modifiée", "bad_path": "ne mène pas à la racine", "bad_signature": "La signature",
            "unknown_key": "n’est pas une des clés de la ville",
        }  # fmt: skip
        for code, tamper in TAMPERED.items():
            verdict = _check_receipt(page, tamper(receipt))
            assert "Ce reçu ne passe pas la vérification" in verdict and reasons[code] in verdict, (code, verdict)
        assert "pas un reçu" in _check_receipt(page, "{ceci n’est pas du JSON")
        # A purchase in another city: an entry in each ledger, each under its own city's checkpoint.
        verdict = _check_receipt(page, town.cross_city)
        assert (
            "Cette écriture est dans le registre public" in verdict
            and "brossard (" in verdict
            and "delson (" in verdict
        )
        swapped = copy.deepcopy(town.cross_city)
        first, second = swapped["proof"]["ledgers"]
        first["checkpoint"], second["checkpoint"] = second["checkpoint"], first["checkpoint"]
        assert "n’est pas celui de brossard" in _check_receipt(page, swapped)

        # The module on its own: the genuine test vector (another deployment's keys) and its tamperings.
        vector, vector_keys = VECTOR["receipt"], VECTOR["keys"]
        checked = _verify_in_page(page, vector, vector_keys)
        assert checked["ok"] and checked["entries"] == ["brossard#4"], checked
        assert checked["checkpoints"][0]["tree_size"] == 4 and checked["checkpoints"][0]["key_id"] == "5bad109aafde6576"
        for code, tamper in TAMPERED.items():
            assert _verify_in_page(page, tamper(vector), vector_keys) == {"ok": False, "code": code}
        note_flipped = copy.deepcopy(vector)
        item = note_flipped["proof"]["ledgers"][0]
        item["checkpoint"] = item["checkpoint"].replace("\n4\n", "\n5\n")
        assert _verify_in_page(page, note_flipped, vector_keys) == {"ok": False, "code": "bad_checkpoint"}
        french.assert_clean()

        # The keyboard alone: Tab to the text box, type, Tab to the button, Enter.
        page.reload()
        page.locator("#receipt-text").focus()
        page.keyboard.insert_text(json.dumps(receipt))
        page.keyboard.press("Tab")  # the file chooser
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.locator("#receipt-result h2").wait_for()
        page.wait_for_function("() => document.querySelector('#receipt-result').classList.contains('good')")

    with site(ctx) as base, visitor(browser, base, locale="en-CA") as english:
        for path, name, heading in (("/public", "public-en", "The public ledger of each community"),
                                        ("/public/brossard", "public-city-en", "The ledger of Brossard"),
                                        ("/public/brossard/numbers", "public-numbers-en", "Brossard in numbers"),
                                        ("/public/check", "public-check-en", "Check a receipt")):  # fmt: skip
            english.open(path)
            assert english.page.get_by_role("heading", level=1).inner_text() == heading
            english.check(name)
        assert "This entry is in the city’s public ledger" in _check_receipt(english.page, receipt)
        assert "is not valid: the city did not sign" in _check_receipt(english.page, _signature_flipped(receipt))
        # A file chosen is checked at once, from the text box where it now shows.
        english.page.locator("#receipt-file").set_input_files(
            files=[{"name": "receipt.json", "mimeType": "application/json", "buffer": json.dumps(receipt).encode()}]
        )
        english.page.wait_for_function("() => document.querySelector('#receipt-result').classList.contains('good')")
        assert json.loads(english.page.locator("#receipt-text").input_value()) == receipt

        with visitor(browser, base, locale="es-MX") as spanish:
            spanish.open("/public/brossard/numbers")
            assert spanish.page.get_by_role("heading", level=1).inner_text() == "Brossard en cifras"
            spanish.check("public-numbers-es")

        # Without JavaScript, the checker says so and gives the command that does the same check.
        without = browser.new_context(java_script_enabled=False, locale="en-CA")
        try:
            page = without.new_page()
            page.goto(base + "/public/check")
            words = page.locator("#receipt-needs-js").inner_text()
            assert "needs JavaScript" in words
            assert "entraide ledger verify-receipt receipt.json --keys entraide-keys.json" in words
            assert not page.locator("#receipt-form").is_visible()
        finally:
            without.close()


def _cli(command: str) -> str:
    """A printed command as this checkout runs it: `entraide` is `python -m api.cli` of the worktree."""
    return re.sub(r"^entraide ", f"{sys.executable} -m api.cli ", command)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the commands read public HTTP only: one backend will do
def test_the_printed_commands_verify_the_ledger_from_public_data_only(ctx, town, tmp_path) -> None:
    with site(ctx) as base:
        html = httpx.get(base + "/public/brossard", headers={"Accept-Language": "en"}).text
        blocks = re.findall(r'<pre class="commands"><code>(.*?)</code></pre>', html, re.S)
        commands = [line for block in blocks for line in block.replace("&gt;", ">").splitlines()]
        assert [c.split()[0:3] for c in commands] == [["curl", "-o", "entraide-keys.json"], ["curl", "-o", "checkpoints.json"],
                                                      ["entraide", "monitor", "--url"], ["cat", "entraide-monitor/*.jsonl", ">"],
                                                      ["entraide", "ledger", "verify"]]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LANGUAGE": "en", "LANG": "C.UTF-8"}
        outputs = []
        for command in commands:
            done = subprocess.run(["bash", "-c", _cli(command) + (" -sSf" if command.startswith("curl") else "")],
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            outputs.append(done.stdout)
        mirrored = re.search(r"consistent: 2 ledgers, ([\d,]+) entries verified", outputs[2])  # Wendake: no checkpoint
        assert mirrored is not None, outputs[2]
        assert f"{mirrored.group(1)} entries verified" in " ".join(outputs[4].split()), outputs[4]
        assert json.loads((tmp_path / "entraide-keys.json").read_text())["format"] == "entraide.keys/1"


@pytest.fixture
def quiet(ctx, clock) -> None:
    """Two communities and nothing done: January closed in Brossard, no checkpoint anywhere."""
    world = World(ctx, client=None)  # type: ignore[arg-type]
    clock.advance(DAY)
    world.city("brossard", name="Brossard")
    world.city("wendake", name="Wendake")
    clock.now_us = END_OF_JANUARY_US
    ctx.settlement.close("brossard", JAN, "finance:test")


def test_a_citys_checkpoints_are_listed_a_page_at_a_time(ctx, quiet) -> None:
    from web.routes.public import HISTORY_PAGE

    wallet = World(ctx, client=None).resident("zoe", "brossard").wallet  # type: ignore[arg-type]
    for n in range(HISTORY_PAGE + 1):  # a checkpoint after each entry
        ctx.ledger.transfer(TransferRequest("brossard", f"z{n}", "earn_civic", "single", "program:budget", wallet, 1))
        audit.make_checkpoints(ctx.engine, ctx.signer, ctx.clock)
    with TestClient(create_app(ctx), base_url="https://entraide.test") as client:
        english = {"Accept": "text/html", "Accept-Language": "en"}
        first = client.get("/public/brossard", headers=english).text
        sizes = [int(s) for s in re.findall(r'<tr><th scope="row" class="number">(\d+)</th>', first)]
        assert len(sizes) == HISTORY_PAGE and sizes == sorted(sizes)
        later = re.search(r'<a href="(/public/brossard\?after=\d+)">Later checkpoints</a>', first)
        assert later is not None and "First checkpoints" not in first
        second = client.get(later.group(1), headers=english).text
        signed = [c.tree_size for c in public_log.checkpoint_history(ctx.engine, "brossard", None, 100).checkpoints]
        assert HISTORY_PAGE < len(signed) <= 2 * HISTORY_PAGE and sizes == signed[:HISTORY_PAGE]
        assert re.findall(r'<tr><th scope="row" class="number">(\d+)</th>', second) == [
            str(s) for s in signed[HISTORY_PAGE:]
        ]
        assert "Later checkpoints" not in second and "First checkpoints" in second


def test_the_public_pages_refuse_bad_input_and_unknown_cities(ctx, quiet) -> None:
    with TestClient(create_app(ctx), base_url="https://entraide.test") as client:
        english = {"Accept": "text/html", "Accept-Language": "en"}
        assert client.get("/public/nowhere", headers=english).status_code == 404
        assert client.get("/public/nowhere/numbers", headers=english).status_code == 404
        bad = client.get("/public/brossard/numbers?period=2026-13", headers=english)
        assert bad.status_code == 400
        unpublished = client.get("/public/brossard/numbers?period=2026-02", headers=english)
        assert unpublished.status_code == 404
        assert client.get("/public/brossard?after=-1", headers=english).status_code == 400
        assert "No month has been closed yet" in client.get("/public/wendake/numbers", headers=english).text
        keys = client.get("/public/keys.json")
        assert (
            keys.headers["content-disposition"].startswith("attachment") and keys.json()["format"] == "entraide.keys/1"
        )
        periods = client.get("/v1/transparency/open-data/brossard")
        assert periods.status_code == 200 and periods.json() == {"city": "brossard", "periods": [JAN]}
        assert client.get("/v1/transparency/open-data/nowhere").status_code == 404
