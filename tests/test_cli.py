"""The `entraide` CLI end to end, on both databases: simulate, verify, export, keys, checkpoints, proofs;
only `init` and `demo` create a database."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import typer
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from api.cli import app
from ledger.adapters.database import MIGRATIONS, display_url, make_engine, normalize_url, schema_revision
from tests.conftest import PG_URL

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_simulate_verify_export_checkpoint_prove(db_url, tmp_path):
    data = str(tmp_path / "data")
    common = ["--db", db_url, "--data-dir", data]
    run("init", *common, "--history-days", "30")  # the first key may sign the simulated month
    output = run(
        "ledger", "simulate", *common, "--transfers", "800", "--seed", "3", "--days", "30", "--batch-size", "200"
    )
    assert "transfers in" in output and "committed" in output
    keyfiles = list((tmp_path / "data" / "keys").glob("*.pem"))
    assert len(keyfiles) == 2  # generated on first run, rotated halfway
    assert all(stat.S_IMODE(os.stat(k).st_mode) == 0o600 for k in keyfiles)

    assert "intact" in run("ledger", "verify", *common)
    run("ledger", "export", *common, "--out", str(tmp_path / "l.jsonl"), "--keys-out", str(tmp_path / "keys.json"))
    keys = json.loads((tmp_path / "keys.json").read_text())
    assert keys["format"] == "entraide.keys/1" and len(keys["keys"]) == 2
    first = json.loads((tmp_path / "l.jsonl").read_text().splitlines()[0])
    assert {
        "ledger",
        "sequence",
        "amount",
        "debit_account",
        "credit_account",
        "prev_hash",
        "hash",
        "key_id",
        "signature",
    } <= first.keys()
    assert "intact" in run(
        "ledger", "verify", "--export", str(tmp_path / "l.jsonl"), "--keys", str(tmp_path / "keys.json")
    )

    run("ledger", "checkpoint", *common, "--out", str(tmp_path / "cp1.json"))
    old_note = json.loads((tmp_path / "cp1.json").read_text())["checkpoints"][0]
    old_size = int(old_note.splitlines()[1])
    ledger = old_note.splitlines()[0].split("/")[1]
    run("ledger", "simulate", *common, "--transfers", "300", "--seed", "4", "--days", "1")
    run("ledger", "checkpoint", *common)
    new_size = old_size + 1
    output = run("ledger", "prove", *common, "--ledger", ledger, "--sequence", "2", "--out", str(tmp_path / "inc.json"))
    assert "inclusion" in output
    run("ledger", "export", *common, "--out", str(tmp_path / "l2.jsonl"), "--keys-out", str(tmp_path / "keys.json"))
    assert "valid" in run("ledger", "verify-proof", str(tmp_path / "inc.json"), "--keys", str(tmp_path / "keys.json"))

    proof = json.loads((tmp_path / "inc.json").read_text())
    new_size = proof["tree_size"]
    assert new_size > old_size
    run(
        "ledger",
        "prove",
        *common,
        "--ledger",
        ledger,
        "--from",
        str(old_size),
        "--to",
        str(new_size),
        "--out",
        str(tmp_path / "con.json"),
    )
    assert "append-only" in run(
        "ledger", "verify-proof", str(tmp_path / "con.json"), "--keys", str(tmp_path / "keys.json")
    )

    proof["entry"]["amount"] += 1  # a doctored entry
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    assert "does not verify" in run(
        "ledger", "verify-proof", str(tmp_path / "bad.json"), "--keys", str(tmp_path / "keys.json"), code=1
    )
    proof = json.loads((tmp_path / "con.json").read_text())
    proof["path"][0] = "00" * 32
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    run("ledger", "verify-proof", str(tmp_path / "bad.json"), "--keys", str(tmp_path / "keys.json"), code=1)


def test_keys_rotate_keeps_old_keys_verifiable(db_url, tmp_path):
    common = ["--db", db_url, "--data-dir", str(tmp_path / "data")]
    run("init", *common, "--history-days", "2")
    run("ledger", "simulate", *common, "--transfers", "200", "--days", "2")
    output = run("ledger", "keys", *common, "--rotate")
    assert "rotated" in output
    run("ledger", "simulate", *common, "--transfers", "200", "--days", "1", "--seed", "9")
    listed = run("ledger", "keys", *common)
    assert listed.count("active") == 1
    assert "intact" in run("ledger", "verify", *common)


def test_errors_are_one_clear_line(tmp_path):
    output = run("ledger", "verify", "--export", str(tmp_path / "missing.jsonl"), code=2)
    assert "needs --keys" in output and "Traceback" not in output
    output = run(
        "ledger", "verify", "--export", str(tmp_path / "missing.jsonl"), "--keys", str(tmp_path / "nokeys.json"), code=2
    )
    assert "cannot read keys file" in output
    run("init", "--db", str(tmp_path / "x.db"), "--data-dir", str(tmp_path))
    output = run("ledger", "prove", "--db", str(tmp_path / "x.db"), "--data-dir", str(tmp_path), "--ledger", "brossard",
                 "--sequence", "1", "--out", str(tmp_path / "p.json"), code=2)  # fmt: skip
    assert "no checkpoint" in output
    output = run(
        "ledger", "verify", "--db", "postgresql://nobody@127.0.0.1:1/none", "--data-dir", str(tmp_path), code=2
    )
    assert output.startswith("error: database:")


def test_the_installed_command_runs():
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "ledger" in result.stdout


# --- only `init` and `demo` create a database ------------------------------------------------------

CREATORS = {("init",), ("demo",)}
VALUES = {"city": "brossard", "ledger": "brossard", "period": "2026-01", "points": "10", "key": "k", "name": "x",
          "merchant_id": "m", "category": "food", "org_id": "o", "role": "staff", "subject": "s", "fmt": "csv",
          "amount_cents": "100", "ref_period": "2026-01", "decision": "confirm"}  # fmt: skip


def commands_on_a_database(group=None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command (and command group) that takes --db, walked from the app itself, so that a
    command added later is covered too."""
    group = group or typer.main.get_command(app)
    context = typer.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if hasattr(command, "list_commands"):  # a group
            yield from commands_on_a_database(command, (*path, name))
        if any(p.name == "db" for p in command.params) and (*path, name) not in CREATORS:
            yield (*path, name)


