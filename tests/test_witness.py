"""Witnesses (c2sp.org/tlog-witness): several `entraide witness serve` processes on loopback cosign a
city's checkpoints while its history only grows, and refuse — keeping the evidence — once the city
rewrites it with its real key. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.bootstrap import Context, Settings, open_context
from ledger import core
from ledger.adapters import journal
from ledger.adapters.witness_client import Answer, request_body, submit
from ledger.adapters.witness_state import WitnessState, origin_hash
from ledger.domain import accounts, cosignature
from ledger.domain import checkpoint as notes
from ledger.domain.transfers import TransferRequest
from ledger.domain.witness import (
    InconsistentCheckpoint,
    MalformedSubmission,
    SizeConflict,
    UnknownLog,
    UntrustedCheckpoint,
    WitnessKey,
    logs_line,
    parse_logs,
    parse_private_key,
    parse_submission,
)
from ledger.service_layer import audit
from ledger.service_layer.witness import Witness
from tests.conftest import PG_URL, Clock, pg_schema
from tests.world import World, free_port, process_serving

CITY = "brossard"
ORIGIN = notes.origin(CITY)
WITNESSES = 3


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "--lang", "en", *args], check=False, capture_output=True,
                          text=True, timeout=120, env=os.environ.copy(), **kw)  # fmt: skip


@dataclass
class City:
    """A city's ledger, grown by deterministic transfers: two cities grown alike hold the same
    entries, signed by the same key (their databases share the key directory)."""

    ctx: Context
    clock: Clock

    def grow(self, count: int, tag: str) -> None:
        for n in range(count):
            self.clock.advance(1)
            self.ctx.ledger.transfer(TransferRequest(CITY, f"{tag}-{n}", "budget_funding", "single",
                                                     accounts.PROGRAM_FUNDING, accounts.PROGRAM_BUDGET, 5))  # fmt: skip

    def checkpoint(self) -> tuple[int, str]:
        self.clock.advance(1)
        (made,) = [
            c for c in audit.make_checkpoints(self.ctx.engine, self.ctx.signer, self.clock) if c["ledger"] == CITY
        ]
        return made["tree_size"], made["note"]

    def proof(self, old_size: int, size: int) -> list[bytes]:
        with self.ctx.engine.connect() as conn:
            return core.consistency_proof(journal.leaf_hashes(conn, CITY, size), old_size)

    def seed(self) -> bytes:
        with self.ctx.engine.connect() as conn:
            return self.ctx.signer.active(conn)[1]

    def logs_file(self, path: Path) -> Path:
        lines = [logs_line(notes.vkey(ORIGIN, bytes.fromhex(k.public_key)), k.valid_from_us, k.valid_until_us)
                 for k in audit.public_keys(self.ctx.engine).keys]  # fmt: skip
        path.write_text("# the logs this witness follows\n" + "\n".join(lines) + "\n")
        return path

    def keys(self) -> notes.PublicKeys:
        return parse_logs(self.logs_file(Path(self.ctx.settings.data_dir) / "logs.txt").read_text())[ORIGIN]


def start_city(ctx: Context, clock: Clock) -> City:
    World(ctx, client=None).city(CITY)  # type: ignore[arg-type]
    city = City(ctx, clock)
    city.grow(3, "truth")
    return city


@pytest.fixture
def fork_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second database on the same backend, where the city writes another history."""
    if PG_URL is None or not db_url.startswith("postgresql"):
        yield str(tmp_path / "fork.db")
        return
    with pg_schema("f") as url:
        yield url


@dataclass
class WitnessProcess:
    url: str
    name: str
    public_key: bytes
    process: subprocess.Popen


@contextmanager
def witness_process(key: Path, state: Path, logs: Path) -> Iterator[WitnessProcess]:
    """`entraide witness serve` in its own process, ready to answer."""
    witness_key = parse_private_key(key.read_text())
    port = free_port()
    command = [sys.executable, "-m", "api.cli", "witness", "serve", "--key", str(key), "--state", str(state),
               "--logs", str(logs), "--port", str(port)]  # fmt: skip
    with process_serving(command, f"http://127.0.0.1:{port}/evidence") as process:
        yield WitnessProcess(f"http://127.0.0.1:{port}", witness_key.name, witness_key.public_key, process)


def keygen(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name.replace('/', '_')}.key"
    made = _cli("witness", "keygen", "--name", name, "--out", str(path))
    assert made.returncode == 0, made.stderr
    assert notes.parse_vkey(made.stdout.strip(), cosignature.COSIGNATURE_V1) == (
        name, parse_private_key(path.read_text()).public_key)  # fmt: skip
    assert path.stat().st_mode & 0o777 == 0o600
    return path


