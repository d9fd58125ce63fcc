"""Staff corrections through HTTP and the CLI, on SQLite and PostgreSQL: an attestation reversed, a
municipal service refunded (its unit back on sale), a wallet credited and debited; the program's
threshold and the second principal; refusals that write nothing; cities kept apart; the ledger and
the audit trail still verify."""

from __future__ import annotations

import json
import uuid

import msgspec
import pytest
from litestar.testing import TestClient
from typer.testing import CliRunner

from api.cli.main import app as cli
from api.http.app import create_app
from community.schemas import Correction, Corrections
from ledger.adapters import journal
from ledger.schemas import AuditPage
from ledger.service_layer import audit_trail
from ledger.service_layer.audit import verify_database
from marketplace.schemas import Item, Redemption
from tests.test_api import assert_problem
from tests.world import World, standard_world

PATH = "/v1/admin/corrections/brossard"


@pytest.fixture
def world(ctx) -> World:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        made = standard_world(ctx, client)
        made.grant("staff-brossard-again", "staff", "brossard", "s-brossard")  # the same person, a second token
        made.grant("staff2-brossard", "staff", "brossard", "s2-brossard")
        made.grant("admin-brossard", "admin", "brossard", "maire")
        made.grant("staff-delson", "staff", "delson", "s-delson")
        yield made


def ok(response, status: int = 200) -> Correction:
    assert response.status_code == status, response.text
    return msgspec.json.decode(response.content, type=Correction)


def propose(world: World, body: dict, who: str = "staff-brossard", key: str | None = None, city: str = "brossard"):
    return world.bearer(who, "POST", f"/v1/admin/corrections/{city}", body, key=key or uuid.uuid4().hex)


def entries(world: World) -> int:
    with world.ctx.engine.connect() as conn:
        return sum(head.sequence for head in journal.heads(conn).values())


