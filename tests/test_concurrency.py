"""Several processes appending at once, and crashes in the middle of an append.

Each worker is a separate OS process with its own engine, as API workers would be. On PostgreSQL
they contend on the chain's row lock; on SQLite on the database's write lock.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.bootstrap import Settings, open_context
from ledger.adapters import journal
from ledger.domain.errors import InsufficientFunds
from ledger.domain.transfers import TransferRequest as T
from ledger.service_layer import audit

# Each test makes its ledgers in a database that has the schema already (a copy of a template).
pytestmark = pytest.mark.usefixtures("migrated_database")
WALLET = "citizen:r1:wallet"
WORKERS = 4
SPENDS_PER_WORKER = 40
SPEND_POINTS = 10
WALLET_POINTS = 1000  # enough for 100 of the 160 attempted spends


def _spender(settings: Settings, worker: int, ledger: str, results) -> None:
    ctx = open_context(settings)
    committed = refused = 0
    for n in range(SPENDS_PER_WORKER):
        phase = "pending" if n % 3 == 0 else "single"
        request = T(ledger, f"w{worker}-{n}", "redeem", phase, WALLET, f"merchant:m{worker}:redeemed", SPEND_POINTS,
                    timeout_seconds=600 if phase == "pending" else None)  # fmt: skip
        try:
            ctx.ledger.transfer(request)
            committed += 1
        except InsufficientFunds:
            refused += 1
    results.put((worker, ledger, committed, refused))
    ctx.engine.dispose()


def _prepare(settings: Settings, ledgers: list[str]) -> None:
    ctx = open_context(settings, create=True)
    for ledger in ledgers:
        ctx.ledger.create_ledger(ledger)
        ctx.ledger.transfer(T(ledger, "fund", "budget_funding", "single", "program:funding", "program:budget", 10_000))
        ctx.ledger.transfer(T(ledger, "earn", "earn_civic", "single", "program:budget", WALLET, WALLET_POINTS))
    ctx.engine.dispose()


def _run_workers(settings: Settings, ledgers: list[str]) -> list[tuple]:
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    procs = [
        spawn.Process(target=_spender, args=(settings, w, ledgers[w % len(ledgers)], results)) for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


def test_concurrent_spenders_never_overdraw_a_wallet_nor_break_the_chain(settings):
    _prepare(settings, ["brossard"])
    results = _run_workers(settings, ["brossard"])
    committed = sum(r[2] for r in results)
    assert committed == WALLET_POINTS // SPEND_POINTS  # exactly what the wallet could pay, no more
    assert sum(r[3] for r in results) == WORKERS * SPENDS_PER_WORKER - committed
    ctx = open_context(settings)
    wallet = ctx.ledger.balance("brossard", WALLET)
    assert wallet.available == 0 and wallet.debits_posted + wallet.debits_pending == WALLET_POINTS
    with ctx.engine.begin() as conn:
        head = journal.heads(conn)["brossard"]
        sequences = [row[1] for chunk in journal.stream_entries(conn, "brossard") for row in chunk]
    assert sequences == list(range(1, head.sequence + 1)) and head.sequence == 2 + committed
    report = audit.verify_database(ctx.engine)
    assert report["ok"], report["error"]


def test_cities_append_in_parallel_on_their_own_chains(settings):
    cities = ["brossard", "magog"]
    _prepare(settings, cities)
    results = _run_workers(settings, cities)
    ctx = open_context(settings)
    for city in cities:
        attempts = SPENDS_PER_WORKER * sum(1 for r in results if r[1] == city)
        committed = sum(r[2] for r in results if r[1] == city)
        assert committed == min(attempts, WALLET_POINTS // SPEND_POINTS)
        assert ctx.ledger.balance(city, WALLET).available == WALLET_POINTS - committed * SPEND_POINTS
    assert audit.verify_database(ctx.engine)["ok"]


CRASHER = """
import json, os, sys
from api.bootstrap import Settings, open_context
from ledger.adapters import journal
from ledger.domain.transfers import TransferRequest as T

settings = Settings(**{k: (v if k == "database_url" else __import__("pathlib").Path(v)) for k, v in json.loads(sys.argv[1]).items()})
ctx = open_context(settings)
mode, batch_size = sys.argv[2], int(sys.argv[4])
if mode == "inside":
    real = journal.set_heads
    def die(*args, **kwargs):
        real(*args, **kwargs)
        os._exit(9)  # the process dies after writing entries and heads, before COMMIT
    journal.set_heads = die
