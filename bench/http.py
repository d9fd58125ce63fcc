"""HTTP benchmark: hold + capture by many signed POS terminals against PostgreSQL, vs GET /v1/health.

The API runs under uvicorn in its own process(es); the load comes from another process: asyncio,
one keep-alive HTTP/1.1 connection per terminal. Three phases, in the same run, on the same server:

1. capacity of the trivial endpoint: every connection loops on GET /v1/health (closed loop);
2. capacity of the POS: each terminal loops, signing and sending a hold, then its capture;
3. latency at 200 terminals: each terminal starts one hold + capture every 5 s (a busy till; the
   offered load is well below capacity, so what is measured is the time a request takes, not the
   queue in front of it, which in a closed loop is terminals / throughput by Little's law).

What to read: the throughput ratio (2 over 1), the p99 of phase 3, the CPU each request costs the
server and PostgreSQL (from /proc), and the floor: what the checks every signed POS request needs
(RFC 9421 signature, card token) and the terminals' own signing cost in CPU, measured in this
process, and so how many cores the goal's throughput needs before any database work.

    ENTRAIDE_BENCH_PG_URL=postgresql://... python -m bench.http   (section 4 of `python -m bench`)

Environment (defaults): ENTRAIDE_BENCH_HTTP_TERMINALS (200); ENTRAIDE_BENCH_HTTP_SECONDS (10,
measured per phase) after ENTRAIDE_BENCH_HTTP_WARMUP (2); ENTRAIDE_BENCH_HTTP_WORKERS (uvicorn
workers: 2 where there are 2 cores; on a 2-core machine they served ~1.5x the POS requests of
one worker, whose single GIL caps it below one core); ENTRAIDE_BENCH_HTTP_CLIENTS (load processes, 1); ENTRAIDE_BENCH_HTTP_CLIENT (raw,
or httpx); ENTRAIDE_BENCH_HTTP_PACE_MS (5000: the period of each terminal in phase 3). The benchmark drops and recreates its own
database, entraide_bench_http, on the server of ENTRAIDE_BENCH_PG_URL, and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

BENCH_DB = "entraide_bench_http"
CITY = "benchville"
TERMINALS_PER_MERCHANT = 4
RESIDENTS_PER_TERMINAL = 2
WALLET_POINTS = 1_000_000
HOLD_POINTS = 1
TERMINAL_RATE = 1e9  # the per-terminal request budget is not what is measured here
ROOT = Path(__file__).resolve().parent.parent

TERMINALS = int(os.environ.get("ENTRAIDE_BENCH_HTTP_TERMINALS", "200"))
SECONDS = float(os.environ.get("ENTRAIDE_BENCH_HTTP_SECONDS", "10"))
WARMUP = float(os.environ.get("ENTRAIDE_BENCH_HTTP_WARMUP", "2"))
WORKERS = int(os.environ.get("ENTRAIDE_BENCH_HTTP_WORKERS", str(min(2, os.cpu_count() or 1))))
CLIENTS = int(os.environ.get("ENTRAIDE_BENCH_HTTP_CLIENTS", "1"))
CLIENT = os.environ.get("ENTRAIDE_BENCH_HTTP_CLIENT", "raw")  # or "httpx", one client per terminal
# Phase 3: each terminal starts one operation every N ms (an offered load, for latency below saturation).
PACE_MS = float(os.environ.get("ENTRAIDE_BENCH_HTTP_PACE_MS", "5000"))
GOAL_RATIO, GOAL_P99_MS = 0.3, 50.0

# Read by make_app in the server process(es).
ENV_URL, ENV_DATA = "ENTRAIDE_BENCH_HTTP_DB_URL", "ENTRAIDE_BENCH_HTTP_DATA_DIR"


# --- server ---------------------------------------------------------------------------------------


def make_app():
    """uvicorn factory (`bench.http:make_app --factory`): the API on the seeded database, one per worker."""
    from api.bootstrap import Settings, open_context
    from api.http.app import create_app

    data = Path(os.environ[ENV_DATA])
    ctx = open_context(Settings(data, os.environ[ENV_URL], data / "keys"))
    return create_app(ctx, terminal_rate_per_second=TERMINAL_RATE, resident_rate_per_second=TERMINAL_RATE)


def _serve(port: int, workers: int) -> None:
    """Run the API under uvicorn, as `uvicorn bench.http:make_app --factory --workers N` would, but
    with a listening socket that keeps TCP_NODELAY on for every worker.

    With --workers > 1 uvicorn binds the shared socket with proto 0; accepted connections inherit
    it and asyncio enables TCP_NODELAY only for proto IPPROTO_TCP, so every keep-alive response then
    waits ~40 ms for the client's delayed ACK (Kludex/uvicorn#3149: measured here as a 44 ms floor
    on GET /v1/health with 2 workers, against 1 ms with 1). A deployment with several workers
    needs the same care.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("bench.http:make_app", factory=True, host="127.0.0.1", port=port, workers=workers,
                            log_level="warning", access_log=False)  # fmt: skip
    if workers == 1:
        uvicorn.Server(config).run()
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group we started (uvicorn and its workers), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _start_server(db_url: str, data_dir: Path, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    import urllib.request

    port = _free_port()
    env = os.environ | {ENV_URL: db_url, ENV_DATA: str(data_dir)}
    command = [sys.executable, "-m", "bench.http", "serve", "--port", str(port), "--workers", str(workers)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}):\n{_tail(log)}")
            try:
                with urllib.request.urlopen(base + "/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within 90 s:\n{_tail(log)}")
            time.sleep(0.2)
        time.sleep(0.5 * workers)  # let every worker finish starting, not only the first to answer
    except BaseException:
        _stop(proc)
        raise
    return proc, base


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- database and seed ----------------------------------------------------------------------------


