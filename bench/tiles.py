"""The public log's throughput: a whole city's log fetched through its tiles from `entraide serve` over
loopback (`python -m bench --only tiles`).

One ledger of ENTRAIDE_BENCH_TILE_ENTRIES (default 100,000) sealed entries is written straight into a
fresh database (SQLite, or PostgreSQL with ENTRAIDE_BENCH_PG_URL), its checkpoint signed (which
stores its tiles), then a client fetches every entry bundle and every hash tile the checkpoint
covers from the API under uvicorn (bench/http.py's server, ENTRAIDE_BENCH_HTTP_WORKERS workers), one
keep-alive connection per client, in the same run: by 1 client, then by 4 in parallel.
Printed: entries/s and MB/s served, and, for scale, `entraide ledger verify --export` on the same
entries (what a monitor's full verification from tiles is compared with).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from api.bootstrap import Settings, open_context
from bench.http import WORKERS, _start_server, _stop
from ledger import core
from ledger.adapters import journal
from ledger.domain.tiles import TileRef, tile_path
from ledger.service_layer import audit
from ledger.service_layer.keys import now_us

ENTRIES = int(os.environ.get("ENTRAIDE_BENCH_TILE_ENTRIES", "100000"))
CITY = "brossard"
CHUNK = 20_000


def _paths(size: int) -> list[str]:
    """Every bundle and hash tile a tree of `size` has, as a client following the log fetches them."""
    paths = []
    level, count = 0, size
    while count:
        for n in range(-(-count // 256)):
            width = min(256, count - n * 256)
            if level == 0:
                paths.append(tile_path(TileRef(0, n, width, entries=True)))
            paths.append(tile_path(TileRef(level, n, width)))
        level, count = level + 1, count // 256
    return paths


def build(db_url: str, data_dir: Path, n: int) -> tuple[float, float]:
    """A ledger of n sealed entries; returns (seconds to write it, seconds to sign its first checkpoint)."""
    start_us = now_us() - 10**12
    ctx = open_context(Settings(data_dir=data_dir, database_url=db_url, keys_dir=data_dir / "keys"),
                       key_from_us=start_us, create=True)  # fmt: skip
    started = time.perf_counter()
    ctx.ledger.create_ledger(CITY)
    with ctx.engine.begin() as conn:
        key_id, seed, _ = ctx.signer.active(conn)
    head = core.GENESIS_HASH
    for first in range(0, n, CHUNK):
        entries = [(CITY, seq, f"{seq:032x}", "earn_purchase", "single", "merchant:m1:issued",
                    f"citizen:r{seq % 5000}:wallet", 100 + seq % 400, None, None, None, start_us + seq)
                   for seq in range(first + 1, min(n, first + CHUNK) + 1)]  # fmt: skip
        sealed = core.seal(entries, {CITY: head}, seed)
        head = sealed[-1][1]
        rows = [e + (s[0], s[1], key_id, s[2], None) for e, s in zip(entries, sealed, strict=True)]
        with ctx.engine.begin() as conn, journal.appending(conn) as write:
            write(rows)
    with ctx.engine.begin() as conn:
        journal.set_heads(conn, {CITY: journal.Head(n, head, start_us + n)})
    written = time.perf_counter() - started
    started = time.perf_counter()
    audit.make_checkpoints(ctx.engine, ctx.signer)
    signed = time.perf_counter() - started
    ctx.engine.dispose()
    return written, signed


def _fetch(base: str, paths: list[str]) -> int:
    with httpx.Client(base_url=base, timeout=60) as client:
        total = 0
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:200])
            total += len(response.content)
        return total


def fetch_all(base: str, paths: list[str], clients: int) -> tuple[float, int]:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(lambda i: _fetch(base, paths[i::clients]), range(clients)))
    return time.perf_counter() - started, total


def bench_tiles(pg_url: str | None, n: int = ENTRIES) -> None:
    print(f"\n6. The public log: a {n:,}-entry city fetched through its tiles over loopback")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db_url = pg_url or f"sqlite:///{data_dir / 'entraide.db'}"
        written, signed = build(db_url, data_dir, n)
        print(f"  ({'PostgreSQL' if pg_url else 'SQLite'}: wrote {n:,} entries in {written:.1f} s; "
              f"the checkpoint and its tiles signed in {signed:.2f} s)")  # fmt: skip
        export, keys = data_dir / "export.jsonl", data_dir / "keys.json"
        ctx = open_context(Settings(data_dir=data_dir, database_url=db_url, keys_dir=data_dir / "keys"))
        audit.export(ctx.engine, export, keys)
        ctx.engine.dispose()
        started = time.perf_counter()
        report = audit.verify_export(export, keys)
        verify_s = time.perf_counter() - started
        assert report["ok"], report
        print(f"  verify --export (in process)      {n / verify_s:>12,.0f} entries/s")
        process, server = _start_server(db_url, data_dir, WORKERS, data_dir / "server.log")
        try:
            base = f"{server}/v1/transparency/{CITY}/tile/"
            paths = _paths(n)
            _fetch(base, paths[:20])  # warm up
            for clients in (1, 4):
                seconds, total = fetch_all(base, paths, clients)
                print(f"  tiles, {clients} client{'s' if clients > 1 else ' '}                   {n / seconds:>12,.0f} entries/s"
                      f"   {len(paths) / seconds:>7,.0f} requests/s   {total / seconds / 1e6:>6.1f} MB/s"
                      f"   ratio to verify {seconds / verify_s:>5.1f}x")  # fmt: skip
        finally:
            _stop(process)
