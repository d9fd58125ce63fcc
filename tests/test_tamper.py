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


INSIDER: dict[str, bytes] = {}  # key_id -> seed of the key active at the end: what an insider could sign with


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[list[dict], Path]:
    base = tmp_path_factory.mktemp("export")
    ctx = open_context(Settings(base, str(base / "db.sqlite"), base / "keys"), key_from_us=START_US, create=True)
    sim = Simulator(5, START_US, days=20)
    ctx.ledger.clock = sim.clock
    simulation.run(ctx.ledger, sim, 3000, batch_size=200, keystore=ctx.keystore)
    audit.export(ctx.engine, base / "ledger.jsonl", base / "keys.json")
    with ctx.engine.begin() as conn:
        key_id, seed, _ = ctx.signer.active(conn)
    INSIDER[key_id] = seed
    ctx.engine.dispose()
    lines = [json.loads(line) for line in (base / "ledger.jsonl").read_text().splitlines()]
    assert len(lines) > 3000 and len(json.loads((base / "keys.json").read_text())["keys"]) == 2
    return lines, base / "keys.json"


def _write(tmp_path: Path, lines: list[dict]) -> Path:
    path = tmp_path / "tampered.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


def _positions(lines: list[dict], seed: int, count: int = POSITIONS) -> list[int]:
    """Interior positions (not a ledger's first or last entry), spread over ledgers."""
    interior = [
        i for i in range(1, len(lines) - 1) if lines[i - 1]["ledger"] == lines[i]["ledger"] == lines[i + 1]["ledger"]
    ]
    return random.Random(seed).sample(interior, count)


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


# --- an insider with the active key: entries the writer would never have written ------------------


def _insider(lines: list[dict], i: int, **changes) -> tuple[str, int]:
    ((key_id, seed),) = INSIDER.items()
    lines[i] = _resign({**lines[i], **changes}, seed, key_id)
    return lines[i]["ledger"], lines[i]["sequence"]


def _rewrite(lines: list[dict], i: int, **changes) -> None:
    """The insider changes entry i and re-chains and re-signs the rest of its ledger: a consistent
    history, only the end-of-stream checks can tell."""
    ((key_id, seed),) = INSIDER.items()
    lines[i] = _resign({**lines[i], **changes}, seed, key_id)
    for j in range(i + 1, len(lines)):
        if lines[j]["ledger"] != lines[i]["ledger"]:
            break
        lines[j] = _resign({**lines[j], "prev_hash": lines[j - 1]["hash"]}, seed, key_id)


def _signed_by_insider(lines: list[dict], i: int) -> bool:
    return lines[i]["key_id"] in INSIDER and lines[i - 1]["key_id"] in INSIDER


def extra_member(lines, i):
    lines[i] = {**lines[i], "memo": "unsigned"}
    return (lines[i - 1]["ledger"], lines[i - 1]["sequence"]), "malformed_line"


def missing_member(lines, i):
    lines[i] = {k: v for k, v in lines[i].items() if k != "group"}
    return (lines[i - 1]["ledger"], lines[i - 1]["sequence"]), "malformed_line"


def float_amount(lines, i):
    lines[i] = {**lines[i], "amount": float(lines[i]["amount"])}
    return (lines[i - 1]["ledger"], lines[i - 1]["sequence"]), "malformed_line"


def transfer_id_not_hex(lines, i):
    return _insider(lines, i, transfer_id="NOT-HEX"), "invalid_entry"


def kind_outside_its_pattern(lines, i):
    return _insider(lines, i, kind="Earn Civic!"), "invalid_entry"


def account_outside_the_vocabulary(lines, i):
    return _insider(lines, i, credit_account="memo:" + lines[i]["credit_account"]), "invalid_entry"


def reused_transfer_id(lines, i):
    return _insider(lines, i, transfer_id=lines[i - 1]["transfer_id"]), "reused_transfer_id"


def time_going_back(lines, i):
    back = lines[i]["time_us"] - (lines[i - 1]["time_us"] - 1)
    expires = lines[i]["expires_at_us"]
    return _insider(lines, i, time_us=lines[i]["time_us"] - back,
                    expires_at_us=None if expires is None else expires - back), "time_reversed"  # fmt: skip


INSIDER_CASES = [extra_member, missing_member, float_amount, transfer_id_not_hex, kind_outside_its_pattern,
                 account_outside_the_vocabulary, reused_transfer_id, time_going_back]  # fmt: skip


def _verdicts(path: Path, keys: Path, checkpoints: Path | None = None) -> tuple[dict, dict]:
    """The service's (Rust) report and the oracle's, on the same files."""
    rust = audit.verify_export(path, keys, checkpoints)
    keys_doc = audit.load_keys_document(keys)
    cps = [] if checkpoints is None else audit.load_checkpoints(checkpoints, keys_doc)
    return rust, oracle.verify_export(str(path), audit.verifier_keys(keys_doc), cps)


