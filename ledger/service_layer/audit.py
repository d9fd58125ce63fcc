"""Verification, export, checkpoints and proofs: what an auditor (or the public) runs.

Verification of an export needs public data only: the JSONL entries and the keys file. The Rust
core does the heavy part (canonical encoding, hashing, batch signature checks, replay); this module
streams data to it and compares its replay with the database's projections.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, Engine

from ledger import core
from ledger.adapters import cosignatures, journal, log_tiles
from ledger.domain import checkpoint as notes
from ledger.domain import cosignature
from ledger.domain.witnesses import WitnessConfig
from ledger.schemas import Checkpoint, Checkpoints, KeysDocument, SigningKey
from ledger.service_layer import tiles
from ledger.service_layer.entry_lines import ENTRY_KEYS, entry_json, entry_object
from ledger.service_layer.keys import Signer, now_us

if TYPE_CHECKING:
    from ledger._core import LedgerReport, Report, VerifyError

# Keys files, proofs and exported entries are JSON documents read from and written to files: open
# dicts, checked field by field where they are read.
JsonObject = dict[str, Any]

KEYS_FORMAT = "entraide.keys/1"
PROOF_FORMAT = "entraide.proof/1"
MAX_PROOF_BYTES = 1 << 20

Progress = Callable[[int], None]


def _noop(_: int) -> None:
    pass


# --- keys ---------------------------------------------------------------------------------------


def public_keys(engine: Engine) -> KeysDocument:
    """The ledger's signing keys, current and retired, as published."""
    with engine.begin() as conn:
        keys = journal.signing_keys(conn)
    return KeysDocument(format=KEYS_FORMAT, keys=[
        SigningKey(key_id=k["key_id"], algorithm=k["algorithm"], public_key=k["public_key"],
                   valid_from_us=k["valid_from_us"], valid_until_us=k["valid_until_us"]) for k in keys])  # fmt: skip


def keys_document(engine: Engine) -> JsonObject:
    """`public_keys` as the plain document a keys file holds and the verifiers read."""
    doc: JsonObject = msgspec.to_builtins(public_keys(engine))
    return doc


