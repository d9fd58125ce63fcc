"""Card keys: the key each city signs cards with, its rotation, and the keys a card is checked with.

The rule (docs/security-model.md, "Key rotation"):
- A city signs every card token with its one active key. Its first key is the file `card-<city>.pem`,
  made at first use; `card_keys` records nothing until its first rotation.
- A rotation retires the active key at once (new tokens are signed by the new key) and fixes how long
  the old one still verifies: until `accepted_until_s`, the `exp` of the last card of the city valid at
  the rotation. A token carries its card's expiry as `exp`, so every token the old key signed expires
  by then; meanwhile the old key is published beside the new one.
- A retired key verifies only cards issued before it retired, and not at all from `accepted_until_s`:
  it is then no longer published (the admin list still shows it, as retired).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from joserfc.jwk import OKPKey
from sqlalchemy import Connection, Engine

from community.adapters import secrets as crypto
from community.adapters import store
from community.domain.errors import CardKeyRetired, Conflict, UnknownCard, UnknownProgram
from community.schemas import CardKeyRotation, CardKeyState, CardKeyStatus
from ledger.service_layer.audit_trail import AuditTrail

US_PER_S = 1_000_000


class CardKeyring:
    def __init__(self, engine: Engine, keys: crypto.CommunityKeys, audit: AuditTrail, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.keys = keys
        self.audit = audit
        self.clock = clock

    def _first(self, city: str) -> dict[str, Any]:
        """The city's first key as a row, before any rotation recorded it."""
        key = self.keys.card_key(city)
        return {"kid": key.kid, "city": city, "public_key": key.as_dict(private=False)["x"], "valid_from_us": 0,
                "retired_at_us": None, "accepted_until_s": None}  # fmt: skip

    def _rows(self, conn: Connection, city: str) -> list[dict[str, Any]]:
        return store.card_keys(conn, city) or [self._first(city)]

    def signing_key(self, conn: Connection, city: str) -> OKPKey:
        """The private key new card tokens of `city` are signed with."""
        (active,) = [row for row in self._rows(conn, city) if row["retired_at_us"] is None]
        return self.keys.card_key_by_kid(city, active["kid"])

    def verifying_key(self, conn: Connection, city: str, kid: str, now_s: int) -> tuple[OKPKey, int | None]:
        """The public key `kid` of `city` if it still verifies cards at `now_s`, and when it retired
        (None while active): the caller refuses a card issued after that. UnknownCard for a kid the
        city never had, CardKeyRetired for a key past its acceptance."""
        row = next((r for r in self._rows(conn, city) if r["kid"] == kid), None)
        if row is None:
            raise UnknownCard("unknown card")
        if _status(row, now_s) == "retired":
            raise CardKeyRetired("the card was signed by a retired card key")
        public = {"kty": "OKP", "crv": "Ed25519", "x": row["public_key"], "kid": kid}
        return OKPKey.import_key(public), row["retired_at_us"]

    def states(self, cities: list[str]) -> list[CardKeyState]:
        """Every card key of the cities, oldest first per city, with its status now."""
        now_s = self.clock() // US_PER_S
        with self.engine.connect() as conn:
            recorded = store.card_keys(conn)
        by_city = {city: [r for r in recorded if r["city"] == city] or [self._first(city)] for city in cities}
        return [_state(row, now_s) for rows in by_city.values() for row in rows]

    def published(self, cities: list[str]) -> dict[str, Any]:
        """The keys that verify cards now (active and retiring), as a JWKS: a JWK each, with `nbf` (s)
        and, for a retiring key, `exp` (s): a terminal accepts it while now < exp."""
        keys = []
        for state in self.states(cities):
            if state.status == "retired":
                continue
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": state.public_key, "kid": state.kid, "alg": crypto.TOKEN_ALGORITHM,
                   "use": "sig", "nbf": state.valid_from_us // US_PER_S}  # fmt: skip
            keys.append(jwk if state.accepted_until_s is None else jwk | {"exp": state.accepted_until_s})
        return {"keys": keys}

    def rotate(self, city: str, actor: str) -> CardKeyRotation:
        """Retire the city's active card key and sign new cards with a new one, audited."""
        now = self.clock()
        with self.engine.begin() as conn:
            if store.program(conn, city) is None:
                raise UnknownProgram(f"no program for {city!r}", city=city)  # no key is made for a stranger
        # The key file is written first: a failed rotation leaves an unused file, never a row without its key.
        new = self.keys.new_card_key(city)
        new_kid = new.kid
        assert new_kid is not None, "every card key is made with its kid"
        with self.engine.begin() as conn:
            rows = store.card_keys(conn, city, for_update=True)
            if not rows:
                rows = [self._first(city)]
                store.add_card_key(conn, **rows[0])
            old = next((r for r in rows if r["retired_at_us"] is None), None)
            if old is None:
                raise Conflict(f"another rotation of {city}'s card key is under way")
            accepted_until_s = (store.last_card_expiry_us(conn, city, now) or now) // US_PER_S
            store.retire_card_key(conn, old["kid"], now, accepted_until_s)
            active = {"kid": new_kid, "city": city, "public_key": new.as_dict(private=False)["x"], "valid_from_us": now,
                      "retired_at_us": None, "accepted_until_s": None}  # fmt: skip
            store.add_card_key(conn, **active)
            retired = old | {"retired_at_us": now, "accepted_until_s": accepted_until_s}
            self.audit.record(conn, actor=actor, action="card_key.rotate", city=city, target=new_kid,
                              before={"active": old["kid"]},
                              after={"active": new_kid, "retired": old["kid"], "accepted_until_s": accepted_until_s},
                              now_us=now)  # fmt: skip
        now_s = now // US_PER_S
        return CardKeyRotation(retired=_state(retired, now_s), active=_state(active, now_s))


def _status(row: dict[str, Any], now_s: int) -> CardKeyStatus:
    if row["retired_at_us"] is None:
        return "active"
    return "retiring" if now_s < row["accepted_until_s"] else "retired"


def _state(row: dict[str, Any], now_s: int) -> CardKeyState:
    return CardKeyState(kid=row["kid"], city=row["city"], public_key=row["public_key"], status=_status(row, now_s),
                        valid_from_us=row["valid_from_us"], retired_at_us=row["retired_at_us"],
                        accepted_until_s=row["accepted_until_s"])  # fmt: skip
