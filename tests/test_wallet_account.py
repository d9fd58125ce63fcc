"""The wallet's account endpoints on both databases: opting out of a city (its rules, its audit), and
erasure as a request that waits ERASURE_DELAY_DAYS, can be undone, and is then carried out by the
`erasures` job, the points left going to breakage; a city's staff see it pending."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from api.http.app import create_app
from community.service_layer.residents import ERASURE_DELAY_DAYS
from ledger.domain import accounts
from ledger.service_layer.audit import verify_database
from operations.service_layer.jobs import scheduler
from tests.test_api import assert_problem, entry_count
from tests.world import World, standard_world

DAY_S = 86_400


@pytest.fixture
def world(ctx) -> World:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)


def actions(world: World, city: str) -> list[tuple[str, str]]:
    log = world.bearer(f"staff-{city}", "GET", f"/v1/admin/audit/{city}?limit=200").json()["entries"]
    return [
        (e["action"], e["target"])
        for e in log
        if e["action"].startswith("resident.") and e["action"] != "resident.enroll"
    ]


def test_opting_out_keeps_the_wallet_waits_for_holds_there_and_is_audited(world: World) -> None:
    alice = world.residents["alice"]
    assert world.bearer("alice", "POST", "/v1/wallet/opt-ins", {"city": "delson"}).json() == {
        "home": "brossard",
        "opt_ins": ["delson"],
    }
    # A purchase under way at a Delson merchant: a hold toward interop:delson. Opting out waits for it.
    hold = world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": alice.card, "points": 200}, key="h1")
    assert hold.status_code == 201, hold.text
    before = entry_count(world)
    blocked = assert_problem(
        world.bearer("alice", "DELETE", "/v1/wallet/opt-ins/delson", lang="en"), 409, "opt_out_blocked"
    )
    assert "200 points" in blocked["detail"] and blocked["city"] == "delson"
    assert (
        world.bearer("alice", "GET", "/v1/wallet/opt-ins").json()["opt_ins"] == ["delson"]
        and entry_count(world) == before
    )
    assert (
        world.pos("cafe-delson", "POST", f"/v1/pos/holds/{hold.json()['hold_id']}/capture", {}, key="c1").status_code
        == 200
    )

    left = world.bearer("alice", "DELETE", "/v1/wallet/opt-ins/delson")
    assert left.status_code == 200 and left.json() == {"home": "brossard", "opt_ins": []}
    assert world.available("alice") == 800  # what was spent there stays spent, the rest stays at home
    refused = world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": alice.card, "points": 10}, key="h2")
    assert_problem(refused, 403, "not_opted_in")
    # Again, or a city never joined: nothing changes. The home city, or no city at all: refused.
    assert world.bearer("alice", "DELETE", "/v1/wallet/opt-ins/delson").json()["opt_ins"] == []
    assert_problem(world.bearer("alice", "DELETE", "/v1/wallet/opt-ins/brossard"), 409, "home_city")
    assert_problem(world.bearer("alice", "DELETE", "/v1/wallet/opt-ins/atlantis"), 404, "unknown_program")
    assert_problem(world.bearer("alice", "DELETE", "/v1/wallet/opt-ins/NOT%20A%20CITY"), 400, "validation_error")
    assert actions(world, "brossard") == [("resident.opt_in", alice.id), ("resident.opt_out", alice.id)]


def test_erasure_waits_its_delay_can_be_undone_and_then_sends_the_points_to_breakage(world: World) -> None:
    alice, clock = world.residents["alice"], world.ctx.clock
    staff_view = f"/v1/admin/residents/brossard/{alice.id}"
    none = world.bearer("alice", "GET", "/v1/wallet/erasure").json()
    assert none == {"status": "none", "requested_at_us": None, "due_at_us": None, "delay_days": ERASURE_DELAY_DAYS,
                    "points": 1_000, "points_value_cents": 1_000, "held_points": 0}  # fmt: skip

    asked = world.bearer("alice", "POST", "/v1/wallet/erasure")
    assert asked.status_code == 202
    due = clock() + ERASURE_DELAY_DAYS * DAY_S * 1_000_000
    assert asked.json() == none | {"status": "pending", "requested_at_us": clock(), "due_at_us": due}
    clock.advance(60)  # type: ignore[attr-defined]
    assert world.bearer("alice", "POST", "/v1/wallet/erasure").json()["due_at_us"] == due  # asking again keeps the date
    assert world.bearer("staff-brossard", "GET", staff_view).json()["erasure_due_at_us"] == due  # staff see it pending
    # Meanwhile everything works: the card earns, the export answers.
    assert (
        world.pos(
            "boulangerie", "POST", "/v1/pos/awards", {"card": alice.card, "purchase_cents": 2_000}, key="a1"
        ).status_code
        == 201
    )
    assert world.bearer("alice", "GET", "/v1/wallet/export").status_code == 200

    undone = world.bearer("alice", "DELETE", "/v1/wallet/erasure")
    assert undone.status_code == 200 and undone.json()["status"] == "none" and undone.json()["points"] == 1_100
    assert world.bearer("alice", "DELETE", "/v1/wallet/erasure").json()["status"] == "none"  # nothing to undo
    assert world.bearer("staff-brossard", "GET", staff_view).json()["erasure_due_at_us"] is None

    # Asked again: the delay starts over. A hold still open when it is over makes the job wait.
    due = world.bearer("alice", "POST", "/v1/wallet/erasure").json()["due_at_us"]
    assert (
        world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": alice.card, "points": 100}, key="h1").status_code
        == 201
    )
    jobs = scheduler(world.ctx)
    clock.advance(ERASURE_DELAY_DAYS * DAY_S - 1)  # type: ignore[attr-defined]
    assert jobs.run_now("erasures").result == {"erased": 0, "deferred": 0}  # one second early
    clock.advance(1)  # type: ignore[attr-defined]
    assert clock() == due and jobs.run_now("erasures").result == {"erased": 0, "deferred": 1}
    assert_problem(world.bearer("staff-brossard", "POST", f"{staff_view}/erase"), 409, "erasure_blocked")
    assert jobs.run_now("expire_holds").result == {"expired": 1}  # long past its timeout: released

    breakage = world.ctx.ledger.balance("brossard", accounts.BREAKAGE).posted
    assert jobs.run_now("erasures").result == {"erased": 1, "deferred": 0}
    assert world.ctx.ledger.balance("brossard", alice.wallet).posted == 0
    assert world.ctx.ledger.balance("brossard", accounts.BREAKAGE).posted == breakage + 1_100
    for path in ("/v1/wallet/erasure", "/v1/wallet/export", "/v1/wallet/balance"):
        assert_problem(world.bearer("alice", "GET", path), 410, "resident_erased")
    assert_problem(world.pos("boulangerie", "POST", "/v1/pos/identify", {"card": alice.card}), 403, "card_revoked")
    assert jobs.run_now("erasures").result == {"erased": 0, "deferred": 0}  # done once
    assert actions(world, "brossard") == [("resident.erasure_request", alice.id), ("resident.erasure_cancel", alice.id),
                                          ("resident.erasure_request", alice.id), ("resident.erase", alice.id)]  # fmt: skip
    assert verify_database(world.ctx.engine)["ok"]


def test_staff_erase_at_once_with_the_same_sweep(world: World) -> None:
    bob = world.residents["bob"]
    world.bearer("bob", "POST", "/v1/wallet/erasure")
    erased = world.bearer("staff-brossard", "POST", f"/v1/admin/residents/brossard/{bob.id}/erase")
    assert erased.status_code == 200 and erased.json() == {"status": "erased"}
    assert world.ctx.ledger.balance("brossard", bob.wallet).posted == 0
    assert world.ctx.ledger.balance("brossard", accounts.BREAKAGE).posted == 50
    assert world.ctx.residents.carry_out_erasures() == {"erased": 0, "deferred": 0}  # the request went with it
    assert_problem(
        world.bearer("staff-brossard", "POST", f"/v1/admin/residents/brossard/{bob.id}/erase"), 410, "resident_erased"
    )
