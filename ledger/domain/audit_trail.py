"""The audit trail's format: who did what, when, with the state before and after, hash-chained per city.

Every admin and finance action appends one record to its city's chain. A record's hash covers its
canonical encoding, which includes the previous record's hash, and the ledger's active key signs
the hash: an edited, removed, inserted or reordered record breaks the chain or a signature
(docs/ledger-format.md, "Audit trail"). Pure: no I/O; the service layer signs and verifies with
the Rust core.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple, TypedDict

AUDIT_FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("city", "seq", "at_us", "actor", "action", "target", "before", "after", "prev_hash")
HEX64 = re.compile(r"[0-9a-f]{64}")
HEX128 = re.compile(r"[0-9a-f]{128}")


class HashedFields(TypedDict):
    """The fields of a record that its hash covers (HASHED_FIELDS)."""

    city: str
    seq: int
    at_us: int
    actor: str
    action: str
    target: str
    before: str | None
    after: str | None
    prev_hash: str


class AuditRecord(NamedTuple):
    """One record as stored and exported. `before` and `after` are JSON texts (or None), hashed as
    the exact strings stored, so that no re-encoding of nested JSON can change a hash."""

    city: str
    seq: int
    at_us: int
    actor: str
    action: str
    target: str
    before: str | None
    after: str | None
    prev_hash: str
    hash: str
    key_id: str | None
    signature: str | None


def state_text(value: object) -> str | None:
    """The JSON text stored for a state before or after an action."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def canonical_bytes(fields: Mapping[str, object]) -> bytes:
    """RFC 8785 of the record's hashed object: every value is a string, an integer or null, so JCS
    is members sorted by key, no whitespace, and JSON string escapes as `json.dumps` writes them."""
    obj = {name: fields[name] for name in HASHED_FIELDS} | {"v": AUDIT_FORMAT_VERSION}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(fields: Mapping[str, object]) -> str:
    return hashlib.sha256(canonical_bytes(fields)).hexdigest()


class ChainError(NamedTuple):
    city: str
    seq: int
    code: str  # gap, chain_break, hash_mismatch, unsigned, unknown_key, bad_signature, invalid_record
    detail: str


def _shape_error(record: AuditRecord) -> str | None:
    if not isinstance(record.seq, int) or record.seq < 1 or not isinstance(record.at_us, int):
        return "seq and at_us must be integers, seq from 1"
    texts = (record.city, record.actor, record.action, record.target)
    if not all(isinstance(t, str) and t for t in texts):
        return "city, actor, action and target must be non-empty strings"
    if any(v is not None and not isinstance(v, str) for v in (record.before, record.after)):
        return "before and after must be JSON texts or null"
    if not (isinstance(record.prev_hash, str) and HEX64.fullmatch(record.prev_hash)):
        return "prev_hash must be 64 lowercase hex"
    if not (isinstance(record.hash, str) and HEX64.fullmatch(record.hash)):
        return "hash must be 64 lowercase hex"
    if (record.key_id is None) != (record.signature is None):
        return "key_id and signature are both present or both null"
    if record.signature is not None and not HEX128.fullmatch(record.signature):
        return "signature must be 128 lowercase hex"
    return None


def check_chain(
    records: Iterable[AuditRecord], known_keys: set[str]
) -> tuple[dict[str, tuple[int, str]], list[tuple[str, int, str, str, str]], ChainError | None]:
    """Walk records in (city, seq) order and check everything but the signatures themselves.

    Returns each city's head (seq, hash), the signed records to check as (hash, signature, key_id)
    with their positions, and the first structural error. A record without a signature is accepted
    only in a city's leading run of unsigned records: rows written before the trail was signed
    (schema 0005), chained, and covered by the first signed record after them.
    """
    heads: dict[str, tuple[int, str]] = {}
    signed_seen: set[str] = set()
    to_sign: list[tuple[str, int, str, str, str]] = []
    for record in records:
        error = _shape_error(record)
        city = record.city if isinstance(record.city, str) else "?"
        expected_seq, prev = heads.get(city, (0, GENESIS_HASH))
        if error is not None:
            return heads, to_sign, ChainError(city, expected_seq + 1, "invalid_record", error)
        if record.seq != expected_seq + 1:
            return (
                heads,
                to_sign,
                ChainError(city, expected_seq + 1, "gap", f"record {expected_seq + 1} is missing or out of order"),
            )
        if record.prev_hash != prev:
            return (
                heads,
                to_sign,
                ChainError(city, record.seq, "chain_break", "prev_hash is not the previous record's hash"),
            )
        if record_hash(record._asdict()) != record.hash:
            return heads, to_sign, ChainError(city, record.seq, "hash_mismatch", "the hash does not match the record")
        if record.signature is None:
            if city in signed_seen:
                return heads, to_sign, ChainError(city, record.seq, "unsigned", "an unsigned record after a signed one")
        else:
            signed_seen.add(city)
            if record.key_id not in known_keys:
                return (
                    heads,
                    to_sign,
                    ChainError(city, record.seq, "unknown_key", f"key {record.key_id} is not in the keys file"),
                )
            to_sign.append((city, record.seq, record.hash, record.signature, record.key_id))
        heads[city] = (record.seq, record.hash)
    return heads, to_sign, None
