"""The API as a real server process: concurrent redemptions from many terminals, a crash between a
hold and its capture, and two servers sharing the recurring jobs. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import pytest
from sqlalchemy import func, select

from ledger.adapters.tables import AuditRow, CheckpointRow
from ledger.service_layer.audit import verify_database
from ledger.service_layer.keys import now_us
from operations.domain.schedule import Job
from operations.service_layer.jobs import scheduler
from operations.service_layer.scheduler import Scheduler
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
        futures = [
            pool.submit(_hold, world, base, terminals[n % len(terminals)], f"h{n}", card, barrier) for n in range(HOLDS)
        ]
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
        return httpx.post(
            base + path, content=raw, headers=world.signed_headers("boulangerie", "POST", path, raw, key=key)
        )

    with server_process(db_url, tmp_path) as (base, process):
        hold = post(base, "/v1/pos/holds", body, "sale-7")
        assert hold.status_code == 201
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert verify_database(world.ctx.engine)["ok"]
    assert world.available("alice") == WALLET_POINTS - 300

    with server_process(db_url, tmp_path) as (base, _):
        retried = post(base, "/v1/pos/holds", body, "sale-7")  # the terminal never saw the answer
        assert (
            retried.status_code == 201
            and retried.json()["replayed"]
            and retried.json()["hold_id"] == hold.json()["hold_id"]
        )
        captured = post(base, f"/v1/pos/holds/{hold.json()['hold_id']}/capture", b"{}", "sale-7-capture")
        assert captured.status_code == 200 and captured.json()["points"] == 300
    assert world.available("alice") == WALLET_POINTS - 300
    assert world.ctx.ledger.balance("brossard", world.residents["alice"].wallet).pending == 0
    assert verify_database(world.ctx.engine)["ok"]


def test_two_server_processes_run_each_job_once_and_take_over_a_dead_runners_lease(
    world: World, db_url: str, tmp_path
) -> None:
    """Two `entraide serve` started together on one database: each job runs on one of them; the
    checkpoints, leased by a runner that died (it hangs here, and never records), are taken over
    once the lease runs out."""
    ctx = world.ctx
    release = threading.Event()
    dead = Scheduler(ctx.engine, [Job("checkpoints", 300, 3, "a runner that died", lambda: release.wait(120) and {})],
                     now_us, owner="serve:dead", tick_seconds=0.05)  # fmt: skip
    dead.start()
    started_us = now_us()
    try:
        with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
            for start in [pool.submit(stack.enter_context, server_process(db_url, tmp_path)) for _ in range(2)]:
                start.result()
            deadline = time.monotonic() + 120
            while not all(j.runs >= 1 and not j.running for j in scheduler(ctx).status()):
                assert time.monotonic() < deadline, scheduler(ctx).status()
                time.sleep(0.2)
            jobs = {j.name: j for j in scheduler(ctx).status()}
            elapsed_s = (now_us() - started_us) // 1_000_000
    finally:
        release.set()
        dead.stop()
    for job in jobs.values():  # once, or once per interval that passed while the servers ran
        assert 1 <= job.runs <= 1 + elapsed_s // job.interval_seconds and job.last_outcome == "ok", job
    assert jobs["checkpoints"].runs == 1 and jobs["checkpoints"].last_result == {"ledgers": 1, "signed": 1}
    assert jobs["checkpoints"].last_started_us >= started_us + 3_000_000  # not before the dead lease ran out
    assert jobs["points_expiry"].runs == 1
    with ctx.engine.connect() as conn:
        audited = conn.execute(
            select(func.count()).select_from(AuditRow).where(AuditRow.action == "expiry.run")
        ).scalar_one()
        checkpoints = conn.execute(select(func.count()).select_from(CheckpointRow)).scalar_one()
    assert (audited, checkpoints) == (1, 1)  # one expiry run for the one city, one checkpoint, across two servers
    assert {j.name: j.runs for j in scheduler(ctx).status()}[
        "checkpoints"
    ] == 1  # the dead runner's late record was refused
