"""Activation codes: how a resident enrolled by their city signs in on the web the first time, or
on a new device (a lost phone: a new code, then a new passkey).

A code is twelve symbols of an alphabet without look-alikes (no 0/O, no 1/I), shown in three groups
of four (`7KQD-M2XA-9PRT`): 60 bits, short enough to type from a letter or a phone call. It works
once, for VALID_SECONDS, and a newer code replaces any older live one. The database keeps only a
keyed hash (HMAC with a secret of the deployment, `activation.key`), so its rows alone give no code
away. The code itself is derived from its row's id with the same secret, so that a retried
enrolment (same Idempotency-Key) shows the same code again instead of minting another. Issuing
and using a code are audited; guessing is slowed by the failure budgets of the callers
(api/http/auth.py `FailureLimits`: every refusal here is a 401).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine

from community.adapters import access_store
from community.adapters import sign_in_store as store
from community.adapters import store as community_store
from community.adapters.mail import Mailer
from community.adapters.secrets import CommunityKeys
from community.adapters.sign_in_store import PRINCIPAL, RESIDENT, holder_values
from community.domain.access import STAFF_ROLES, Grantor, actor_name, check_grant, identity
from community.domain.errors import (
    ActivationCodeExpired,
    ActivationCodeInvalid,
    ActivationCodeUsed,
    MailUnavailable,
    ResidentErased,
)
from community.schemas import ActivationCode, ActivationSent, PrincipalActivationCode
from community.service_layer.access import Access
from community.service_layer.residents import Residents
from ledger.adapters import idempotency
from ledger.domain.errors import InvalidRequest
from ledger.service_layer.audit_trail import AuditTrail

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols, 5 bits each: no 0, 1, I or O
LENGTH = 12
GROUP = 4
VALID_SECONDS = 72 * 3600

# (language, code, expires_at_us, city) -> (subject, text): the message, in the resident's language
Compose = Callable[[str, str, int, str], tuple[str, str]]


class Issued(msgspec.Struct, frozen=True):
    """What an issuing Idempotency-Key keeps: the row's id (the code is derived from it), never the code."""

    id: str
    resident_id: str  # the holder's id: a resident's, or a principal's when `holder` says so
    city: str
    expires_at_us: int
    holder: str = RESIDENT


def normalized(text: str, length: int = LENGTH) -> str | None:
    """The code as typed (any case, spaces or dashes), or None if it cannot be one of ours."""
    code = "".join(ch for ch in text.upper() if ch not in " -\t")
    return code if len(code) == length and all(ch in ALPHABET for ch in code) else None


def _mac(secret: bytes, label: bytes, value: str) -> bytes:
    return hmac.new(secret, label + value.encode(), hashlib.sha256).digest()


def derived_code(secret: bytes, code_id: str, length: int = LENGTH) -> str:
    """The code of a row, derived from its id with the deployment's secret (shown again on a retry)."""
    number = int.from_bytes(_mac(secret, b"code:", code_id)[:8], "big") >> (64 - 5 * length)
    return "".join(ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(length)))


def code_hash(secret: bytes, code: str) -> str:
    """What the database keeps of a code: its keyed hash, hex."""
    return _mac(secret, b"lookup:", code).hex()


def grouped(code: str) -> str:
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


