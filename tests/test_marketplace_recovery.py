"""Crashes between the steps of a redemption leave no unit sold unpaid, nor paid unsold (SQLite and PostgreSQL).

A crash is injected by making one step raise something that is not a ledger refusal, as a killed
process or a lost connection would: the step's durable state is what the database holds.
"""

from __future__ import annotations

import pytest

from ledger.service_layer.audit import verify_database
from marketplace.adapters import store
from marketplace.domain.catalog import ItemSpec
from marketplace.domain.errors import ItemUnavailable, SoldOut
from marketplace.service_layer.catalog import Owner
from marketplace.service_layer.redemptions import RESERVED_GRACE_SECONDS, Redemptions
from tests.world import World, standard_world

SEATS = ItemSpec(title={"fr": "Atelier de poterie"}, category="culture", price_points=300, quantity=1)


class Crash(Exception):
    pass


@pytest.fixture
def world(ctx) -> World:
    return standard_world(ctx, None)


def remaining(world: World, item_id: str) -> int | None:
    with world.ctx.engine.connect() as conn:
        return store.item(conn, item_id)["remaining"]


def crash_once(monkeypatch, step: str) -> None:
    original = getattr(Redemptions, step)
    calls = {"n": 0}

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash(step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Redemptions, step, failing)


def seats(world: World) -> dict:
    return world.ctx.catalog.create(Owner("brossard", None, "staff:test"), "service", SEATS)


def test_a_retry_carries_an_interrupted_redemption_forward(world: World, monkeypatch) -> None:
    item, alice = seats(world), world.residents["alice"]
    crash_once(monkeypatch, "_resolve")  # the hold is written, the capture never happens
    with pytest.raises(Crash):
        world.ctx.redemptions.redeem(alice.id, "k", item["id"], 1)
    assert remaining(world, item["id"]) == 0 and world.available("alice") == 700  # held, not yet paid
    with pytest.raises(SoldOut):
        world.ctx.redemptions.redeem(world.residents["bob"].id, "k", item["id"], 1)
    done = world.ctx.redemptions.redeem(alice.id, "k", item["id"], 1)  # the client retries with its key
    assert done["status"] == "completed" and done["replayed"]
    assert world.available("alice") == 700 and world.ctx.ledger.balance("brossard", "services:revenue").posted == 300


def test_an_abandoned_reservation_is_rolled_back(world: World, clock, monkeypatch) -> None:
    item, alice = seats(world), world.residents["alice"]
    crash_once(monkeypatch, "_resolve")
    with pytest.raises(Crash):
        world.ctx.redemptions.redeem(alice.id, "k", item["id"], 1)
    assert world.ctx.redemptions.recover() == {"reserved": 0, "awaiting_payment": 0}  # within the grace period
    clock.advance(RESERVED_GRACE_SECONDS + 1)
    assert world.ctx.redemptions.recover() == {"reserved": 1, "awaiting_payment": 0}
    assert remaining(world, item["id"]) == 1 and world.available("alice") == 1_000
    assert world.ctx.redemptions.list(alice.id, None, 10)["redemptions"] == []
    assert verify_database(world.ctx.engine)["ok"]


def test_a_captured_redemption_is_never_given_back(world: World, clock, monkeypatch) -> None:
    item, alice = seats(world), world.residents["alice"]
    crash_once(monkeypatch, "_move")  # captured in the ledger, the row not yet marked
    with pytest.raises(Crash):
        world.ctx.redemptions.redeem(alice.id, "k", item["id"], 1)
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 300
    clock.advance(RESERVED_GRACE_SECONDS + 1)
    assert world.ctx.redemptions.recover()["reserved"] == 1
    (row,) = world.ctx.redemptions.list(alice.id, None, 10)["redemptions"]
    assert row["status"] == "completed" and remaining(world, item["id"]) == 0
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 300 and world.available("alice") == 700


def test_a_refused_hold_leaves_no_trace(world: World) -> None:
    item = seats(world)
    bob = world.residents["bob"]  # 50 points, the seat costs 300
    with pytest.raises(Exception) as refused:
        world.ctx.redemptions.redeem(bob.id, "k", item["id"], 1)
    assert refused.value.code == "insufficient_funds"
    assert remaining(world, item["id"]) == 1 and world.ctx.redemptions.list(bob.id, None, 10)["redemptions"] == []
    world.ctx.catalog.suspend("brossard", item["id"], True, None, "staff:test")
    with pytest.raises(ItemUnavailable):
        world.ctx.redemptions.redeem(world.residents["alice"].id, "k", item["id"], 1)