def _database_url(pg_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(pg_url).set(database=name).render_as_string(hide_password=False)


def _recreate_database(pg_url: str, drop_only: bool = False) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")


def _seed(db_url: str, data_dir: Path, terminals: int) -> dict:
    """One city, terminals/4 approved merchants with 4 terminals each, 2 funded residents per terminal."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    from api.bootstrap import Settings, open_context
    from community.domain.program import Program
    from ledger.domain.transfers import TransferRequest

    ctx = open_context(Settings(data_dir, db_url, data_dir / "keys"), create=True)
    try:
        ctx.programs.configure(Program(city=CITY), "bench:setup")
        residents = terminals * RESIDENTS_PER_TERMINAL
        ctx.programs.fund_budget(CITY, residents * WALLET_POINTS, "bench", "bench:setup")
        seeded = []
        for t in range(terminals):
            merchant = f"m{t // TERMINALS_PER_MERCHANT:04d}"
            if t % TERMINALS_PER_MERCHANT == 0:
                ctx.merchants.add(CITY, merchant, f"Merchant {merchant}", "bench:setup", key=merchant, category="food")
                ctx.merchants.set_status(merchant, "approved", "bench:setup", CITY)
            private = Ed25519PrivateKey.generate()
            public_pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
            private_pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
            key_id = ctx.terminals.register(merchant, public_pem, "bench:setup", CITY, key=f"t{t}").terminal_key_id
            seeded.append({"key_id": key_id, "private_key_pem": private_pem, "cards": []})
        groups = []
        for t in range(terminals):
            for n in range(RESIDENTS_PER_TERMINAL):
                resident = ctx.residents.enroll(
                    CITY, {"name": f"Resident {t}"}, "basic", "bench:setup", key=f"r{t}-{n}"
                )
                seeded[t]["cards"].append(ctx.residents.current_card(resident.id)["token"])
                groups.append([TransferRequest(CITY, f"bench-fund:{resident.id}", "earn_civic", "single", "program:budget",
                                               f"citizen:{resident.id}:wallet", WALLET_POINTS)])  # fmt: skip
        for outcome in ctx.ledger.submit(groups):
            if outcome.error is not None:
                raise outcome.error
        return {"terminals": seeded}
    finally:
        ctx.engine.dispose()


# --- load (runs in its own process) ---------------------------------------------------------------


class _Recorder:
    def __init__(self, window: tuple[float, float]) -> None:
        self.window = window
        self.latencies: dict[str, list[float]] = {}
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []

    def record(self, kind: str, started: float, status: int | str, detail: str = "") -> None:
        ended = time.perf_counter()
        wall = time.time()
        if not self.window[0] <= wall < self.window[1]:
            return
        if isinstance(status, int) and 200 <= status < 300:
            self.latencies.setdefault(kind, []).append(round((ended - started) * 1000, 3))
        else:
            self.errors[f"{kind} {status}"] += 1
            if len(self.samples) < 5:
                self.samples.append(f"{kind} {status} {detail[:300]}")


class _Connection:
    """One terminal's keep-alive HTTP/1.1 connection, in a few lines of asyncio.

    httpx's shared pool scans every connection for every request (quadratic: 117 health req/s at
    200 connections), and even one httpx client per terminal costs ~0.5 ms of client CPU per request,
    which on a small machine takes the CPU the server needs and caps the health baseline, i.e. it
    would flatter the ratio. Responses here always carry Content-Length (litestar on uvicorn).
    """

    IDLE_SECONDS = 4.0  # uvicorn closes a keep-alive connection idle for 5 s: reopen before that
    TIMEOUT_SECONDS = 60.0  # a request without an answer by then counts as an error

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is not None and time.monotonic() - self.used > self.IDLE_SECONDS:
            await self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        try:
            async with asyncio.timeout(self.TIMEOUT_SECONDS):
                self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status_line, *fields = head[:-4].split(b"\r\n")
                length, close = None, False
                for field in fields:
                    name, _, value = field.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                    elif name == b"transfer-encoding":
                        raise RuntimeError("chunked responses are not supported by the bench client")
                content = await self.reader.readexactly(length or 0)
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        self.used = time.monotonic()
        return int(status_line.split(b" ", 2)[1]), content

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class _HttpxConnection:
    """The same interface over one httpx client per terminal (ENTRAIDE_BENCH_HTTP_CLIENT=httpx)."""

    def __init__(self, base: str, ssl_context) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=base, timeout=60, verify=ssl_context)

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        r = await self.client.request(method, path, headers=headers, content=body)
        return r.status_code, r.content

    async def close(self) -> None:
        await self.client.aclose()


async def _paced(start: float, pace: float):
    """Yield the start of each operation: at once in a closed loop, else every `pace` seconds from a
    random phase (so that paced terminals do not all fire together)."""
    next_at = start + (random.random() * pace if pace else 0.0)
    while True:
        await asyncio.sleep(max(0.0, next_at - time.time()))
        yield
        next_at = next_at + pace if pace else time.time()


async def _health_loop(conn, rec: _Recorder, start: float, end: float, pace: float) -> None:
    async for _ in _paced(start, pace):
        if time.time() >= end:
            return
        t0 = time.perf_counter()
        try:
            status, content = await conn.request("GET", "/v1/health", {})
            rec.record("health", t0, status, content.decode(errors="replace"))
        except Exception as exc:  # noqa: BLE001 - a timeout or a dropped connection is an error like a 5xx
            rec.record("health", t0, type(exc).__name__, str(exc))


async def _terminal_loop(conn, terminal: dict, run: str, rec: _Recorder, start: float, end: float, pace: float) -> None:
    from api.http.signatures import sign_request

    key_id, pem, cards = terminal["key_id"], terminal["private_key_pem"].encode(), terminal["cards"]

    async def send(kind: str, path: str, body: bytes, key: str) -> dict | None:
        headers = sign_request("POST", path, body, key_id, pem)  # a fresh nonce: signed right before sending
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = key
        t0 = time.perf_counter()
        try:
            status, content = await conn.request("POST", path, headers, body)
        except Exception as exc:  # noqa: BLE001
            rec.record(kind, t0, type(exc).__name__, str(exc))
            return None
        rec.record(kind, t0, status, content.decode(errors="replace"))
        return json.loads(content) if 200 <= status < 300 else None

    i = 0
    async for _ in _paced(start, pace):
        if time.time() >= end:
            return
        i += 1
        body = json.dumps({"card": cards[i % len(cards)], "points": HOLD_POINTS}).encode()
        held = await send("hold", "/v1/pos/holds", body, f"{run}-{key_id}-{i}-h")
        if held is None:
            if not pace:
                await asyncio.sleep(0.01)  # no hot loop on refusals
            continue
        await send("capture", f"/v1/pos/holds/{held['hold_id']}/capture", b"{}", f"{run}-{key_id}-{i}-c")


async def _load(base: str, mode: str, terminals: list[dict], start: float, warmup: float, seconds: float,
                client: str, pace: float) -> dict:  # fmt: skip
    import ssl
    from urllib.parse import urlsplit

    rec = _Recorder((start + warmup, start + warmup + seconds))
    end = start + warmup + seconds
    run = uuid.uuid4().hex[:8]
    if client == "httpx":
        shared_ssl = ssl.create_default_context()  # once: httpx would load the CA store per client
        conns = [_HttpxConnection(base, shared_ssl) for _ in terminals]
    else:
        url = urlsplit(base)
        conns = [_Connection(url.hostname or "127.0.0.1", url.port or 80) for _ in terminals]
    try:
        if mode == "health":
            loops = [_health_loop(c, rec, start, end, pace) for c in conns]
        else:
            loops = [_terminal_loop(c, t, run, rec, start, end, pace) for c, t in zip(conns, terminals, strict=True)]
        late = time.time() - start
        await asyncio.gather(*loops)
    finally:
        for c in conns:
            await c.close()
    return {
        "latencies": rec.latencies,
        "errors": dict(rec.errors),
        "samples": rec.samples,
        "late_start_s": max(0.0, late),
    }


def _load_main(args: argparse.Namespace) -> None:
    seed = json.loads(Path(args.seed).read_text())
    part, parts = (int(x) for x in args.slice.split("/"))
    mine = seed["terminals"][part::parts]
    import api.http.signatures  # noqa: F401  (imported before the freeze, like the server's libraries)

    # The client's own collector pauses would be counted as server latency: keep its startup heap
    # out of the collections, as the server does (api.http.app._freeze_startup_heap).
    gc.collect()
    gc.freeze()
    result = asyncio.run(
        _load(args.base, args.mode, mine, args.start, args.warmup, args.seconds, args.client, args.pace_ms / 1000)
    )
    Path(args.out).write_text(json.dumps(result))


# --- orchestration --------------------------------------------------------------------------------


def _run_phase(base: str, mode: str, seed_path: Path, workdir: Path, clients: int, probe, pace_ms: float = 0.0) -> dict:
    """All client processes on one absolute schedule; their in-window samples merged, with what
    `probe()` reads at the start and the end of the measured window."""
    start = time.time() + 3  # time for the clients to import and connect
    window = (start + WARMUP, start + WARMUP + SECONDS)
    procs, outs = [], []
    try:
        for part in range(clients):
            out = workdir / f"{mode}-{pace_ms:g}-{part}.json"
            outs.append(out)
            command = [sys.executable, "-m", "bench.http", "load", "--base", base, "--mode", mode, "--seed", str(seed_path),
                       "--slice", f"{part}/{clients}", "--start", repr(start), "--warmup", repr(WARMUP),
                       "--seconds", repr(SECONDS), "--out", str(out), "--client", CLIENT, "--pace-ms", repr(pace_ms)]  # fmt: skip
            procs.append(subprocess.Popen(command, cwd=ROOT, start_new_session=True))
        time.sleep(max(0.0, window[0] - time.time()))
        before = probe()
        time.sleep(max(0.0, window[1] - time.time()))
        after = probe()
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"a load process failed ({proc.returncode})")
    finally:
        for proc in procs:
            _stop(proc)
    merged: dict = {"latencies": {}, "errors": Counter(), "samples": [], "late_start_s": 0.0, "window": window,
                    "usage": {k: after[k] - before[k] if None not in (after[k], before[k]) else None for k in after}}  # fmt: skip
    for out in outs:
        part = json.loads(out.read_text())
        for kind, values in part["latencies"].items():
            merged["latencies"].setdefault(kind, []).extend(values)
        merged["errors"].update(part["errors"])
        merged["samples"] += part["samples"]
        merged["late_start_s"] = max(merged["late_start_s"], part["late_start_s"])
    return merged


def _processes() -> dict[int, tuple[int, str, float, float]]:
    """pid -> (parent pid, command line, own CPU seconds, ended children's CPU seconds) from /proc;
    empty where there is no /proc."""
    found: dict[int, tuple[int, str, float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc/self/stat").exists() else []:
        try:
            raw = entry.read_text()
            command = (entry.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended
        f = raw[raw.rindex(")") + 2 :].split()
        found[int(entry.parent.name)] = (
            int(f[1]),
            command,
            (int(f[11]) + int(f[12])) / tick,
            (int(f[13]) + int(f[14])) / tick,
        )
    return found


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def _descendants(procs: dict[int, tuple[int, str, float, float]], root: int) -> set[int]:
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (ppid, *_) in procs.items() if ppid in tree} - tree
        tree, grew = tree | more, bool(more)
    return tree & procs.keys()


def _cpu(server_pid: int) -> dict[str, float | None]:
    """CPU seconds used so far by the API server (with its workers), by PostgreSQL for the bench
    database (its backends, the shared processes, and ended backends, whose time the kernel charges
    to the postmaster: those of other databases too), by this process and its load processes, and
    by the whole machine."""
    procs = _processes()
    if not procs:
        return {"server_cpu": None, "postgres_cpu": None, "load_cpu": None, "machine_cpu": None}
    server = _descendants(procs, server_pid)
    ours = _descendants(procs, os.getpid()) - server

    postgres = 0.0
    for _, command, own, ended in procs.values():
        words = command.split()
        if not words:
            continue
        if words[0].endswith("/bin/postgres"):  # the postmaster: ended backends' time is charged to it
            postgres += own + ended
        elif words[0] == "postgres:" and not (len(words) >= 4 and "(" in words[3] and words[2] != BENCH_DB):
            postgres += own  # the bench database's backends, and the shared ones (WAL writer, checkpointer...)
    return {
        "server_cpu": sum(procs[pid][2] for pid in server),
        "postgres_cpu": postgres,
        "load_cpu": sum(procs[pid][2] for pid in ours),
        "machine_cpu": _busy_seconds(),
    }


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def _pg_counters(db_url: str) -> tuple[int | None, int | None, int | None]:
    """Transactions committed and rolled back, and sessions opened, in the bench database so far
    (PostgreSQL's statistics, which backends report about once a second: approximate)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database WHERE datname = %s",
                           (BENCH_DB,)).fetchone()  # fmt: skip
    return (int(row[0]), int(row[1]), int(row[2])) if row else (None, None, None)


def _journal_in_window(db_url: str, window: tuple[float, float]) -> tuple[int, int]:
    """(entries, batches) appended in the window: one batch's entries share one time_us."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    lo, hi = int(window[0] * 1e6), int(window[1] * 1e6)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT time_us) FROM journal WHERE ledger = %s AND time_us >= %s"
                           " AND time_us < %s", (CITY, lo, hi)).fetchone()  # fmt: skip
    return int(row[0]), int(row[1])


def _line(label: str, values: list[float]) -> str:
    return (f"  {label:<30} {len(values) / SECONDS:>9,.0f} req/s   p50 {_pct(values, 0.5):7.1f} ms"
            f"   p99 {_pct(values, 0.99):7.1f} ms")  # fmt: skip


def _terminate(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _floor(seed: dict, keys_dir: Path, n: int = 1_000) -> dict[str, float]:
    """CPU milliseconds, measured in this process, of what every POS request needs whatever the
    server does around it: the terminal signing it (RFC 9421, http-message-signatures), the server
    checking that signature and the resident's card token (JWS, joserfc). Nothing of ours is in it."""
    from joserfc.jwk import KeySet

    from api.http.signatures import sign_request, verify_request
    from community.adapters import secrets

    terminal = seed["terminals"][0]
    key_id, pem, card = terminal["key_id"], terminal["private_key_pem"].encode(), terminal["cards"][0]
    body = json.dumps({"card": card, "points": HOLD_POINTS}).encode()
    public = _raw_public_key(pem)
    started = time.process_time()
    signed = [sign_request("POST", "/v1/pos/holds", body, key_id, pem) for _ in range(n)]
    sign_ms = (time.process_time() - started) / n * 1000
    now = int(time.time())
    started = time.process_time()
    for headers in signed:
        verify_request("POST", "/v1/pos/holds", list(headers.items()), body, lambda _: public, now)
    verify_ms = (time.process_time() - started) / n * 1000
    keys = KeySet([secrets.CommunityKeys(keys_dir).card_key(CITY)])
    started = time.process_time()
    for _ in range(n):
        secrets.verify_token(card, keys, now, city=CITY)
    card_ms = (time.process_time() - started) / n * 1000
    return {"sign": sign_ms, "verify": verify_ms, "card": card_ms}


def _raw_public_key(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

    return load_pem_private_key(pem, password=None).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _report_cpu(label: str, usage: dict, requests: int) -> bool:
    """One line of cores busy during a phase; True if other processes took a noticeable share."""
    if usage["machine_cpu"] is None:
        return False
    others = max(0.0, usage["machine_cpu"] - usage["server_cpu"] - usage["postgres_cpu"] - usage["load_cpu"]) / SECONDS
    print(f"  cores busy in the {label + ' phase:':<16} server {usage['server_cpu'] / SECONDS:4.2f}"
          f"  PostgreSQL {usage['postgres_cpu'] / SECONDS:4.2f}  load {usage['load_cpu'] / SECONDS:4.2f}"
          f"  other processes {others:4.2f}   (of {os.cpu_count() or 1}; {requests / SECONDS:,.0f} req/s)")  # fmt: skip
    return others > 0.2


def bench_http(pg_url: str, terminals: int = TERMINALS, workers: int = WORKERS, clients: int = CLIENTS) -> None:
    print(
        f"\n4. HTTP on PostgreSQL: hold + capture by {terminals} signed terminals vs GET /v1/health, same server, same run"
    )
    print(f"  uvicorn {workers} worker(s); {clients} load process(es) ({CLIENT} client), {terminals} keep-alive connections;"
          f" {WARMUP:g} s warm-up + {SECONDS:g} s measured per phase")  # fmt: skip
    db_url = _database_url(pg_url, BENCH_DB)
    _recreate_database(pg_url)
    server = None
    # A SIGTERM unwinds like Ctrl-C, so that the `finally` blocks stop the server and the load.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with tempfile.TemporaryDirectory(prefix="entraide-bench-http-") as tmp:
            workdir = Path(tmp)
            started = time.perf_counter()
            seed = _seed(db_url, workdir / "data", terminals)
            seed_path = workdir / "seed.json"
            seed_path.write_text(json.dumps(seed))
            print(f"  (seeded {terminals // TERMINALS_PER_MERCHANT} merchants, {terminals} terminals,"
                  f" {terminals * RESIDENTS_PER_TERMINAL} funded residents in {time.perf_counter() - started:.1f} s)")  # fmt: skip
            log = workdir / "server.log"
            server, base = _start_server(db_url, workdir / "data", workers, log)

            def probe() -> dict:
                commits, rollbacks, sessions = _pg_counters(db_url)
                return _cpu(server.pid) | {"commits": commits, "rollbacks": rollbacks, "sessions": sessions}  # type: ignore[union-attr]

            health = _run_phase(base, "health", seed_path, workdir, clients, probe)
            pos = _run_phase(base, "pos", seed_path, workdir, clients, probe)
            entries, batches = _journal_in_window(db_url, pos["window"])
            paced = _run_phase(base, "pos", seed_path, workdir, clients, probe, PACE_MS)
            server_alive = server.poll() is None
            _stop(server)
            server = None
            server_log = _tail(log)
            floor = _floor(seed, workdir / "data" / "keys")

        h = health["latencies"].get("health", [])
        holds, captures = pos["latencies"].get("hold", []), pos["latencies"].get("capture", [])
        pos_all = holds + captures
        print("  capacity (closed loop: each connection sends its next request as soon as the last is answered)")
        print(_line("GET  /v1/health", h))
        print(_line("POST /v1/pos/holds", holds))
        print(_line("POST /v1/pos/holds/{id}/capture", captures))
        print(_line("POS requests (hold or capture)", pos_all))
        h_rps, p_rps = len(h) / SECONDS, len(pos_all) / SECONDS
        ratio = p_rps / h_rps if h_rps else float("nan")
        print(
            f"  throughput ratio POS req/s / health req/s     {ratio:6.2f}   (goal >= {GOAL_RATIO} -> {'met' if ratio >= GOAL_RATIO else 'NOT met'})"
        )
        print(f"  latency ratio health/POS in the closed loop  p50 {_pct(h, 0.5) / _pct(pos_all, 0.5):5.2f}   p99"
              f" {_pct(h, 0.99) / _pct(pos_all, 0.99):5.2f}   (each is {terminals} / req/s by Little's law: a queue, not a service time)")  # fmt: skip
        p_holds, p_captures = paced["latencies"].get("hold", []), paced["latencies"].get("capture", [])
        print(f"  latency at {terminals} terminals, each starting one hold + capture every {PACE_MS / 1000:g} s"
              f" ({2 * terminals / PACE_MS * 1000:,.0f} req/s offered)")  # fmt: skip
        print(_line("POST /v1/pos/holds", p_holds))
        print(_line("POST /v1/pos/holds/{id}/capture", p_captures))
        worst = max(_pct(p_holds, 0.99), _pct(p_captures, 0.99))
        print(
            f"  POS p99 at {terminals} terminals: {worst:.1f} ms   (goal < {GOAL_P99_MS:g} ms -> {'met' if worst < GOAL_P99_MS else 'NOT met'})"
        )
        hu, pu, qu = health["usage"], pos["usage"], paced["usage"]
        if h and pos_all and hu["server_cpu"] is not None:
            h_ms, p_ms = hu["server_cpu"] / len(h) * 1000, pu["server_cpu"] / len(pos_all) * 1000
            print(f"  server CPU per request (closed loops): health {h_ms:.3f} ms, POS {p_ms:.2f} ms ({p_ms / h_ms:.0f}x);"
                  f" PostgreSQL CPU per POS request {pu['postgres_cpu'] / len(pos_all) * 1000:.2f} ms")  # fmt: skip
            noisy = _report_cpu("health", hu, len(h))
            noisy = _report_cpu("POS", pu, len(pos_all)) or noisy
            noisy = _report_cpu("paced POS", qu, len(p_holds) + len(p_captures)) or noisy
            if noisy:
                print("  WARNING: other processes took CPU during the measurement: these figures are not clean")
            need = GOAL_RATIO * h_rps * (h_ms + floor["verify"] + floor["card"] + floor["sign"]) / 1000
            print(f"  floor, measured here: the terminal signs a request in {floor['sign']:.2f} ms of CPU, the server checks its"
                  f" RFC 9421 signature in {floor['verify']:.2f} ms and the card token in {floor['card']:.2f} ms;"
                  f" {GOAL_RATIO} x {h_rps:,.0f} = {GOAL_RATIO * h_rps:,.0f} POS req/s would need {need:.1f} cores for these"
                  f" and the health request's own handling alone, before any database work, of {os.cpu_count()} cores here")  # fmt: skip
        if pos_all and pu["commits"] is not None:
            print(f"  ledger (closed loop): {entries:,} entries in {batches:,} group commits ({entries / max(batches, 1):.1f} per commit);"
                  f" PostgreSQL ~{pu['commits'] / len(pos_all):.1f} commits + {pu['rollbacks'] / len(pos_all):.1f}"
                  f" rollbacks per POS request; {pu['sessions'] - 1:,} new PostgreSQL sessions in the window")  # fmt: skip
        errors = health["errors"] + pos["errors"] + paced["errors"]
        late = max(health["late_start_s"], pos["late_start_s"], paced["late_start_s"])
        if late > WARMUP:
            print(f"  WARNING: a load process started {late:.1f} s late, after the warm-up")
        if errors or not server_alive:
            print(f"  ERRORS in the measured windows: {dict(errors)}{'' if server_alive else '; the server died'}")
            for sample in (health["samples"] + pos["samples"] + paced["samples"])[:5]:
                print(f"    {sample}")
            if server_log:
                print("  server log (tail):\n" + "\n".join("    " + s for s in server_log.splitlines()))
        else:
            print("  errors: none")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            _stop(server)
        _recreate_database(pg_url, drop_only=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    load = sub.add_parser("load", help="internal: one load process")
    load.add_argument("--base", required=True)
    load.add_argument("--mode", choices=["health", "pos"], required=True)
    load.add_argument("--seed", required=True)
    load.add_argument("--slice", default="0/1")
    load.add_argument("--start", type=float, required=True)
    load.add_argument("--warmup", type=float, required=True)
    load.add_argument("--seconds", type=float, required=True)
    load.add_argument("--out", required=True)
    load.add_argument("--client", choices=["raw", "httpx"], default="raw")
    load.add_argument("--pace-ms", type=float, default=0.0)
    serve = sub.add_parser(
        "serve", help="internal: the API server (reads the database URL and data dir from the environment)"
    )
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "load":
        _load_main(args)
        return
    if args.command == "serve":
        _serve(args.port, args.workers)
        return
    pg_url = os.environ.get("ENTRAIDE_BENCH_PG_URL")
    if not pg_url:
        sys.exit("set ENTRAIDE_BENCH_PG_URL (make bench starts PostgreSQL)")
    print(f"Entraide HTTP benchmark ({os.cpu_count()} cores)")
    bench_http(pg_url)


if __name__ == "__main__":
    main()
