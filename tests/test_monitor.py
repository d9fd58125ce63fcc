"""`entraide monitor` against a real `entraide serve` process, on SQLite and PostgreSQL: it follows
every city's log from the base URL alone, then only what is new, and names each inconsistency a
log could serve (through a proxy that rewrites what the real server answers) with exit status 1."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from api.bootstrap import Context
from ledger import core
from ledger.adapters import journal, log_tiles
from ledger.domain import checkpoint as notes
from ledger.domain import tiles
from ledger.service_layer import audit, simulation
from ledger.service_layer.keys import now_us
from ledger.simulate import DAY_US, Simulator
from tests.local_server import LocalServer
from tests.world import free_port, server_process

CITY = "brossard"  # the largest city of the simulation: its log crosses a 256-entry tile


@dataclass
class Proxy:
    """Forwards GETs to the real server; `rewrite(path, body)` may change what it answers."""

    upstream: str
    rewrite: Callable[[str, bytes], bytes] = lambda _, body: body
    paths: list[str] = field(default_factory=list)
    url: str = ""  # the proxy's own, once it listens


def _proxy(proxy: Proxy) -> LocalServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            proxy.paths.append(self.path)
            answer = httpx.get(proxy.upstream + self.path, timeout=30)
            body = proxy.rewrite(self.path, answer.content)
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return LocalServer(Handler).start()


def _grow(ctx: Context, transfers: int, seed: int) -> None:
    """More simulated activity, then a checkpoint of every ledger."""
    start = now_us() - 2 * DAY_US
    sim = Simulator(seed, start, 1)
    simulation.run(ctx.ledger, sim, transfers, keystore=ctx.keystore)
    audit.make_checkpoints(ctx.engine, ctx.signer)


@pytest.fixture
def log(ctx: Context, db_url: str, tmp_path: Path) -> Iterator[tuple[Context, Proxy]]:
    """A simulated deployment (a key rotation included) served by `entraide serve`, behind a proxy."""
    _grow(ctx, 1500, seed=1)
    with server_process(db_url, tmp_path) as (base, _):
        proxy = Proxy(base)
        server = _proxy(proxy)
        proxy.url = server.url
        try:
            yield ctx, proxy
        finally:
            server.shutdown()


def monitor(proxy: Proxy, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", "monitor", "--url", proxy.url, "--state", str(state), *args],
                          check=False, capture_output=True, text=True, timeout=300, env=os.environ.copy())  # fmt: skip


def _sizes(ctx: Context) -> dict[str, int]:
    return {c.ledger: c.tree_size for c in audit.latest_checkpoints(ctx.engine).checkpoints}


def _note(ctx: Context, size: int, root: bytes, time_us: int, key_id: str | None = None) -> str:
    """A checkpoint of CITY signed with the deployment's real key (the active one unless named)."""
    with ctx.engine.begin() as conn:
        kid = key_id or ctx.signer.active(conn)[0]
    return notes.sign(CITY, size, root, time_us, ctx.keystore.load(kid))


def _serve_note(proxy: Proxy, note: str) -> None:
    proxy.rewrite = lambda path, body: note.encode() if path == f"/v1/transparency/{CITY}/checkpoint" else body


def test_a_monitor_knowing_only_the_url_verifies_every_log_then_only_what_is_new(log, tmp_path) -> None:
    ctx, proxy = log
    state = tmp_path / "state"
    first = monitor(proxy, state)
    assert first.returncode == 0, first.stderr
    sizes = _sizes(ctx)
    assert sizes[CITY] > 256 and sizes[CITY] % 256, "the city's log has a full and a partial tile"
    for ledger, size in sizes.items():
        assert f"{ledger}: size {size:,}, {size:,} new entries verified; no witnesses configured" in first.stdout
    assert f"consistent: {len(sizes)} ledgers, {sum(sizes.values()):,} entries verified" in first.stdout
    mirror = (state / f"{CITY}.jsonl").read_text().splitlines()
    assert [json.loads(line)["sequence"] for line in mirror] == list(range(1, sizes[CITY] + 1))

    _grow(ctx, 600, seed=2)
    grown = _sizes(ctx)
    proxy.paths.clear()
    second = monitor(proxy, state)
    assert second.returncode == 0, second.stderr
    for ledger, size in grown.items():
        assert f"{ledger}: size {size:,}, {size - sizes[ledger]:,} new entries verified" in second.stdout
    # Nothing verified before is downloaded again but the last, partial, tile it ended in.
    bundles = [p for p in proxy.paths if p.startswith(f"/v1/transparency/{CITY}/tile/entries/")]
    first_new_tile = sizes[CITY] // 256
    assert bundles and all(int(p.split("/")[6].split(".")[0]) >= first_new_tile for p in bundles)

    third = monitor(proxy, state)
    assert third.returncode == 0 and f"{CITY}: size {grown[CITY]:,}, 0 new entries verified" in third.stdout