def post(witness: WitnessProcess, note: str, old_size: int, proof: list[bytes]) -> httpx.Response:
    return httpx.post(witness.url + "/add-checkpoint", content=request_body(note, old_size, proof), timeout=30)


def held_checkpoint(witness: WitnessProcess) -> httpx.Response:
    return httpx.get(f"{witness.url}/{origin_hash(ORIGIN)}/checkpoint", timeout=10)


def cosigners(note: str, witnesses: list[WitnessProcess]) -> set[str]:
    return set(cosignature.verify(note, {w.name: w.public_key for w in witnesses}))


def test_witnesses_cosign_a_growing_log_and_refuse_its_fork(ctx: Context, clock: Clock, fork_url: str,
                                                            tmp_path: Path) -> None:  # fmt: skip
    truth = start_city(ctx, clock)
    logs = truth.logs_file(tmp_path / "logs.txt")
    keys = [keygen(tmp_path, f"witness.city{n}.example/w1") for n in range(WITNESSES)]
    with ExitStack() as stack, ThreadPoolExecutor(WITNESSES) as pool:
        starting = [pool.submit(stack.enter_context, witness_process(key, tmp_path / f"state{n}", logs))
                    for n, key in enumerate(keys)]  # fmt: skip
        witnesses = [s.result() for s in starting]

        # The log grows: every witness cosigns, first from 0, then with a consistency proof.
        size_a, note_a = truth.checkpoint()
        for w in witnesses:
            lines = list(submit(w.url, note_a, 0, [], 30).lines)
            assert cosigners(cosignature.add(note_a, lines), [w]) == {w.name}
        truth.grow(3, "truth-2")
        size_b, note_b = truth.checkpoint()
        assert size_b > size_a
        assert submit(witnesses[0].url, note_b, 0, [], 30) == Answer(409, size=size_a)  # the spec's way to learn it
        cosigned_b = note_b
        for w in witnesses:
            lines = list(submit(w.url, note_b, size_a, truth.proof(size_a, size_b), 30).lines)
            assert lines
            cosigned_b = cosignature.add(cosigned_b, lines)
        assert cosigners(cosigned_b, witnesses) == {w.name for w in witnesses}
        assert notes.open_note(cosigned_b, truth.keys()).tree_size == size_b
        for w in witnesses:  # the monitoring read: the log's signature and the witness's own
            served = held_checkpoint(w)
            assert served.status_code == 200 and served.text.startswith(note_b)
            assert cosigners(served.text, witnesses) == {w.name}

        # The city rewrites its history after size_a, with its real key, in another database.
        fork_clock = Clock()
        fork_ctx = open_context(Settings(data_dir=tmp_path / "fork", database_url=fork_url,
                                         keys_dir=ctx.settings.keys_dir), clock=fork_clock,
                                key_from_us=fork_clock(), create=True)  # fmt: skip
        stack.callback(fork_ctx.engine.dispose)
        fork = start_city(fork_ctx, fork_clock)
        assert fork.checkpoint() == (size_a, note_a)  # the same history up to there, the same key
        fork.grow(3, "rewritten")
        fork_size, fork_note = fork.checkpoint()
        assert fork_size == size_b and fork_note != note_b
        fork_cp, true_cp = notes.open_note(fork_note, truth.keys()), notes.open_note(note_b, truth.keys())
        assert fork_cp.root != true_cp.root  # both validly signed by the city: a fork

        for w in witnesses:
            refused = post(w, fork_note, size_a, fork.proof(size_a, fork_size))  # as if the witness were at size_a
            assert (refused.status_code, refused.headers["content-type"], refused.text) == (
                409, "text/x.tlog.size", f"{size_b}\n")  # fmt: skip
            refused = post(w, fork_note, size_b, [])  # from the size the witness holds: same size, another root
            assert refused.status_code == 422 and refused.json()["code"] == "witness_inconsistent_checkpoint"
            assert "\u2014" not in refused.text
        fork.grow(2, "rewritten-2")
        longer_size, longer_note = fork.checkpoint()
        for w in witnesses:  # a longer fork whose proof cannot verify against what the witness holds
            refused = post(w, longer_note, size_b, fork.proof(size_b, longer_size))
            assert refused.status_code == 422 and refused.json()["reason"] == "bad_proof"
            assert held_checkpoint(w).text.startswith(note_b)  # nothing cosigned, nothing rolled back

        for w in witnesses:  # the evidence: two checkpoints of one size, both signed by the city's key
            evidence = httpx.get(w.url + "/evidence", timeout=10).json()["evidence"]
            assert {(e["kind"], e["tree_size"]) for e in evidence} == {("fork", size_b), ("inconsistent", longer_size)}
            (same_size,) = [e for e in evidence if e["kind"] == "fork"]
            held, sent = (notes.open_note(same_size[k], truth.keys()) for k in ("held_note", "submitted_note"))
            assert held.tree_size == sent.tree_size == size_b and held.root != sent.root
            assert (held.root, sent.root) == (true_cp.root, fork_cp.root)
            assert cosigners(same_size["held_note"], witnesses) == {w.name}
            assert w.process.stderr is not None and w.process.poll() is None

        # A rollback: a smaller tree, signed later by the real key, is refused with the size held.
        with ctx.engine.connect() as conn:
            root_a = core.merkle_root(journal.leaf_hashes(conn, CITY, size_a))
        rollback = notes.sign(CITY, size_a, root_a, clock() + 60_000_000, truth.seed())
        refused = post(witnesses[0], rollback, size_a, [])
        assert (refused.status_code, refused.text) == (409, f"{size_b}\n")
        kinds = {e["kind"] for e in httpx.get(witnesses[0].url + "/evidence", timeout=10).json()["evidence"]}
        assert "rollback" in kinds

        # An origin the witness does not follow, and signatures it cannot trust.
        delson = notes.sign("delson", 1, root_a, clock(), truth.seed())
        assert post(witnesses[1], delson, 0, []).status_code == 404
        blob = bytearray(base64.b64decode(note_b.splitlines()[-1].split(" ")[2]))
        blob[10] ^= 1
        forged = note_b.rpartition("\u2014 ")[0] + notes.signature_line(ORIGIN, bytes(blob))
        answer = post(witnesses[1], forged, size_b, [])
        assert answer.status_code == 403 and answer.json()["code"] == "witness_untrusted_checkpoint"
        stranger = notes.sign(CITY, size_b, true_cp.root, true_cp.time_us, bytes(range(32)))
        assert post(witnesses[1], stranger, size_b, []).status_code == 403  # no signature by a known key
        assert post(witnesses[1], note_b, size_b + 1, []).status_code == 400  # old size above the checkpoint's
        assert httpx.post(witnesses[1].url + "/add-checkpoint", content=b"old 01\n\n" + note_b.encode(),
                          timeout=10).status_code == 400  # fmt: skip

        # Two submissions race from the same old size, through two processes sharing one state: one wins.
        truth.grow(2, "truth-3")
        size_d, note_d = truth.checkpoint()
        truth.grow(2, "truth-4")
        size_e, note_e = truth.checkpoint()
        twin = stack.enter_context(witness_process(keys[2], tmp_path / "state2", logs))
        barrier = threading.Barrier(2)

        def racing(w: WitnessProcess, note: str, size: int) -> httpx.Response:
            body = request_body(note, size_b, truth.proof(size_b, size))
            with httpx.Client(timeout=30) as client:
                barrier.wait()
                return client.post(w.url + "/add-checkpoint", content=body)

        with ThreadPoolExecutor(2) as racers:
            answers = list(racers.map(racing, [witnesses[2], twin], [note_d, note_e], [size_d, size_e]))
        assert sorted(a.status_code for a in answers) == [200, 409]
        won = next(a for a in answers if a.status_code == 200)
        won_size = size_d if won is answers[0] else size_e
        assert next(a for a in answers if a.status_code == 409).text == f"{won_size}\n"

        # A witness restarted keeps its state.
        witnesses[0].process.terminate()
        witnesses[0].process.wait(10)
        again = stack.enter_context(witness_process(keys[0], tmp_path / "state0", logs))
        assert submit(again.url, note_d, 0, [], 30) == Answer(409, size=size_b)
        assert held_checkpoint(again).text.startswith(note_b)
        lines = list(submit(again.url, note_d, size_b, truth.proof(size_b, size_d), 30).lines)
        assert cosigners(cosignature.add(note_d, lines), [again]) == {again.name}
        assert len(httpx.get(again.url + "/evidence", timeout=10).json()["evidence"]) == 3


