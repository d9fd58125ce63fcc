"""Crashes between the steps of a redemption leave no unit sold unpaid, nor paid unsold (SQLite and PostgreSQL).

A crash is injected by making one step raise something that is not a ledger refusal, as a killed
process or a lost connection would: the step's durable state is what the database holds.
"""

from __future__ import annotations

import pytest

from ledger.domain.errors import LedgerError
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.audit import verify_database
from marketplace.adapters import store
from marketplace.domain.catalog import ItemSpec
from marketplace.domain.errors import ItemUnavailable, SoldOut
from marketplace.service_layer.catalog import Owner
from marketplace.service_layer.redemptions import MAX_ATTEMPTS, RESERVED_GRACE_SECONDS, Redemptions
from tests.world import World, standard_world

NOTHING = {"reserved": 0, "awaiting_payment": 0, "failed": 0, "deferred": 0}  # what a sweep with nothing to do reports
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
        world.ctx.redemptions.redeem(alice.id, "k", item.id, 1)
    assert remaining(world, item.id) == 0 and world.available("alice") == 700  # held, not yet paid
    with pytest.raises(SoldOut):
        world.ctx.redemptions.redeem(world.residents["bob"].id, "k", item.id, 1)
    done = world.ctx.redemptions.redeem(alice.id, "k", item.id, 1)  # the client retries with its key
    assert done.status == "completed" and done.replayed
    assert world.available("alice") == 700 and world.ctx.ledger.balance("brossard", "services:revenue").posted == 300


def test_an_abandoned_reservation_is_rolled_back_and_its_retry_runs_again(world: World, clock, monkeypatch) -> None:
    item, alice = seats(world), world.residents["alice"]
    crash_once(monkeypatch, "_move")  # the hold is written, the row never claims it
    with pytest.raises(Crash):
        world.ctx.redemptions.redeem(alice.id, "k", item.id, 1)
    assert world.ctx.redemptions.recover() == NOTHING  # within the grace period
    clock.advance(RESERVED_GRACE_SECONDS + 1)
    assert world.ctx.redemptions.recover() == NOTHING | {"reserved": 1}
    assert remaining(world, item.id) == 1 and world.available("alice") == 1_000
    (row,) = world.ctx.redemptions.list(alice.id, None, 10).redemptions
    assert (row.status, row.error, row.attempt, row.hold_ids) == ("failed", "abandoned", 0, [])
    assert verify_database(world.ctx.engine)["ok"]

    # The client's retry with its key: a new attempt, a new hold, the points really taken — not the voided hold replayed.
    done = world.ctx.redemptions.redeem(alice.id, "k", item.id, 1)
    assert (done.status, done.attempt, done.id) == ("completed", 1, row.id)
    assert remaining(world, item.id) == 0 and world.available("alice") == 700
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 300
    assert verify_database(world.ctx.engine)["ok"]


def test_a_captured_redemption_is_never_given_back(world: World, clock, monkeypatch) -> None:
    item, alice = seats(world), world.residents["alice"]
    crash_once(monkeypatch, "_complete")  # captured in the ledger, the row not yet marked
    with pytest.raises(Crash):
        world.ctx.redemptions.redeem(alice.id, "k", item.id, 1)
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 300
    clock.advance(RESERVED_GRACE_SECONDS + 1)
    assert world.ctx.redemptions.recover()["reserved"] == 1
    (row,) = world.ctx.redemptions.list(alice.id, None, 10).redemptions
    assert row.status == "completed" and remaining(world, item.id) == 0
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 300 and world.available("alice") == 700


def test_a_claimed_hold_is_carried_forward_by_the_sweep(world: World, clock, monkeypatch) -> None:
    """A points-only attempt whose hold was recorded on the row is captured by the sweep, never voided:
    another call may be capturing it at that moment."""
    item, alice = seats(world), world.residents["alice"]
    crash_once(monkeypatch, "_resolve")
    with pytest.raises(Crash):
        world.ctx.redemptions.redeem(alice.id, "k", item.id, 1)
    clock.advance(RESERVED_GRACE_SECONDS + 1)
    assert world.ctx.redemptions.recover() == NOTHING | {"reserved": 1}
    (row,) = world.ctx.redemptions.list(alice.id, None, 10).redemptions
    assert (row.status, row.attempt) == ("completed", 0)
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 300 and world.available("alice") == 700


def test_a_refused_hold_fails_the_attempt_and_its_retry_runs_again(world: World) -> None:
    item = seats(world)
    bob = world.residents["bob"]  # 50 points, the seat costs 300
    with pytest.raises(LedgerError) as refused:
        world.ctx.redemptions.redeem(bob.id, "k", item.id, 1)
    assert refused.value.code == "insufficient_funds"
    assert remaining(world, item.id) == 1 and world.available("bob") == 50
    (row,) = world.ctx.redemptions.list(bob.id, None, 10).redemptions
    assert (row.status, row.error, row.attempt, row.hold_ids) == ("failed", "insufficient_funds", 0, [])
    world.ctx.ledger.transfer(
        TransferRequest("brossard", "earn-bob", "earn_civic", "single", "program:budget", bob.wallet, 300)
    )
    done = world.ctx.redemptions.redeem(bob.id, "k", item.id, 1)
    assert (done.status, done.attempt) == ("completed", 1)
    assert remaining(world, item.id) == 0 and world.available("bob") == 50
    world.ctx.catalog.suspend("brossard", item.id, True, None, "staff:test")
    with pytest.raises(ItemUnavailable):
        world.ctx.redemptions.redeem(world.residents["alice"].id, "k", item.id, 1)


def test_a_retry_of_a_failed_attempt_is_checked_again(world: World) -> None:
    """A new attempt is the whole operation: an item suspended or sold out since is refused, and the
    failed row stays as it was."""
    item, bob = seats(world), world.residents["bob"]
    with pytest.raises(LedgerError):
        world.ctx.redemptions.redeem(bob.id, "k", item.id, 1)
    world.ctx.catalog.suspend("brossard", item.id, True, None, "staff:test")
    world.ctx.ledger.transfer(
        TransferRequest("brossard", "earn-bob", "earn_civic", "single", "program:budget", bob.wallet, 300)
    )
    with pytest.raises(ItemUnavailable):
        world.ctx.redemptions.redeem(bob.id, "k", item.id, 1)
    world.ctx.catalog.suspend("brossard", item.id, False, None, "staff:test")
    world.ctx.redemptions.redeem(world.residents["alice"].id, "a", item.id, 1)  # the last seat goes to alice
    with pytest.raises(SoldOut):
        world.ctx.redemptions.redeem(bob.id, "k", item.id, 1)
    (row,) = world.ctx.redemptions.list(bob.id, None, 10).redemptions
    assert (row.status, row.attempt) == ("failed", 0) and world.available("bob") == 350


def test_a_key_that_keeps_failing_is_closed_after_its_last_attempt(world: World) -> None:
    item, bob = seats(world), world.residents["bob"]
    for _attempt in range(MAX_ATTEMPTS):
        with pytest.raises(LedgerError) as refused:
            world.ctx.redemptions.redeem(bob.id, "k", item.id, 1)
        assert refused.value.code == "insufficient_funds"
    with pytest.raises(LedgerError) as closed:
        world.ctx.redemptions.redeem(bob.id, "k", item.id, 1)
    assert closed.value.code == "conflict"
    (row,) = world.ctx.redemptions.list(bob.id, None, 10).redemptions
    assert (row.status, row.attempt) == ("failed", MAX_ATTEMPTS - 1) and remaining(world, item.id) == 1
