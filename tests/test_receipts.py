"""Receipts (docs/ledger-format.md "Receipts"): every money-moving POS answer carries the resident's
sealed entries; GET /v1/wallet/receipts/{sequence} proves them against the latest checkpoint; the
`entraide ledger verify-receipt` command checks them offline and names what a tampered one breaks.
On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import TestClient
from typer.testing import CliRunner

from api.cli import app, i18n
from api.http.app import create_app
from ledger.schemas import Receipt
from ledger.service_layer import audit, receipts
from marketplace.schemas import Redemption
from merchants.schemas import AwardResult, CaptureResult, HoldResult, OfflineResults, RefundResult
from operations.service_layer.jobs import CHECKPOINT_SECONDS, scheduler
from tests.world import World, standard_world

VECTOR = Path(__file__).parent / "vectors" / "receipt-v1.json"
runner = CliRunner()
FRENCH = dict.fromkeys(i18n.LANGUAGE_ENV, "")  # no language in the environment: the CLI speaks French


@pytest.fixture
def world(ctx) -> World:
    app_ = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app_) as client:
        yield standard_world(ctx, client)


def verify_cli(tmp_path: Path, receipt: object, keys: object, code: int = 0) -> str:
    """`entraide ledger verify-receipt` on files, as an auditor runs it; returns its one line."""
    (tmp_path / "receipt.json").write_text(json.dumps(receipt), encoding="utf-8")
    (tmp_path / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
    result = runner.invoke(app, ["ledger", "verify-receipt", str(tmp_path / "receipt.json"), "--keys",
                                 str(tmp_path / "keys.json")], env=FRENCH)  # fmt: skip
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def checkpoint(world: World) -> None:
    audit.make_checkpoints(world.ctx.engine, world.ctx.signer, world.ctx.clock)


def keys(world: World) -> dict:
    return audit.keys_document(world.ctx.engine)


def proved(world: World, who: str, sequence: int) -> dict:
    response = world.bearer(who, "GET", f"/v1/wallet/receipts/{sequence}")
    assert response.status_code == 200, response.text
    msgspec.json.decode(response.content, type=Receipt, strict=True)
    body: dict = response.json()
    return body


def capture(world: World, points: int = 300, captured: int = 120) -> tuple[HoldResult, CaptureResult]:
    card = world.residents["alice"].card
    hold = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": points}, key="h1")
    held = msgspec.json.decode(hold.content, type=HoldResult)
    done = world.pos("boulangerie", "POST", f"/v1/pos/holds/{held.hold_id}/capture", {"points": captured}, key="c1")
    assert done.status_code == 200, done.text
    return held, msgspec.json.decode(done.content, type=CaptureResult)


# --- receipts in the POS answers, verified offline -----------------------------------------------


def test_a_capture_receipt_verifies_offline_before_and_after_a_checkpoint(world: World, tmp_path: Path) -> None:
    held, captured = capture(world)
    assert [(e.phase, e.amount, e.ref) for e in held.receipt.entries] == [("pending", 300, None)]
    (entry,) = captured.receipt.entries
    expected = ("brossard", captured.sequence, "post", 120, held.hold_id)
    assert (entry.ledger, entry.sequence, entry.phase, entry.amount, entry.ref) == expected
    assert entry.debit_account == world.residents["alice"].wallet and captured.receipt.proof is None
    answer = msgspec.to_builtins(captured.receipt)
    line = verify_cli(tmp_path, answer, keys(world))
    assert f"valide : écritures brossard#{captured.sequence}" in line and "inclusion non vérifiée" in line

    checkpoint(world)
    receipt = proved(world, "alice", captured.sequence)
    assert receipt["entries"] == answer["entries"]
    (ledger,) = receipt["proof"]["ledgers"]
    assert ledger["ledger"] == "brossard" and ledger["tree_size"] >= captured.sequence
    assert ledger["inclusions"][0]["index"] == captured.sequence - 1
    line = verify_cli(tmp_path, receipt, keys(world))
    assert f"inclusion dans les points de contrôle brossard@{ledger['tree_size']}" in line, line


def test_the_receipt_is_the_export_line(world: World, tmp_path: Path) -> None:
    held, captured = capture(world)
    audit.export(world.ctx.engine, tmp_path / "export.jsonl", None)
    lines = {(e["ledger"], e["sequence"]): line for line in (tmp_path / "export.jsonl").read_text().splitlines()
             if (e := json.loads(line))}  # fmt: skip

    def canonical(value: object) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    for result in (held, captured):
        (entry,) = msgspec.to_builtins(result.receipt)["entries"]
        exported = lines[(entry["ledger"], entry["sequence"])]
        assert canonical(entry) == canonical(json.loads(exported))
        assert msgspec.json.encode(result.receipt.entries[0]).decode() == exported  # same members, same order


def test_a_cross_city_hold_receipt_has_both_ledgers_and_proves_both(world: World, tmp_path: Path) -> None:
    alice = world.residents["alice"]
    assert world.bearer("alice", "POST", "/v1/wallet/opt-ins", {"city": "delson"}).status_code == 200
    hold = world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": alice.card, "points": 100}, key="x1")
    held = msgspec.json.decode(hold.content, type=HoldResult)
    entries = held.receipt.entries
    assert [e.ledger for e in entries] == ["brossard", "delson"] and len({e.group for e in entries}) == 1
    home = entries[0]
    assert home.debit_account == alice.wallet and entries[1].sequence == held.sequence

    checkpoint(world)
    receipt = proved(world, "alice", home.sequence)
    assert [x["ledger"] for x in receipt["proof"]["ledgers"]] == ["brossard", "delson"]
    line = verify_cli(tmp_path, receipt, keys(world))
    assert "brossard@" in line and "delson@" in line, line

    swapped = copy.deepcopy(receipt)
    first, second = swapped["proof"]["ledgers"]
    first["checkpoint"], second["checkpoint"] = second["checkpoint"], first["checkpoint"]
    line = verify_cli(tmp_path, swapped, keys(world), code=1)
    assert "le point de contrôle donné pour brossard" in line and "est celui de delson" in line, line

    alone = copy.deepcopy(receipt) | {"entries": receipt["entries"][:1], "proof": None}
    alone["entries"].append(copy.deepcopy(receipt["entries"][0]))
    line = verify_cli(tmp_path, alone, keys(world), code=1)
    assert "ne forment pas un seul groupe lié" in line, line


def test_award_and_refund_receipts_verify_and_a_replay_answers_the_same(world: World, tmp_path: Path) -> None:
    card = world.residents["alice"].card
    sale = world.pos("boulangerie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 4_000}, key="s1")
    award = msgspec.json.decode(sale.content, type=AwardResult)
    assert award.receipt is not None and award.receipt.entries[0].credit_account == world.residents["alice"].wallet
    again = world.pos("boulangerie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 4_000}, key="s1")
    assert again.json() == sale.json() | {"replayed": True}
    body = {"transfer_id": award.transfer_id, "points": 50}
    refund = world.pos("boulangerie", "POST", "/v1/pos/refunds", body, key="r1")
    refunded = msgspec.json.decode(refund.content, type=RefundResult)
    assert [(e.kind, e.amount, e.ref) for e in refunded.receipt.entries] == [("refund", 50, award.transfer_id)]

    checkpoint(world)
    for entry in (award.receipt.entries[0], refunded.receipt.entries[0]):
        assert "valide" in verify_cli(tmp_path, proved(world, "alice", entry.sequence), keys(world))


def test_offline_items_carry_their_receipts(world: World, tmp_path: Path) -> None:
    card = world.residents["alice"].card
    items = [{"idempotency_key": "o1", "card": card, "points": 20},
             {"idempotency_key": "o2", "card": card, "purchase_cents": 1_000}]  # fmt: skip
    answer = world.pos("boulangerie", "POST", "/v1/pos/offline", {"items": items})
    redeemed, awarded = msgspec.json.decode(answer.content, type=OfflineResults).results
    assert redeemed.receipt is not None and awarded.receipt is not None, answer.text
    assert [(e.kind, e.amount) for e in redeemed.receipt.entries] == [("redeem", 20)]
    assert [(e.kind, e.amount) for e in awarded.receipt.entries] == [("earn_purchase", awarded.points)]
    assert "inclusion non vérifiée" in verify_cli(tmp_path, msgspec.to_builtins(redeemed.receipt), keys(world))


def test_a_wallet_redemption_answers_the_receipts_of_its_hold_and_capture(world: World, tmp_path: Path) -> None:
    croissant = {"title": {"fr": "Croissant"}, "category": "food", "price_points": 100, "quantity": 2}
    item = world.pos("boulangerie", "POST", "/v1/merchants/offers", croissant, key="o1").json()
    answer = world.bearer("alice", "POST", "/v1/wallet/redemptions", {"item_id": item["id"], "quantity": 1}, key="r1")
    redemption = msgspec.json.decode(answer.content, type=Redemption)
    assert redemption.status == "completed", answer.text
    hold, captured = redemption.receipts
    assert [e.phase for e in hold.entries] == ["pending"] and [e.phase for e in captured.entries] == ["post"]
    assert captured.entries[0].ref == hold.entries[0].transfer_id == redemption.hold_ids[0]
    again = world.bearer("alice", "POST", "/v1/wallet/redemptions", {"item_id": item["id"], "quantity": 1}, key="r1")
    assert again.json()["receipts"] == answer.json()["receipts"]
    checkpoint(world)
    for receipt in redemption.receipts:
        assert "valide" in verify_cli(tmp_path, proved(world, "alice", receipt.entries[0].sequence), keys(world))


def test_proofs_stay_right_as_the_ledger_grows_past_the_leaves_the_server_kept(world: World, tmp_path: Path) -> None:
    held, captured = capture(world)
    checkpoint(world)
    first = proved(world, "alice", captured.sequence)  # the server now keeps brossard's leaves
    card = world.residents["alice"].card
    later = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 10}, key="h2").json()
    checkpoint(world)
    for sequence in (captured.sequence, later["sequence"], held.sequence):
        receipt = proved(world, "alice", sequence)
        assert receipt["proof"]["ledgers"][0]["tree_size"] == later["sequence"]
        assert "valide" in verify_cli(tmp_path, receipt, keys(world))
    assert first["proof"]["ledgers"][0]["tree_size"] < later["sequence"]


# --- what the wallet route refuses ------------------------------------------------------------------


def test_another_residents_entry_is_unknown_like_a_missing_one(world: World) -> None:
    _, captured = capture(world)
    checkpoint(world)
    theirs = world.bearer("bob", "GET", f"/v1/wallet/receipts/{captured.sequence}")
    missing = world.bearer("bob", "GET", "/v1/wallet/receipts/999999")
    for response in (theirs, missing):
        assert response.status_code == 404 and response.json()["code"] == "unknown_receipt", response.text
    said = theirs.json()["detail"].replace(str(captured.sequence), "N"), missing.json()["detail"].replace("999999", "N")
    assert said[0] == said[1]  # nothing tells the two apart
    merchant_side = world.bearer("alice", "GET", "/v1/wallet/receipts/1")  # the budget funding: not alice's
    assert merchant_side.status_code == 404


def test_an_entry_not_yet_checkpointed_answers_409_with_retry_after(world: World, clock) -> None:
    checkpoint(world)
    _, captured = capture(world)
    response = world.bearer("alice", "GET", f"/v1/wallet/receipts/{captured.sequence}", lang="en")
    assert response.status_code == 409 and response.json()["code"] == "receipt_not_checkpointed", response.text
    assert int(response.headers["retry-after"]) == CHECKPOINT_SECONDS  # no server scheduled it: one interval
    assert f"Entry {captured.sequence} of the ledger brossard" in response.json()["detail"]
    scheduler(world.ctx).register()  # the checkpoints job is now due: ask again in a second
    clock.advance(-30)  # the next run is now 30 s away
    assert world.bearer("alice", "GET", f"/v1/wallet/receipts/{captured.sequence}").headers["retry-after"] == "30"
    clock.advance(30)
    checkpoint(world)
    assert proved(world, "alice", captured.sequence)["proof"] is not None


# --- tampering ------------------------------------------------------------------------------------


def _amount(r: dict, k: dict) -> None:
    r["entries"][0]["amount"] += 1


def _signature(r: dict, k: dict) -> None:
    sig = r["entries"][0]["signature"]
    r["entries"][0]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]


def _path(r: dict, k: dict) -> None:
    path = r["proof"]["ledgers"][0]["inclusions"][0]["path"]
    path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]


def _index(r: dict, k: dict) -> None:
    r["proof"]["ledgers"][0]["inclusions"][0]["index"] += 1


def _wrong_key(r: dict, k: dict) -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    for key in k["keys"]:
        key["public_key"] = other


def _unknown_key(r: dict, k: dict) -> None:
    k["keys"] = []


def _not_yet_valid(r: dict, k: dict) -> None:
    for key in k["keys"]:
        key["valid_from_us"] = r["entries"][0]["time_us"] + 1


def _extra_member(r: dict, k: dict) -> None:
    r["entries"][0]["memo"] = "x"


TAMPERING = {
    "amount changed": (_amount, "son empreinte ne correspond pas à son contenu"),
    "signature changed": (_signature, "sa signature ne se vérifie pas"),
    "path changed": (_path, "le chemin d’inclusion ne mène pas à la racine"),
    "index changed": (_index, "le chemin d’inclusion ne mène pas à la racine"),
    "wrong key": (_wrong_key, "sa signature ne se vérifie pas"),
    "unknown key": (_unknown_key, "n’est pas dans le fichier des clés"),
    "key not yet valid": (_not_yet_valid, "n’était pas valide à"),
    "extra member": (_extra_member, "le reçu est mal formé"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_a_tampered_receipt_is_refused_with_what_failed(world: World, tmp_path: Path, case: str) -> None:
    _, captured = capture(world)
    checkpoint(world)
    receipt, published = proved(world, "alice", captured.sequence), keys(world)
    tamper, expected = TAMPERING[case]
    tamper(receipt, published)
    line = verify_cli(tmp_path, receipt, published, code=1)
    assert "le reçu ne se vérifie pas" in line and expected in line, line


# --- the document's worked example ----------------------------------------------------------------


def test_the_documented_vector_verifies_and_its_tampered_copy_does_not(tmp_path: Path) -> None:
    vector = json.loads(VECTOR.read_text(encoding="utf-8"))
    check = receipts.verify(vector["receipt"], vector["keys"])
    assert check.entries == vector["expected"]["entries"]
    assert [list(c) for c in check.checkpoints or []] == vector["expected"]["checkpoints"]
    assert "valide" in verify_cli(tmp_path, vector["receipt"], vector["keys"])
    document = (Path(__file__).parents[1] / "docs" / "ledger-format.md").read_text(encoding="utf-8")
    assert vector["receipt"]["entries"][0]["signature"] in document  # the document shows this very receipt
    odd = copy.deepcopy(vector["receipt"])
    odd["proof"]["ledgers"][0]["inclusions"][0]["path"][0] += "0"
    huge = copy.deepcopy(vector["receipt"])
    huge["entries"][0]["amount"] = 2**70
    changed = copy.deepcopy(vector["receipt"])
    changed["entries"][0]["time_us"] += 1
    for receipt, code in ((odd, "malformed"), (huge, "malformed"), (changed, "hash_mismatch")):
        with pytest.raises(receipts.ReceiptRejected) as refused:
            receipts.verify(receipt, vector["keys"])
        assert refused.value.code == code, refused.value