def load_keys_document(path: Path) -> JsonObject:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read keys file {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != KEYS_FORMAT or not isinstance(doc.get("keys"), list):
        raise ValueError(f"{path} is not an {KEYS_FORMAT} keys file")
    return doc


def verifier_keys(doc: Mapping[str, Any]) -> list[tuple[str, bytes, int, int | None]]:
    try:
        return [
            (k["key_id"], bytes.fromhex(k["public_key"]), int(k["valid_from_us"]),
             None if k["valid_until_us"] is None else int(k["valid_until_us"]))
            for k in doc["keys"] if k.get("algorithm") == "ed25519"
        ]  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed key entry: {exc}") from None


def _note_keys(doc: Mapping[str, Any]) -> dict[str, tuple[bytes, int, int | None]]:
    return {kid: (pub, start, end) for kid, pub, start, end in verifier_keys(doc)}


# --- export and verification --------------------------------------------------------------------


def entry_count(engine: Engine) -> int:
    with engine.begin() as conn:
        return journal.entry_count(conn)


def export(engine: Engine, out: Path, keys_out: Path | None, progress: Progress = _noop) -> int:
    """Write the journal as JSON Lines (ledger, then sequence) and the public keys; returns entries."""
    written = 0
    tmp = Path(f"{out}.partial")
    with engine.begin() as conn, tmp.open("wb") as handle:
        for chunk in journal.stream_entries(conn):
            handle.writelines(entry_json(row) + b"\n" for row in chunk)
            written += len(chunk)
            progress(len(chunk))
    os.replace(tmp, out)
    if keys_out is not None:
        Path(keys_out).write_text(json.dumps(keys_document(engine), indent=2) + "\n", encoding="utf-8")
    return written


def verify_export(path: Path, keys_path: Path, checkpoints_path: Path | None = None) -> Report:
    """Verify a JSONL export with public keys only (no database); with signed checkpoints, also
    that the export reaches each one's tree size with its root (docs/ledger-format.md)."""
    keys_doc = load_keys_document(keys_path)
    checkpoints = [] if checkpoints_path is None else load_checkpoints(checkpoints_path, keys_doc)
    return core.verify_export(str(path), verifier_keys(keys_doc), checkpoints)


def load_checkpoints(path: Path, keys_doc: Mapping[str, Any]) -> list[tuple[str, int, bytes]]:
    """(ledger, tree_size, root) of every note of a checkpoints file, each note's signature checked
    with the keys. The file is what `entraide ledger checkpoint --out` writes, `{"checkpoints":
    [note, ...]}`, or the answer of `GET /v1/transparency/checkpoints`, `{"checkpoints": [{"ledger":
    ..., "note": ...}, ...]}`. ValueError naming the first note that is malformed or not signed."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read checkpoints file {path}: {exc}") from None
    items = doc.get("checkpoints") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError(f'{path} has no "checkpoints" list')  # noqa: TRY004  (an unusable input file is a ValueError)
    keys = _note_keys(keys_doc)
    out = []
    for index, item in enumerate(items):
        note = item.get("note") if isinstance(item, dict) else item
        if not isinstance(note, str):
            raise ValueError(f"{path}: checkpoint {index} is neither a note nor an object with a note")  # noqa: TRY004
        try:
            cp = notes.open_note(note, keys)
        except ValueError as exc:
            raise ValueError(f"{path}: checkpoint {index}: {exc}") from None
        if isinstance(item, dict) and item.get("ledger", cp.ledger) != cp.ledger:
            raise ValueError(f"{path}: checkpoint {index} is listed for {item['ledger']!r} but signs {cp.ledger!r}")
        out.append((cp.ledger, cp.tree_size, cp.root))
    return out


def verify_database(engine: Engine, progress: Progress = _noop) -> Report:
    """Verify every chain in the database and check the projections against the replay."""
    verifier = core.ChainVerifier(verifier_keys(keys_document(engine)))
    with engine.begin() as conn:
        for chunk in journal.stream_entries(conn):
            verifier.feed(chunk)
            progress(len(chunk))
        report = verifier.finish()
        if report["ok"]:
            report["error"] = _projection_error(conn, report["ledgers"])
            report["ok"] = report["error"] is None
    return report


def _projection_error(conn: Connection, replayed: dict[str, LedgerReport]) -> VerifyError | None:
    for name, head in sorted(journal.heads(conn).items()):
        empty: LedgerReport = {
            "entries": 0, "head_sequence": 0, "head_hash": core.GENESIS_HASH, "balances": {}, "open_holds": 0
        }  # fmt: skip
        chain = replayed.get(name, empty)
        if (head.sequence, head.hash) != (chain["head_sequence"], chain["head_hash"]):
            return _error(name, chain["head_sequence"], "head_mismatch",
                          f"stored head is #{head.sequence} {head.hash[:12]}, the chain ends at #{chain['head_sequence']}")  # fmt: skip
        stored = {a: b.as_tuple() for a, b in journal.all_balances(conn, name).items()}
        replay = {a: tuple(c) for a, c in chain["balances"].items()}
        if stored != replay:
            account = sorted(a for a in stored.keys() | replay.keys() if stored.get(a) != replay.get(a))[0]
            return _error(name, head.sequence, "projection_mismatch",
                          f"stored balance of {account} is {stored.get(account)}, replay gives {replay.get(account)}")  # fmt: skip
        if len(journal.open_holds(conn, name)) != chain["open_holds"]:
            return _error(name, head.sequence, "projection_mismatch", "stored open holds differ from the replay")
    return None


def _error(ledger: str, sequence: int, code: str, detail: str) -> VerifyError:
    return {"ledger": ledger, "sequence": sequence, "code": code, "detail": detail}


# --- checkpoints and proofs ---------------------------------------------------------------------


def make_checkpoints(
    engine: Engine, signer: Signer, clock: Callable[[], int] = now_us, ledgers: Sequence[str] | None = None
) -> list[journal.CheckpointRecord]:
    """Sign a checkpoint of every ledger's current head, or of these ledgers' (skipping ledgers
    already checkpointed there).

    The chains are locked while signing, and each signed chain's clock (its head's `time_us`) moves
    to the checkpoint's time: entries appended later carry a later time, and a key rotation retires
    the old key only after every checkpoint it signed, so the key is valid at each note's time.
    """
    made = []
    with engine.begin() as conn:
        heads = journal.lock_ledgers(conn, journal.ledger_names(conn) if ledgers is None else ledgers)
        _, seed, key_from_us = signer.active(conn)
        for name, head in sorted(heads.items()):
            latest = journal.checkpoint(conn, name)
            if latest is not None and latest["tree_size"] == head.sequence:
                if log_tiles.stored_size(conn, name) < head.sequence:  # signed before it had tiles or bundles
                    tiles.record(conn, name, head.sequence, bytes.fromhex(latest["root_hash"]))
                made.append(latest)
                continue
            root = core.merkle_root(journal.leaf_hashes(conn, name, head.sequence))
            tiles.record(conn, name, head.sequence, root)
            time_us = max(clock(), head.time_us, key_from_us)
            note = notes.sign(name, head.sequence, root, time_us, seed)
            journal.add_checkpoint(conn, name, head.sequence, root.hex(), time_us, note)
            journal.set_heads(conn, {name: journal.Head(head.sequence, head.hash, time_us)})
            added = journal.checkpoint(conn, name, head.sequence)
            assert added is not None, "the checkpoint was written in this transaction"
            made.append(added)
    return made


def published_note(conn: Connection, ledger: str, tree_size: int | None = None) -> str | None:
    """The checkpoint of that size (or the latest) as published: the log's signed note with the
    witnesses' verified cosignature lines appended; None when there is no such checkpoint. Every
    reader of a checkpoint note for the public uses this (the checkpoints table is append-only, so
    the cosignatures live beside it)."""
    cp = journal.checkpoint(conn, ledger, tree_size)
    if cp is None:
        return None
    found = cosignatures.lines(conn, [(ledger, cp["tree_size"])])[(ledger, cp["tree_size"])]
    return cosignature.add(cp["note"], list(found.values()))


def latest_checkpoints(engine: Engine, witnesses: WitnessConfig | None = None) -> Checkpoints:
    """The latest signed checkpoint of every ledger, by ledger, with its cosignatures and whether the
    witnesses' quorum has cosigned it."""
    with engine.connect() as conn:
        return Checkpoints(checkpoints=published_checkpoints(conn, journal.latest_checkpoints(conn), witnesses))


