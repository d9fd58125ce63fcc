"""Ledger benchmarks: ratios measured in one run (`make bench`, or `python -m bench`).

1. Rust core vs the Python oracle: encode, hash, seal (hash chain + sign), verify signatures, replay.
2. Verifying a 1M-entry JSONL export vs bare batch verification of the same 1M signatures.
3. Our append on PostgreSQL (group commit through LedgerService) vs a raw INSERT of the same rows,
   in rounds that alternate the two, each from a checkpoint; the best of each is compared. It runs
   once the 1M-entry journal of 1 and 2 is freed, which would otherwise weigh on both sides.
4. Hold + capture over HTTP by 200 signed terminals vs the same server's GET /v1/health (bench/http.py).
5. Settlement: period movements and oldest-first expiry over 1M entries, Rust core vs the oracle.
6. The monitor verifying a served log from its tiles vs `verify --export` of it (bench/monitor.py).
7. Catalog search on 100,000 offers: the search service vs the library's bare query (bench/search.py).

Timings are wall-clock on a shared machine: the ratios, measured side by side, are what to read.
Set ENTRAIDE_BENCH_ENTRIES (default 1,000,000) to scale 1, 2 and 5 down; `--only http` runs 4 alone,
`--only settlement` runs 5 alone, `--only monitor` runs 6 alone, `--only search` runs 7 alone.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sqlalchemy import text

from api.bootstrap import Settings, open_context
from bench.http import bench_http
from bench.monitor import bench_monitor
from bench.search import bench_search
from ledger import core, oracle
from ledger.adapters.database import make_engine, normalize_url
from ledger.service_layer import audit
from ledger.simulate import Simulator

ENTRIES = int(os.environ.get("ENTRAIDE_BENCH_ENTRIES", "1000000"))
SMALL = 20_000  # per-entry crypto in pure Python is slow; its ratios need no million
SEED = hashlib.sha256(b"bench key").digest()
T0 = 1_767_225_600_000_000


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def row(label: str, rust_s: float, python_s: float, n: int) -> None:
    print(
        f"  {label:<34} rust {n / rust_s:>12,.0f}/s   python {n / python_s:>10,.0f}/s   ratio {python_s / rust_s:>7.1f}x"
    )


def synthetic_journal(n: int) -> list[tuple]:
    """n sealed entries over 11 ledgers: earnings, spends, holds posted in part or voided."""
    ledgers = [f"city-{i}" for i in range(11)]
    per_ledger: dict[str, list[tuple]] = {name: [] for name in ledgers}
    for i in range(n):
        ledger = ledgers[i % 11]
        entries = per_ledger[ledger]
        seq = len(entries) + 1
        wallet = f"citizen:r{(i // 11) % 5000}:wallet"
        t = T0 + i * 1000
        step = seq % 5
        if step in (1, 2):
            e = (
                ledger,
                seq,
                f"{i:032x}",
                "earn_purchase",
                "single",
                "merchant:m1:issued",
                wallet,
                500,
                None,
                None,
                None,
                t,
            )
        elif step == 3:
            e = (
                ledger,
                seq,
                f"{i:032x}",
                "redeem",
                "pending",
                entries[-1][6],
                "merchant:m2:redeemed",
                300,
                None,
                None,
                t + 10**9,
                t,
            )
        elif step == 4:
            hold = entries[-1]
            phase = "post" if seq % 2 else "void"
            e = (
                ledger,
                seq,
                f"{i:032x}",
                "redeem",
                phase,
                hold[5],
                hold[6],
                200 if phase == "post" else 300,
                hold[2],
                None,
                None,
                t,
            )
        else:
            e = (
                ledger,
                seq,
                f"{i:032x}",
                "service",
                "single",
                entries[-1][5],
                "services:revenue",
                100,
                None,
                None,
                None,
                t,
            )
        entries.append(e)
    kid = core.key_id(core.public_key(SEED))
    rows = []
    for name in ledgers:
        sealed = core.seal(per_ledger[name], {name: oracle.GENESIS_HASH}, SEED)
        rows += [e + s[:2] + (kid, s[2]) for e, s in zip(per_ledger[name], sealed, strict=True)]
    return rows


def bench_core(rows: list[tuple]) -> None:
    print(f"\n1. Rust core vs Python oracle (same inputs; {SMALL:,} entries, replay on {len(rows):,})")
    small = rows[:SMALL]
    e13 = [r[:13] for r in small]
    r_s, _ = timed(lambda: [core.canonical_bytes(e) for e in e13], 3)
    p_s, _ = timed(lambda: [oracle.canonical_bytes(e) for e in e13], 3)
    row("canonical encoding (per call)", r_s, p_s, len(e13))
    r_s, _ = timed(lambda: [core.entry_hash(e) for e in e13], 3)
    p_s, _ = timed(lambda: [oracle.entry_hash(e) for e in e13], 3)
    row("hash (per call)", r_s, p_s, len(e13))
    one = [r[:12] for r in small if r[0] == small[0][0]]
    r_s, _ = timed(lambda: core.seal(one, {one[0][0]: oracle.GENESIS_HASH}, SEED), 3)
    p_s, _ = timed(lambda: oracle.seal(one, {one[0][0]: oracle.GENESIS_HASH}, SEED))
    row("seal: chain + sign (batch)", r_s, p_s, len(one))
    public = core.public_key(SEED)
    items = [(r[13], r[15], public) for r in small]
    r_s, _ = timed(lambda: core.verify_signatures(items), 3)
    p_s, _ = timed(lambda: oracle.verify_signatures(items))
    row("verify signatures (batch)", r_s, p_s, len(items))
    batch = core.EntryBatch(rows)
    r_s, rust_balances = timed(batch.replay, 3)
    p_s, py_balances = timed(lambda: oracle.replay(r[:13] for r in rows))
    assert rust_balances == py_balances
    row(f"replay {len(rows):,} entries", r_s, p_s, len(rows))
    print(f"     goal: replay >= 50x -> {'met' if p_s / r_s >= 50 else 'NOT met'}")


def bench_export(rows: list[tuple], workdir: Path) -> None:
    print(f"\n2. Verifying a {len(rows):,}-entry export vs bare batch verification of its signatures")
    path = workdir / "bench.jsonl"
    with path.open("w") as handle:
        for r in rows:
            handle.write(json.dumps(audit.entry_object(r), separators=(",", ":")) + "\n")
    keys = [(core.key_id(core.public_key(SEED)), core.public_key(SEED), 0, None)]
    public = core.public_key(SEED)
    items = [(r[13], r[15], public) for r in rows]
    bare_s, bad = timed(lambda: core.verify_signatures(items), 2)
    assert bad is None
    full_s, report = timed(lambda: core.verify_export(str(path), keys), 2)
    assert report["ok"], report["error"]
    print(
        f"  bare batch verify: {bare_s:6.2f} s   full export verify (parse, canonicalize, hash, chain, sign, replay): {full_s:6.2f} s"
    )
    print(f"  ratio full/bare {full_s / bare_s:.2f}x   (goal <= 2x -> {'met' if full_s / bare_s <= 2 else 'NOT met'})")


def submit_all(ledger, batches: list) -> None:
    """Our append, batch after batch; the outcomes are dropped as they come (the raw side keeps nothing)."""
    for batch in batches:
        ledger.submit(batch)


def raw_insert(engine, rows: list[dict]) -> None:
    """The same rows into a table like the journal, 1,000 per transaction, as a plain INSERT."""
    columns = list(rows[0].keys())
    insert = text(f"INSERT INTO raw_journal ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})")
    for i in range(0, len(rows), 1000):
        with engine.begin() as conn:
            conn.execute(insert, rows[i : i + 1000])


def bench_append(pg_url: str, workdir: Path, transfers: int = 20_000, rounds: int = 3) -> None:
    print(f"\n3. Append on PostgreSQL: LedgerService (group commit) vs raw INSERT of the same rows"
          f" ({rounds} rounds of {transfers:,} transfers, 1,000 per batch)")  # fmt: skip
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = normalize_url(pg_url) + ("&" if "?" in pg_url else "?") + f"options=-csearch_path%3D{schema}"
    try:
        start = T0
        sim = Simulator(1, start, days=30)
        ctx = open_context(Settings(workdir, url, workdir / "keys"), clock=sim.clock, key_from_us=start, create=True)
        for name in sim.ledgers():
            ctx.ledger.create_ledger(name)
        ctx.ledger.submit(sim.funding())
        batches = list(sim.batches(transfers * rounds, 1000))
        # The pre-built input of every round stays in memory; the collector need not scan it again
        # at each of the collections the appends trigger (a server holds no such pile).
        gc.collect()
        gc.freeze()
        with ctx.engine.begin() as conn:
            conn.execute(text("CREATE TABLE raw_journal (LIKE journal INCLUDING ALL)"))
        ours: list[float] = []  # seconds per entry, each round
        raw: list[float] = []
        per_round = len(batches) // rounds
        for r in range(rounds):
            mine = batches[r * per_round : (r + 1) * per_round if r < rounds - 1 else None]
            with ctx.engine.begin() as conn:
                heads = dict(conn.execute(text("SELECT name, head_sequence FROM ledgers")).all())
                conn.execute(text("CHECKPOINT"))  # both sides start with no dirty pages to flush
            ours_s, _ = timed(partial(submit_all, ctx.ledger, mine))
            with ctx.engine.begin() as conn:
                rows = [dict(row._mapping) for row in conn.execute(text("SELECT * FROM journal ORDER BY ledger, sequence"))
                        if row.sequence > heads[row.ledger]]  # fmt: skip
                conn.execute(text("CHECKPOINT"))
            raw_s, _ = timed(partial(raw_insert, ctx.engine, rows))
            ours.append(ours_s / len(rows))
            raw.append(raw_s / len(rows))
            print(f"  round {r + 1}: ours {len(rows) / ours_s:>8,.0f} entries/s   raw INSERT {len(rows) / raw_s:>8,.0f} rows/s"
                  f"   ratio {raw_s / ours_s:.2f}")  # fmt: skip
            del rows  # not alive, and scanned by the collector, during the next round of ours
        ours_best, raw_best = min(ours), min(raw)
        ratio = raw_best / ours_best
        print(f"  best of {rounds}: ours {1 / ours_best:>8,.0f} entries/s   raw INSERT {1 / raw_best:>8,.0f} rows/s   ratio {ratio:.2f}"
              f"   (goal >= 0.5 -> {'met' if ratio >= 0.5 else 'NOT met'})")  # fmt: skip
        print("  ours = validate, lock chain, load balances and holds, plan, hash-chain, sign, insert, project, commit")
        ctx.engine.dispose()
    finally:
        gc.unfreeze()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def settlement_journal(n: int) -> list[tuple]:
    """n (ledger, debit, credit, amount, phase, time_us) entries over 11 cities, in journal order,
    one every 2.5 s (a month for 1M): earnings (city- or merchant-funded), redemptions (single, or
    a hold then posted, voided or expired), municipal services, donations and cross-city
    redemptions (both halves). Wallets never go negative. Ledger and account names are new str
    objects per entry, as a database driver returns them (shared ones would flatter both maps)."""
    rng = random.Random(6)
    balance: dict[str, int] = {}
    out: list[tuple] = []
    time_us = T0
    while len(out) < n:
        time_us += 2_500_000
        city = f"city-{rng.randrange(11)}"
        wallet = f"citizen:{city}-r{rng.randrange(30_000)}:wallet"
        merchant = f"merchant:{city}-m{rng.randrange(1_000)}"
        issued, redeemed = f"{merchant}:issued", f"{merchant}:redeemed"
        have, r = balance.get(wallet, 0), rng.random()
        if r < 0.45 or have == 0:
            amount = rng.randint(10, 500)
            out.append((city, "program:budget" if r < 0.15 else issued, wallet, amount, "single", time_us))
            balance[wallet] = have + amount
            continue
        amount = rng.randint(1, have)
        if r < 0.65:
            out.append((city, wallet, redeemed, amount, "single", time_us))
        elif r < 0.80:
            out.append((city, wallet, redeemed, amount, "pending", time_us))
            phase = rng.choice(("post", "post", "post", "void", "expire"))
            if phase != "post":
                out.append((city, wallet, redeemed, amount, phase, time_us + 1))
                continue  # released: the wallet keeps its points
            amount = rng.randint(1, amount)
            out.append((city, wallet, redeemed, amount, "post", time_us + 1))
        elif r < 0.88:
            out.append((city, wallet, "services:revenue", amount, "single", time_us))
        elif r < 0.92:
            out.append((city, wallet, f"org:o{rng.randrange(200)}", amount, "single", time_us))
        else:
            other = f"city-{(int(city[5:]) + rng.randrange(1, 11)) % 11}"
            out.append((city, wallet, f"interop:{other}", amount, "single", time_us))
            out.append(
                (
                    other,
                    f"interop:{city}",
                    f"merchant:{other}-m{rng.randrange(1_000)}:redeemed",
                    amount,
                    "single",
                    time_us,
                )
            )
        balance[wallet] = have - amount
    return out[:n]


def wallet_events(entries: list[tuple]) -> list[tuple[str, int, int]]:
    """(wallet, time_us, delta) of the posted entries that touch a wallet: what expiry reads."""
    events = []
    for _, debit, credit, amount, phase, time_us in entries:
        if phase not in oracle.POSTING_PHASES:
            continue
        if credit.endswith(":wallet"):
            events.append((credit, time_us, amount))
        elif debit.endswith(":wallet"):
            events.append((debit, time_us, -amount))
    return events


def bench_settlement(n: int) -> None:
    print(
        f"\n5. Settlement: Rust core vs Python oracle on {n:,} entries (11 cities, 330,000 wallets, 11,000 merchants)"
    )
    started = time.perf_counter()
    entries = settlement_journal(n)
    events = wallet_events(entries)
    print(
        f"  (generated in {time.perf_counter() - started:.1f} s, not timed; {len(events):,} wallet events for expiry)"
    )
    since_us, until_us = T0, entries[-1][5] + 1
    r_s, rust = timed(lambda: core.movements(entries, since_us, until_us), 3)
    p_s, py = timed(lambda: oracle.movements(entries, since_us, until_us))
    assert rust == py
    row(f"movements -> {len(rust):,} accounts", r_s, p_s, n)
    # An empty period still reads and validates every tuple: the conversion share of the call.
    read_s, _ = timed(lambda: core.movements(entries, since_us, since_us), 3)
    print(f"     of which reading + validating the Python tuples: {read_s:.3f} s of {r_s:.3f} s"
          f" (ratio without it {p_s / max(r_s - read_s, 1e-9):.0f}x)")  # fmt: skip
    cutoff_us = (since_us + until_us) // 2
    r_s, rust = timed(lambda: core.expire_lots(events, cutoff_us), 3)
    p_s, py = timed(lambda: oracle.expire_lots(events, cutoff_us))
    assert rust == py
    row(f"expire_lots -> {len(rust):,} wallets", r_s, p_s, len(events))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", choices=["http", "settlement", "monitor", "search"], help="run one section")
    only = parser.parse_args().only
    print(f"Entraide ledger benchmarks ({os.cpu_count()} cores)")
    pg_url = os.environ.get("ENTRAIDE_BENCH_PG_URL")
    if only is None:
        run_ledger_sections(pg_url)
    if only in (None, "http"):
        if pg_url:
            bench_http(pg_url)
        else:
            print("\n4. skipped: set ENTRAIDE_BENCH_PG_URL (make bench starts PostgreSQL)")
    if only in (None, "settlement"):
        bench_settlement(ENTRIES)
    if only in (None, "monitor"):
        bench_monitor()
    if only in (None, "search"):
        bench_search()


def run_ledger_sections(pg_url: str | None) -> None:
    started = time.perf_counter()
    rows = synthetic_journal(ENTRIES)
    print(f"(built and sealed a synthetic {len(rows):,}-entry journal in {time.perf_counter() - started:.1f} s)")
    bench_core(rows)
    with tempfile.TemporaryDirectory() as tmp:
        bench_export(rows, Path(tmp))
        del rows
        gc.collect()
        if pg_url:
            bench_append(pg_url, Path(tmp))
        else:
            print("\n3. skipped: set ENTRAIDE_BENCH_PG_URL (make bench starts PostgreSQL)")


if __name__ == "__main__":
    main()
