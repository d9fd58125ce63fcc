"""Background upkeep of `entraide serve`: quiet cities' holds expire, failures do not stop the loop."""

from __future__ import annotations

import threading
import time

from litestar.testing import TestClient

from api.app import create_app
from api.maintenance import Maintenance
from ledger.domain.transfers import TransferRequest
from tests.world import World


def quiet_city_with_a_hold(ctx, clock) -> str:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("delson")
    wallet = world.resident("alice", "delson", points=500).wallet
    ctx.ledger.transfer(TransferRequest("delson", "h", "redeem", "pending", wallet, "services:revenue", 200, None, 60))
    clock.advance(61)  # past the hold's expiry, and nothing else is appended to this chain
    return wallet


def test_a_round_expires_quiet_holds_and_survives_a_failing_task(ctx, clock, monkeypatch) -> None:
    wallet = quiet_city_with_a_hold(ctx, clock)
    assert ctx.ledger.balance("delson", wallet).available == 300
    monkeypatch.setattr(ctx.search_indexer, "deliver", lambda: 1 / 0)
    done = Maintenance(ctx, 60).run_once()
    assert done["expired_holds"] == 1 and done["search_delivered"] == "error: ZeroDivisionError"
    assert done["redemptions_settled"] == {"reserved": 0, "awaiting_payment": 0, "failed": 0, "deferred": 0}
    assert ctx.ledger.balance("delson", wallet).available == 500
    assert Maintenance(ctx, 60).run_once()["expired_holds"] == 0


def test_the_served_app_runs_upkeep_in_the_background(ctx, clock) -> None:
    wallet = quiet_city_with_a_hold(ctx, clock)
    with TestClient(create_app(ctx, maintenance_seconds=0.05)):
        deadline = time.monotonic() + 20
        while ctx.ledger.balance("delson", wallet).available != 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ctx.ledger.balance("delson", wallet).available == 500
    threads = [t.name for t in threading.enumerate()]
    assert "entraide-maintenance" not in threads
