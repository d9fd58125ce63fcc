"""Residents: enrolment by their city, renewal, verification levels, opt-ins, citizen cards, export and erasure.

Personal data is encrypted with the resident's own key, wrapped by the city's key; the ledger sees
only the opaque resident id in `citizen:<id>:wallet`. Erasure deletes the wrapped key, the sealed
data and the provider subject: nothing left links the id to a person, and the ledger, which never
held any of it, still verifies. A resident who asks to be erased is erased ERASURE_DELAY_DAYS later
(they may undo it until then, and everything keeps working meanwhile); the points left in their
wallet then move to `breakage`, as expired points do.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import segno
from joserfc.jwk import KeySet
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from community.adapters import secrets as crypto
from community.adapters import store
from community.domain.access import identity
from community.domain.errors import (
    CardExpired,
    CardKeyRetired,
    CardRevoked,
    Conflict,
    ErasureBlocked,
    HomeCity,
    NotOptedIn,
    OptOutBlocked,
    ResidentErased,
    ResidentExpired,
    SubjectNotEnrolled,
    Unauthorized,
    UnknownCard,
    UnknownProgram,
    UnknownResident,
    WrongTenant,
)
from community.domain.program import LEVELS
from community.schemas import Card, CardRecord, DataExport, Erasure, OptIns, PersonalRecord, Resident, ResidentRecord
from community.service_layer import wallet
from community.service_layer.card_keys import CardKeyring
from community.service_layer.programs import Programs
from ledger.adapters import idempotency, journal
from ledger.adapters.database import autocommit, checkpoint_wal
from ledger.domain import accounts
from ledger.domain.accounts import LEDGER_NAME
from ledger.domain.errors import InsufficientFunds, InvalidRequest
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.audit_trail import AuditTrail
from ledger.service_layer.transfers import LedgerService

YEAR_US = 365 * 86_400 * 1_000_000
PERSONAL_FIELDS = {"name": 200, "email": 254, "phone": 40, "address": 400, "language": 8}
MAX_EXPORT_ENTRIES = 100_000
# Between asking to be erased and the erasure: time to change one's mind (a lost phone, a child's
# click) and to spend the points. The same for every city; their privacy notices state it.
ERASURE_DELAY_DAYS = 14
DAY_US = 86_400 * 1_000_000
ERASURES_PER_RUN = 100  # the job's batch; the rest wait for its next run
MAX_EVIDENCE_CHARS = 500  # what staff saw to change a level, kept in the audit trail


def check_personal(personal: dict[str, Any]) -> dict[str, Any]:
    """Only known fields, as bounded strings: what a city needs to reach a resident, nothing more."""
    if not isinstance(personal, dict) or set(personal) - set(PERSONAL_FIELDS):
        raise InvalidRequest(
            f"personal data holds only {sorted(PERSONAL_FIELDS)}", field="personal", reason="unknown_field"
        )
    for name, value in personal.items():
        if not isinstance(value, str) or len(value) > PERSONAL_FIELDS[name]:
            raise InvalidRequest(
                f"{name} must be a string of at most {PERSONAL_FIELDS[name]} characters",
                field=name,
                reason="too_long",
                max_chars=PERSONAL_FIELDS[name],
            )
    return personal


@dataclass(frozen=True)
class CardHolder:
    """Who a presented card belongs to, after every check a terminal relies on."""

    card_id: str
    resident_id: str
    city: str  # the resident's home city, where their wallet is
    level: str
    opt_ins: tuple[str, ...]

    @property
    def wallet(self) -> str:
        return accounts.wallet(self.resident_id)

    def require_city(self, city: str) -> None:
        """A merchant of `city` may serve this resident only in their home city or one they opted in to."""
        if city != self.city and city not in self.opt_ins:
            raise NotOptedIn(f"the resident has not opted in to {city}", city=city)


class Residents:
    def __init__(self, engine: Engine, keys: crypto.CommunityKeys, audit: AuditTrail, clock: Callable[[], int],
                 ledger: LedgerService, programs: Programs) -> None:  # fmt: skip
        self.engine = engine
        self.ledger = ledger  # erasure moves the points left to breakage
        self.programs = programs
        self.audit = audit
        self.reads = autocommit(engine)  # cards are checked on every redemption
        self.keys = keys
        self.clock = clock
        self.card_keyring = CardKeyring(engine, keys, audit, clock)
        self._card_cities: set[str] = set()  # cities known to run a program (programs are never removed)

    # --- enrolment ------------------------------------------------------------------------------

    def enroll(
        self, city: str, personal: dict[str, Any], level: str, actor: str, subject: str | None = None, *, key: str
    ) -> Resident:
        """Enrol a resident (valid one year) and issue their first card; returns their record. A retry
        with the same `key` (per city and actor) returns the first record and enrols nobody new."""
        check_personal(personal)
        _check_level(level)
        now = self.clock()
        # The fingerprint stands for the personal data without keeping it: salted with the key.
        sealed = hashlib.sha256(key.encode() + msgspec.json.encode(personal, order="sorted")).hexdigest()
        request = {"level": level, "subject": subject, "personal_sha256": sealed}
        with self.engine.begin() as conn:
            return idempotency.once(conn, f"{city}:{identity(actor)}:residents.enroll", key, request, Resident,
                                    lambda: self._enroll(conn, city, personal, level, actor, subject, now), now)  # fmt: skip

    def _enroll(self, conn: Connection, city: str, personal: dict[str, Any], level: str, actor: str, subject: str | None,
                now: int) -> Resident:  # fmt: skip
        resident_id = "r" + secrets.token_hex(10)
        data_key = crypto.new_data_key()
        _require_program(conn, city)
        taken = Conflict(f"a resident of {city} already has that subject", field="subject", reason="already_exists")
        if subject is not None and store.residents_by_subject(conn, subject, city, limit=1):
            raise taken
        try:  # without an explicit subject none is stored: no provider token can ever name this resident
            store.add_resident(conn, id=resident_id, city=city, subject=subject, level=level,
                               status="active", valid_until_us=now + YEAR_US, created_at_us=now,
                               wrapped_key=crypto.wrap_key(self.keys.kek(city), data_key, resident_id),
                               personal=crypto.seal_personal(data_key, personal, resident_id))  # fmt: skip
        except IntegrityError:  # a concurrent enrolment took the subject after our check (PostgreSQL)
            raise taken from None
        self._issue_card(conn, resident_id, city, now + YEAR_US, now)
        self.audit.record(conn, actor=actor, action="resident.enroll", city=city, target=resident_id, before=None,
                          after={"level": level}, now_us=now)  # fmt: skip
        return _stored(conn, resident_id)

    def renew(self, resident_id: str, actor: str, city: str) -> Resident:
        """Extend the city-issued identifier by a year (from its end, or from today if it lapsed)."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._active(conn, resident_id, city, for_update=True, allow_lapsed=True)
            valid_until = max(row["valid_until_us"], now) + YEAR_US
            store.update_resident(conn, resident_id, valid_until_us=valid_until)
            store.revoke_cards(conn, now, resident_id=resident_id)
            self._issue_card(conn, resident_id, row["city"], valid_until, now)
            self.audit.record(conn, actor=actor, action="resident.renew", city=row["city"], target=resident_id,
                        before={"valid_until_us": row["valid_until_us"]}, after={"valid_until_us": valid_until}, now_us=now)  # fmt: skip
            return _stored(conn, resident_id)

    def set_level(self, resident_id: str, level: str, actor: str, city: str, evidence: str | None = None) -> Resident:
        """Set the verification level; `evidence` (what staff saw: a document, a visit) goes to the audit record."""
        _check_level(level)
        if evidence is not None and not 1 <= len(evidence) <= MAX_EVIDENCE_CHARS:
            raise InvalidRequest(f"evidence is 1 to {MAX_EVIDENCE_CHARS} characters", field="evidence",
                                 reason="out_of_range")  # fmt: skip
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._active(conn, resident_id, city, for_update=True, allow_lapsed=True)
            store.update_resident(conn, resident_id, level=level)
            self.audit.record(conn, actor=actor, action="resident.set_level", city=row["city"], target=resident_id,
                        before={"level": row["level"]},
                        after={"level": level} | ({} if evidence is None else {"evidence": evidence}), now_us=now)  # fmt: skip
            return _stored(conn, resident_id)

    def get(self, resident_id: str, city: str | None = None) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return self._public(self._active(conn, resident_id, city, allow_lapsed=True))

    def record(self, resident_id: str, city: str) -> ResidentRecord:
        """A resident's record for their city's staff, with their opt-ins (no personal data)."""
        with self.engine.connect() as conn:
            row = self._public(self._active(conn, resident_id, city, allow_lapsed=True))
            pending = store.erasure_request(conn, resident_id)
            return ResidentRecord(**row, opt_ins=store.opt_ins(conn, resident_id),
                                  erasure_due_at_us=None if pending is None else pending["due_at_us"])  # fmt: skip

    def find(self, typed: str, city: str) -> ResidentRecord:
        """The resident of `city` that a typed resident id or card number names, exactly (no partial
        match, no search of personal data: it is sealed with each resident's own key). A card of
        another city, or nothing, is an unknown resident."""
        typed = typed.strip()
        with self.engine.connect() as conn:
            card = store.card(conn, typed) if 1 <= len(typed) <= 64 else None
        resident_id = card["resident_id"] if card is not None and card["city"] == city else typed
        return self.record(resident_id, city)

    def cards(self, resident_id: str, city: str) -> list[CardRecord]:
        """Every card of the resident, oldest first, with when each was revoked: for their city's staff."""
        with self.engine.connect() as conn:
            self._active(conn, resident_id, city, allow_lapsed=True)
            return [CardRecord(**{k: c[k] for k in CARD_FIELDS}) for c in store.cards_of(conn, resident_id)]

    def for_token(self, claims: dict[str, Any]) -> dict[str, Any]:
        """The resident a verified token names (`TokenService.verify`'s claims), refused if none.

        A built-in token names the resident by id. A provider's token names only a subject, which
        maps to a resident solely through an explicit enrolment with it (`subject`): in the token's
        city, or, when the token names none, in the one city that enrolled it; a subject enrolled
        in several cities is ambiguous and refused."""
        subject, city = claims.get("sub"), claims.get("city")
        if not isinstance(subject, str) or not isinstance(city, str | None):
            raise Unauthorized("invalid token")
        with self.engine.connect() as conn:
            if claims.get("iss") == crypto.BUILTIN_ISSUER:
                row = store.resident(conn, subject)
                rows = [row] if row is not None and city in (None, row["city"]) else []
            else:
                rows = store.residents_by_subject(conn, subject, city, limit=2)
        if len(rows) != 1:
            raise Unauthorized(
                "no resident for this token" if not rows else "the subject is enrolled in several cities"
            )
        return self._public(self._checked(rows[0], None, allow_lapsed=True))

    def for_provider_subject(self, issuer: str, subject: str, city: str | None) -> dict[str, Any]:
        """The resident a provider signed in on the pages (its ID token's `sub` and `city`): the same
        explicit enrolment `for_token` requires, never an e-mail or a name; refused as not enrolled."""
        try:
            return self.for_token({"iss": issuer, "sub": subject, "city": city})
        except Unauthorized:
            raise SubjectNotEnrolled("no resident is enrolled with this subject") from None

    def opt_in(self, resident_id: str, city: str, actor: str) -> OptIns:
        """Let the resident earn and redeem in another participating city (their wallet stays at home)."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._active(conn, resident_id, None)
            _require_program(conn, city)
            if city != row["city"] and city not in store.opt_ins(conn, resident_id):
                store.add_opt_in(conn, resident_id, city, now)
                self.audit.record(conn, actor=actor, action="resident.opt_in", city=row["city"], target=resident_id,
                                  before=None, after={"city": city}, now_us=now)  # fmt: skip
            return OptIns(home=row["city"], opt_ins=store.opt_ins(conn, resident_id))

    def opt_out(self, resident_id: str, city: str, actor: str) -> OptIns:
        """Stop earning and redeeming in a city the resident opted in to. Refused while points are held
        for a purchase there (a till's hold, a card payment under way): capturing it needs the opt-in,
        so it waits until the hold is captured or released (at most the program's hold timeout).
        Points earned there stay in the wallet, which is at home, and vouchers already redeemed
        there stay valid. Opting out of a city one is not opted in to changes nothing."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._active(conn, resident_id, None, for_update=True, allow_lapsed=True)
            _require_program(conn, city)
            if city == row["city"]:
                raise HomeCity("the home city holds the wallet: it cannot be left", city=city)
            if city in store.opt_ins(conn, resident_id):
                there = accounts.interop(city)
                held = [h for h in journal.open_holds_of(conn, row["city"], accounts.wallet(resident_id))
                        if h.credit_account == there]  # fmt: skip
                if held:
                    raise OptOutBlocked(f"{len(held)} holds for purchases in {city} are open", city=city,
                                        held_points=sum(h.amount for h in held))  # fmt: skip
                store.remove_opt_in(conn, resident_id, city)
                self.audit.record(conn, actor=actor, action="resident.opt_out", city=row["city"], target=resident_id,
                                  before={"city": city}, after=None, now_us=now)  # fmt: skip
            return OptIns(home=row["city"], opt_ins=store.opt_ins(conn, resident_id))

    def opt_ins(self, resident_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return store.opt_ins(conn, resident_id)

    def cities(self, resident_id: str) -> OptIns:
        """The resident's home city and the cities they opted in to."""
        with self.engine.connect() as conn:
            row = self._active(conn, resident_id, None, allow_lapsed=True)
            return OptIns(home=row["city"], opt_ins=store.opt_ins(conn, resident_id))

    # --- cards ----------------------------------------------------------------------------------

    def _issue_card(self, conn: Connection, resident_id: str, city: str, expires_at_us: int, now: int) -> str:
        card_id = "c" + secrets.token_hex(10)
        store.add_card(
            conn, id=card_id, resident_id=resident_id, city=city, issued_at_us=now, expires_at_us=expires_at_us
        )
        return card_id

    def card_token(self, card: dict[str, Any]) -> str:
        """The card as a compact JWS: card id, city and expiry, no personal data; signed by the city."""
        claims = {"sub": card["id"], "city": card["city"], "exp": card["expires_at_us"] // 1_000_000}
        with self.reads.connect() as conn:
            key = self.card_keyring.signing_key(conn, card["city"])
        return crypto.sign_token(key, claims)

    def current_card(self, resident_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            cards = [c for c in store.cards_of(conn, resident_id) if c["revoked_at_us"] is None]
        if not cards:
            raise UnknownCard("the resident has no valid card")
        return cards[-1] | {"token": self.card_token(cards[-1])}

    def card(self, resident_id: str) -> Card:
        """The resident's current card, as the wallet shows it."""
        found = self.current_card(resident_id)
        return Card(card_id=found["id"], city=found["city"], expires_at_us=found["expires_at_us"], token=found["token"])

    def card_qr(self, resident_id: str) -> bytes:
        """The current card as a QR code, a standalone SVG that scales to any size (a viewBox, no
        width), dark on white with the standard quiet zone, so a till's scanner reads it from a phone
        screen or paper. Error correction M: a scuffed printed card still reads."""
        qr = segno.make(self.card(resident_id).token, error="m")
        svg = io.BytesIO()
        qr.save(svg, kind="svg", xmldecl=False, omitsize=True, light="#fff", dark="#000", svgclass=None, lineclass=None)
        return svg.getvalue()

    def replace_card(self, resident_id: str, actor: str, city: str | None = None) -> Card:
        """Revoke every card of the resident (lost or stolen) and issue a new one."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._active(conn, resident_id, city, for_update=True)
            store.revoke_cards(conn, now, resident_id=resident_id)
            self._issue_card(conn, resident_id, row["city"], row["valid_until_us"], now)
            self.audit.record(conn, actor=actor, action="card.replace", city=row["city"], target=resident_id, before=None,
                        after=None, now_us=now)  # fmt: skip
        return self.card(resident_id)

    def revoke_card(self, card_id: str, actor: str, city: str) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            card = store.card(conn, card_id)
            if card is None or card["city"] != city:
                raise UnknownCard("no such card in this city")
            store.revoke_cards(conn, now, card_id=card_id)
            self.audit.record(
                conn, actor=actor, action="card.revoke", city=city, target=card_id, before=None, after=None, now_us=now
            )

    def revocations(self, city: str, since_us: int, limit: int = 10_000) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return store.revoked_cards(conn, city, since_us, limit)

    def card_keys(self, cities: list[str]) -> dict[str, Any]:
        """The cities' card public keys that verify cards now (JWKS, each with its validity): what a
        terminal needs to check cards offline."""
        return self.card_keyring.published(cities)

    def resolve_card(self, token: str, conn: Connection | None = None) -> CardHolder:
        """Check a presented card (signature, expiry, revocation) and its holder (active, valid)."""
        if conn is None:
            with self.reads.connect() as conn:
                return self.resolve_card(token, conn)
        city, kid = _card_key_id(token)
        if city not in self._card_cities:
            if not LEDGER_NAME.fullmatch(city) or store.program(conn, city) is None:
                raise UnknownCard("unknown card")  # and no key is ever made for a city named by a stranger
            self._card_cities.add(city)
        now_s = self.clock() // 1_000_000
        key, key_retired_at_us = self.card_keyring.verifying_key(conn, city, kid, now_s)
        try:
            claims = crypto.verify_token(token, KeySet([key]), now_s, city=city)
        except crypto.TokenRejected as exc:
            raise (
                CardExpired("the card has expired") if exc.reason == "expired" else UnknownCard("unknown card")
            ) from None
        found = store.card_and_holder(conn, claims["sub"])
        if found is None or found[0]["city"] != city:
            raise UnknownCard("unknown card")
        card, row = found
        if key_retired_at_us is not None and card["issued_at_us"] > key_retired_at_us:
            raise CardKeyRetired("the card was signed by a retired card key")  # a key retired vouches for no newer card
        if card["revoked_at_us"] is not None:
            raise CardRevoked("the card was revoked")
        self._checked(row, None, allow_lapsed=False)
        return CardHolder(card["id"], row["id"], row["city"], row["level"], tuple(store.opt_ins(conn, row["id"])))

    # --- the resident's own data ----------------------------------------------------------------

    def export(self, resident_id: str) -> DataExport:
        """Everything held about the resident: profile (decrypted), cards, opt-ins and wallet history."""
        with self.engine.connect() as conn:
            row = self._active(conn, resident_id, None, allow_lapsed=True)
            data_key = crypto.unwrap_key(self.keys.kek(row["city"]), row["wrapped_key"], resident_id)
            rows = journal.account_entries(conn, row["city"], [accounts.wallet(resident_id)], limit=MAX_EXPORT_ENTRIES)
            cards = [CardRecord(**{k: c[k] for k in CARD_FIELDS}) for c in store.cards_of(conn, resident_id)]
            return DataExport(
                resident=_resident(row), personal=PersonalRecord(**crypto.open_personal(data_key, row["personal"], resident_id)),
                opt_ins=store.opt_ins(conn, resident_id), cards=cards, history=wallet.lines(conn, row["city"], resident_id, rows, None),
            )  # fmt: skip

    # --- erasure: asked for, undone, carried out -----------------------------------------------

    def erasure(self, resident_id: str) -> Erasure:
        """The resident's erasure as it stands, with the points it would take now."""
        with self.engine.connect() as conn:
            row = self._active(conn, resident_id, None, allow_lapsed=True)
            return self._erasure(conn, row)

    def request_erasure(self, resident_id: str, actor: str, city: str | None = None) -> Erasure:
        """Ask to be erased ERASURE_DELAY_DAYS from now (the resident, or their city's staff: `city`);
        asking again keeps the first date."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._active(conn, resident_id, city, for_update=True, allow_lapsed=True)
            if store.erasure_request(conn, resident_id) is None:
                due = now + ERASURE_DELAY_DAYS * DAY_US
                store.add_erasure_request(conn, resident_id, row["city"], now, due)
                self.audit.record(conn, actor=actor, action="resident.erasure_request", city=row["city"],
                                  target=resident_id, before=None, after={"due_at_us": due}, now_us=now)  # fmt: skip
            return self._erasure(conn, row)

    def cancel_erasure(self, resident_id: str, actor: str, city: str | None = None) -> Erasure:
        """Undo a pending erasure (nothing to undo changes nothing)."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._active(conn, resident_id, city, for_update=True, allow_lapsed=True)
            pending = store.erasure_request(conn, resident_id)
            if pending is not None:
                store.remove_erasure_request(conn, resident_id)
                self.audit.record(conn, actor=actor, action="resident.erasure_cancel", city=row["city"], target=resident_id,
                                  before={"due_at_us": pending["due_at_us"]}, after=None, now_us=now)  # fmt: skip
            return self._erasure(conn, row)

    def carry_out_erasures(self, actor: str = "system:erasures", limit: int = ERASURES_PER_RUN) -> dict[str, int]:
        """Erase the residents whose delay is over (the `erasures` job). One with points still held
        waits for the next run: the hold is captured or released within the program's hold timeout."""
        with self.engine.connect() as conn:
            due = store.due_erasures(conn, self.clock(), limit)
        erased = deferred = 0
        for resident_id in due:
            try:
                self.erase(resident_id, actor)
                erased += 1
            except (ErasureBlocked, InsufficientFunds):  # held, or spent between the read and the sweep
                deferred += 1
        return {"erased": erased, "deferred": deferred}

    def personal(self, resident_id: str, city: str | None = None) -> dict[str, Any]:
        """The resident's personal data, decrypted for the task at hand (writing to them, greeting
        them) and not kept."""
        with self.engine.connect() as conn:
            row = self._active(conn, resident_id, city, allow_lapsed=True)
        data_key = crypto.unwrap_key(self.keys.kek(row["city"]), row["wrapped_key"], resident_id)
        return crypto.open_personal(data_key, row["personal"], resident_id)

    def contact(self, resident_id: str, city: str) -> tuple[str | None, str]:
        """How to write to the resident: their e-mail address (None if they gave none) and language
        (French unless they chose another)."""
        personal = self.personal(resident_id, city)
        return personal.get("email"), personal.get("language") or "fr"

    def erase(self, resident_id: str, actor: str, city: str | None = None) -> None:
        """Erase now (the job when the delay is over; a city's staff at once): destroy what
        identifies the resident, their key (crypto-erasure), their sealed data and the provider
        subject, revoke their cards, and move the points left in the wallet to `breakage`, in one
        transaction; the journal, which holds only the opaque id, keeps every entry. Refused while
        points are held for a purchase (ErasureBlocked). On SQLite the write-ahead log is then folded
        into the file and truncated, so no older page holding the key survives (with
        `secure_delete`, freed bytes are zeroed)."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._active(conn, resident_id, city, for_update=True, allow_lapsed=True)
            home, account = row["city"], accounts.wallet(resident_id)
            held = journal.open_holds_of(conn, home, account)
            if held:
                raise ErasureBlocked(f"{len(held)} holds are open", held_points=sum(h.amount for h in held))
            left = journal.balances(conn, [(home, account)]).get((home, account))
            points = 0 if left is None else left.available
            if points > 0:  # the transfer's id derives from the resident: erased once, moved once
                sweep = TransferRequest(
                    home, f"erasure:{resident_id}", "erasure", "single", account, accounts.BREAKAGE, points
                )
                (outcome,) = self.ledger.submit([[sweep]], conn=conn)
                if outcome.error is not None:
                    raise outcome.error
            store.update_resident(conn, resident_id, status="erased", subject=None, wrapped_key=None, personal=None)
            store.revoke_cards(conn, now, resident_id=resident_id)
            store.remove_erasure_request(conn, resident_id)
            self.audit.record(conn, actor=actor, action="resident.erase", city=home, target=resident_id, before=None,
                        after={"points_to_breakage": points}, now_us=now)  # fmt: skip
        checkpoint_wal(self.engine)

    def _erasure(self, conn: Connection, row: dict[str, Any]) -> Erasure:
        home, account = row["city"], accounts.wallet(row["id"])
        balance = journal.balances(conn, [(home, account)]).get((home, account))
        available, held = (0, 0) if balance is None else (balance.available, -balance.pending)
        pending = store.erasure_request(conn, row["id"])
        value = self.programs.get(home, conn).points_to_cents(available)
        if pending is None:
            return Erasure(status="none", requested_at_us=None, due_at_us=None, delay_days=ERASURE_DELAY_DAYS,
                           points=available, points_value_cents=value, held_points=held)  # fmt: skip
        return Erasure(status="pending", requested_at_us=pending["requested_at_us"], due_at_us=pending["due_at_us"],
                       delay_days=ERASURE_DELAY_DAYS, points=available, points_value_cents=value, held_points=held)  # fmt: skip

    # --- checks ---------------------------------------------------------------------------------

    def _active(self, conn: Connection, resident_id: str, city: str | None, for_update: bool = False,
                allow_lapsed: bool = False) -> dict[str, Any]:  # fmt: skip
        """The resident's row, refused if unknown, of another city, erased, or (unless allowed) lapsed."""
        row = store.resident(conn, resident_id, for_update) if isinstance(resident_id, str) else None
        return self._checked(row, city, allow_lapsed)

    def _checked(self, row: dict[str, Any] | None, city: str | None, allow_lapsed: bool) -> dict[str, Any]:
        if row is None:
            raise UnknownResident("unknown resident")
        if city is not None and row["city"] != city:
            raise WrongTenant("the resident belongs to another city")
        if row["status"] == "erased":
            raise ResidentErased("the resident's data was erased")
        if not allow_lapsed and row["valid_until_us"] <= self.clock():
            raise ResidentExpired("the resident's identifier has lapsed", valid_until=row["valid_until_us"])
        return row

    @staticmethod
    def _public(row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in RESIDENT_FIELDS}


RESIDENT_FIELDS = ("id", "city", "level", "status", "valid_until_us", "created_at_us")
CARD_FIELDS = ("id", "issued_at_us", "expires_at_us", "revoked_at_us")


def _resident(row: dict[str, Any]) -> Resident:
    return Resident(**{k: row[k] for k in RESIDENT_FIELDS})


def _stored(conn: Connection, resident_id: str) -> Resident:
    """The resident just written in this transaction."""
    row = store.resident(conn, resident_id)
    assert row is not None, "the resident was written in this transaction"
    return _resident(row)


def _require_program(conn: Connection, city: str) -> None:
    """Residents belong to, and opt in to, cities that run a program (not bare ledgers)."""
    if not isinstance(city, str) or store.program(conn, city) is None:
        raise UnknownProgram(f"no program for {city!r}", city=city)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise InvalidRequest(
            f"level must be one of {LEVELS}", field="level", reason="not_one_of", allowed=", ".join(LEVELS)
        )


def _card_key_id(token: str) -> tuple[str, str]:
    """The city named by the card's key id, and the key id; the signature check that follows is what trusts them."""
    kid = crypto.token_key_id(token) or ""
    if not kid.startswith("card-"):
        raise UnknownCard("unknown card")
    return kid.removeprefix("card-").split(".")[0], kid
