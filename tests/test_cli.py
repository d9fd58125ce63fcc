"""The `entraide` CLI end to end, on both databases: simulate, verify, export, keys, checkpoints, proofs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_simulate_verify_export_checkpoint_prove(db_url, tmp_path):
    data = str(tmp_path / "data")
    common = ["--db", db_url, "--data-dir", data]
    output = run("ledger", "simulate", *common, "--transfers", "800", "--seed", "3", "--days", "30", "--batch-size", "200")
    assert "transfers in" in output and "committed" in output
    keyfiles = list((tmp_path / "data" / "keys").glob("*.pem"))
    assert len(keyfiles) == 2  # generated on first run, rotated halfway
    assert all(stat.S_IMODE(os.stat(k).st_mode) == 0o600 for k in keyfiles)

    assert "intact" in run("ledger", "verify", *common)
    run("ledger", "export", *common, "--out", str(tmp_path / "l.jsonl"), "--keys-out", str(tmp_path / "keys.json"))
    keys = json.loads((tmp_path / "keys.json").read_text())
    assert keys["format"] == "entraide.keys/1" and len(keys["keys"]) == 2
    first = json.loads((tmp_path / "l.jsonl").read_text().splitlines()[0])
    assert {"ledger", "sequence", "amount", "debit_account", "credit_account", "prev_hash", "hash", "key_id", "signature"} <= first.keys()
    assert "intact" in run("ledger", "verify", "--export", str(tmp_path / "l.jsonl"), "--keys", str(tmp_path / "keys.json"))

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
    run("ledger", "prove", *common, "--ledger", ledger, "--from", str(old_size), "--to", str(new_size), "--out", str(tmp_path / "con.json"))
    assert "append-only" in run("ledger", "verify-proof", str(tmp_path / "con.json"), "--keys", str(tmp_path / "keys.json"))

    proof["entry"]["amount"] += 1  # a doctored entry
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    assert "does not verify" in run("ledger", "verify-proof", str(tmp_path / "bad.json"), "--keys", str(tmp_path / "keys.json"), code=1)
    proof = json.loads((tmp_path / "con.json").read_text())
    proof["path"][0] = "00" * 32
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    run("ledger", "verify-proof", str(tmp_path / "bad.json"), "--keys", str(tmp_path / "keys.json"), code=1)


def test_keys_rotate_keeps_old_keys_verifiable(db_url, tmp_path):
    common = ["--db", db_url, "--data-dir", str(tmp_path / "data")]
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
    output = run("ledger", "verify", "--export", str(tmp_path / "missing.jsonl"), "--keys", str(tmp_path / "nokeys.json"), code=2)
    assert "cannot read keys file" in output
    output = run("ledger", "prove", "--db", str(tmp_path / "x.db"), "--data-dir", str(tmp_path), "--ledger", "brossard",
                 "--sequence", "1", "--out", str(tmp_path / "p.json"), code=2)  # fmt: skip
    assert "no checkpoint" in output
    output = run("ledger", "verify", "--db", "postgresql://nobody@127.0.0.1:1/none", "--data-dir", str(tmp_path), code=2)
    assert output.startswith("error: database:")


def test_the_installed_command_runs():
    result = subprocess.run([sys.executable, "-m", "api.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "ledger" in result.stdout