def published_checkpoints(conn: Connection, records: list[journal.CheckpointRecord],
                          witnesses: WitnessConfig | None = None) -> list[Checkpoint]:  # fmt: skip
    """Checkpoints rows as published: each note with its witnesses' cosignature lines appended."""
    config = witnesses or WitnessConfig()
    cosigned = cosignatures.lines(conn, [(c["ledger"], c["tree_size"]) for c in records])
    return [
        Checkpoint(ledger=c["ledger"], tree_size=c["tree_size"], root_hash=c["root_hash"], time_us=c["time_us"],
                   note=cosignature.add(c["note"], list(lines.values())), witnessed=config.is_witnessed(lines),
                   cosigners=sorted(lines))
        for c in records for lines in [cosigned[(c["ledger"], c["tree_size"])]]
    ]  # fmt: skip


def inclusion_paths(conn: Connection, ledger: str, tree_size: int, sequences: list[int],
                    known: bytes = b"") -> tuple[bytes, list[list[bytes]]]:  # fmt: skip
    """The RFC 9162 audit path of each sequence (all within `tree_size`) to the root of the ledger's
    first `tree_size` entries, and those leaves. One query reads the leaves (32 bytes per entry) but
    those of `known`, a prefix the caller kept from an earlier call (entries never change), and the
    Rust core computes each path; proofs (`prove`) and receipts (`receipts.Receipts`) share it."""
    assert all(1 <= s <= tree_size for s in sequences), "a path exists only for an entry the tree holds"
    assert len(known) % 32 == 0 and len(known) // 32 <= tree_size, "known leaves are a prefix of the tree"
    leaves = known + journal.leaf_hashes(conn, ledger, tree_size, after_sequence=len(known) // 32)
    return leaves, [core.inclusion_proof(leaves, s - 1) for s in sequences]


def prove_inclusion(engine: Engine, ledger: str, sequence: int) -> JsonObject:
    with engine.begin() as conn:
        cp = journal.checkpoint(conn, ledger)
        if cp is None:
            raise ValueError(f"ledger {ledger!r} has no checkpoint yet; run `entraide ledger checkpoint`")
        if not 1 <= sequence <= cp["tree_size"]:
            raise ValueError(f"sequence {sequence} is not in the latest checkpoint (size {cp['tree_size']})")
        row = journal.entry(conn, ledger, sequence)
        assert row is not None, "a chain has every sequence up to its checkpoint's size"
        _, (path,) = inclusion_paths(conn, ledger, cp["tree_size"], [sequence])
        note = published_note(conn, ledger, cp["tree_size"])
    return {"format": PROOF_FORMAT, "type": "inclusion", "ledger": ledger, "checkpoint": note,
            "entry": entry_object(row), "index": sequence - 1, "tree_size": cp["tree_size"],
            "path": [p.hex() for p in path]}  # fmt: skip


def prove_consistency(engine: Engine, ledger: str, old_size: int, new_size: int) -> JsonObject:
    with engine.begin() as conn:
        old, new = journal.checkpoint(conn, ledger, old_size), journal.checkpoint(conn, ledger, new_size)
        if old is None or new is None:
            raise ValueError(f"ledger {ledger!r} has no checkpoint of size {old_size if old is None else new_size}")
        if old_size > new_size:
            raise ValueError("--from must not be larger than --to")
        leaves = journal.leaf_hashes(conn, ledger, new_size)
        old_note, new_note = published_note(conn, ledger, old_size), published_note(conn, ledger, new_size)
    path = core.consistency_proof(leaves, old_size)
    return {"format": PROOF_FORMAT, "type": "consistency", "ledger": ledger, "old_checkpoint": old_note,
            "new_checkpoint": new_note, "path": [p.hex() for p in path]}  # fmt: skip


def verify_proof(proof: JsonObject, keys_doc: Mapping[str, Any]) -> str:
    """Check a proof file offline; returns a one-line summary or raises ValueError."""
    keys = _note_keys(keys_doc)
    if not isinstance(proof, dict) or proof.get("format") != PROOF_FORMAT:
        raise ValueError(f"not an {PROOF_FORMAT} proof")
    try:
        path = [bytes.fromhex(p) for p in proof["path"]]
        if proof["type"] == "inclusion":
            return _verify_inclusion_proof(proof, path, keys)
        if proof["type"] == "consistency":
            return _verify_consistency_proof(proof, path, keys)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed proof: missing or mistyped {exc}") from None
    raise ValueError(f"unknown proof type {proof.get('type')!r}")


def _verify_inclusion_proof(
    proof: JsonObject, path: list[bytes], keys: dict[str, tuple[bytes, int, int | None]]
) -> str:
    cp = notes.open_note(proof["checkpoint"], keys)
    entry = proof["entry"]
    row = tuple(entry[k] for k in ENTRY_KEYS)
    if entry.get("v") != core.FORMAT_VERSION or core.entry_hash(row[:13]) != entry["hash"]:
        raise ValueError("the entry's hash does not match its content")
    pub = keys.get(entry["key_id"])
    if pub is None or core.verify_signatures([(entry["hash"], entry["signature"], pub[0])]) is not None:
        raise ValueError("the entry's signature does not verify with the published keys")
    if not (pub[1] <= entry["time_us"] and (pub[2] is None or entry["time_us"] < pub[2])):
        raise ValueError(f"key {entry['key_id']} was not valid at the entry's time_us {entry['time_us']}")
    index, size = proof["index"], cp.tree_size
    if entry["ledger"] != cp.ledger or entry["sequence"] != index + 1 or proof["tree_size"] != size:
        raise ValueError("the entry, index and checkpoint do not belong together")
    if not core.verify_inclusion(bytes.fromhex(entry["hash"]), index, size, path, cp.root):
        raise ValueError("the inclusion path does not lead to the checkpoint's root")
    return f"entry {cp.ledger}#{entry['sequence']} is included in the checkpoint of size {size} signed by {cp.key_id}"


def _verify_consistency_proof(
    proof: JsonObject, path: list[bytes], keys: dict[str, tuple[bytes, int, int | None]]
) -> str:
    old = notes.open_note(proof["old_checkpoint"], keys)
    new = notes.open_note(proof["new_checkpoint"], keys)
    if old.ledger != new.ledger:
        raise ValueError("the two checkpoints are of different ledgers")
    if not core.verify_consistency(old.tree_size, new.tree_size, old.root, new.root, path):
        raise ValueError(f"checkpoint {new.tree_size} is not an append-only extension of checkpoint {old.tree_size}")
    return f"{new.ledger}: checkpoint {new.tree_size} extends checkpoint {old.tree_size} (append-only)"
