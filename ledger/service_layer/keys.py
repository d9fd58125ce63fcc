"""Signing keys: the first key, rotation, and the active key for each append."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ledger import core
from ledger.adapters import journal
from ledger.adapters.keystore import KeyStore, KeyStoreError


def now_us() -> int:
    return time.time_ns() // 1000


class Signer:
    """Hands out the active private key, re-read from the database inside each append, so that a
    rotation done by another process takes effect at its next batch."""

    def __init__(self, keystore: KeyStore) -> None:
        self.keystore = keystore
        self._seeds: dict[str, bytes] = {}

    def active(self, conn: Connection) -> tuple[str, bytes, int]:
        """(key_id, seed, valid_from_us) of the active key."""
        row = journal.active_key(conn)
        if row is None:
            raise KeyStoreError("no active signing key; run `entraide init`")
        key_id: str = row["key_id"]
        if key_id not in self._seeds:
            self._seeds[key_id] = self.keystore.load(key_id)
        return key_id, self._seeds[key_id], row["valid_from_us"]


def ensure_key(engine: Engine, keystore: KeyStore, at_us: int | None = None) -> str:
    """The active key id; on a database without one, register a key from the store (or a new one)."""
    with engine.begin() as conn:
        row = journal.active_key(conn)
        if row is not None:
            active_id: str = row["key_id"]
            return active_id
        known = {k["key_id"] for k in journal.signing_keys(conn)}
    unused = [kid for kid in keystore.key_ids() if kid not in known]
    key_id = unused[-1] if unused else keystore.generate()[0]
    seed = keystore.load(key_id)
    try:
        with engine.begin() as conn:
            journal.add_key(conn, key_id, core.public_key(seed).hex(), at_us if at_us is not None else now_us())
    except IntegrityError:  # another process registered a key first: use that one
        with engine.begin() as conn:
            row = journal.active_key(conn)
        assert row is not None, "the key that won the race is the active one"
        winner_id: str = row["key_id"]
        return winner_id
    return key_id


def rotate(engine: Engine, keystore: KeyStore, at_us: int | None = None) -> tuple[str | None, str]:
    """Retire the active key and start a new one at the same instant. Old public keys stay listed.

    All chains are locked meanwhile, so no batch is sealed with a key whose validity just ended.
    """
    new_id, seed = keystore.generate()
    with engine.begin() as conn:
        heads = journal.lock_ledgers(conn, journal.ledger_names(conn))
        at = max([at_us if at_us is not None else now_us()] + [h.time_us + 1 for h in heads.values()])
        old = journal.active_key(conn)
        if old is not None:
            at = max(at, old["valid_from_us"] + 1)
            journal.retire_key(conn, old["key_id"], at)
        journal.add_key(conn, new_id, core.public_key(seed).hex(), at)
    return (old["key_id"] if old else None), new_id


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        return journal.signing_keys(conn)
