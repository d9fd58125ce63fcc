"""Tampering with an export is detected every time and the first bad sequence is named (invariant 5).

One export is made once per module from a simulated multi-city journal (with a key rotation); each
case tampers with a copy at many positions across ledgers, and checks the verdict through the
service and through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.bootstrap import Settings, open_context
from api.cli import app
from ledger import oracle
from ledger.service_layer import audit, simulation
from ledger.simulate import Simulator

START_US = 1_767_225_600_000_000
ATTACKER_SEED = hashlib.sha256(b"someone else's key").digest()
POSITIONS = 12


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[list[dict], Path]:
    base = tmp_path_factory.mktemp("export")
    ctx = open_context(Settings(base, str(base / "db.sqlite"), base / "keys"), key_from_us=START_US, create=True)
    sim = Simulator(5, START_US, days=20)
    ctx.ledger.clock = sim.clock
    simulation.run(ctx.ledger, sim, 3000, batch_size=200, keystore=ctx.keystore)
    audit.export(ctx.engine, base / "ledger.jsonl", base / "keys.json")
    ctx.engine.dispose()
    lines = [json.loads(line) for line in (base / "ledger.jsonl").read_text().splitlines()]
    assert len(lines) > 3000 and len(json.loads((base / "keys.json").read_text())["keys"]) == 2
    return lines, base / "keys.json"


def _write(tmp_path: Path, lines: list[dict]) -> Path:
    path = tmp_path / "tampered.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


def _positions(lines: list[dict], seed: int) -> list[int]:
    """Interior positions (not a ledger's first or last entry), spread over ledgers."""
    interior = [
        i for i in range(1, len(lines) - 1) if lines[i - 1]["ledger"] == lines[i]["ledger"] == lines[i + 1]["ledger"]
    ]
    return random.Random(seed).sample(interior, POSITIONS)


def _resign(entry: dict, seed: bytes, key_id: str | None = None) -> dict:
    entry = dict(entry)
    entry["hash"] = oracle.entry_hash(tuple(entry[f] for f in oracle.ENTRY_FIELDS))
    entry["signature"] = oracle.sign_hashes([entry["hash"]], seed)[0]
    entry["key_id"] = key_id or oracle.key_id(oracle.public_key(seed))
    return entry


def changed_amount(lines, i):
    lines[i] = {**lines[i], "amount": lines[i]["amount"] + 100}
    return lines[i]["sequence"], {"hash_mismatch"}


def removed_entry(lines, i):
    sequence = lines.pop(i)["sequence"]
    return sequence, {"gap"}


def swapped_entries(lines, i):
    sequence = lines[i]["sequence"]
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return sequence, {"reordered"}


def inserted_entry(lines, i):
    forged = {**lines[i], "transfer_id": "ab" * 16, "amount": 5000, "prev_hash": lines[i - 1]["hash"]}
    lines.insert(i, _resign(forged, ATTACKER_SEED))
    return lines[i]["sequence"], {"unknown_key"}


def resigned_with_unknown_key(lines, i):
    lines[i] = _resign({**lines[i], "amount": lines[i]["amount"] + 1}, ATTACKER_SEED)
    return lines[i]["sequence"], {"unknown_key"}


def resigned_under_a_known_key_id(lines, i):
    lines[i] = _resign({**lines[i], "amount": lines[i]["amount"] + 1}, ATTACKER_SEED, key_id=lines[i]["key_id"])
    return lines[i]["sequence"], {"bad_signature"}


def duplicated_entry(lines, i):
    lines.insert(i + 1, dict(lines[i]))
    return lines[i]["sequence"], {"duplicate"}


CASES = [changed_amount, removed_entry, swapped_entries, inserted_entry, resigned_with_unknown_key,
         resigned_under_a_known_key_id, duplicated_entry]  # fmt: skip


def test_intact_export_verifies(export, tmp_path):
    lines, keys = export
    report = audit.verify_export(_write(tmp_path, lines), keys)
    assert report["ok"] and report["entries"] == len(lines)
    result = CliRunner().invoke(
        app, ["ledger", "verify", "--export", str(_write(tmp_path, lines)), "--keys", str(keys)]
    )
    assert result.exit_code == 0 and "intact" in result.output


@pytest.mark.parametrize("tamper", CASES, ids=lambda f: f.__name__)
def test_tampering_is_detected_at_the_first_bad_sequence(export, tmp_path, tamper):
    original, keys = export
    for n, i in enumerate(_positions(original, seed=sum(tamper.__name__.encode()))):
        lines = [dict(x) for x in original]
        ledger = lines[i]["ledger"]
        sequence, codes = tamper(lines, i)
        path = _write(tmp_path, lines)
        report = audit.verify_export(path, keys)
        assert not report["ok"]
        error = report["error"]
        assert (error["ledger"], error["sequence"]) == (ledger, sequence) and error["code"] in codes, (
            tamper.__name__,
            i,
            error,
        )
        if n == 0:  # and once through the CLI: exit 1, the ledger and the sequence named
            result = CliRunner().invoke(app, ["ledger", "verify", "--export", str(path), "--keys", str(keys)])
            assert result.exit_code == 1
            assert f"ledger {ledger}, sequence {sequence}: {error['code']}" in result.output


def test_a_keys_file_missing_a_key_is_detected(export, tmp_path):
    lines, keys = export
    doc = json.loads(keys.read_text())
    retired = doc["keys"][0]["key_id"]
    doc["keys"] = doc["keys"][1:]
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(doc))
    first = next(x for x in lines if x["key_id"] == retired)
    error = audit.verify_export(_write(tmp_path, lines), path)["error"]
    assert (error["code"], error["ledger"], error["sequence"]) == ("unknown_key", first["ledger"], first["sequence"])


def test_a_key_used_outside_its_validity_is_detected(export, tmp_path):
    lines, keys = export
    doc = json.loads(keys.read_text())
    doc["keys"][0]["valid_until_us"] = doc["keys"][0]["valid_from_us"] + 1
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(doc))
    error = audit.verify_export(_write(tmp_path, lines), path)["error"]
    assert error["code"] == "key_not_valid"


def test_malformed_export_is_a_clear_error(export, tmp_path):
    lines, keys = export
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(lines[0]) + "\n{not json\n")
    result = CliRunner().invoke(app, ["ledger", "verify", "--export", str(path), "--keys", str(keys)])
    assert result.exit_code == 2 and "line 2" in result.output