# --- the rules in one process: parsing, the key and logs files, and the spec's corner cases ---------


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    seed = bytes(range(32))
    public = WitnessKey("w", seed).public_key  # a log key here: the witness's own is another
    logs = parse_logs(f"{notes.vkey(ORIGIN, public)} valid_from_us=0\n")
    return Witness(WitnessKey("witness.test/w1", bytes(range(1, 33))), logs, WitnessState(tmp_path / "state"),
                   clock_s=lambda: 1_767_225_600)  # fmt: skip


def test_size_zero_needs_the_empty_root_and_old_zero_an_empty_proof(witness: Witness) -> None:
    seed = bytes(range(32))
    empty = notes.sign(CITY, 0, bytes(32), 5, seed)
    with pytest.raises(InconsistentCheckpoint, match="empty tree"):
        witness.add_checkpoint(request_body(empty, 0, []))
    first = notes.sign(CITY, 2, bytes(range(32)), 5, seed)
    with pytest.raises(InconsistentCheckpoint, match="proof is empty"):
        witness.add_checkpoint(request_body(first, 0, [bytes(32)]))
    (line,) = witness.add_checkpoint(request_body(first, 0, []))
    assert cosignature.verify(first + line, {"witness.test/w1": witness.key.public_key}) == {
        "witness.test/w1": 1_767_225_600}  # fmt: skip
    with pytest.raises(SizeConflict) as conflict:
        witness.add_checkpoint(request_body(first, 0, []))
    assert conflict.value.tree_size == 2
    assert len(witness.add_checkpoint(request_body(first, 2, []))) == 1  # the same checkpoint again: cosigned again


