"""The API as a real server process: concurrent redemptions from many terminals, and a crash between
a hold and its capture. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ledger.service_layer.audit import verify_database
from ledger.service_layer.keys import now_us
from tests.world import World, server_process

TERMINALS = 20
HOLDS = 200
POINTS_PER_HOLD = 7
WALLET_POINTS = 1_000


@pytest.fixture
def world(ctx, clock) -> World:
    clock.now_us = now_us()  # the server signs nothing, but checks signatures against real time
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard")
    world.merchant("boulangerie", "brossard", terminals=TERMINALS // 2)
    world.merchant("epicerie", "brossard", terminals=TERMINALS // 2)
    world.resident("alice", "brossard", points=WALLET_POINTS)
    return world


def _hold(world: World, base: str, terminal: str, key: str, card: str, barrier: threading.Barrier) -> httpx.Response:
    body = json.dumps({"card": card, "points": POINTS_PER_HOLD}).encode()
    headers = world.signed_headers(terminal, "POST", "/v1/pos/holds", body, key=key)
    with httpx.Client(base_url=base, timeout=120) as client:
        barrier.wait()  # all at once: the wallet is contended by every terminal together
        return client.post("/v1/pos/holds", content=body, headers=headers)


def test_concurrent_holds_on_one_wallet_never_exceed_its_balance(world: World, db_url: str, tmp_path) -> None:
    card = world.residents["alice"].card
    terminals = sorted(world.terminals)
    barrier = threading.Barrier(HOLDS)
    with server_process(db_url, tmp_path) as (base, _), ThreadPoolExecutor(HOLDS) as pool:
        futures = [pool.submit(_hold, world, base, terminals[n % len(terminals)], f"h{n}", card, barrier) for n in range(HOLDS)]
        responses = [f.result() for f in futures]
    accepted = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(accepted) == WALLET_POINTS // POINTS_PER_HOLD  # every point that could be held was, no more
    assert {(r.status_code, r.json()["code"]) for r in refused} == {(422, "insufficient_funds")}
    assert len({r.json()["hold_id"] for r in accepted}) == len(accepted)
    balance = world.ctx.ledger.balance("brossard", world.residents["alice"].wallet)
    assert balance.available == WALLET_POINTS % POINTS_PER_HOLD >= 0
    assert verify_database(world.ctx.engine)["ok"]


def test_a_crash_between_hold_and_capture_leaves_a_consistent_ledger(world: World, db_url: str, tmp_path) -> None:
    card = world.residents["alice"].card
    body = json.dumps({"card": card, "points": 300}).encode()

    def post(base: str, path: str, raw: bytes, key: str) -> httpx.Response:
        world.ctx.clock.now_us = now_us()
        return httpx.post(base + path, content=raw, headers=world.signed_headers("boulangerie", "POST", path, raw, key=key))

    with server_process(db_url, tmp_path) as (base, process):
        hold = post(base, "/v1/pos/holds", body, "sale-7")
        assert hold.status_code == 201
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert verify_database(world.ctx.engine)["ok"]
    assert world.available("alice") == WALLET_POINTS - 300

    with server_process(db_url, tmp_path) as (base, _):
        retried = post(base, "/v1/pos/holds", body, "sale-7")  # the terminal never saw the answer
        assert retried.status_code == 201 and retried.json()["replayed"] and retried.json()["hold_id"] == hold.json()["hold_id"]
        captured = post(base, f"/v1/pos/holds/{hold.json()['hold_id']}/capture", b"{}", "sale-7-capture")
        assert captured.status_code == 200 and captured.json()["points"] == 300
    assert world.available("alice") == WALLET_POINTS - 300
    assert world.ctx.ledger.balance("brossard", world.residents["alice"].wallet).pending == 0
    assert verify_database(world.ctx.engine)["ok"]