def test_corrections_end_to_end(world: World) -> None:
    alice, bob = world.residents["alice"], world.residents["bob"]
    budget = world.ctx.ledger.balance("brossard", "program:budget").available

    # An attestation reversed in two steps, never beyond what it awarded (200 points).
    attested = world.bearer("entraide-jeunesse", "POST", "/v1/orgs/attestations",
                            {"card": alice.card, "activity": "volunteer_hour", "units": 2}, key="att-1")  # fmt: skip
    assert attested.status_code == 201, attested.text
    transfer_id = attested.json()["transfer_id"]
    before = world.available("alice")
    reversal = {"kind": "attestation", "target": transfer_id, "points": 150, "reason": "Heures déclarées deux fois"}
    first = ok(propose(world, reversal, key="rev-1"), 201)
    assert (first.status, first.resident_id, first.direction) == ("posted", alice.id, "debit")
    assert world.available("alice") == before - 150
    again = ok(propose(world, reversal, key="rev-1"), 201)  # a retry: the same correction, nothing written
    assert (again.id, again.replayed) == (first.id, True) and world.available("alice") == before - 150
    written = entries(world)
    assert_problem(propose(world, reversal | {"points": 51}), 422, "exceeds_original")
    assert entries(world) == written
    ok(propose(world, reversal | {"points": 50}), 201)

    # A municipal service refunded: the points back, the unit back on sale; once only.
    created = world.bearer("staff-brossard", "POST", "/v1/admin/catalog/brossard/services",
                           {"title": {"fr": "Piscine"}, "category": "sports", "price_points": 400, "quantity": 1},
                           key="pool")  # fmt: skip
    item = msgspec.json.decode(created.content, type=Item)
    redeemed = world.bearer("alice", "POST", "/v1/wallet/redemptions", {"item_id": item.id, "quantity": 1}, key="r1")
    redemption = msgspec.json.decode(redeemed.content, type=Redemption)
    assert redemption.status == "completed", redeemed.text
    before = world.available("alice")
    refund = {"kind": "redemption", "target": redemption.id, "points": 300, "reason": "Piscine fermée ce jour-là"}
    refunded = ok(propose(world, refund), 201)
    assert refunded.status == "posted" and [t.ledger for t in refunded.transfers] == ["brossard"]
    assert (
        world.available("alice") == before + 300
        and world.ctx.redemptions.get(alice.id, redemption.id).status == "completed"
    )
    assert_problem(propose(world, refund | {"points": 101}), 422, "exceeds_original")
    ok(propose(world, refund | {"points": 100}), 201)  # the rest: the unit back on sale, the voucher void
    assert (
        world.available("alice") == before + 400
        and world.ctx.redemptions.get(alice.id, redemption.id).status == "refunded"
    )
    assert (
        world.bearer("staff-brossard", "GET", "/v1/admin/catalog/brossard/items").json()["items"][0]["remaining"] == 1
    )
    assert_problem(propose(world, refund | {"points": 1}), 404, "unknown_correction_target")

    # Above the threshold (1 000 points by default): pending until a second principal approves.
    credit = {"kind": "wallet", "target": bob.id, "direction": "credit", "points": 5_000, "reason": "Geste commercial"}
    pending = ok(propose(world, credit), 201)
    assert pending.status == "pending" and pending.transfers == [] and world.available("bob") == 50
    listed = msgspec.json.decode(world.bearer("admin-brossard", "GET", PATH).content, type=Corrections)
    assert [c.id for c in listed.corrections] == [pending.id]
    decide = f"{PATH}/{pending.id}/approve"
    assert_problem(world.bearer("staff-brossard", "POST", decide), 403, "second_principal_required")
    assert_problem(world.bearer("staff-brossard-again", "POST", decide), 403, "second_principal_required")
    assert world.available("bob") == 50
    approved = ok(world.bearer("staff2-brossard", "POST", decide))
    assert approved.status == "posted" and approved.decided_by.startswith("staff:s2-brossard/")
    assert world.available("bob") == 5_050
    assert_problem(world.bearer("admin-brossard", "POST", f"{PATH}/{pending.id}/reject"), 409, "correction_not_pending")
    rejected = ok(propose(world, credit | {"reason": "En double"}), 201)
    assert ok(world.bearer("staff-brossard", "POST", f"{PATH}/{rejected.id}/reject")).status == "rejected"
    assert world.available("bob") == 5_050

    # A debit never takes a wallet below zero; a reason is required; unknown targets are refused.
    written = entries(world)
    debit = {"kind": "wallet", "target": bob.id, "direction": "debit", "points": 5_051, "reason": "Erreur de saisie"}
    pending_debit = ok(propose(world, debit), 201)
    assert_problem(
        world.bearer("admin-brossard", "POST", f"{PATH}/{pending_debit.id}/approve"), 422, "insufficient_funds"
    )
    assert world.ctx.corrections.get("brossard", pending_debit.id).status == "pending"
    assert_problem(propose(world, debit | {"points": 60, "reason": ""}),
                   400, "validation_error")  # fmt: skip
    for target in ({"kind": "attestation", "target": "nope"}, {"kind": "redemption", "target": "nope"},
                   {"kind": "attestation", "target": redemption.hold_ids[0]}, {"kind": "wallet", "target": "nope",
                                                                               "direction": "credit"}):  # fmt: skip
        assert_problem(propose(world, {"points": 10, "reason": "x"} | target), 404, "unknown_correction_target")
    assert entries(world) == written

    # Cities apart: another city's staff is refused here; a resident of another city is no target here.
    assert_problem(propose(world, credit, who="staff-delson"), 403, "wrong_tenant")
    carole = world.residents["carole"]
    assert_problem(propose(world, credit | {"target": carole.id, "points": 1}), 404, "unknown_correction_target")
    mine = ok(propose(world, credit | {"target": carole.id, "points": 1}, who="staff-delson", city="delson"), 201)
    assert_problem(world.bearer("staff-brossard", "GET", f"{PATH}/{mine.id}"), 404, "unknown_correction")
    assert_problem(world.bearer("alice", "GET", PATH), 403, "forbidden")

    # The CLI: the same service; the operator is one person too, and may not approve their own.
    db = ["--db", world.ctx.settings.database_url, "--data-dir", str(world.ctx.settings.data_dir)]
    runner = CliRunner()
    made = runner.invoke(cli, ["admin", "correction", "propose", "--city", "brossard", "--kind", "wallet", "--target",
                               bob.id, "--direction", "credit", "--points", "2000", "--reason", "Tombola", *db])  # fmt: skip
    assert made.exit_code == 0, made.output
    proposed = json.loads(made.output)
    assert proposed["status"] == "pending"
    own = runner.invoke(cli, ["admin", "correction", "approve", "--city", "brossard", "--id", proposed["id"], *db])
    assert own.exit_code == 2 and world.available("bob") == 5_050
    shown = runner.invoke(cli, ["admin", "correction", "list", "--city", "brossard", *db])
    assert proposed["id"] in shown.output
    ok(world.bearer("staff2-brossard", "POST", f"{PATH}/{proposed['id']}/approve"))
    assert world.available("bob") == 7_050

    # Every correction is a new transfer, audited: the ledger and the audit trail verify.
    assert verify_database(world.ctx.engine)["ok"]
    assert audit_trail.verify_database(world.ctx.engine)["ok"]
    trail, after = [], 0
    while after is not None:
        page = msgspec.json.decode(world.bearer("admin-brossard", "GET", f"/v1/admin/audit/brossard?after_seq={after}").content,
                                   type=AuditPage)  # fmt: skip
        trail, after = trail + page.entries, page.next_after_seq
    posted = [e for e in trail if e.action == "correction.post" and e.target == f"wallet:{bob.id}"]
    assert [e.after["reason"] for e in posted] == ["Geste commercial", "Tombola"]
    assert world.ctx.ledger.balance("brossard", "program:budget").available == budget - 200 + 200 - 5_000 - 2_000
