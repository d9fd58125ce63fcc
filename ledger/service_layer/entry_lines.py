"""An entry as one line of an export, byte for byte the entry of a public log's bundle
(docs/ledger-format.md, "Export" and "Public log (tiles)"): its 16 fields, then `"v"`."""

from __future__ import annotations

from typing import Any

import msgspec

from ledger import core

ENTRY_KEYS = (
    "ledger",
    "sequence",
    "transfer_id",
    "kind",
    "phase",
    "debit_account",
    "credit_account",
    "amount",
    "ref",
    "group",
    "expires_at_us",
    "time_us",
    "prev_hash",
    "hash",
    "key_id",
    "signature",
)  # fmt: skip  (Entry16)


def entry_object(row: tuple[object, ...]) -> dict[str, object]:
    obj = dict(zip(ENTRY_KEYS, row, strict=True))
    obj["v"] = core.FORMAT_VERSION
    return obj


# `entry_object` as a struct, its members in the same order: msgspec writes it as json.dumps(
# entry_object(row), ensure_ascii=False, separators=(",", ":")) would, for every code point
# (tests/test_tiles.py checks it), ten times faster; every entry is encoded once for the export and once for its bundle.
_ExportedEntry = msgspec.defstruct("ExportedEntry", [*((k, Any) for k in ENTRY_KEYS), ("v", int, core.FORMAT_VERSION)])
_ENTRY_JSON = msgspec.json.Encoder()


def entry_json(row: tuple[object, ...]) -> bytes:
    """An entry as one line of an export (UTF-8, without its newline), and in the public log's bundles."""
    assert len(row) == len(ENTRY_KEYS)
    return _ENTRY_JSON.encode(_ExportedEntry(*row))
