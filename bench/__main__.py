"""Ledger benchmarks: ratios measured in one run (`make bench`, or `python -m bench`).

1. Rust core vs the Python oracle: encode, hash, seal (hash chain + sign), verify signatures, replay.
2. Our append on PostgreSQL (group commit through LedgerService) vs a raw INSERT of the same rows.
3. Verifying a 1M-entry JSONL export vs bare batch verification of the same 1M signatures.

Timings are wall-clock on a shared machine: the ratios, measured side by side, are what to read.
Set ENTRAIDE_BENCH_ENTRIES (default 1,000,000) to scale 1 and 3 down.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from api.bootstrap import Settings, open_context
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
    print(f"  {label:<34} rust {n / rust_s:>12,.0f}/s   python {n / python_s:>10,.0f}/s   ratio {python_s / rust_s:>7.1f}x")


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
            e = (ledger, seq, f"{i:032x}", "earn_purchase", "single", "merchant:m1:issued", wallet, 500, None, None, None, t)
        elif step == 3:
            e = (ledger, seq, f"{i:032x}", "redeem", "pending", entries[-1][6], "merchant:m2:redeemed", 300, None, None, t + 10**9, t)
        elif step == 4:
            hold = entries[-1]
            phase = "post" if seq % 2 else "void"
            e = (ledger, seq, f"{i:032x}", "redeem", phase, hold[5], hold[6], 200 if phase == "post" else 300, hold[2], None, None, t)
        else:
            e = (ledger, seq, f"{i:032x}", "service", "single", entries[-1][5], "services:revenue", 100, None, None, None, t)
        entries.append(e)
    kid = core.key_id(core.public_key(SEED))
    rows = []
    for name in ledgers:
        sealed = core.seal(per_ledger[name], oracle.GENESIS_HASH, SEED)
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
    r_s, _ = timed(lambda: core.seal(one, oracle.GENESIS_HASH, SEED), 3)
    p_s, _ = timed(lambda: oracle.seal(one, oracle.GENESIS_HASH, SEED))
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
    print(f"\n3. Verifying a {len(rows):,}-entry export vs bare batch verification of its signatures")
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
    print(f"  bare batch verify: {bare_s:6.2f} s   full export verify (parse, canonicalize, hash, chain, sign, replay): {full_s:6.2f} s")
    print(f"  ratio full/bare {full_s / bare_s:.2f}x   (goal <= 2x -> {'met' if full_s / bare_s <= 2 else 'NOT met'})")


def bench_append(pg_url: str, workdir: Path, transfers: int = 20_000) -> None:
    print(f"\n2. Append on PostgreSQL: LedgerService (group commit) vs raw INSERT of the same rows ({transfers:,} transfers)")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = normalize_url(pg_url) + ("&" if "?" in pg_url else "?") + f"options=-csearch_path%3D{schema}"
    try:
        start = T0
        sim = Simulator(1, start, days=30)
        ctx = open_context(Settings(workdir, url, workdir / "keys"), clock=sim.clock, key_from_us=start)
        for name in sim.ledgers():
            ctx.ledger.create_ledger(name)
        ctx.ledger.submit(sim.funding())
        batches = list(sim.batches(transfers, 1000))
        ours_s, _ = timed(lambda: [ctx.ledger.submit(b) for b in batches])
        with ctx.engine.begin() as conn:
            conn.execute(text("CREATE TABLE raw_journal (LIKE journal INCLUDING ALL)"))
            rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM journal ORDER BY ledger, sequence"))]
        columns = list(rows[0].keys())
        insert = text(f"INSERT INTO raw_journal ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})")

        def raw() -> None:
            for i in range(0, len(rows), 1000):
                with ctx.engine.begin() as conn:
                    conn.execute(insert, rows[i : i + 1000])

        raw_s, _ = timed(raw)
        n = len(rows)
        print(f"  ours {n / ours_s:>10,.0f} entries/s   raw INSERT {n / raw_s:>10,.0f} rows/s   ratio {raw_s / ours_s:.2f}"
              f"   (goal >= 0.5 -> {'met' if raw_s / ours_s >= 0.5 else 'NOT met'})")  # fmt: skip
        print("  ours = validate, lock chain, load balances and holds, plan, hash-chain, sign, insert, project, commit")
        ctx.engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main() -> None:
    print(f"Entraide ledger benchmarks ({os.cpu_count()} cores)")
    started = time.perf_counter()
    rows = synthetic_journal(ENTRIES)
    print(f"(built and sealed a synthetic {len(rows):,}-entry journal in {time.perf_counter() - started:.1f} s)")
    bench_core(rows)
    pg_url = os.environ.get("ENTRAIDE_BENCH_PG_URL")
    with tempfile.TemporaryDirectory() as tmp:
        if pg_url:
            bench_append(pg_url, Path(tmp))
        else:
            print("\n2. skipped: set ENTRAIDE_BENCH_PG_URL (make bench starts PostgreSQL)")
        bench_export(rows, Path(tmp))


if __name__ == "__main__":
    main()