if mode == "mid-copy":
    real_appending = journal.appending
    @__import__("contextlib").contextmanager
    def dying(conn):
        with real_appending(conn) as write:
            def write_then_die(rows):
                write(rows)
                os._exit(9)  # the first slice is in the COPY, the rest of the batch not yet planned
            yield write_then_die
    journal.appending = dying
acknowledged = open(sys.argv[3], "a")
for n in range(100000):
    batch = [[T("brossard", f"c{n}-{i}", "earn_civic", "single", "program:budget", "citizen:r2:wallet", 1)]
             for i in range(batch_size)]
    outcomes = ctx.ledger.submit(batch)
    acknowledged.write(json.dumps([o.transfers[0].transfer_id for o in outcomes]) + "\\n")
    acknowledged.flush()
    os.fsync(acknowledged.fileno())
"""


def _crasher(settings: Settings, mode: str, acked: Path, batch_size: int = 50) -> subprocess.Popen:
    args = json.dumps(
        {"data_dir": str(settings.data_dir), "database_url": settings.database_url, "keys_dir": str(settings.keys_dir)}
    )
    return subprocess.Popen(
        [sys.executable, "-c", CRASHER, args, mode, str(acked), str(batch_size)], cwd=Path(__file__).parent.parent
    )


def _acknowledged(acked: Path) -> list[str]:
    if not acked.exists():
        return []
    lines = acked.read_text().splitlines()
    return [tid for line in lines if line.endswith("]") for tid in json.loads(line)]


@pytest.mark.parametrize("mode", ["inside", "mid-copy"])
def test_a_crash_inside_an_append_leaves_nothing_half_written(settings, tmp_path, mode):
    """`inside`: after entries and heads are written, before COMMIT. `mid-copy`: a batch of 600 on
    PostgreSQL dies with its first slice streamed into the journal's COPY while the rest is planned."""
    _prepare(settings, ["brossard"])
    proc = _crasher(settings, mode, tmp_path / "acked", batch_size=600 if mode == "mid-copy" else 50)
    assert proc.wait(timeout=120) == 9
    ctx = open_context(settings)
    assert audit.entry_count(ctx.engine) == 2 and not _acknowledged(tmp_path / "acked")
    report = audit.verify_database(ctx.engine)
    assert report["ok"], report["error"]
    ctx.ledger.transfer(
        T("brossard", "after", "earn_civic", "single", "program:budget", WALLET, 5)
    )  # the chain goes on
    assert audit.verify_database(ctx.engine)["ok"]


@pytest.mark.parametrize("batch_size", [50, 600])  # 600: batches streamed slice by slice on PostgreSQL
def test_killed_writer_loses_no_acknowledged_transfer(settings, tmp_path, batch_size):
    _prepare(settings, ["brossard"])
    acked = tmp_path / "acked"
    proc = _crasher(settings, "killed", acked, batch_size)
    deadline = time.monotonic() + 120
    while len(_acknowledged(acked)) < 200 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    acknowledged = _acknowledged(acked)
    assert len(acknowledged) >= 200
    ctx = open_context(settings)
    with ctx.engine.begin() as conn:
        stored = journal.transfers(conn, [("brossard", tid) for tid in acknowledged])
    assert len(stored) == len(acknowledged)
    report = audit.verify_database(ctx.engine)
    assert report["ok"], report["error"]
    assert (audit.entry_count(ctx.engine) - 2) % batch_size == 0  # whole batches only


def test_group_commit_coalesces_concurrent_callers(settings):
    from concurrent.futures import ThreadPoolExecutor

    from ledger.service_layer.committer import GroupCommitter

    _prepare(settings, ["brossard"])
    ctx = open_context(settings)
    committer = GroupCommitter(ctx.ledger)
    calls = 120

    def earn(n: int):
        return committer.transfer(
            T("brossard", f"gc-{n}", "earn_civic", "single", "program:budget", "citizen:r3:wallet", 1)
        )

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = [r[0] for r in pool.map(earn, range(calls))]
    committer.close()
    assert sorted(r.sequence for r in results) == list(range(3, 3 + calls))
    assert committer.batches_committed < calls  # shared transactions, not one per caller
    assert ctx.ledger.balance("brossard", "citizen:r3:wallet").posted == calls
    again = GroupCommitter(ctx.ledger)
    assert again.transfer(T("brossard", "gc-0", "earn_civic", "single", "program:budget", "citizen:r3:wallet", 1))[
        0
    ].replayed
    again.close()
    assert audit.verify_database(ctx.engine)["ok"]