@pytest.mark.parametrize("body", [b"", b"old 1", b"old -1\n\n", b"old 1\nAAAA\n\n", b"\xff\n\n",
                                  b"old 0\n" + b"A" * 43 + b"=\n" * 64 + b"\n"])  # fmt: skip
def test_malformed_bodies_are_400(body: bytes) -> None:
    with pytest.raises(MalformedSubmission):
        parse_submission(body)


def test_a_submission_parses_as_the_spec_writes_it() -> None:
    proof = [bytes([n]) * 32 for n in range(63)]
    parsed = parse_submission(request_body("note\n\n— x y\n", 7, proof))
    assert (parsed.old_size, parsed.proof, parsed.note) == (7, tuple(proof), "note\n\n— x y\n")


def test_unknown_origins_and_untrusted_notes(witness: Witness) -> None:
    with pytest.raises(UnknownLog):
        witness.add_checkpoint(request_body(notes.sign("delson", 1, bytes(32), 5, bytes(range(32))), 0, []))
    with pytest.raises(UntrustedCheckpoint):
        witness.add_checkpoint(request_body(notes.sign(CITY, 1, bytes(32), 5, bytes(32)), 0, []))


def test_key_validity_in_the_logs_file_is_applied(tmp_path: Path) -> None:
    seed = bytes(range(32))
    public = WitnessKey("w", seed).public_key
    logs = parse_logs(f"{notes.vkey(ORIGIN, public)} valid_from_us=10 valid_until_us=20  # retired\n")
    witness = Witness(WitnessKey("witness.test/w1", bytes(32)), logs, WitnessState(tmp_path))
    with pytest.raises(UntrustedCheckpoint, match="not valid"):
        witness.add_checkpoint(request_body(notes.sign(CITY, 1, bytes(32), 25, seed), 0, []))
    assert witness.add_checkpoint(request_body(notes.sign(CITY, 1, bytes(32), 15, seed), 0, []))


@pytest.mark.parametrize(
    "line", ["not-a-vkey", "entraide/brossard+00000000+AQ==", "{vkey} valid_from=3", "{vkey}\n{vkey}"]
)
def test_a_wrong_logs_file_names_its_line(line: str) -> None:
    vkey = notes.vkey(ORIGIN, bytes(32))
    with pytest.raises(ValueError, match="logs line"):
        parse_logs(line.format(vkey=vkey))


def test_the_key_file_round_trips_and_refuses_a_wrong_one() -> None:
    key = WitnessKey("witness.test/w1", bytes(range(32)))
    assert parse_private_key(key.private_text()) == key
    with pytest.raises(ValueError):
        parse_private_key(key.private_text().replace("w1", "w2", 1))
    with pytest.raises(ValueError):
        parse_private_key(key.vkey())


