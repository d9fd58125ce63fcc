"""Receipts: a resident's own sealed entries, and their inclusion proofs, checkable offline.

Every money-moving answer of the point of sale and the wallet carries a `Receipt` of the linked
group it committed (`receipt`); `Receipts.get` answers one later with inclusion proofs against the
latest checkpoints; `verify` checks one with the public keys only, in the order
docs/ledger-format.md "Receipts" gives, so that a browser can do the same with WebCrypto.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Engine

from ledger import core
from ledger.adapters import journal
from ledger.domain import accounts
from ledger.domain import checkpoint as notes
from ledger.domain.errors import ReceiptNotCheckpointed, UnknownReceipt
from ledger.schemas import RECEIPT_FORMAT, Inclusion, LedgerInclusion, Receipt, ReceiptProof, SealedEntry
from ledger.service_layer import audit
from ledger.service_layer.entry_lines import ENTRY_KEYS
from ledger.service_layer.transfers import TransferResult

MAX_RECEIPT_BYTES = 1 << 20  # a receipt is a handful of entries and paths: far below this
MAX_RECEIPT_ENTRIES = 16  # a linked group spans two ledgers today
MAX_KEPT_LEAVES = 1 << 20  # leaves kept per ledger between proofs (32 MiB); a longer ledger is read each time
ENTRY_MEMBERS = (*ENTRY_KEYS, "v")  # the 17 members of an export line, in its order
_HEX64 = frozenset("0123456789abcdef")


def receipt(results: Iterable[TransferResult]) -> Receipt:
    """The receipt of a committed linked group (its entries on every ledger), without proof: a
    checkpoint covers the entries only later (GET /v1/wallet/receipts/{sequence} then proves them)."""
    entries = [SealedEntry(**{k: v for k, v in r._asdict().items() if k != "replayed"}, v=core.FORMAT_VERSION)
               for r in results]  # fmt: skip
    return Receipt(format=RECEIPT_FORMAT, entries=sorted(entries, key=lambda e: (e.ledger, e.sequence)))


def receipt_builtins(results: Iterable[TransferResult]) -> dict[str, Any]:
    """`receipt` as plain JSON values, for answers stored as JSON and replayed (awards)."""
    built: dict[str, Any] = msgspec.to_builtins(receipt(results))
    return built


def _sealed(row: Mapping[str, Any]) -> SealedEntry:
    """A journal row by column name (`group_id` is the entry's `group`) as a sealed entry."""
    fields = {k: row["group_id" if k == "group" else k] for k in ENTRY_KEYS}
    return SealedEntry(**fields, v=core.FORMAT_VERSION)


def receipt_of_rows(rows: Iterable[Mapping[str, Any]]) -> Receipt:
    """The receipt, without proof, of a linked group's journal rows (by column name)."""
    entries = sorted((_sealed(r) for r in rows), key=lambda e: (e.ledger, e.sequence))
    return Receipt(format=RECEIPT_FORMAT, entries=entries)


class Receipts:
    """A resident's receipt by sequence, with inclusion proofs (GET /v1/wallet/receipts/{sequence}).

    A proof needs the leaves of the checkpoint's tree: the first one of a ledger reads them all (one
    query, 32 bytes per entry), later ones only the entries checkpointed since; the Rust core then
    computes the paths. No query per tree level (docs/ledger-format.md "Receipts" gives the costs
    measured)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Per ledger, the leaves of its latest checkpoint proved here: the next proof reads only the
        # entries since (a checkpoint's leaves never change). Replaced whole, so threads may share it.
        self._leaves: dict[str, bytes] = {}

    def get(self, resident_id: str, city: str, sequence: int) -> Receipt:
        """The receipt of the resident's entry `sequence` in their home ledger `city` (with the rest
        of its linked group), proved against the latest checkpoint of each ledger. An entry that
        does not touch the resident's wallet is unknown, exactly like a sequence that does not exist."""
        wallet = accounts.wallet(resident_id)
        with self.engine.connect() as conn:
            row = journal.entry(conn, city, sequence)
            mine = dict(zip(ENTRY_KEYS, row, strict=True)) if row is not None else None
            if mine is None or wallet not in (mine["debit_account"], mine["credit_account"]):
                raise UnknownReceipt("no entry of yours at this sequence", sequence=sequence)
            group = mine["group"]
            rows = journal.linked_entries(conn, group) if group is not None else [mine | {"group_id": None}]
            entries = receipt_of_rows(rows).entries
            proofs = []
            for ledger in sorted({e.ledger for e in entries}):
                sequences = [e.sequence for e in entries if e.ledger == ledger]
                cp = journal.checkpoint(conn, ledger)
                if cp is None or max(sequences) > cp["tree_size"]:
                    raise ReceiptNotCheckpointed(
                        "the entry is not yet in a signed checkpoint", ledger=ledger, sequence=max(sequences)
                    )
                known = self._leaves.get(ledger, b"")[: cp["tree_size"] * 32]
                leaves, paths = audit.inclusion_paths(conn, ledger, cp["tree_size"], sequences, known)
                if len(leaves) <= MAX_KEPT_LEAVES * 32:
                    self._leaves[ledger] = leaves
                note = audit.published_note(conn, ledger, cp["tree_size"])  # with its cosignatures
                assert note is not None, "the checkpoint was just read"
                proofs.append(LedgerInclusion(ledger=ledger, checkpoint=note, tree_size=cp["tree_size"],
                                              inclusions=[Inclusion(sequence=s, index=s - 1, path=[p.hex() for p in path])
                                                          for s, path in zip(sequences, paths, strict=True)]))  # fmt: skip
        return Receipt(format=RECEIPT_FORMAT, entries=entries, proof=ReceiptProof(ledgers=proofs))


