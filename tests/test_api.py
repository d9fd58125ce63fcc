"""End-to-end tests of the HTTP API (POS, wallet, organizations, admin), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import text

from api.http.app import MAX_BODY_BYTES, create_app
from community.service_layer.residents import ERASURE_DELAY_DAYS
from finance.domain.settlement import merchant_lines
from ledger.adapters import journal
from ledger.service_layer import audit
from ledger.service_layer.audit import verify_database
from merchants.schemas import (
    AwardResult,
    CaptureResult,
    CardKeys,
    HoldResult,
    Identity,
    OfflineResults,
    RefundResult,
    Revocations,
    Statement,
    VoidResult,
)
from tests.world import World, standard_world

PROBLEM = "application/problem+json"


@pytest.fixture
def world(ctx) -> World:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)


def entry_count(world: World) -> int:
    with world.ctx.engine.connect() as conn:
        return sum(h.sequence for h in journal.heads(conn).values())


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"].endswith(f":problem:{code}") and body["title"] and body["detail"]
    return body


# --- awards -------------------------------------------------------------------------------------


def test_award_is_explained_capped_and_idempotent(world: World) -> None:
    alice = world.residents["alice"]
    before = world.available("alice")
    first = world.pos(
        "boulangerie", "POST", "/v1/pos/awards", {"card": alice.card, "purchase_cents": 4_250}, key="sale-1"
    )
    assert first.status_code == 201, first.text
    award = first.json()
    assert award["points"] == 4_250 * 5 // 100 == 212
    assert sum(line["points"] for line in award["lines"]) == award["points"]
    assert world.available("alice") == before + 212

    again = world.pos(
        "boulangerie", "POST", "/v1/pos/awards", {"card": alice.card, "purchase_cents": 4_250}, key="sale-1"
    )
    assert again.status_code == 201 and again.json() == award | {"replayed": True}
    assert world.available("alice") == before + 212

    other_body = world.pos(
        "boulangerie", "POST", "/v1/pos/awards", {"card": alice.card, "purchase_cents": 99}, key="sale-1"
    )
    assert_problem(other_body, 409, "idempotency_conflict")

    # The daily cap of 300 points leaves 88 for the next purchase; the explanation says so.
    capped = world.pos(
        "boulangerie", "POST", "/v1/pos/awards", {"card": alice.card, "purchase_cents": 10_000}, key="sale-2"
    ).json()
    assert capped["points"] == 88
    assert {"rule": "cap:daily", "points": 88 - 500} in capped["lines"]
    assert sum(line["points"] for line in capped["lines"]) == 88
    assert world.available("alice") == before + 300


def test_same_idempotency_key_at_two_merchants_names_two_transfers(world: World) -> None:
    card = world.residents["alice"].card
    a = world.pos("boulangerie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 1_000}, key="k").json()
    b = world.pos("librairie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 1_000}, key="k").json()
    assert a["transfer_id"] != b["transfer_id"] and not b["replayed"]


# --- redemption ---------------------------------------------------------------------------------


def test_hold_capture_in_part_and_void(world: World) -> None:
    card = world.residents["alice"].card
    hold = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 300}, key="h1")
    assert hold.status_code == 201, hold.text
    hold_id = hold.json()["hold_id"]
    assert world.available("alice") == 700
    balance = world.bearer("alice", "GET", "/v1/wallet/balance").json()
    assert balance == {"available": 700, "posted": 1_000, "pending": 300, "city": "brossard"}

    captured = world.pos("boulangerie", "POST", f"/v1/pos/holds/{hold_id}/capture", {"points": 120}, key="c1")
    assert captured.status_code == 200 and captured.json()["points"] == 120 and captured.json()["status"] == "captured"
    assert world.available("alice") == 880
    again = world.pos("boulangerie", "POST", f"/v1/pos/holds/{hold_id}/capture", {"points": 120}, key="c2")
    assert_problem(again, 409, "hold_not_open")

    second = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 200}, key="h2").json()
    voided = world.pos("boulangerie", "POST", f"/v1/pos/holds/{second['hold_id']}/void", None, key="v1")
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    assert world.available("alice") == 880


def test_hold_beyond_balance_is_refused_and_writes_nothing(world: World) -> None:
    before = entry_count(world)
    refused = world.pos(
        "boulangerie", "POST", "/v1/pos/holds", {"card": world.residents["bob"].card, "points": 51}, key="h"
    )
    body = assert_problem(refused, 422, "insufficient_funds")
    assert body["available_points"] == 50 and body["requested_points"] == 51
    assert entry_count(world) == before


def test_expired_hold_cannot_be_captured(world: World, clock) -> None:
    hold = world.pos(
        "boulangerie", "POST", "/v1/pos/holds", {"card": world.residents["alice"].card, "points": 100}, key="h"
    ).json()
    clock.advance(901)  # the program's hold timeout is 900 s
    late = world.pos("boulangerie", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {}, key="c")
    assert_problem(late, 409, "hold_expired")
    assert world.available("alice") == 1_000


def test_refunds_never_exceed_the_original(world: World) -> None:
    card = world.residents["alice"].card
    hold = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 400}, key="h").json()
    capture = world.pos("boulangerie", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {}, key="c").json()
    assert world.available("alice") == 600
    part = world.pos(
        "boulangerie", "POST", "/v1/pos/refunds", {"transfer_id": capture["transfer_id"], "points": 150}, key="r1"
    )
    assert part.status_code == 201 and world.available("alice") == 750
    too_much = world.pos(
        "boulangerie", "POST", "/v1/pos/refunds", {"transfer_id": capture["transfer_id"], "points": 251}, key="r2"
    )
    assert_problem(too_much, 422, "exceeds_original")
    rest = world.pos("boulangerie", "POST", "/v1/pos/refunds", {"transfer_id": capture["transfer_id"]}, key="r3")
    assert rest.status_code == 201 and rest.json()["points"] == 250 and world.available("alice") == 1_000

    award = world.pos("boulangerie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 2_000}, key="a").json()
    returned = world.pos("boulangerie", "POST", "/v1/pos/refunds", {"transfer_id": award["transfer_id"]}, key="r4")
    assert returned.status_code == 201 and returned.json()["points"] == 100 and world.available("alice") == 1_000


def test_cross_city_redemption_is_linked_on_both_ledgers(world: World) -> None:
    alice = world.residents["alice"]
    refused = world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": alice.card, "points": 100}, key="x0")
    assert_problem(refused, 403, "not_opted_in")

    assert world.bearer("alice", "POST", "/v1/wallet/opt-ins", {"city": "delson"}).json()["opt_ins"] == ["delson"]
    hold = world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": alice.card, "points": 100}, key="x1")
    assert hold.status_code == 201 and hold.json()["city"] == "delson"
    assert world.available("alice") == 900
    captured = world.pos(
        "cafe-delson", "POST", f"/v1/pos/holds/{hold.json()['hold_id']}/capture", {"points": 80}, key="x2"
    )
    assert captured.status_code == 200
    ledger = world.ctx.ledger
    assert world.available("alice") == 920
    assert ledger.balance("brossard", "interop:delson").posted == 80
    assert ledger.balance("delson", "merchant:cafe-delson:redeemed").posted == 80
    assert ledger.balance("delson", "interop:brossard").posted == -80

    refund = world.pos(
        "cafe-delson", "POST", "/v1/pos/refunds", {"transfer_id": captured.json()["transfer_id"]}, key="x3"
    )
    assert refund.status_code == 201 and world.available("alice") == 1_000
    assert ledger.balance("brossard", "interop:delson").posted == 0
    assert verify_database(world.ctx.engine)["ok"]


def test_cross_city_hold_fails_as_a_whole(world: World) -> None:
    bob = world.residents["bob"]
    world.bearer("bob", "POST", "/v1/wallet/opt-ins", {"city": "delson"})
    before = entry_count(world)
    refused = world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": bob.card, "points": 60}, key="x")
    assert_problem(refused, 422, "insufficient_funds")
    assert entry_count(world) == before
    assert world.ctx.ledger.balance("delson", "interop:brossard").pending == 0


def test_offline_batch_each_item_its_own_result(world: World) -> None:
    alice, bob = world.residents["alice"], world.residents["bob"]
    items = [
        {"idempotency_key": "o1", "card": alice.card, "points": 100},
        {"idempotency_key": "o2", "card": bob.card, "points": 60},  # more than bob has
        {"idempotency_key": "o3", "card": alice.card, "points": 2_001},  # above the floor limit
        {"idempotency_key": "o4", "card": alice.card[:-4] + "AAAA", "points": 10},  # altered card
        {"idempotency_key": "o5", "card": bob.card, "points": 50},
        {"idempotency_key": "o6", "card": alice.card, "purchase_cents": 1_000},  # a purchase: 50 points earned
        {"idempotency_key": "o7", "card": alice.card, "points": 5, "purchase_cents": 100},  # both: which is it?
    ]
    results = world.pos("boulangerie", "POST", "/v1/pos/offline", {"items": items}).json()["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "refused",
        "refused",
        "refused",
        "accepted",
        "accepted",
        "refused",
    ]
    assert [r.get("code") for r in results] == [None, "insufficient_funds", "floor_limit_exceeded", "unknown_card", None, None,
                                                "invalid_request"]  # fmt: skip
    assert [r["idempotency_key"] for r in results] == [f"o{n}" for n in range(1, 8)]
    assert world.available("alice") == 950 and world.available("bob") == 0

    again = world.pos("boulangerie", "POST", "/v1/pos/offline", {"items": items[:1]}).json()["results"]
    assert again[0]["status"] == "replayed" and again[0]["replayed"] and world.available("alice") == 950


@pytest.mark.parametrize(
    ("lang", "word"), [("fr-CA", "insuffisant"), ("en", "Insufficient"), ("es-MX", "insuficientes")]
)
def test_offline_refusals_are_worded_in_the_callers_language(world: World, lang: str, word: str) -> None:
    items = [{"idempotency_key": "l1", "card": world.residents["bob"].card, "points": 60},
             {"idempotency_key": "l2", "card": world.residents["alice"].card, "points": 10}]  # fmt: skip
    response = world.pos("boulangerie", "POST", "/v1/pos/offline", {"items": items}, lang=lang)
    refused, accepted = msgspec.json.decode(response.content, type=OfflineResults).results
    online = world.pos(
        "boulangerie", "POST", "/v1/pos/holds", {"card": world.residents["bob"].card, "points": 60}, key="l3", lang=lang
    )
    assert (refused.status, refused.code) == ("refused", "insufficient_funds") and word in refused.title
    assert online.headers["content-language"] == lang[:2]  # worded as the same refusal online:
    assert (refused.title, refused.detail) == (online.json()["title"], online.json()["detail"])
    assert (
        refused.transfer_id is None
        and accepted.status == "accepted"
        and accepted.points == 10
        and accepted.title is None
    )


def test_results_decode_as_their_types(world: World) -> None:
    card = world.residents["alice"].card
    identity = msgspec.json.decode(
        world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": card}).content, type=Identity
    )
    assert identity.available_points == 1_000
    hold = msgspec.json.decode(world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 30}, key="t1").content,
                               type=HoldResult)  # fmt: skip
    assert hold.status == "pending" and hold.points == 30 and hold.expires_at_us == hold.time_us + 900 * 1_000_000
    capture = world.pos("boulangerie", "POST", f"/v1/pos/holds/{hold.hold_id}/capture", {}, key="t2")
    assert msgspec.json.decode(capture.content, type=CaptureResult).hold_id == hold.hold_id
    award = world.pos("boulangerie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 1_234}, key="t3")
    assert msgspec.json.decode(award.content, type=AwardResult).purchase_cents == 1_234
    refund = world.pos("boulangerie", "POST", "/v1/pos/refunds", {"transfer_id": award.json()["transfer_id"]}, key="t4")
    assert msgspec.json.decode(refund.content, type=RefundResult).refunded_transfer_id == award.json()["transfer_id"]
    second = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 5}, key="t5").json()
    assert msgspec.json.decode(world.pos("boulangerie", "POST", f"/v1/pos/holds/{second['hold_id']}/void", None, key="t6").content,
                               type=VoidResult).status == "voided"  # fmt: skip
    msgspec.json.decode(world.pos("boulangerie", "GET", "/v1/pos/statement").content, type=Statement)
    msgspec.json.decode(world.pos("boulangerie", "GET", "/v1/pos/cards/keys").content, type=CardKeys)
    msgspec.json.decode(world.pos("boulangerie", "GET", "/v1/pos/cards/revocations").content, type=Revocations)


def test_statement_says_what_each_entry_was_and_totals_like_the_close(world: World) -> None:
    world.ctx.programs.configure(msgspec.structs.replace(world.ctx.programs.get("brossard"), point_value_cents_per_100_points=133,
                                                         redemption_rate_percent=90, funding_rate_percent=80), "staff:test")  # fmt: skip
    alice, card = world.residents["alice"], world.residents["alice"].card
    award = world.pos(
        "boulangerie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 2_345}, key="a"
    ).json()  # 117 points
    hold = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 301}, key="h").json()
    capture = world.pos(
        "boulangerie", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {"points": 257}, key="c"
    ).json()
    world.pos("boulangerie", "POST", "/v1/pos/refunds", {"transfer_id": capture["transfer_id"], "points": 19}, key="r1")
    world.pos("boulangerie", "POST", "/v1/pos/refunds", {"transfer_id": award["transfer_id"], "points": 7}, key="r2")
    voided = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 11}, key="h2").json()
    world.pos("boulangerie", "POST", f"/v1/pos/holds/{voided['hold_id']}/void", None, key="v")
    world.bearer("alice", "POST", "/v1/wallet/opt-ins", {"city": "delson"})
    world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": alice.card, "points": 1}, key="elsewhere")

    statement = msgspec.json.decode(world.pos("boulangerie", "GET", "/v1/pos/statement").content, type=Statement)
    assert [(line.what, line.amount) for line in statement.entries] == [
        ("hold_voided", 11), ("redemption_hold", 11), ("award_refund", 7), ("redemption_refund", 19), ("redemption", 257),
        ("redemption_hold", 301), ("purchase_award", 117)]  # fmt: skip
    assert {line.counterpart for line in statement.entries} == {"resident"}
    assert (
        statement.entries[-1].purchase_cents == 2_345
        and statement.entries[-1].debit_account == "merchant:boulangerie:issued"
    )
    totals = statement.totals
    assert (
        totals.awarded_points,
        totals.award_refunds_points,
        totals.redeemed_points,
        totals.redemption_refunds_points,
    ) == (117, 7, 257, 19)
    assert (totals.refunded_points, totals.issued_net_points, totals.redeemed_net_points, totals.net_points) == (
        26,
        110,
        238,
        128,
    )
    # Rounded toward zero once per merchant, as the close does: 238 × 1.33 × 90 % = 284.886, 110 × 1.33 × 80 % = 117.04.
    assert (totals.reimbursement_cents, totals.funding_cents, totals.net_cents, totals.currency) == (
        284,
        117,
        167,
        "CAD",
    )
    program = world.ctx.programs.get("brossard")
    flows = [
        ("brossard", "merchant:boulangerie:issued", 117, 7),
        ("brossard", "merchant:boulangerie:redeemed", 19, 257),
    ]
    (close,) = merchant_lines(program, flows, {}, {})
    assert (close.reimbursement_cents, close.funding_cents) == (totals.reimbursement_cents, totals.funding_cents)

    across = msgspec.json.decode(world.pos("cafe-delson", "GET", "/v1/pos/statement").content, type=Statement)
    assert [(line.what, line.counterpart, line.counterpart_city) for line in across.entries] == [
        ("redemption_hold", "resident_of_another_city", "brossard")
    ]
    assert across.totals.redeemed_points == 0  # a hold is not a redemption yet


def test_statement_pages_cover_the_merchants_own_transfers(world: World) -> None:
    card = world.residents["alice"].card
    for n in range(5):
        world.pos("boulangerie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 500}, key=f"s{n}")
    world.pos("librairie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 500}, key="other")
    page = world.pos("boulangerie", "GET", "/v1/pos/statement?limit=3").json()
    assert len(page["entries"]) == 3 and page["next_before_sequence"] is not None
    rest = world.pos(
        "boulangerie", "GET", f"/v1/pos/statement?limit=3&before_sequence={page['next_before_sequence']}"
    ).json()
    entries = page["entries"] + rest["entries"]
    assert len(entries) == 5 and rest["next_before_sequence"] is None
    assert all("boulangerie" in e["debit_account"] + e["credit_account"] for e in entries)


def test_identify_shows_available_points_and_refuses_revoked_cards(world: World) -> None:
    alice = world.residents["alice"]
    found = world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": alice.card}).json()
    assert found["available_points"] == 1_000 and found["city"] == "brossard" and "name" not in json.dumps(found)
    replaced = world.bearer("alice", "POST", "/v1/wallet/card/replace").json()
    assert_problem(world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": alice.card}), 403, "card_revoked")
    assert world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": replaced["token"]}).status_code == 200
    revoked = world.pos("boulangerie", "GET", "/v1/pos/cards/revocations").json()["revoked"]
    assert [r["id"] for r in revoked] == [found["card_id"]]
    keys = world.pos("boulangerie", "GET", "/v1/pos/cards/keys").json()["keys"]
    assert {k["kid"] for k in keys} >= {world.ctx.keys.card_key(city).kid for city in ("brossard", "delson")}


# --- signed requests ----------------------------------------------------------------------------


def test_replayed_and_altered_requests_are_refused_and_write_nothing(world: World) -> None:
    body = json.dumps({"card": world.residents["alice"].card, "points": 10}).encode()
    headers = world.signed_headers("boulangerie", "POST", "/v1/pos/holds", body, key="h")
    assert world.client.post("/v1/pos/holds", content=body, headers=headers).status_code == 201
    before = entry_count(world)

    assert_problem(world.client.post("/v1/pos/holds", content=body, headers=headers), 401, "replayed_request")
    altered = body.replace(b'"points": 10', b'"points": 99')
    assert_problem(world.client.post("/v1/pos/holds", content=altered, headers=headers), 401, "invalid_signature")
    fresh = world.signed_headers("boulangerie", "POST", "/v1/pos/holds", body, key="h2")
    moved = world.client.post("/v1/pos/holds/x/void", content=body, headers=fresh)
    assert_problem(moved, 401, "invalid_signature")
    unsigned = {k: v for k, v in fresh.items() if k not in ("Signature", "Signature-Input")}
    assert_problem(world.client.post("/v1/pos/holds", content=body, headers=unsigned), 401, "invalid_signature")
    assert entry_count(world) == before


def test_the_query_string_is_signed(world: World) -> None:
    world.bearer("alice", "POST", "/v1/wallet/card/replace")  # one revoked card to list
    revocations = "/v1/pos/cards/revocations"
    headers = world.signed_headers("boulangerie", "GET", revocations, b"")
    added = world.client.get(f"{revocations}?since_us={2**62}", headers=headers)
    assert assert_problem(added, 401, "invalid_signature")["reason"] == "missing_component"
    assert len(world.pos("boulangerie", "GET", f"{revocations}?since_us=0").json()["revoked"]) == 1
    assert world.pos("boulangerie", "GET", f"{revocations}?since_us={2**62}").json()["revoked"] == []

    for n in range(3):
        world.pos(
            "boulangerie",
            "POST",
            "/v1/pos/awards",
            {"card": world.residents["bob"].card, "purchase_cents": 500},
            key=f"q{n}",
        )
    headers = world.signed_headers("boulangerie", "GET", "/v1/pos/statement?limit=1", b"")
    changed = world.client.get("/v1/pos/statement?limit=200", headers=headers)
    assert assert_problem(changed, 401, "invalid_signature")["reason"] == "bad_signature"
    assert len(world.client.get("/v1/pos/statement?limit=1", headers=headers).json()["entries"]) == 1
    assert len(world.pos("boulangerie", "GET", "/v1/pos/statement?limit=200").json()["entries"]) == 3


def test_old_unknown_and_revoked_keys_are_refused(world: World, clock) -> None:
    body = json.dumps({"card": world.residents["alice"].card}).encode()
    stale = world.signed_headers("boulangerie", "POST", "/v1/pos/identify", body)
    clock.advance(301)
    assert_problem(world.client.post("/v1/pos/identify", content=body, headers=stale), 401, "signature_expired")

    world.ctx.terminals.revoke(world.terminals["boulangerie"].key_id, "staff:test", "brossard")
    assert_problem(
        world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": world.residents["alice"].card}),
        401,
        "unknown_key",
    )
    assert (
        world.pos("boulangerie#1", "POST", "/v1/pos/identify", {"card": world.residents["alice"].card}).status_code
        == 200
    )

    world.ctx.merchants.set_status("boulangerie", "suspended", "staff:test", "brossard")
    suspended = world.pos("boulangerie#1", "POST", "/v1/pos/identify", {"card": world.residents["alice"].card})
    assert_problem(suspended, 403, "merchant_not_approved")


# --- tenants ------------------------------------------------------------------------------------


def test_cross_tenant_matrix(world: World) -> None:
    alice_card = world.residents["alice"].card
    hold = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": alice_card, "points": 100}, key="h").json()
    award = world.pos(
        "boulangerie", "POST", "/v1/pos/awards", {"card": alice_card, "purchase_cents": 1_000}, key="a"
    ).json()
    before = entry_count(world)
    refusals = [
        (world.pos("librairie", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {}, key="c"), 403, "wrong_tenant"),
        (world.pos("librairie", "POST", f"/v1/pos/holds/{hold['hold_id']}/void", None, key="v"), 403, "wrong_tenant"),
        (world.pos("librairie", "POST", "/v1/pos/refunds", {"transfer_id": award["transfer_id"]}, key="r"), 403, "wrong_tenant"),
        (world.pos("cafe-delson", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {}, key="c"), 404, "unknown_transfer"),
        (world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": alice_card, "points": 1}, key="d"), 403, "not_opted_in"),
        (world.bearer("alice", "POST", "/v1/pos/holds", {"card": alice_card, "points": 1}, key="b"), 401, "invalid_signature"),
        (world.bearer("staff-delson", "GET", "/v1/admin/programs/brossard"), 403, "wrong_tenant"),
        (world.bearer("staff-brossard", "POST", "/v1/admin/residents/delson", {"personal": {}}), 403, "wrong_tenant"),
        (world.bearer("staff-delson", "POST", f"/v1/admin/residents/delson/{world.residents['alice'].id}/renew"), 403, "wrong_tenant"),
        (world.bearer("alice", "GET", "/v1/admin/programs/brossard"), 403, "forbidden"),
        (world.bearer("entraide-jeunesse", "PUT", "/v1/admin/programs/brossard", {"city": "brossard"}), 403, "forbidden"),
        (world.bearer("finance-brossard", "POST", "/v1/admin/merchants/brossard", {"id": "x", "name": "x", "category": "food"}), 403, "forbidden"),
        (world.bearer("staff-brossard", "GET", "/v1/wallet/balance"), 403, "forbidden"),
        (world.bearer("alice", "POST", "/v1/orgs/attestations", {"card": alice_card, "activity": "volunteer_hour", "units": 1}, key="o"), 403, "forbidden"),
        (world.client.get("/v1/wallet/balance"), 401, "unauthorized"),
        (world.client.get("/v1/wallet/balance", headers={"Authorization": "Bearer nonsense.token.here"}), 401, "unauthorized"),
    ]  # fmt: skip
    for response, status, code in refusals:
        assert_problem(response, status, code)
    assert entry_count(world) == before
    # A resident sees only their own wallet, whatever they ask for.
    history = world.bearer("bob", "GET", "/v1/wallet/history").json()["entries"]
    assert all(world.residents["bob"].id in e["entry"]["debit_account"] + e["entry"]["credit_account"] for e in history)


# --- wallet -------------------------------------------------------------------------------------


def test_wallet_history_card_qr_export_and_erasure(world: World) -> None:
    card = world.residents["alice"].card
    for n in range(4):
        world.pos("boulangerie", "POST", "/v1/pos/awards", {"card": card, "purchase_cents": 100}, key=f"a{n}")
    page = world.bearer("alice", "GET", "/v1/wallet/history?limit=3").json()
    more = world.bearer(
        "alice", "GET", f"/v1/wallet/history?limit=3&before_sequence={page['next_before_sequence']}"
    ).json()
    assert len(page["entries"]) == 3 and len(more["entries"]) == 2 and more["next_before_sequence"] is None
    # In business terms: a purchase at the bakery, the balance after it, the raw entry beside.
    newest = page["entries"][0]
    assert newest["what"] == "purchase" and newest["status"] == "posted" and newest["points"] == 5
    assert newest["counterparty"] == {"kind": "merchant", "id": "boulangerie", "name": "Commerce boulangerie"}
    assert newest["balance_after_points"] == world.available("alice") == 1_020
    assert [e["balance_after_points"] for e in page["entries"]] == [1_020, 1_015, 1_010]
    assert newest["entry"]["kind"] == "earn_purchase" and newest["entry"]["amount"] == 5
    assert {e["balance_after_points"] for e in more["entries"]} == {None}  # only the first page has it
    assert more["entries"][-1]["what"] == "civic_activity" and more["entries"][-1]["counterparty"]["kind"] == "city"

    mine = world.bearer("alice", "GET", "/v1/wallet/card").json()
    assert mine["token"] == card
    qr = world.bearer("alice", "GET", "/v1/wallet/card/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml") and b"<svg" in qr.content

    exported = world.bearer("alice", "GET", "/v1/wallet/export").json()
    assert exported["personal"] == {"name": "Alice", "email": "alice@example.org"}
    assert len(exported["history"]) == 5 and exported["resident"]["id"] == world.residents["alice"].id

    assert world.bearer("alice", "POST", "/v1/wallet/erasure").status_code == 202
    assert world.bearer("alice", "GET", "/v1/wallet/export").status_code == 200  # until the delay is over
    world.ctx.clock.advance(ERASURE_DELAY_DAYS * 86_400)  # type: ignore[attr-defined]  # the tests' clock
    assert world.ctx.residents.carry_out_erasures() == {"erased": 1, "deferred": 0}
    assert_problem(world.bearer("alice", "GET", "/v1/wallet/export"), 410, "resident_erased")
    assert_problem(world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": card}), 403, "card_revoked")
    assert verify_database(world.ctx.engine)["ok"]


# --- organizations ------------------------------------------------------------------------------


def test_attestation_follows_level_budget_and_caps(world: World) -> None:
    card = world.residents["alice"].card
    made = world.bearer("entraide-jeunesse", "POST", "/v1/orgs/attestations",
                        {"card": card, "activity": "volunteer_hour", "units": 2}, key="v1")  # fmt: skip
    assert made.status_code == 201 and made.json()["points"] == 200
    children = world.bearer("entraide-jeunesse", "POST", "/v1/orgs/attestations",
                            {"card": card, "activity": "volunteer_hour_children", "units": 1}, key="v2")  # fmt: skip
    body = assert_problem(children, 403, "level_required")
    assert body["required_level"] == "checked" and body["level"] == "basic"
    capped = world.bearer("entraide-jeunesse", "POST", "/v1/orgs/attestations",
                          {"card": card, "activity": "volunteer_hour", "units": 5}, key="v3").json()  # fmt: skip
    assert capped["points"] == 100  # 300-point daily cap, 200 already earned today
    assert world.ctx.ledger.balance("brossard", "program:budget").posted == 1_000_000 - 1_000 - 50 - 300


def test_budget_cannot_be_exceeded(world: World) -> None:
    world.city("magog", budget_points=6_000, daily_cap_points=10**9, monthly_cap_points=10**9)
    world.resident("denis", "magog")
    world.organization("club-magog", "magog")
    spend = world.ctx.ledger.balance("magog", "program:budget").available
    civic = {"card": world.residents["denis"].card, "activity": "volunteer_hour", "units": 12}
    while spend >= 1_200:
        assert world.bearer("club-magog", "POST", "/v1/orgs/attestations", civic, key=f"k{spend}").status_code == 201
        spend -= 1_200
    assert_problem(
        world.bearer("club-magog", "POST", "/v1/orgs/attestations", civic, key="last"), 422, "budget_exceeded"
    )


# --- admin --------------------------------------------------------------------------------------


def test_program_changes_are_validated_and_audited(world: World) -> None:
    program = world.bearer("staff-brossard", "GET", "/v1/admin/programs/brossard").json()
    program["merchant_points_per_dollar"] = 10
    saved = world.bearer("staff-brossard", "PUT", "/v1/admin/programs/brossard", program)
    assert saved.status_code == 200 and saved.json()["version"] == 2
    bad = dict(program, redemption_rate_percent=120)
    assert_problem(world.bearer("staff-brossard", "PUT", "/v1/admin/programs/brossard", bad), 422, "invalid_program")
    typo = dict(program, merchant_points_per_dolar=3)
    assert_problem(world.bearer("staff-brossard", "PUT", "/v1/admin/programs/brossard", typo), 400, "validation_error")
    log = world.bearer("staff-brossard", "GET", "/v1/admin/audit/brossard").json()["entries"]
    change = [e for e in log if e["action"] == "program.configure"][-1]
    # The principal, and the credential it acted with (whose grant the trail records too).
    jti = world.ctx.tokens.verify(world.tokens["staff-brossard"], world.now_s())["jti"]
    assert change["actor"] == f"staff:s-brossard/{jti}"
    assert change["before"]["merchant_points_per_dollar"] == 5 and change["after"]["merchant_points_per_dollar"] == 10


def test_staff_enrol_renew_level_terminals_and_tokens(world: World, clock) -> None:
    staff = "staff-brossard"
    emile = {"personal": {"name": "Émile"}, "level": "verified"}
    made = world.bearer(staff, "POST", "/v1/admin/residents/brossard", emile, key="emile")
    assert made.status_code == 201
    resident = made.json()
    # A retry answers the same resident and enrols nobody; another body under the key is refused.
    assert world.bearer(staff, "POST", "/v1/admin/residents/brossard", emile, key="emile").json() == resident
    other = {"personal": {"name": "Zoé"}, "level": "verified"}
    assert_problem(
        world.bearer(staff, "POST", "/v1/admin/residents/brossard", other, key="emile"), 409, "idempotency_conflict"
    )
    assert_problem(world.bearer(staff, "POST", "/v1/admin/residents/brossard", emile), 400, "idempotency_key_required")
    enrolments = [e for e in world.bearer(staff, "GET", "/v1/admin/audit/brossard?limit=200").json()["entries"]
                  if e["action"] == "resident.enroll" and e["actor"].startswith("staff:s-brossard")]  # fmt: skip
    assert [e["target"] for e in enrolments] == [resident["id"]]
    clock.advance(10)
    renewed = world.bearer(staff, "POST", f"/v1/admin/residents/brossard/{resident['id']}/renew").json()
    assert renewed["valid_until_us"] == resident["valid_until_us"] + 365 * 86_400 * 1_000_000
    level = world.bearer(staff, "PUT", f"/v1/admin/residents/brossard/{resident['id']}/level", {"level": "checked"})
    assert level.json()["level"] == "checked"

    fleuriste = {"id": "fleuriste", "name": "Fleuriste", "category": "retail"}
    created = world.bearer(staff, "POST", "/v1/admin/merchants/brossard", fleuriste, key="fleuriste")
    assert created.status_code == 201 and created.json()["status"] == "pending"
    assert (
        world.bearer(staff, "POST", "/v1/admin/merchants/brossard", fleuriste, key="fleuriste").json() == created.json()
    )
    assert_problem(world.bearer(staff, "POST", "/v1/admin/merchants/brossard", fleuriste, key="other"), 409, "conflict")
    assert_problem(world.bearer(staff, "POST", "/v1/admin/merchants/brossard", fleuriste | {"name": "F"}, key="fleuriste"), 409,
                   "idempotency_conflict")  # fmt: skip
    assert_problem(world.bearer(staff, "POST", "/v1/admin/organizations/brossard", {"id": "o", "name": "O"}), 400,
                   "idempotency_key_required")  # fmt: skip
    approved = world.bearer(staff, "POST", "/v1/admin/merchants/brossard/fleuriste/status", {"status": "approved"})
    assert approved.json()["status"] == "approved"
    bad_key = world.bearer(
        staff, "POST", "/v1/admin/merchants/brossard/fleuriste/terminals", {"public_key_pem": "-" * 50}, key="t"
    )
    assert_problem(bad_key, 400, "invalid_request")
    assert_problem(world.bearer(staff, "POST", "/v1/admin/merchants/brossard/fleuriste/terminals", {"public_key_pem": "-" * 50}),
                   400, "idempotency_key_required")  # fmt: skip

    grant = {"role": "org", "subject": "x", "org_id": "entraide-jeunesse"}
    token = world.bearer(staff, "POST", "/v1/admin/tokens/brossard", grant, key="x")
    assert token.status_code == 201
    # A retry answers the same token text, not a second grant, and the text is stored nowhere.
    assert world.bearer(staff, "POST", "/v1/admin/tokens/brossard", grant, key="x").json() == token.json()
    with world.ctx.engine.connect() as conn:
        kept = b"".join(r for (r,) in conn.execute(text("SELECT result FROM request_keys")) if r is not None)
    assert token.json()["jti"].encode() in kept and token.json()["token"].encode() not in kept
    assert_problem(world.bearer(staff, "POST", "/v1/admin/tokens/brossard", grant | {"ttl_seconds": 600}, key="x"), 409,
                   "idempotency_conflict")  # fmt: skip
    assert_problem(world.bearer(staff, "POST", "/v1/admin/tokens/brossard", grant), 400, "idempotency_key_required")
    grants = [e for e in world.bearer(staff, "GET", "/v1/admin/audit/brossard?limit=200").json()["entries"]
              if e["action"] == "credential.grant" and e["target"] == "org:x"]  # fmt: skip
    assert len(grants) == 1
    world.tokens["new-org"] = token.json()["token"]
    attested = world.bearer("new-org", "POST", "/v1/orgs/attestations",
                            {"card": world.residents["bob"].card, "activity": "civic_participation", "units": 1}, key="t")  # fmt: skip
    assert attested.status_code == 201 and attested.json()["points"] == 50
    actions = {e["action"] for e in world.bearer(staff, "GET", "/v1/admin/audit/brossard?limit=200").json()["entries"]}
    assert {"resident.enroll", "resident.renew", "resident.set_level", "merchant.add", "merchant.set_status"} <= actions


# --- errors and limits --------------------------------------------------------------------------


def test_bad_input_gets_localized_problems(world: World) -> None:
    card = world.residents["alice"].card
    raw = b'{"card": '
    headers = world.signed_headers("boulangerie", "POST", "/v1/pos/holds", raw, key="m")
    assert_problem(world.client.post("/v1/pos/holds", content=raw, headers=headers), 400, "malformed_json")
    wrong_type = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": "10"}, key="t", lang="en")
    body = assert_problem(wrong_type, 400, "validation_error")
    assert wrong_type.headers["content-language"] == "en" and body["title"] == "Invalid data"
    float_points = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 1.5}, key="f")
    assert_problem(float_points, 400, "validation_error")
    negative = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": -5}, key="n")
    assert_problem(negative, 400, "validation_error")
    no_key = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": 5})
    assert_problem(no_key, 400, "idempotency_key_required")
    french = world.pos(
        "boulangerie", "POST", "/v1/pos/holds", {"card": world.residents["bob"].card, "points": 500}, key="fr"
    )
    spanish = world.pos(
        "boulangerie",
        "POST",
        "/v1/pos/holds",
        {"card": world.residents["bob"].card, "points": 500},
        key="es",
        lang="es",
    )
    assert french.headers["content-language"] == "fr" and spanish.headers["content-language"] == "es"
    assert french.json()["title"] != spanish.json()["title"]
    assert_problem(world.client.get("/v1/nothing-here"), 404, "not_found")
    assert_problem(world.client.delete("/v1/health"), 405, "method_not_allowed")
    assert world.available("alice") == 1_000 and world.available("bob") == 50


def test_body_size_is_limited(world: World) -> None:
    big = json.dumps({"card": "x" * (MAX_BODY_BYTES + 10), "points": 1}).encode()
    headers = world.signed_headers("boulangerie", "POST", "/v1/pos/holds", big, key="big")
    assert_problem(world.client.post("/v1/pos/holds", content=big, headers=headers), 413, "body_too_large")


def test_rate_limit_answers_429_with_retry_after(ctx) -> None:
    with TestClient(create_app(ctx, terminal_rate_per_second=1, resident_rate_per_second=1)) as client:
        world = standard_world(ctx, client)
        codes = [world.bearer("alice", "GET", "/v1/wallet/balance").status_code for _ in range(6)]
        assert codes[:4] == [200] * 4 and codes[-1] == 429
        limited = world.bearer("alice", "GET", "/v1/wallet/balance")
        assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        terminal_codes = [world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": world.residents["alice"].card}).status_code
                          for _ in range(6)]  # fmt: skip
        assert terminal_codes[-1] == 429


def test_openapi_document_lists_every_endpoint(world: World) -> None:
    document = world.client.get("/schema/openapi.json").json()
    paths = set(document["paths"])
    routes = {re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path) for route in world.client.app.routes}
    for expected in ("/v1/pos/holds", "/v1/pos/holds/{hold_id}/capture", "/v1/pos/holds/{hold_id}/void", "/v1/pos/awards",
                     "/v1/pos/refunds", "/v1/pos/offline", "/v1/pos/statement", "/v1/wallet/balance", "/v1/wallet/history",
                     "/v1/wallet/card", "/v1/wallet/export", "/v1/wallet/erasure", "/v1/orgs/attestations",
                     "/v1/admin/programs/{city}", "/v1/health"):  # fmt: skip
        assert expected in paths
    assert {r for r in routes if r.startswith("/v1/")} == paths  # the pages (/, /wallet, /static) are not the API
    assert {r for r in routes if r.startswith("/v1")} == paths  # the pages (web/) are not the API's
    hold = document["paths"]["/v1/pos/holds"]["post"]
    assert "requestBody" in hold and any(p["name"] == "Idempotency-Key" for p in hold["parameters"])


def test_listings_and_transparency(world: World) -> None:
    merchants = world.bearer("staff-brossard", "GET", "/v1/admin/merchants/brossard").json()["merchants"]
    assert {m["id"] for m in merchants} == {"boulangerie", "librairie"}
    assert len(next(m for m in merchants if m["id"] == "boulangerie")["terminals"]) == 2
    orgs = world.bearer("staff-brossard", "GET", "/v1/admin/organizations/brossard").json()["organizations"]
    assert [o["id"] for o in orgs] == ["entraide-jeunesse"]
    alice = world.residents["alice"]
    record = world.bearer("staff-brossard", "GET", f"/v1/admin/residents/brossard/{alice.id}").json()
    assert record["id"] == alice.id and "personal" not in record and record["opt_ins"] == []
    assert_problem(world.bearer("staff-delson", "GET", f"/v1/admin/residents/delson/{alice.id}"), 403, "wrong_tenant")

    audit.make_checkpoints(world.ctx.engine, world.ctx.signer, world.ctx.clock)
    keys = world.client.get("/v1/transparency/keys").json()
    assert keys["ledger"]["keys"] and {k["kid"] for k in keys["cards"]["keys"]} >= {
        world.ctx.keys.card_key("brossard").kid
    }
    notes = world.client.get("/v1/transparency/checkpoints").json()["checkpoints"]
    assert {n["ledger"] for n in notes} == {"brossard", "delson"}
    assert all(n["note"].startswith(f"entraide/{n['ledger']}\n") for n in notes)