def test_the_client_reports_refusals(tmp_path: Path) -> None:
    """`submit` against a real witness process: a refusal other than 409 is an answer with its status."""
    key = keygen(tmp_path, "witness.client.example/w1")
    logs = tmp_path / "logs.txt"
    logs.write_text(notes.vkey(ORIGIN, WitnessKey("w", bytes(range(32))).public_key) + "\n")
    with witness_process(key, tmp_path / "state", logs) as w:
        refused = submit(w.url, notes.sign("delson", 1, bytes(32), 5, bytes(range(32))), 0, [], 30)
        assert refused.status == 404 and not refused.lines
        assert httpx.get(f"{w.url}/{'0' * 64}/checkpoint", timeout=10).status_code == 404


def test_witness_logs_prints_a_citys_keys_as_logs_lines(tmp_path: Path) -> None:
    from http.server import BaseHTTPRequestHandler

    from tests.local_server import LocalServer

    vkeys = [notes.vkey(ORIGIN, bytes([n]) * 32) for n in (1, 2)]
    document = {"origin": ORIGIN, "keys": [{"vkey": vkeys[0], "valid_from_us": 1, "valid_until_us": 5},
                                           {"vkey": vkeys[1], "valid_from_us": 5, "valid_until_us": None}]}  # fmt: skip

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == f"/v1/transparency/{CITY}/keys"
            body = json.dumps(document if found else {}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = LocalServer(Keys).start()
    try:
        printed = _cli("witness", "logs", "--url", server.url, "--city", CITY)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.splitlines() == [
            f"{vkeys[0]} valid_from_us=1 valid_until_us=5",
            f"{vkeys[1]} valid_from_us=5",
        ]
        assert parse_logs(printed.stdout)[ORIGIN][notes.key_hash(ORIGIN, bytes([2]) * 32).hex()] == (
            bytes([2]) * 32,
            5,
            None,
        )
        wrong = _cli("witness", "logs", "--url", server.url, "--city", "delson")
        assert wrong.returncode == 2 and "delson" in wrong.stderr
    finally:
        server.shutdown()


def test_serve_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    key = keygen(tmp_path, "witness.open.example/w1")
    key.chmod(0o644)
    (tmp_path / "logs.txt").write_text("")
    refused = _cli("witness", "serve", "--key", str(key), "--state", str(tmp_path / "state"),
                   "--logs", str(tmp_path / "logs.txt"), "--port", str(free_port()))  # fmt: skip
    assert refused.returncode == 2 and "chmod 600" in refused.stderr


def test_the_checkpoints_job_gets_a_quorum_of_real_witnesses_to_cosign(ctx: Context, clock: Clock,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    """What `entraide serve` runs: its checkpoints job signs, submits to every configured witness
    (real `entraide witness serve` processes, one of them down), stores the verified cosignatures and
    publishes the note as witnessed once 2 of 3 have cosigned; the next checkpoint goes with a
    consistency proof from the size each witness holds."""
    import dataclasses

    from ledger.domain import witnesses as configured
    from operations.service_layer.jobs import scheduler

    city = start_city(ctx, clock)
    logs = city.logs_file(tmp_path / "logs.txt")
    keys = [keygen(tmp_path, f"witness.job{n}.example/w1") for n in range(WITNESSES)]
    with ExitStack() as stack:
        running = [stack.enter_context(witness_process(k, tmp_path / f"state{n}", logs)) for n, k in enumerate(keys)]
        running[-1].process.terminate()  # one witness is down
        running[-1].process.wait(10)
        listed = "".join(f"{notes.vkey(w.name, w.public_key, cosignature.COSIGNATURE_V1)} {w.url}\n" for w in running)
        config = configured.config(configured.parse_witnesses(listed), 2)
        ctx.settings = dataclasses.replace(ctx.settings, witnesses=config)
        ctx.__dict__.pop("witnessing", None)
        for round_ in range(2):
            clock.advance(60)
            outcome = scheduler(ctx).run_now("checkpoints")
            assert outcome.error is None and outcome.result is not None, outcome.error
            assert {k: outcome.result[k] for k in ("signed", "cosigned", "failed", "forks", "witnessed")} == {
                "signed": 1, "cosigned": 2, "failed": 1, "forks": 0, "witnessed": 1}, round_  # fmt: skip
            (published,) = [c for c in audit.latest_checkpoints(ctx.engine, config).checkpoints if c.ledger == CITY]
            assert published.witnessed and sorted(published.cosigners) == sorted(w.name for w in running[:2])
            assert cosigners(published.note, running) == {w.name for w in running[:2]}
            assert notes.open_note(published.note, city.keys()).tree_size == published.tree_size
            for w in running[:2]:  # each witness now holds exactly this checkpoint
                assert held_checkpoint(w).text.startswith(published.note.split("\n\n")[0])
            city.grow(2, f"job-{round_}")