def test_a_log_that_cannot_be_read_exits_with_2_and_says_what_failed(tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = monitor(Proxy("", url=url), tmp_path / "state")
    assert result.returncode == 2
    assert f"GET {url}/v1/transparency/keys: NewConnectionError" in result.stderr.replace("\n", "")


def test_a_rewritten_tile_is_named(log, tmp_path) -> None:
    _, proxy = log
    tile = f"/v1/transparency/{CITY}/tile/0/000"
    proxy.rewrite = lambda path, body: body[:40] + bytes([body[40] ^ 1]) + body[41:] if path == tile else body
    result = monitor(proxy, tmp_path / "state")
    assert result.returncode == 1
    assert f"{CITY}: rewritten tile 0/000: hash 1 is" in result.stderr


def test_a_rewritten_stored_bundle_is_named(log, tmp_path) -> None:
    """The server serves bundles as stored: one rewritten in the database, under its unchanged tiles."""
    ctx, proxy = log
    B = log_tiles.B
    where = (B.c.ledger == CITY, B.c.bundle_index == 0)
    with ctx.engine.begin() as conn:
        entries = list(tiles.unbundle(conn.scalar(select(B.c.entries).where(*where))))
        forged = json.loads(entries[5])
        forged["amount"] += 1
        entries[5] = json.dumps(forged, ensure_ascii=False, separators=(",", ":")).encode()
        conn.execute(update(B).where(*where).values(entries=tiles.bundle(entries)))
    result = monitor(proxy, tmp_path / "state")
    assert result.returncode == 1
    assert f"{CITY}: entry 6: hash" in result.stderr, result.stderr


def test_a_verified_entry_served_again_differently_is_a_fork(log, tmp_path) -> None:
    """The entries of the partial tile a run ended in come again with the next run's bundle."""
    ctx, proxy = log
    state = tmp_path / "state"
    assert monitor(proxy, state).returncode == 0
    size = _sizes(ctx)[CITY]
    assert size % 256 > 3, "the verified log ends in a partial tile"
    _grow(ctx, 600, seed=2)
    bundle = f"/v1/transparency/{CITY}/tile/entries/{tiles.encode_index(size // 256)}"

    def rewrite(path: str, body: bytes) -> bytes:
        if not path.startswith(bundle):
            return body
        entries = list(tiles.unbundle(body))
        entries[2] = entries[2].replace(b'"v":1', b'"v":1 ')  # the same entry, other bytes
        return tiles.bundle(entries)

    proxy.rewrite = rewrite
    result = monitor(proxy, state)
    assert result.returncode == 1
    assert f"{CITY}: fork: entry {size // 256 * 256 + 3} is served differently from the one verified" in result.stderr


def test_a_bad_checkpoint_signature_is_refused(log, tmp_path) -> None:
    _, proxy = log
    note = httpx.get(f"{proxy.upstream}/v1/transparency/{CITY}/checkpoint").text
    text, _, line = note.rstrip("\n").rpartition("\n")
    name, blob = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 1  # in the Ed25519 signature, after the 4-byte key hash
    _serve_note(proxy, f"{text}\n{name} {base64.b64encode(bytes(raw)).decode()}\n")
    result = monitor(proxy, tmp_path / "state")
    assert result.returncode == 1
    assert f"{CITY}: checkpoint rejected: the signature by key" in result.stderr and "does not verify" in result.stderr


def test_a_fork_at_a_verified_size_and_a_rollback_are_named(log, tmp_path) -> None:
    ctx, proxy = log
    state = tmp_path / "state"
    assert monitor(proxy, state).returncode == 0
    verified = json.loads((state / "state.json").read_text())["ledgers"][CITY]
    size = verified["size"]
    with ctx.engine.begin() as conn:
        leaves = bytearray(journal.leaf_hashes(conn, CITY, size))
    leaves[-1] ^= 1  # the forked history: another last entry, signed with the city's real key
    forked_root = core.merkle_root(bytes(leaves))
    _serve_note(proxy, _note(ctx, size, forked_root, now_us()))
    fork = monitor(proxy, state)
    assert fork.returncode == 1
    assert (f"{CITY}: fork: the checkpoint of size {size} has root {forked_root.hex()}, but the verified log of size "
            f"{size} has root {verified['root']}") in fork.stderr.replace("\n", "")  # fmt: skip

    with ctx.engine.begin() as conn:
        older = core.merkle_root(journal.leaf_hashes(conn, CITY, size - 1))
    _serve_note(proxy, _note(ctx, size - 1, older, now_us()))
    rollback = monitor(proxy, state)
    assert rollback.returncode == 1
    assert (f"{CITY}: rollback: the log's checkpoint has size {size - 1}, smaller than the verified size {size}"
            in rollback.stderr.replace("\n", ""))  # fmt: skip
    # The state stays where it was: the honest log still verifies.
    proxy.rewrite = lambda _, body: body
    assert monitor(proxy, state).returncode == 0


def test_a_checkpoint_by_a_key_outside_its_validity_is_refused(log, tmp_path) -> None:
    ctx, proxy = log
    with ctx.engine.begin() as conn:
        retired = [k for k in journal.signing_keys(conn) if k["valid_until_us"] is not None]
        size = journal.checkpoint(conn, CITY)["tree_size"]
        root = core.merkle_root(journal.leaf_hashes(conn, CITY, size))
    assert retired, "the simulation rotated the key"
    _serve_note(proxy, _note(ctx, size, root, now_us(), key_id=retired[0]["key_id"]))
    result = monitor(proxy, tmp_path / "state")
    assert result.returncode == 1
    assert (f"{CITY}: checkpoint rejected: key {retired[0]['key_id']} was not valid at the checkpoint's time_us"
            in result.stderr.replace("\n", ""))  # fmt: skip