def _named(report: dict) -> tuple[str, int, str]:
    error = report["error"]
    return error["ledger"], error["sequence"], error["code"]


@pytest.mark.parametrize("tamper", INSIDER_CASES, ids=lambda f: f.__name__)
def test_entries_the_writer_never_writes_are_refused(export, tmp_path, tamper):
    original, keys = export
    candidates = [i for i in _positions(original, seed=1, count=400) if _signed_by_insider(original, i)]
    for i in candidates[:4]:
        lines = [dict(x) for x in original]
        (ledger, sequence), code = tamper(lines, i)
        rust, py = _verdicts(_write(tmp_path, lines), keys)
        assert _named(rust) == _named(py) == (ledger, sequence, code), (tamper.__name__, i, rust["error"], py["error"])
    assert len(candidates) >= 4


def _find(lines: list[dict], predicate) -> int:
    return next(i for i, x in enumerate(lines) if x["key_id"] in INSIDER and predicate(x))


def test_refunds_beyond_or_of_nothing_are_refused(export, tmp_path):
    original, keys = export
    i = _find(original, lambda x: x["kind"] == "refund")
    target = next(
        x for x in original if x["ledger"] == original[i]["ledger"] and x["transfer_id"] == original[i]["ref"]
    )
    for changes in ({"amount": target["amount"] + 1}, {"ref": "ee" * 16}):
        lines = [dict(x) for x in original]
        ledger, sequence = _insider(lines, i, **changes)
        rust, py = _verdicts(_write(tmp_path, lines), keys)
        assert _named(rust) == _named(py) == (ledger, sequence, "bad_reference"), changes


def test_a_capture_of_another_kind_than_its_hold_is_refused(export, tmp_path):
    original, keys = export
    i = _find(original, lambda x: x["phase"] == "post")
    lines = [dict(x) for x in original]
    ledger, sequence = _insider(lines, i, kind="service")
    rust, py = _verdicts(_write(tmp_path, lines), keys)
    assert _named(rust) == _named(py) == (ledger, sequence, "bad_reference")


def test_a_linked_group_without_its_other_half_is_refused(export, tmp_path):
    original, keys = export
    halves: dict[str, list[int]] = {}
    for i, x in enumerate(original):
        if x["group"] is not None:
            halves.setdefault(x["group"], []).append(i)
    first, second = next(v for v in halves.values() if len(v) == 2 and all(original[i]["key_id"] in INSIDER for i in v))
    assert original[first]["ledger"] != original[second]["ledger"]  # a cross-city transfer, through interop accounts
    lines = [dict(x) for x in original]
    _rewrite(lines, second, group="ff" * 16)  # the second half now belongs to a group of its own
    rust, py = _verdicts(_write(tmp_path, lines), keys)
    assert _named(rust) == _named(py) == (original[first]["ledger"], original[first]["sequence"], "incomplete_group")
    lines = [dict(x) for x in original]
    _rewrite(lines, second, amount=original[second]["amount"] - 1)  # both halves present, the amounts differ
    rust, py = _verdicts(_write(tmp_path, lines), keys)
    assert _named(rust) == _named(py) == (original[first]["ledger"], original[first]["sequence"], "incomplete_group")


def test_the_intact_export_gets_the_same_report_from_the_oracle(export, tmp_path):
    lines, keys = export
    rust, py = _verdicts(_write(tmp_path, lines), keys)
    assert rust["ok"] and py["ok"] and rust["entries"] == py["entries"] == len(lines)
    assert {n: (c["head_sequence"], c["head_hash"]) for n, c in rust["ledgers"].items()} == {
        n: (c["head_sequence"], c["head_hash"]) for n, c in py["ledgers"].items()
    }


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


def test_a_malformed_line_is_named_by_its_number_and_the_entry_before_it(export, tmp_path):
    lines, keys = export
    for bad in (
        "{not json",
        "[1, 2]",
        '"text"',
        json.dumps({**lines[1], "v": 2}),
        json.dumps(lines[1])[:-1] + ', "amount": 1}',
    ):
        path = tmp_path / "broken.jsonl"
        path.write_text(json.dumps(lines[0]) + "\n\n" + bad + "\n" + json.dumps(lines[1]) + "\n")
        rust, py = _verdicts(path, keys)
        assert _named(rust) == _named(py) == (lines[0]["ledger"], 1, "malformed_line"), (bad, rust["error"])
        assert rust["error"]["detail"].startswith("line 3: ") and rust["entries"] == 1
    result = CliRunner().invoke(app, ["--lang", "en", "ledger", "verify", "--export", str(path), "--keys", str(keys)])
    assert result.exit_code == 1
    assert f"ledger {lines[0]['ledger']}, sequence 1: malformed_line: line 3: " in result.output
    path.write_text("{not json\n")  # nothing before it: no ledger, sequence 0
    assert _named(audit.verify_export(path, keys)) == ("", 0, "malformed_line")


