"""Pairing a device as a merchant's terminal with a one-time code (the web terminal, `/terminal/pair`).

The merchant's owner (for now the city's staff: `POST /v1/admin/merchants/{city}/{merchant}/pairing-codes`,
`entraide admin terminal-pairing-code`) gets a code of eight symbols of the activation codes'
alphabet (no 0/O, no 1/I), shown as `7KQD-M2XA`: 40 bits, for VALID_SECONDS, once. The device makes
its own Ed25519 key pair (the private key never leaves it) and sends the raw public key with the
code (`POST /v1/pairing`); the key is registered exactly as `entraide admin terminal-add` does
(`Terminals.add`, audited `terminal.register` as the person who issued the code), in the same
transaction that uses the code up. The database keeps only a keyed hash of the code (HMAC with the
deployment's `pairing.key`); the code is derived from its row's id with the same secret, so that a
retried issue (same Idempotency-Key) shows the same code. Guessing is slowed by the API's failure
budgets: every refusal of a code is a 401.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

import msgspec
from sqlalchemy import Engine

from community.adapters.secrets import CommunityKeys
from community.domain.access import identity
from community.schemas import TerminalRegistration
from community.service_layer.activation import code_hash, derived_code, grouped, normalized
from community.service_layer.organizations import Members
from ledger.adapters import idempotency
from ledger.domain.errors import InvalidRequest
from ledger.service_layer.audit_trail import AuditTrail
from merchants.adapters import store
from merchants.errors import PairingCodeExpired, PairingCodeInvalid, PairingCodeUsed
from merchants.schemas import PairingCode
from merchants.service_layer.pos import Terminals

LENGTH = 8
VALID_SECONDS = 15 * 60
MAX_NAME = 100
RAW_KEY_BYTES = 32


class Issued(msgspec.Struct, frozen=True):
    """What an issuing Idempotency-Key keeps: the row's id (the code is derived from it), never the code."""

    id: str
    expires_at_us: int


class Pairing:
    def __init__(self, engine: Engine, keys: CommunityKeys, members: Members, terminals: Terminals,
                 audit: AuditTrail, clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.keys, self.members, self.terminals = engine, keys, members, terminals
        self.audit, self.clock = audit, clock

    def _code(self, code_id: str) -> str:
        return derived_code(self.keys.secret("pairing"), code_id, LENGTH)

    def _hash(self, code: str) -> str:
        return code_hash(self.keys.secret("pairing"), code)

    def issue(self, merchant_id: str, city: str, actor: str, name: str | None, *, key: str) -> PairingCode:
        """A new pairing code for a merchant of the city, audited `terminal.pairing_code`. A retry with
        the same `key` (per city and actor) shows the same code and issues none."""
        if name is not None and not 1 <= len(name) <= MAX_NAME:
            raise InvalidRequest(f"name is 1 to {MAX_NAME} characters", field="name", reason="out_of_range",
                                 min_value=1, max_value=MAX_NAME)  # fmt: skip
        self.members.get(merchant_id, city)  # refused if unknown or of another city
        now = self.clock()
        with self.engine.begin() as conn:

            def issue() -> Issued:
                code_id = "pc" + secrets.token_hex(10)
                issued = Issued(code_id, now + VALID_SECONDS * 1_000_000)
                store.add_pairing_code(conn, id=code_id, merchant_id=merchant_id, city=city, name=name, status="live",
                                       code_hash=self._hash(self._code(code_id)), issued_by=actor, issued_at_us=now,
                                       expires_at_us=issued.expires_at_us, terminal_key_id=None)  # fmt: skip
                self.audit.record(conn, actor=actor, action="terminal.pairing_code", city=city, target=merchant_id,
                                  before=None, after={"id": code_id, "name": name, "expires_at_us": issued.expires_at_us},
                                  now_us=now)  # fmt: skip
                return issued

            issued = idempotency.once(conn, f"{city}:{identity(actor)}:terminals.pairing_code", key,
                                      {"merchant_id": merchant_id, "name": name}, Issued, issue, now)  # fmt: skip
        return PairingCode(code=grouped(self._code(issued.id)), merchant_id=merchant_id, city=city, name=name,
                           expires_at_us=issued.expires_at_us)  # fmt: skip

    def live(self, typed: str, merchant_id: str, city: str) -> PairingCode:
        """A code the merchant's owner was given, while it still works (the portal shows it with its
        QR until a device uses it); refused as `pair` refuses it, and as unknown if another
        merchant's."""
        code = normalized(typed, LENGTH)
        with self.engine.connect() as conn:
            row = None if code is None else store.pairing_code_by_hash(conn, self._hash(code))
        if code is None or row is None or (row["merchant_id"], row["city"]) != (merchant_id, city):
            raise PairingCodeInvalid("not a pairing code")
        if row["status"] != "live":
            raise PairingCodeUsed("this pairing code was already used")
        if row["expires_at_us"] <= self.clock():
            raise PairingCodeExpired("this pairing code has expired")
        return PairingCode(code=grouped(code), merchant_id=merchant_id, city=city, name=row["name"],
                           expires_at_us=row["expires_at_us"])  # fmt: skip

    def pair(self, typed: str, public_key_base64: str, name: str | None) -> TerminalRegistration:
        """Register the device's raw Ed25519 public key (base64) with a live code, which is used up.
        Refused (401) if the code is not one of ours, was used, or expired; a refusal changes nothing."""
        code = normalized(typed, LENGTH) if isinstance(typed, str) else None
        if code is None:
            raise PairingCodeInvalid("not a pairing code")
        try:
            public_key = base64.b64decode(public_key_base64, validate=True)
        except (ValueError, TypeError):
            public_key = b""
        if len(public_key) != RAW_KEY_BYTES:
            raise InvalidRequest("public_key is a raw 32-byte Ed25519 key", field="public_key", reason="invalid_key")
        now = self.clock()
        with self.engine.begin() as conn:
            row = store.pairing_code_by_hash(conn, self._hash(code))
            if row is None:
                raise PairingCodeInvalid("not a pairing code")
            if row["status"] != "live":
                raise PairingCodeUsed("this pairing code was already used")
            if row["expires_at_us"] <= now:
                raise PairingCodeExpired("this pairing code has expired")
            registered = self.terminals.add(conn, row["merchant_id"], public_key, row["issued_by"], row["city"], now,
                                            name or row["name"])  # fmt: skip
            if not store.use_pairing_code(conn, row["id"], registered.terminal_key_id):
                raise PairingCodeUsed("this pairing code was already used")  # a concurrent pairing won
            self.audit.record(conn, actor=row["issued_by"], action="terminal.pairing_use", city=row["city"],
                              target=registered.terminal_key_id, before={"status": "live"},
                              after={"id": row["id"], "status": "used", "name": name or row["name"]}, now_us=now)  # fmt: skip
        return registered