class Activation:
    def __init__(self, engine: Engine, keys: CommunityKeys, residents: Residents, audit: AuditTrail,
                 clock: Callable[[], int], mailer: Mailer | None, mail_from: str, access: Access) -> None:  # fmt: skip
        self.engine, self.keys, self.residents, self.audit, self.clock = engine, keys, residents, audit, clock
        self.mailer, self.mail_from, self.access = mailer, mail_from, access

    def _code(self, code_id: str) -> str:
        return derived_code(self.keys.secret("activation"), code_id)

    def _hash(self, code: str) -> str:
        return code_hash(self.keys.secret("activation"), code)

    # --- issuing --------------------------------------------------------------------------------

    def issue(self, resident_id: str, city: str, actor: str, *, key: str, delivery: str = "shown") -> ActivationCode:
        """A new code for the resident (their older live code stops working), audited. A retry with
        the same `key` (per city and actor) shows the same code and issues none."""
        self.residents.get(resident_id, city)  # refused if unknown, of another city, or erased
        now = self.clock()
        with self.engine.begin() as conn:
            issued = idempotency.once(conn, f"{city}:{identity(actor)}:activation.issue", key,
                                      {"resident_id": resident_id, "delivery": delivery}, Issued,
                                      lambda: self._issue(conn, RESIDENT, resident_id, city, actor, delivery, now), now)  # fmt: skip
        return ActivationCode(resident_id=resident_id, city=city, code=grouped(self._code(issued.id)),
                              expires_at_us=issued.expires_at_us)  # fmt: skip

    def issue_principal(self, grantor: Grantor, city: str, role: str, subject: str, *, key: str,
                        merchant_id: str | None = None) -> PrincipalActivationCode:  # fmt: skip
        """A code for a merchant's owner or a program officer to sign in on the web, issued by whoever
        may grant the role (docs/security-model.md); the principal is made on its first code, and a
        newer code replaces its older live one. Audited; a retry with the same `key` shows the same code."""
        if role not in ("merchant", *STAFF_ROLES):
            raise InvalidRequest("a web sign-in is for a merchant's owner or a program officer", field="role",
                                 reason="invalid_value")  # fmt: skip
        check_grant(grantor, city, role, subject, None, VALID_SECONDS, merchant_id)
        now = self.clock()
        request = {"role": role, "subject": subject, "merchant_id": merchant_id}

        def issue(conn: Connection) -> Issued:
            principal_id, _ = self.access.enrol(
                conn, grantor, city, role, subject, None, merchant_id, now, renewal=False
            )
            return self._issue(conn, PRINCIPAL, principal_id, city, grantor.actor, "shown", now)

        with self.engine.begin() as conn:
            issued = idempotency.once(conn, f"{city}:{identity(grantor.actor)}:activation.issue_principal", key, request,
                                      Issued, lambda: issue(conn), now)  # fmt: skip
        return PrincipalActivationCode(principal_id=issued.resident_id, city=city, role=role, subject=subject,
                                       code=grouped(self._code(issued.id)), expires_at_us=issued.expires_at_us)  # fmt: skip

    def _issue(
        self, conn: Connection, kind: str, holder_id: str, city: str, actor: str, delivery: str, now: int
    ) -> Issued:
        code_id = "ac" + secrets.token_hex(10)
        replaced = store.end_codes(conn, kind, holder_id, "replaced", now)
        issued = Issued(code_id, holder_id, city, now + VALID_SECONDS * 1_000_000, kind)
        store.add_code(conn, id=code_id, **holder_values(kind, holder_id), city=city, code_hash=self._hash(self._code(code_id)),
                       status="live", issued_by=actor, issued_at_us=now, expires_at_us=issued.expires_at_us)  # fmt: skip
        self.audit.record(conn, actor=actor, action="activation.issue", city=city, target=holder_id,
                          before={"live_codes_replaced": replaced} if replaced else None,
                          after={"id": code_id, "expires_at_us": issued.expires_at_us, "delivery": delivery}, now_us=now)  # fmt: skip
        return issued

    def send(self, resident_id: str, city: str, actor: str, compose: Compose, *, key: str) -> ActivationSent:
        """A new code, sent to the resident's e-mail address in their language (the code is not shown)."""
        email, language = self.residents.contact(resident_id, city)  # an unknown resident is a 404 first
        if self.mailer is None:
            raise MailUnavailable("no SMTP server is configured (ENTRAIDE_SMTP_URL)")
        if not email:
            raise InvalidRequest("the resident gave no e-mail address", field="email", reason="no_email")
        issued = self.issue(resident_id, city, actor, key=key, delivery="email")
        subject, text = compose(language, issued.code, issued.expires_at_us, city)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.mail_from, email, subject
        message["Date"] = formatdate(self.clock() / 1_000_000, localtime=False)
        message["Content-Language"] = language
        message.set_content(text)
        self.mailer.send(message)
        return ActivationSent(resident_id=resident_id, city=city, status="sent", expires_at_us=issued.expires_at_us)

    # --- using ----------------------------------------------------------------------------------

    def redeem(self, typed: str, kind: str = RESIDENT) -> tuple[str, str]:
        """The (resident id, home city) of a live code, which is used up; refused (401) if it is not
        one of ours, was used or replaced, or expired. A refusal changes nothing. With `kind`
        "principal", only a principal's code: (principal id, its city), its grant still active."""
        code = normalized(typed) if isinstance(typed, str) else None
        if code is None:
            raise ActivationCodeInvalid("not an activation code")
        now = self.clock()
        with self.engine.begin() as conn:
            row = store.code_by_hash(conn, self._hash(code))
            holder_id = None if row is None else row["resident_id" if kind == RESIDENT else "principal_id"]
            if row is None or holder_id is None:
                raise ActivationCodeInvalid("not an activation code")
            if row["status"] != "live":
                raise ActivationCodeUsed("this activation code was already used or replaced")
            if row["expires_at_us"] <= now:
                raise ActivationCodeExpired("this activation code has expired")
            if kind == PRINCIPAL:
                return self._redeem_principal(conn, row, now)
            resident = community_store.resident(conn, row["resident_id"])
            if resident is None or resident["status"] == "erased":
                raise ResidentErased("the resident's data was erased")
            store.end_codes(conn, RESIDENT, row["resident_id"], "used", now, code_id=row["id"])
            self.audit.record(conn, actor=f"resident:{row['resident_id']}", action="activation.use", city=row["city"],
                              target=row["resident_id"], before={"status": "live"}, after={"id": row["id"], "status": "used"},
                              now_us=now)  # fmt: skip
        return row["resident_id"], resident["city"]

    def _redeem_principal(self, conn: Connection, row: dict[str, Any], now: int) -> tuple[str, str]:
        principal = access_store.principal_by_id(conn, row["principal_id"])
        if principal is None or principal["status"] != "active":
            raise ActivationCodeInvalid("this principal's grant was withdrawn")
        store.end_codes(conn, PRINCIPAL, principal["id"], "used", now, code_id=row["id"])
        self.audit.record(conn, actor=actor_name(principal["role"], principal["subject"]), action="activation.use",
                          city=row["city"], target=principal["id"], before={"status": "live"},
                          after={"id": row["id"], "status": "used"}, now_us=now)  # fmt: skip
        return principal["id"], principal["city"]