# --- offline verification -------------------------------------------------------------------------


class ReceiptRejected(ValueError):
    """A receipt that does not verify: `code` names the check that failed (docs/ledger-format.md
    "Receipts"), `params` what it failed on; the text is English, the CLI words it in its language."""

    def __init__(self, code: str, message: str, **params: object) -> None:
        super().__init__(message.format(**params))
        self.code, self.params = code, params


@dataclass(frozen=True)
class ReceiptCheck:
    """What a verified receipt established."""

    entries: list[str]  # "ledger#sequence", by ledger then sequence
    checkpoints: list[tuple[str, int, str]] | None  # (ledger, tree_size, key_id); None: inclusion not checked


def _name(entry: Mapping[str, Any]) -> str:
    return f"{entry['ledger']}#{entry['sequence']}"


def _check_members(index: int, entry: object) -> dict[str, Any]:
    """The entry's shape: exactly the 17 members, each of its type (values are checked by the hash)."""
    if not isinstance(entry, dict) or set(entry) != set(ENTRY_MEMBERS):
        raise ReceiptRejected("malformed", "entries[{index}] must have exactly the 17 members of an export line",
                              index=index)  # fmt: skip
    ints = ("sequence", "amount", "time_us", "v")
    nullable = ("ref", "group", "expires_at_us")
    for key in ENTRY_MEMBERS:
        value = entry[key]
        kind = int if key in ints or key == "expires_at_us" else str
        if (value is None and key in nullable) or (isinstance(value, kind) and not isinstance(value, bool)):
            continue
        raise ReceiptRejected("malformed", "entries[{index}].{member} has the wrong type", index=index, member=key)
    if entry["v"] != core.FORMAT_VERSION or not (set(entry["hash"]) <= _HEX64 and len(entry["hash"]) == 64):
        raise ReceiptRejected("malformed", "entries[{index}] is not a version 1 entry with a 64-hex hash", index=index)
    return entry


def _check_seal(entry: dict[str, Any], keys: Mapping[str, tuple[bytes, int, int | None]]) -> None:
    name = _name(entry)
    try:
        computed = core.entry_hash(tuple(entry[k] for k in ENTRY_KEYS[:13]))
    except (ValueError, OverflowError) as exc:  # an integer beyond 64 bits, a lone surrogate
        raise ReceiptRejected(
            "malformed", "entry {entry} cannot be encoded: {reason}", entry=name, reason=exc
        ) from None
    if computed != entry["hash"]:
        raise ReceiptRejected("hash_mismatch", "entry {entry}: its hash does not match its content", entry=name)
    key = keys.get(entry["key_id"])
    if key is None:
        raise ReceiptRejected("unknown_key", "entry {entry}: key {key_id} is not in the keys file", entry=name,
                              key_id=entry["key_id"])  # fmt: skip
    public, valid_from, valid_until = key
    if not (valid_from <= entry["time_us"] and (valid_until is None or entry["time_us"] < valid_until)):
        raise ReceiptRejected("key_not_valid", "entry {entry}: key {key_id} was not valid at {time_us}", entry=name,
                              key_id=entry["key_id"], time_us=entry["time_us"])  # fmt: skip
    try:
        failed = core.verify_signatures([(entry["hash"], entry["signature"], public)])
    except ValueError:
        failed = 0
    if failed is not None:
        raise ReceiptRejected("bad_signature", "entry {entry}: its signature does not verify", entry=name)


