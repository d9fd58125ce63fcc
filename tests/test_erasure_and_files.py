"""Erasure leaves nothing that leads to the person, and the SQLite files are ours alone (security
review, findings 11 and 12).

11. After an erasure the resident's row keeps no subject, no wrapped key and no sealed data, on both
    databases, and the ledger still verifies. On SQLite the raw bytes of the database file, its
    -wal and its -shm hold no copy of the destroyed key, the subject or the sealed data
    (`secure_delete` on every connection, a WAL checkpoint after the erasure).
12. The data directory is created 0700, the database file and its -wal and -shm 0600.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from api.bootstrap import Settings, open_context
from api.cli import app as cli
from api.http.app import create_app
from community.service_layer.residents import ERASURE_DELAY_DAYS
from ledger.adapters import journal
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.audit import verify_database
from tests.world import World

SUBJECT = "alice.tremblay@courriel.example"
PERSONAL = {
    "name": "Alice Tremblay",
    "email": "alice.tremblay@courriel.example",
    "address": "12 rue des Érables, Brossard",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def sqlite_files(database: Path) -> list[Path]:
    return [database, Path(f"{database}-wal"), Path(f"{database}-shm")]


@pytest.fixture
def umask_022():
    """The common default umask, under which SQLite alone would create 0644 files."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _world(ctx, client) -> World:
    world = World(ctx, client)
    world.city("brossard")
    world.resident("bob", "brossard", points=40)  # a neighbour, who stays
    return world


def _enrol_alice(world: World) -> str:
    body = {"personal": PERSONAL, "level": "verified", "subject": SUBJECT}
    response = world.client.post("/v1/admin/residents/brossard", json=body,
                                 headers={"Authorization": f"Bearer {world.tokens['staff-brossard']}", "Idempotency-Key": "alice"})  # fmt: skip
    assert response.status_code == 201, response.text
    resident_id = response.json()["id"]
    wallet = f"citizen:{resident_id}:wallet"
    world.ctx.ledger.transfer(
        TransferRequest("brossard", "alice-earns", "earn_civic", "single", "program:budget", wallet, 250)
    )
    world.ctx.ledger.transfer(
        TransferRequest("brossard", "alice-spends", "service", "single", wallet, "services:revenue", 90)
    )
    return resident_id


def _identifying(ctx, resident_id: str) -> tuple:
    query = text("SELECT subject, wrapped_key, personal FROM residents WHERE id = :id")
    with ctx.engine.connect() as conn:
        return tuple(conn.execute(query, {"id": resident_id}).one())


def _erase(world: World, resident_id: str) -> None:
    response = world.client.post(f"/v1/admin/residents/brossard/{resident_id}/erase",
                                 headers={"Authorization": f"Bearer {world.tokens['staff-brossard']}"})  # fmt: skip
    assert response.status_code == 200, response.text


# --- 11. erasure ----------------------------------------------------------------------------------


def test_an_erased_row_holds_nothing_that_identifies_and_the_ledger_still_verifies(ctx):
    with TestClient(create_app(ctx)) as client:
        world = _world(ctx, client)
        alice = _enrol_alice(world)
        assert None not in _identifying(ctx, alice)
        _erase(world, alice)
        assert _identifying(ctx, alice) == (None, None, None)
        # The resident's own erasure: asked for, then carried out by the job once its delay is over.
        assert world.bearer("bob", "POST", "/v1/wallet/erasure").status_code == 202
        assert None not in _identifying(ctx, world.residents["bob"].id)[1:]  # his key and data, until then
        ctx.clock.advance(ERASURE_DELAY_DAYS * 86_400)
        assert ctx.residents.carry_out_erasures() == {"erased": 1, "deferred": 0}
        assert _identifying(ctx, world.residents["bob"].id) == (None, None, None)
        report = verify_database(ctx.engine)
        assert report["ok"], report["error"]
        # The ledger forgets nothing: Alice's entries stay, and the 160 points left went to breakage (Bob's 40 too).
        with ctx.engine.connect() as conn:
            assert len(journal.account_entries(conn, "brossard", [f"citizen:{alice}:wallet"])) == 3
        assert ctx.ledger.balance("brossard", f"citizen:{alice}:wallet").posted == 0
        assert ctx.ledger.balance("brossard", "breakage").posted == 160 + 40