def arguments(path: tuple[str, ...], tmp_path: Path) -> list[str]:
    """Values for the command's required parameters, valid enough to reach the database."""
    group = typer.main.get_command(app)
    command = group
    for name in path:
        command = command.get_command(typer.Context(command), name)
    program = tmp_path / "inputs" / "program.json"
    program.parent.mkdir(exist_ok=True)
    program.write_text(json.dumps({"city": "brossard"}))
    args: list[str] = []
    for p in command.params:
        if not p.required:
            continue
        value = VALUES.get(p.name) or (str(program) if p.name == "file" else str(tmp_path / "inputs" / p.name))
        value = "expire_holds" if path == ("jobs", "run") else value
        args += [value] if p.param_type_name == "argument" else [p.opts[0], value]
    return args


def nothing_there(db_url: str) -> bool:
    """No file (nor its journal) for SQLite; no table in the test's schema for PostgreSQL."""
    if "://" not in db_url:
        return not any(Path(db_url).parent.glob(Path(db_url).name + "*")) if Path(db_url).parent.exists() else True
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()")
            )
            return tables.scalar_one() == 0
    finally:
        engine.dispose()


def refused(output: str, db_url: str) -> bool:
    lines = output.strip().splitlines()
    return (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and display_url(db_url) in lines[0]
        and "`entraide init`" in lines[0]
    )


def test_every_command_refuses_a_database_that_is_not_there(db_url, tmp_path):
    """SQLite: a path where no file is; PostgreSQL: a schema without ours. Only init and demo create."""
    common = ["--db", db_url, "--data-dir", str(tmp_path / "data")]
    paths = sorted(commands_on_a_database())
    assert {("serve",), ("ledger", "verify"), ("admin", "program-show"), ("audit", "verify"), ("settlement", "close"),
            ("expiry", "run"), ("opendata", "export"), ("search", "status"), ("jobs",), ("jobs", "run")} <= set(paths)  # fmt: skip
    for path in paths:
        if path == ("serve",):  # would serve instead of exiting, were it to open the database: a process with a timeout
            result = subprocess.run(
                [sys.executable, "-m", "api.cli", *path, *common],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            code, output = result.returncode, result.stderr
        else:
            result = runner.invoke(app, [*path, *arguments(path, tmp_path), *common])
            code, output = result.exit_code, result.output
        assert code == 2 and refused(output, db_url), (path, output)
        assert nothing_there(db_url), path
    assert not (tmp_path / "data" / "keys").exists()  # no signing key either


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True))
def test_a_mistyped_database_name_is_refused_and_nothing_appears(db_url, tmp_path, name):
    """Any name: a SQLite path in a directory that does not exist, or a PostgreSQL database the
    server does not have (the URL's password is never shown)."""
    if "://" not in db_url:
        typo = str(tmp_path / f"typo-{name}" / "entraide.db")
        output = run("ledger", "verify", "--db", typo, "--data-dir", str(tmp_path / "d"), code=2)
        assert refused(output, typo) and not (tmp_path / f"typo-{name}").exists()
        return
    database = f"entraide_typo_{name}"
    typo = (
        make_url(normalize_url(PG_URL)).set(database=database, password="s3cret").render_as_string(hide_password=False)
    )
    for words in (["ledger", "verify"], ["init"]):  # init makes a schema, not a server database
        output = run(*words, "--db", typo, "--data-dir", str(tmp_path / "d"), code=2)
        assert f"database '{database}' does not exist" in output and "***" in output and "s3cret" not in output, output
    admin = create_engine(normalize_url(PG_URL))
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}).first() is None
    finally:
        admin.dispose()


def test_init_creates_a_second_init_is_harmless_and_verify_wants_entries(db_url, tmp_path):
    common = ["--db", db_url, "--data-dir", str(tmp_path / "data")]
    assert run("init", *common).startswith("created ")
    assert schema_revision(db_url) is not None
    keyfiles = list((tmp_path / "data" / "keys").glob("*.pem"))
    assert len(keyfiles) == 1
    assert "already initialised" in run("init", *common)
    assert list((tmp_path / "data" / "keys").glob("*.pem")) == keyfiles
    assert run("ledger", "keys", *common).count("active") == 1

    output = run("ledger", "verify", *common, code=1)
    assert "no entries, nothing to verify" in output and "--allow-empty" in output
    assert "intact" in run("ledger", "verify", *common, "--allow-empty")
    run("ledger", "simulate", *common, "--transfers", "100", "--days", "1")
    assert "intact" in run("ledger", "verify", *common)


def test_a_database_at_an_older_revision_is_upgraded_in_place(db_url, tmp_path):
    engine = make_engine(db_url)
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
    engine.dispose()
    assert "intact" in run("ledger", "verify", "--db", db_url, "--data-dir", str(tmp_path / "d"), "--allow-empty")
    assert schema_revision(db_url) == ScriptDirectory.from_config(config).get_current_head()