def _check_group(entries: list[dict[str, Any]]) -> None:
    """Several entries must be one linked group: one shared `group`, each (ledger, sequence) once."""
    names = [_name(e) for e in entries]
    if len(set(names)) != len(names):
        raise ReceiptRejected("not_one_group", "the receipt lists entry {entry} twice",
                              entry=next(n for n in names if names.count(n) > 1))  # fmt: skip
    if len(entries) > 1 and (entries[0]["group"] is None or any(e["group"] != entries[0]["group"] for e in entries)):
        raise ReceiptRejected("not_one_group", "the entries do not form one linked group (their group members differ)")


def _check_proof(entries: list[dict[str, Any]], proof: object, keys: Mapping[str, tuple[bytes, int, int | None]]
                 ) -> list[tuple[str, int, str]]:  # fmt: skip
    try:
        checked = msgspec.convert(proof, ReceiptProof)
    except msgspec.ValidationError as exc:
        raise ReceiptRejected("malformed", "the proof is malformed: {reason}", reason=str(exc)) from None
    wanted = {(e["ledger"], e["sequence"]): e for e in entries}
    proved: set[tuple[str, int]] = set()
    signed = []
    for item in checked.ledgers:
        try:
            cp = notes.open_note(item.checkpoint, dict(keys))
        except notes.NoteError as exc:
            raise ReceiptRejected("bad_checkpoint", "the checkpoint given for {ledger} does not verify: {reason}",
                                  ledger=item.ledger, reason=str(exc)) from None  # fmt: skip
        if cp.ledger != item.ledger or cp.tree_size != item.tree_size:
            raise ReceiptRejected("checkpoint_mismatch", "the checkpoint given for {ledger} (size {tree_size}) is "
                                  "the checkpoint of {note_ledger} at size {note_size}", ledger=item.ledger,
                                  tree_size=item.tree_size, note_ledger=cp.ledger, note_size=cp.tree_size)  # fmt: skip
        for inclusion in item.inclusions:
            key = (item.ledger, inclusion.sequence)
            if key not in wanted or key in proved:
                raise ReceiptRejected("inclusion_mismatch", "the proof's path for {entry} is not for an entry of the "
                                      "receipt, or is given twice", entry=f"{key[0]}#{key[1]}")  # fmt: skip
            if any(len(p) != 64 for p in inclusion.path):
                raise ReceiptRejected("malformed", "the path of {entry} has a node that is not 32 bytes of hex",
                                      entry=f"{key[0]}#{key[1]}")  # fmt: skip
            path = [bytes.fromhex(p) for p in inclusion.path]
            leaf = bytes.fromhex(wanted[key]["hash"])
            if inclusion.index != inclusion.sequence - 1 or not core.verify_inclusion(leaf, inclusion.index, cp.tree_size,
                                                                                       path, cp.root):  # fmt: skip
                raise ReceiptRejected("bad_path", "entry {entry}: the inclusion path does not lead to the root of the "
                                      "checkpoint of size {tree_size}", entry=f"{key[0]}#{key[1]}",
                                      tree_size=cp.tree_size)  # fmt: skip
            proved.add(key)
        signed.append((cp.ledger, cp.tree_size, cp.key_id))
    missing = sorted(wanted.keys() - proved)
    if missing:
        raise ReceiptRejected("inclusion_mismatch", "entry {entry} has no inclusion path in the proof",
                              entry=f"{missing[0][0]}#{missing[0][1]}")  # fmt: skip
    return signed


def verify(receipt_doc: object, keys_doc: Mapping[str, Any]) -> ReceiptCheck:
    """Check a receipt offline with the keys file: each entry's hash, its signature by a key valid at
    its `time_us`, that the entries are one linked group, and, with a proof, each checkpoint's
    signature and each entry's path to its root. Raises ReceiptRejected at the first failure."""
    keys = {kid: (public, start, end) for kid, public, start, end in audit.verifier_keys(keys_doc)}
    if not isinstance(receipt_doc, dict) or receipt_doc.get("format") != RECEIPT_FORMAT:
        raise ReceiptRejected("format", "not an {format} receipt", format=RECEIPT_FORMAT)
    raw = receipt_doc.get("entries")
    if set(receipt_doc) != {"format", "entries", "proof"} or not isinstance(raw, list):
        raise ReceiptRejected("malformed", "a receipt has exactly the members format, entries and proof")
    if not 1 <= len(raw) <= MAX_RECEIPT_ENTRIES:
        raise ReceiptRejected("malformed", "a receipt has 1 to {limit} entries", limit=MAX_RECEIPT_ENTRIES)
    entries = [_check_members(i, e) for i, e in enumerate(raw)]
    for entry in entries:
        _check_seal(entry, keys)
    _check_group(entries)
    proof = receipt_doc["proof"]
    signed = None if proof is None else _check_proof(entries, proof, keys)
    ordered = sorted(entries, key=lambda e: (e["ledger"], e["sequence"]))
    return ReceiptCheck(entries=[_name(e) for e in ordered], checkpoints=signed)
