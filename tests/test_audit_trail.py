"""The audit trail (finding 5 of the security review): append-only in the database, hash-chained per
city and signed by the ledger's key, so that an edited, removed or reordered record is found by
`entraide audit verify`, from the database or from an auditor's export. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import msgspec
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from api.cli import app
from ledger.adapters.database import MIGRATIONS, make_engine, upgrade
from ledger.service_layer import audit, audit_trail
from ledger.service_layer.keys import rotate
from tests.test_journal_db import behind_the_triggers

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def actions(ctx, city: str = "brossard", n: int = 6) -> None:
    """A program, a budget, members: each one audit record, several cities interleaved."""
    from community.domain.program import Program

    for other in (city, "delson"):
        ctx.programs.configure(Program(city=other), "staff:alice")
    for i in range(n):
        ctx.merchants.add(city, f"m{i}", f"Commerce {i}", "staff:alice", key=f"m{i}", category="food")
    ctx.organizations.add("delson", "club", "Club", "staff:bob", key="club")


def _tamper(ctx, statement: str) -> None:
    behind_the_triggers(ctx, "audit_log", statement)


def test_records_are_chained_signed_and_verify(ctx):
    actions(ctx)
    report = audit_trail.verify_database(ctx.engine)
    assert report["ok"], report
    assert report["cities"]["brossard"]["records"] == 7 and report["cities"]["delson"]["records"] == 2
    entries = msgspec.to_builtins(audit_trail.page(ctx.engine, "brossard", 0, 100).entries)
    assert [e["seq"] for e in entries] == list(range(1, 8))
    assert entries[1]["prev_hash"] == entries[0]["hash"] and all(e["signature"] and e["key_id"] for e in entries)
    assert entries[1]["action"] == "merchant.add" and entries[1]["after"]["name"] == "Commerce 0"


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'staff:mallory'",
    "DELETE FROM audit_log WHERE seq = 2",
    "DELETE FROM audit_log",
])  # fmt: skip
def test_database_refuses_to_change_the_trail(ctx, statement):
    actions(ctx, n=2)
    with pytest.raises(DBAPIError, match="append-only"), ctx.engine.begin() as conn:
        conn.execute(text(statement))
    assert audit_trail.verify_database(ctx.engine)["ok"]


@pytest.mark.parametrize(("statement", "seq", "code"), [
    ("UPDATE audit_log SET actor = 'staff:mallory' WHERE city = 'brossard' AND seq = 3", 3, "hash_mismatch"),
    ("UPDATE audit_log SET after = '{\"name\": \"x\"}' WHERE city = 'brossard' AND seq = 4", 4, "hash_mismatch"),
    ("DELETE FROM audit_log WHERE city = 'brossard' AND seq = 2", 2, "gap"),
    ("DELETE FROM audit_log WHERE city = 'brossard' AND seq = 7", 7, "head_mismatch"),
    # Two records swapped: each carries the other's sequence number.
    ("UPDATE audit_log SET seq = CASE seq WHEN 3 THEN 1000 WHEN 4 THEN 3 END WHERE city = 'brossard' AND seq IN (3, 4)",
     3, "chain_break"),
])  # fmt: skip
def test_edited_removed_or_reordered_records_are_found(ctx, tmp_path, statement, seq, code):
    actions(ctx)
    _tamper(ctx, statement)
    if "1000" in statement:
        _tamper(ctx, "UPDATE audit_log SET seq = 4 WHERE city = 'brossard' AND seq = 1000")
    report = audit_trail.verify_database(ctx.engine)
    assert not report["ok"] and (report["error"]["city"], report["error"]["seq"], report["error"]["code"]) == (
        "brossard",
        seq,
        code,
    )
    db = ["--db", ctx.settings.database_url, "--data-dir", str(ctx.settings.data_dir)]
    output = run("audit", "verify", *db, code=1)
    assert f"brossard, record {seq}: {code}" in output
    assert "intact" in run("audit", "verify", "--city", "delson", *db)


def test_a_forged_signature_and_an_edited_export_are_found(ctx, tmp_path):
    actions(ctx)
    rotate(ctx.engine, ctx.keystore)  # records signed by a retired key stay verifiable
    ctx.merchants.add("brossard", "late", "Après rotation", "staff:alice", key="late", category="food")
    db = ["--db", ctx.settings.database_url, "--data-dir", str(ctx.settings.data_dir)]
    exported, keys = tmp_path / "audit.jsonl", tmp_path / "keys.json"
    run("audit", "export", "--out", str(exported), *db)
    keys.write_text(json.dumps(audit.keys_document(ctx.engine)))
    assert "intact" in run("audit", "verify", "--export", str(exported), "--keys", str(keys))
    assert len({json.loads(line)["key_id"] for line in exported.read_text().splitlines()}) == 2

    lines = exported.read_text().splitlines()
    record = json.loads(lines[2])
    record["signature"] = record["signature"][:-2] + ("00" if record["signature"][-2:] != "00" else "11")
    (tmp_path / "forged.jsonl").write_text("\n".join([*lines[:2], json.dumps(record), *lines[3:]]) + "\n")
    assert "record 3: bad_signature" in run(
        "audit", "verify", "--export", str(tmp_path / "forged.jsonl"), "--keys", str(keys), code=1
    )
    (tmp_path / "swapped.jsonl").write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")
    assert "record 2: gap" in run(
        "audit", "verify", "--export", str(tmp_path / "swapped.jsonl"), "--keys", str(keys), code=1
    )
    (tmp_path / "junk.jsonl").write_text(lines[0] + "\nnot json\n")
    assert "not an audit record" in run(
        "audit", "verify", "--export", str(tmp_path / "junk.jsonl"), "--keys", str(keys), code=2
    )


def test_records_written_before_the_trail_was_signed_are_chained_on_upgrade(settings, tmp_path):
    """A database at revision 0004 with audit rows: the upgrade chains them, the next signed record covers them."""
    engine = make_engine(settings.database_url)
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(text("INSERT INTO ledgers (name, head_sequence, head_hash, head_time_us, created_at_us) "
                          "VALUES ('magog', 0, :zero, 0, 1)"), {"zero": "0" * 64})  # fmt: skip
        for n in range(3):
            conn.execute(text("INSERT INTO audit_log (at_us, actor, action, city, target, before, after) "
                              "VALUES (:t, 'cli:root', 'program.configure', 'magog', 'program:magog', NULL, :after)"),
                         {"t": 10 + n, "after": json.dumps({"n": n})})  # fmt: skip
    upgrade(engine)
    engine.dispose()
    from api.bootstrap import open_context

    ctx = open_context(settings, create=True)  # the 0004 database above has no signing key yet
    report = audit_trail.verify_database(ctx.engine)
    assert report["ok"] and report["cities"]["magog"] == {
        **report["cities"]["magog"],
        "records": 3,
        "unsigned_legacy": 3,
    }
    ctx.organizations.add("magog", "club", "Club", "cli:root", key="club")
    report = audit_trail.verify_database(ctx.engine)
    assert report["ok"] and report["cities"]["magog"]["records"] == 4
    _tamper(ctx, "UPDATE audit_log SET actor = 'cli:mallory' WHERE city = 'magog' AND seq = 2")
    assert audit_trail.verify_database(ctx.engine)["error"]["code"] == "hash_mismatch"
    ctx.engine.dispose()