def test_an_earlier_bad_entry_wins_over_a_later_malformed_line(export, tmp_path):
    lines, keys = export
    tampered = [dict(x) for x in lines[:5]]
    tampered[2]["amount"] += 1
    path = tmp_path / "broken.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in tampered) + "{not json\n")
    rust, py = _verdicts(path, keys)
    assert _named(rust) == _named(py) == (lines[2]["ledger"], lines[2]["sequence"], "hash_mismatch")


# --- truncation: an export must reach every signed checkpoint -----------------------------------


def test_an_export_shorter_than_or_disagreeing_with_a_signed_checkpoint_is_refused(ctx, tmp_path):
    sim = Simulator(7, START_US, days=3)
    ctx.ledger.clock = sim.clock
    simulation.run(ctx.ledger, sim, 300, batch_size=50, keystore=ctx.keystore)
    made = audit.make_checkpoints(ctx.engine, ctx.signer, clock=sim.clock)
    made_at = {c["ledger"]: c["tree_size"] for c in made}
    audit.export(ctx.engine, tmp_path / "ledger.jsonl", tmp_path / "keys.json")
    with ctx.engine.begin() as conn:
        key_id, seed, _ = ctx.signer.active(conn)
    keys = tmp_path / "keys.json"
    notes_file, served_file = tmp_path / "checkpoints.json", tmp_path / "served.json"
    notes_file.write_text(json.dumps({"checkpoints": [c["note"] for c in made]}))  # `ledger checkpoint --out`
    served_file.write_text(json.dumps({"checkpoints": [{"ledger": c["ledger"], "note": c["note"]} for c in made]}))
    lines = [json.loads(x) for x in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    for checkpoints in (notes_file, served_file):
        rust, py = _verdicts(tmp_path / "ledger.jsonl", keys, checkpoints)
        assert rust["ok"] and py["ok"], (rust["error"], py["error"])

    ledger = sorted(made_at)[1]
    size = made_at[ledger]
    dropped = [x for x in lines if not (x["ledger"] == ledger and x["sequence"] > size - 2)]
    rust, py = _verdicts(_write(tmp_path, dropped), keys, notes_file)
    assert _named(rust) == _named(py) == (ledger, size - 2, "truncated")
    assert f"the export ends at #{size - 2}, a signed checkpoint has size {size}" in rust["error"]["detail"]
    result = CliRunner().invoke(app, ["--lang", "en", "ledger", "verify", "--export", str(_write(tmp_path, dropped)),
                                      "--keys", str(keys), "--checkpoints", str(served_file)])  # fmt: skip
    assert result.exit_code == 1 and f"ledger {ledger}, sequence {size - 2}: truncated" in result.output
    # Without the checkpoints the shorter export is consistent in itself: this is why they are needed.
    assert audit.verify_export(_write(tmp_path, dropped), keys)["ok"]

    # The operator rewrites the ledger's last entry and signs it with the real key: a fork of size `size`.
    forked = [dict(x) for x in lines]
    last = max(i for i, x in enumerate(forked) if x["ledger"] == ledger)
    expires = forked[last]["expires_at_us"]
    forked[last] = _resign({**forked[last], "time_us": forked[last]["time_us"] + 1,
                            "expires_at_us": None if expires is None else expires + 1}, seed, key_id)  # fmt: skip
    rust, py = _verdicts(_write(tmp_path, forked), keys, notes_file)
    assert _named(rust) == _named(py) == (ledger, size, "checkpoint_mismatch")
    assert audit.verify_export(_write(tmp_path, forked), keys)["ok"]

    # A checkpoint whose signature does not verify is not evidence of anything: the file is refused.
    bad = json.loads(notes_file.read_text())
    bad["checkpoints"][0] = bad["checkpoints"][0].replace(
        f"\n{made[0]['tree_size']}\n", f"\n{made[0]['tree_size'] + 1}\n"
    )
    notes_file.write_text(json.dumps(bad))
    result = CliRunner().invoke(app, ["--lang", "en", "ledger", "verify", "--export", str(tmp_path / "ledger.jsonl"),
                                      "--keys", str(keys), "--checkpoints", str(notes_file)])  # fmt: skip
    assert result.exit_code == 2 and "checkpoint 0" in result.output
