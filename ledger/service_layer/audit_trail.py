"""The audit trail: recording an action (chained, signed) and verifying a city's trail.

`AuditTrail.record` runs inside the caller's transaction, so an action and its record commit
together or not at all. It locks the city's audit head, chains the record on it, and signs the
hash with the ledger's active key through the Rust core. Verification needs public data only: the
records (from the database or an export) and the keys file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

import msgspec
from sqlalchemy import Connection, Engine

from ledger import core
from ledger.adapters import audit_log
from ledger.domain.audit_trail import AuditRecord, ChainError, HashedFields, check_chain, record_hash, state_text
from ledger.schemas import AuditEntry, AuditPage, AuditSearch
from ledger.service_layer.audit import keys_document, load_keys_document
from ledger.service_layer.keys import Signer

MAX_FAMILIES = 100  # kinds of action a filter offers (a few dozen exist)
AUDIT_EXPORT_FORMAT = "entraide.audit/1"
MAX_EXPORT_LINE_BYTES = 1 << 20


class AuditTrail:
    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def record(self, conn: Connection, *, actor: str, action: str, city: str, target: str, before: object, after: object,
               now_us: int) -> AuditRecord:  # fmt: skip
        """Append one record to the city's chain, in the caller's transaction."""
        seq, prev_hash = audit_log.lock_head(conn, city)
        key_id, seed, _ = self.signer.active(conn)
        fields: HashedFields = {"city": city, "seq": seq + 1, "at_us": now_us, "actor": actor, "action": action, "target": target,
                  "before": state_text(before), "after": state_text(after), "prev_hash": prev_hash}  # fmt: skip
        assert fields["seq"] == seq + 1 >= 1
        digest = record_hash(fields)
        record = AuditRecord(**fields, hash=digest, key_id=key_id, signature=core.sign_hashes([digest], seed)[0])
        audit_log.append(conn, record)
        return record


def record_view(record: AuditRecord) -> AuditEntry:
    """A record as the API shows it: states decoded, chain fields kept for checking."""
    view = record._asdict()
    view["before"] = None if record.before is None else json.loads(record.before)
    view["after"] = None if record.after is None else json.loads(record.after)
    return AuditEntry(**view)


def page(engine: Engine, city: str, after_seq: int, limit: int) -> AuditPage:
    """The city's records after `after_seq`, in order, with the cursor of the next page."""
    with engine.connect() as conn:
        entries = [record_view(r) for r in audit_log.page(conn, city, after_seq, limit)]
    return AuditPage(entries=entries, next_after_seq=entries[-1].seq if len(entries) == limit else None)


class AuditFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What a reader narrows the trail to; an empty field filters nothing."""

    actor: str = ""  # the beginning of the actor: `staff:sam` is every credential of sam's
    family: str = ""  # a kind of action: `program` is `program.configure`, `program.fund_budget`, ...
    target: str = ""  # the beginning of what was acted on
    since_us: int | None = None
    until_us: int | None = None  # exclusive


def search(engine: Engine, city: str, where: AuditFilter, before_seq: int | None, limit: int) -> AuditSearch:
    """The city's records that match, newest first, `limit` at most before `before_seq`, with the
    cursor of the next (older) page."""
    assert 1 <= limit <= audit_log.MAX_AUDIT_PAGE
    with engine.connect() as conn:
        rows = audit_log.search(conn, city, actor=where.actor, family=where.family, target=where.target,
                                since_us=where.since_us, until_us=where.until_us, before_seq=before_seq, limit=limit + 1)  # fmt: skip
        families = audit_log.families(conn, city, MAX_FAMILIES)
    entries = [record_view(r) for r in rows[:limit]]
    return AuditSearch(
        entries=entries, next_before_seq=entries[-1].seq if len(rows) > limit else None, families=families
    )


# --- verification -------------------------------------------------------------------------------


class CityReport(TypedDict):
    records: int
    head_hash: str
    unsigned_legacy: int


class TrailReport(TypedDict):
    ok: bool
    records: int
    cities: dict[str, CityReport]
    error: dict[str, Any] | None  # ChainError._asdict()


def _report(
    heads: dict[str, tuple[int, str]], unsigned: dict[str, int], records: int, error: ChainError | None
) -> TrailReport:
    cities: dict[str, CityReport] = {city: {"records": seq, "head_hash": digest, "unsigned_legacy": unsigned.get(city, 0)}
              for city, (seq, digest) in sorted(heads.items())}  # fmt: skip
    return {
        "ok": error is None,
        "records": records,
        "cities": cities,
        "error": None if error is None else error._asdict(),
    }


def verify_records(
    records: list[AuditRecord], keys_doc: Mapping[str, Any], stored_heads: Mapping[str, tuple[int, str]] | None = None
) -> TrailReport:
    """Chain, hashes and signatures of records in (city, seq) order; with `stored_heads` (a database),
    also that each chain reaches its stored head, so that records cut off the end are found."""
    public = {k["key_id"]: bytes.fromhex(k["public_key"]) for k in keys_doc["keys"]}
    heads, signed, error = check_chain(records, set(public))
    unsigned: dict[str, int] = {}
    for r in records:
        if r.signature is None:
            unsigned[r.city] = unsigned.get(r.city, 0) + 1
    if error is None and signed:
        bad = core.verify_signatures(
            [(digest, signature, public[key_id]) for _, _, digest, signature, key_id in signed]
        )
        if bad is not None:
            city, seq = signed[bad][0], signed[bad][1]
            error = ChainError(city, seq, "bad_signature", "the signature does not verify")
    if error is None and stored_heads is not None:
        for city, (seq, digest) in sorted(stored_heads.items()):
            if heads.get(city, (0, None))[0] != seq or (seq and heads[city][1] != digest):
                error = ChainError(city, seq, "head_mismatch", f"the stored head is record {seq}, the chain ends at "
                                                               f"{heads.get(city, (0,))[0]}")  # fmt: skip
                break
    return _report(heads, unsigned, len(records), error)


def verify_database(engine: Engine, city: str | None = None) -> TrailReport:
    with engine.connect() as conn:
        records = [r for chunk in audit_log.stream(conn, city) for r in chunk]
        stored = audit_log.heads(conn)
    if city is not None:
        stored = {c: h for c, h in stored.items() if c == city}
    return verify_records(records, keys_document(engine), stored)


def export(engine: Engine, out: Path, city: str | None = None) -> int:
    """Write the trail as JSON Lines, (city, seq) order, each record with its chain fields."""
    written = 0
    tmp = Path(f"{out}.partial")
    with engine.connect() as conn, tmp.open("w", encoding="utf-8") as handle:
        for chunk in audit_log.stream(conn, city):
            handle.writelines(json.dumps(r._asdict(), ensure_ascii=False, separators=(",", ":")) + "\n" for r in chunk)
            written += len(chunk)
    os.replace(tmp, out)
    return written


def load_export(path: Path) -> list[AuditRecord]:
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if len(line) > MAX_EXPORT_LINE_BYTES:
                raise ValueError(f"{path}:{number}: line too long")
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict) or set(obj) != set(AuditRecord._fields):
                    raise ValueError(f"the fields are {', '.join(AuditRecord._fields)}")
                records.append(AuditRecord(**obj))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not an audit record: {exc}") from None
    return records


def verify_export(path: Path, keys_path: Path) -> TrailReport:
    """Verify an exported trail, in file order ((city, seq), as `export` writes it), with public keys
    only. A trail cut off at its end cannot be seen from the file alone: compare each city's last
    record with a head obtained elsewhere (the API's audit page, an earlier export)."""
    return verify_records(load_export(path), load_keys_document(keys_path))