def test_on_sqlite_no_file_keeps_a_readable_copy_of_the_erased_key(tmp_path, clock):
    database = tmp_path / "data" / "entraide.db"
    settings = Settings(data_dir=tmp_path / "data", database_url=str(database), keys_dir=tmp_path / "data" / "keys")
    ctx = open_context(settings, clock=clock, key_from_us=clock(), create=True)
    with TestClient(create_app(ctx)) as client:
        world = _world(ctx, client)
        alice = _enrol_alice(world)
        subject, wrapped_key, sealed = _identifying(ctx, alice)
        traces = {"subject": subject.encode(), "wrapped key": bytes(wrapped_key), "sealed data": bytes(sealed)}
        before = b"".join(path.read_bytes() for path in sqlite_files(database))
        assert all(value in before for value in traces.values())  # the files do hold them until the erasure

        _erase(world, alice)
        world.ctx.ledger.transfer(TransferRequest("brossard", "after", "earn_civic", "single", "program:budget",
                                                  world.residents["bob"].wallet, 5))  # fmt: skip
        for path in sqlite_files(database):
            raw = path.read_bytes()
            for name, value in traces.items():
                assert value not in raw, f"{path.name} still holds the {name}"
        with ctx.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        assert verify_database(ctx.engine)["ok"]
    ctx.engine.dispose()


# --- 12. file modes -----------------------------------------------------------------------------------


def test_the_data_directory_is_created_private(db_url, tmp_path, clock, umask_022):
    data = tmp_path / "new" / "data"
    database = str(data / "entraide.db") if "://" not in db_url else db_url
    ctx = open_context(
        Settings(data_dir=data, database_url=database, keys_dir=data / "keys"),
        clock=clock,
        key_from_us=clock(),
        create=True,
    )
    assert mode(data) == 0o700 and mode(tmp_path / "new") == 0o700 and mode(data / "keys") == 0o700
    ctx.engine.dispose()


def test_sqlite_files_are_created_0600(tmp_path, clock, umask_022):
    data = tmp_path / "data"
    database = data / "entraide.db"
    ctx = open_context(
        Settings(data_dir=data, database_url=str(database), keys_dir=data / "keys"),
        clock=clock,
        key_from_us=clock(),
        create=True,
    )
    assert mode(data) == 0o700
    assert {path.name: mode(path) for path in sqlite_files(database)} == {p.name: 0o600 for p in sqlite_files(database)}
    with TestClient(create_app(ctx)) as client:
        world = _world(ctx, client)
        _enrol_alice(world)
        for n in range(30):
            world.ctx.ledger.transfer(TransferRequest("brossard", f"w{n}", "earn_civic", "single", "program:budget",
                                                      world.residents["bob"].wallet, 1))  # fmt: skip
    assert {path.name: mode(path) for path in sqlite_files(database)} == {p.name: 0o600 for p in sqlite_files(database)}
    ctx.engine.dispose()


def test_a_database_made_readable_by_an_older_version_is_tightened(tmp_path, clock, umask_022):
    database = tmp_path / "old.db"
    older = sqlite3.connect(database)  # kept open, so that its -wal and -shm stay
    older.execute("PRAGMA journal_mode=WAL")
    older.execute("CREATE TABLE t (x)")
    older.commit()
    assert all(mode(path) == 0o644 for path in sqlite_files(database))
    ctx = open_context(Settings(data_dir=tmp_path / "data", database_url=str(database), keys_dir=tmp_path / "keys"),
                       clock=clock, key_from_us=clock(), create=True)  # fmt: skip
    assert all(mode(path) == 0o600 for path in sqlite_files(database))
    ctx.engine.dispose()
    older.close()


def test_the_cli_creates_private_files(tmp_path, umask_022):
    data = tmp_path / "data"
    for command in (["init", "--history-days", "5"], ["ledger", "simulate", "--transfers", "300", "--days", "5"]):
        result = CliRunner().invoke(cli, [*command, "--data-dir", str(data)])
        assert result.exit_code == 0, result.output
    assert mode(data) == 0o700 and mode(data / "entraide.db") == 0o600
    assert all(mode(path) == 0o600 for path in sqlite_files(data / "entraide.db") if path.exists())


def test_concurrent_first_uses_of_a_key_file_read_one_whole_key(tmp_path: Path) -> None:
    """Threads (as concurrent enrolments do) that need a city's key before it exists all get the
    same whole key: none reads the file while another is still writing it."""
    import threading

    from community.adapters.secrets import CommunityKeys

    for round_ in range(20):
        directory = tmp_path / f"round-{round_}"
        start, found, errors = threading.Barrier(8), [], []

        def use(directory: Path = directory, start: threading.Barrier = start, found: list = found,
                errors: list = errors) -> None:  # fmt: skip
            start.wait()
            try:
                found.append(CommunityKeys(directory)._load_or_create("kek-brossard.key", lambda: os.urandom(32)))
            except Exception as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=use) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not errors and len(found) == 8 and len(set(found)) == 1 and len(found[0]) == 32
        assert [p.name for p in (directory / "community").iterdir()] == ["kek-brossard.key"]  # no temporary left
        assert (directory / "community" / "kek-brossard.key").stat().st_mode & 0o777 == 0o600
