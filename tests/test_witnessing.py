"""The log side of c2sp.org/tlog-witness: `entraide serve`'s checkpoints job submits each ledger's
latest checkpoint to the configured witnesses, stores their verified cosignatures, publishes them,
counts the quorum, and reports a witness that sees a fork or a rollback. The witnesses here are real
HTTP servers on loopback that follow the spec and check what they are sent. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import TestClient

from api.bootstrap import Settings
from api.http.app import create_app
from ledger import core
from ledger.adapters import journal
from ledger.domain import checkpoint as notes
from ledger.domain import cosignature, witnesses
from ledger.domain.checkpoint import NoteError
from ledger.service_layer import audit
from operations.service_layer.jobs import scheduler
from tests.local_server import LocalServer
from tests.test_finance import JAN, end_of_january, january_activity
from tests.world import World, standard_world

DAY_S = 86_400
_OLD = re.compile(r"old (0|[1-9][0-9]*)")


class Witness:
    """A tlog-witness: cosigns a checkpoint only if it extends the last one it cosigned for the
    origin (per the spec's checks, in its order), and records each request as (old, proof lines, status)."""

    def __init__(self, name: str, seed: bytes) -> None:
        self.name, self.seed = name, seed
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        self.vkey = notes.vkey(name, public, cosignature.COSIGNATURE_V1)
        self.log_keys: notes.PublicKeys = {}
        self.state: dict[str, tuple[int, bytes]] = {}  # origin -> (size, root) of the last cosigned
        self.requests: list[tuple[int, int, int]] = []
        self.lock = threading.Lock()
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with witness.lock:
                    status, content_type, answer, old, proof = witness.add_checkpoint(self.path, body)
                    witness.requests.append((old, proof, status))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = LocalServer(Handler).start()
        self.url = self.server.url + "/witness"

    def add_checkpoint(self, path: str, body: bytes) -> tuple[int, str, bytes, int, int]:
        plain = "text/plain; charset=utf-8"
        if path != "/witness/add-checkpoint":
            return 404, plain, b"no such endpoint\n", -1, 0
        head, sep, note = body.decode().partition("\n\n")
        lines = head.split("\n")
        match = _OLD.fullmatch(lines[0])
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
        if not sep or match is None or len(proof) > 63 or any(len(h) != 32 for h in proof):
            return 400, plain, b"malformed body\n", -1, len(proof)
        old = int(match.group(1))
        try:
            cp = notes.open_note(note, self.log_keys)
        except NoteError as exc:
            return 403, plain, f"{exc}\n".encode(), old, len(proof)
        if old > cp.tree_size:
            return 400, plain, b"old size beyond the checkpoint\n", old, len(proof)
        origin = notes.origin(cp.ledger)
        known_size, known_root = self.state.get(origin, (0, b""))
        if old != known_size:
            return 409, "text/x.tlog.size", f"{known_size}\n".encode(), old, len(proof)
        consistent = (
            not proof if old == 0
            else not proof and known_root == cp.root if old == cp.tree_size
            else core.verify_consistency(old, cp.tree_size, known_root, cp.root, proof)
        )  # fmt: skip
        if not consistent:
            return 422, plain, b"inconsistent\n", old, len(proof)
        self.state[origin] = (cp.tree_size, cp.root)
        line = cosignature.cosign(cp.text, self.name, self.seed, int(time.time()))
        # A line by some other key comes first: the log must skip it.
        stranger = cosignature.cosign(cp.text, "stranger.example/w", bytes(32), int(time.time()))
        return 200, plain, (stranger + line).encode(), old, len(proof)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: a witness that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/witness"


@pytest.fixture
def three() -> Iterator[list[Witness]]:
    started = [Witness(f"witness.example/w{i}", bytes([i]) * 32) for i in (1, 2, 3)]
    yield started
    for w in started:
        w.close()


def configure(ctx, listed: list[tuple[str, str]], quorum: int | None, tmp_path: Path) -> None:
    """Configure the witnesses as an operator does (a witnesses file), on the running context."""
    path = tmp_path / "witnesses"
    path.write_text("# vkey, submission prefix\n" + "".join(f"{vkey} {url}\n" for vkey, url in listed))
    config = witnesses.config(witnesses.parse_witnesses(path.read_text()), quorum)
    ctx.settings = dataclasses.replace(ctx.settings, witnesses=config)
    ctx.__dict__.pop("witnessing", None)


def trust_log(ctx, *servers: Witness) -> None:
    keys = {kid: (pub, start, end) for kid, pub, start, end in audit.verifier_keys(audit.keys_document(ctx.engine))}
    for server in servers:
        server.log_keys = keys


def run_checkpoints(ctx) -> dict[str, int]:
    outcome = scheduler(ctx).run_now("checkpoints")
    assert outcome.error is None and outcome.result is not None, outcome.error
    return outcome.result


def latest(ctx, ledger: str) -> dict:
    with ctx.engine.connect() as conn:
        cp = journal.checkpoint(conn, ledger)
    assert cp is not None
    return cp


# --- quorum, first submissions, consistency proofs, publication --------------------------------


def test_two_of_three_witnesses_cosign_and_the_checkpoint_is_published_witnessed(ctx, clock, three, tmp_path):
    w1, w2, w3 = three
    w3.close()
    with TestClient(create_app(ctx)) as client:
        world = World(ctx, client)
        world.city("delson")
        world.resident("alice", "delson", points=500)
        configure(ctx, [(w1.vkey, w1.url), (w2.vkey, w2.url), (w3.vkey, closed_port_url())], 2, tmp_path)
        trust_log(ctx, w1, w2)

        first = run_checkpoints(ctx)
        size = latest(ctx, "delson")["tree_size"]
        assert first == {"ledgers": 1, "signed": 1, "submitted": 3, "cosigned": 2, "failed": 1, "forks": 0,
                         "witnessed": 1}  # fmt: skip
        assert w1.requests == w2.requests == [(0, 0, 200)]  # the first submission says `old 0`, no proof

        published = client.get("/v1/transparency/checkpoints").json()["checkpoints"]
        assert [(c["ledger"], c["tree_size"], c["witnessed"], c["cosigners"]) for c in published] == [
            ("delson", size, True, [w1.name, w2.name])]  # fmt: skip
        note = published[0]["note"]
        with ctx.engine.connect() as conn:
            assert audit.published_note(conn, "delson") == note
            assert audit.published_note(conn, "delson", size) == note
            assert audit.published_note(conn, "nowhere") is None
        keys = {w.name: Ed25519PrivateKey.from_private_bytes(w.seed).public_key().public_bytes_raw() for w in three}
        assert set(cosignature.verify(note, keys)) == {w1.name, w2.name}
        assert "stranger.example/w" not in note  # lines by other keys are ignored, not published
        assert notes.open_note(note, w1.log_keys).tree_size == size  # still the log's valid note

        health = world.bearer("staff-delson", "GET", "/v1/health/jobs").json()
        assert health["status"] == "ok"
        assert {k: health["witnessing"][k] for k in ("enabled", "quorum", "forks", "failing")} == {
            "enabled": True, "quorum": 2, "forks": 0, "failing": 1}  # fmt: skip
        down = [s for s in health["witnessing"]["states"] if s["witness"] == w3.name]
        assert down[0]["state"] == "failed" and down[0]["detail"].startswith("unreachable")

        # Nothing new: nothing is sent again to those that cosigned; the one down is tried again.
        again = run_checkpoints(ctx)
        assert (again["signed"], again["submitted"], again["failed"], again["witnessed"]) == (0, 1, 1, 1)
        assert w1.requests == [(0, 0, 200)]

        # New entries: the next checkpoint goes with a consistency proof from the size each cosigned.
        world.resident("bob", "delson", points=100)
        clock.advance(60)
        third = run_checkpoints(ctx)
        bigger = latest(ctx, "delson")["tree_size"]
        assert bigger > size
        assert (third["signed"], third["cosigned"], third["failed"], third["witnessed"]) == (1, 2, 1, 1)
        assert w1.requests[-1][0] == size and w1.requests[-1][1] > 0 and w1.requests[-1][2] == 200
        assert w1.state[notes.origin("delson")] == (bigger, bytes.fromhex(latest(ctx, "delson")["root_hash"]))


def test_a_witness_that_knows_a_size_answers_409_and_gets_the_proof_from_it(ctx, clock, three, tmp_path):
    w1 = three[0]
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("delson")
    world.resident("alice", "delson", points=500)
    audit.make_checkpoints(ctx.engine, ctx.signer, clock)
    early = latest(ctx, "delson")
    world.resident("bob", "delson", points=100)
    clock.advance(60)
    # The witness cosigned our earlier checkpoint (say, for a server whose state was lost since).
    w1.state[notes.origin("delson")] = (early["tree_size"], bytes.fromhex(early["root_hash"]))
    configure(ctx, [(w1.vkey, w1.url)], None, tmp_path)
    trust_log(ctx, w1)

    result = run_checkpoints(ctx)
    assert (result["cosigned"], result["witnessed"], result["failed"]) == (1, 1, 0)  # quorum by default: 1 of 1
    assert [(old, status) for old, _, status in w1.requests] == [(0, 409), (early["tree_size"], 200)]
    assert w1.requests[1][1] > 0  # the retry carries the consistency proof
    assert ctx.witnessing.status().states[0].size == latest(ctx, "delson")["tree_size"]


# --- forks and rollbacks ------------------------------------------------------------------------


def test_a_witness_that_saw_another_history_is_reported_as_a_fork_and_not_hammered(ctx, clock, three, tmp_path):
    honest, forked, ahead = three
    with TestClient(create_app(ctx)) as client:
        world = World(ctx, client)
        world.city("delson")
        world.resident("alice", "delson", points=500)
        world.resident("bob", "delson", points=100)
        configure(ctx, [(w.vkey, w.url) for w in three], 2, tmp_path)
        trust_log(ctx, *three)
        origin = notes.origin("delson")
        forked.state[origin] = (2, bytes(32))  # it cosigned a size-2 tree that is not our first two entries
        ahead.state[origin] = (10**6, bytes(32))  # it cosigned a size we never reached: a rollback of ours

        result = run_checkpoints(ctx)
        assert (result["cosigned"], result["forks"], result["failed"], result["witnessed"]) == (1, 2, 0, 0)
        assert [(old, status) for old, _, status in forked.requests] == [(0, 409), (2, 422)]
        assert [(old, status) for old, _, status in ahead.requests] == [(0, 409)]
        states = {s.witness: s for s in ctx.witnessing.status().states}
        assert states[forked.name].state == "fork" and "422" in (states[forked.name].detail or "")
        assert states[ahead.name].state == "fork" and states[ahead.name].size == 10**6
        assert "larger than our" in (states[ahead.name].detail or "")

        health = world.bearer("staff-delson", "GET", "/v1/health/jobs").json()
        assert health["status"] == "degraded" and health["witnessing"]["forks"] == 2
        published = client.get("/v1/transparency/checkpoints").json()["checkpoints"][0]
        assert (published["witnessed"], published["cosigners"]) == (False, [honest.name])

        # The same checkpoint is not sent to them again: a fork is not a transient failure.
        assert run_checkpoints(ctx)["submitted"] == 0
        assert len(forked.requests) == 2 and len(ahead.requests) == 1


# --- configuration ------------------------------------------------------------------------------


def test_witnesses_come_from_a_file_and_a_quorum_and_are_refused_when_wrong(tmp_path, monkeypatch, three):
    w1, w2, _ = three
    path = tmp_path / "witnesses"
    path.write_text(f"\n# two cities\n{w1.vkey} {w1.url}\n{w2.vkey}   {w2.url}/\n")
    monkeypatch.setenv("ENTRAIDE_WITNESSES", str(path))
    loaded = Settings.load(data_dir=tmp_path).witnesses
    assert [(w.name, w.add_checkpoint_url) for w in loaded.witnesses] == [
        (w1.name, w1.url + "/add-checkpoint"), (w2.name, w2.url + "/add-checkpoint")]  # fmt: skip
    assert loaded.quorum == 2  # a majority by default
    assert not loaded.is_witnessed([w1.name]) and loaded.is_witnessed([w1.name, w2.name, "stranger"])
    monkeypatch.setenv("ENTRAIDE_WITNESS_QUORUM", "1")
    assert Settings.load(data_dir=tmp_path).witnesses.quorum == 1
    for quorum in ("3", "0", "two"):
        monkeypatch.setenv("ENTRAIDE_WITNESS_QUORUM", quorum)
        with pytest.raises(ValueError, match="ENTRAIDE_WITNESS_QUORUM"):
            Settings.load(data_dir=tmp_path)
    monkeypatch.delenv("ENTRAIDE_WITNESS_QUORUM")
    log_vkey = notes.vkey("entraide/delson", bytes(32))  # a log's key (type 0x01), not a witness's
    for text, error in ((f"{log_vkey} {w1.url}\n", "type 0x04"), (f"{w1.vkey}\n", "line 1"),
                        (f"{w1.vkey} ftp://x/\n", "http"), (f"{w1.vkey} {w1.url}\n{w1.vkey} {w2.url}\n", "twice"),
                        ("# nobody\n", "lists no witness")):  # fmt: skip
        path.write_text(text)
        with pytest.raises(ValueError, match=error):
            Settings.load(data_dir=tmp_path)
    monkeypatch.delenv("ENTRAIDE_WITNESSES")
    off = Settings.load(data_dir=tmp_path).witnesses
    assert (off.enabled, off.quorum, off.is_witnessed([])) == (False, 0, False)


def test_with_no_witness_configured_checkpoints_are_published_unwitnessed_and_health_says_off(ctx, clock):
    with TestClient(create_app(ctx)) as client:
        world = World(ctx, client)
        world.city("delson")
        world.resident("alice", "delson", points=500)
        assert run_checkpoints(ctx) == {"ledgers": 1, "signed": 1}
        published = client.get("/v1/transparency/checkpoints").json()["checkpoints"][0]
        assert (published["witnessed"], published["cosigners"]) == (False, [])
        witnessing = world.bearer("staff-delson", "GET", "/v1/health/jobs").json()["witnessing"]
        assert witnessing == {"enabled": False, "quorum": 0, "witnesses": [], "forks": 0, "failing": 0, "states": []}


# --- period close -------------------------------------------------------------------------------


def test_closing_a_period_signs_a_checkpoint_of_that_city_only(ctx, clock):
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        world = standard_world(ctx, client)
        clock.advance(DAY_S)
        january_activity(world)
    end_of_january(clock)
    with ctx.engine.connect() as conn:
        assert journal.checkpoint(conn, "brossard") is None and journal.checkpoint(conn, "delson") is None
    ctx.settlement.close("brossard", JAN, "finance:test")
    with ctx.engine.connect() as conn:
        head = journal.heads(conn)["brossard"]
        cp = journal.checkpoint(conn, "brossard")
        assert cp is not None and cp["tree_size"] == head.sequence  # the settlement entries included
        assert journal.checkpoint(conn, "delson") is None
    keys = {kid: (pub, start, end) for kid, pub, start, end in audit.verifier_keys(audit.keys_document(ctx.engine))}
    assert notes.open_note(cp["note"], keys).tree_size == head.sequence
    ctx.settlement.close("brossard", JAN, "finance:again")  # a replayed close signs nothing new
    with ctx.engine.connect() as conn:
        assert journal.checkpoint(conn, "brossard") == cp
