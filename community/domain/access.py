"""Roles, who may grant which, and how an actor is named in the audit trail. Pure rules, no I/O.

Separation of duties, as a city runs it: a role grants only roles below or beside its own, and
finance and auditor credentials come only from a city administrator or from the server's command
line (the operator, who already holds every key). docs/security-model.md shows this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from community.domain.errors import Forbidden
from ledger.domain.errors import InvalidRequest, LedgerError

RESIDENT = "resident"
# Roles a principal of a city holds (a resident is not a principal: their record is the authority).
PRINCIPAL_ROLES = ("org", "merchant", "staff", "finance", "auditor", "admin")
# The roles of the back office (`/office`); `merchant` is a merchant's owner (`/portal`), `org` an API client.
STAFF_ROLES = ("staff", "finance", "auditor", "admin")
ROLES = (RESIDENT, *PRINCIPAL_ROLES)
OPERATOR = "operator"  # the server's command line (`entraide admin grant`), audited as cli:<user>

# Who may grant (and so revoke) what, in their own city.
GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "staff", "finance", "auditor", "org", "merchant"}),
    "staff": frozenset({"org", "merchant"}),
    "finance": frozenset(),
    "auditor": frozenset(),
    "org": frozenset(),
    "merchant": frozenset(),
    RESIDENT: frozenset(),
}
# Who may see the credentials of a city (never the tokens themselves, which are not stored).
CREDENTIAL_READERS = ("admin", "auditor")

SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 90 * 86_400


class TokenRevoked(LedgerError):
    code = "token_revoked"


class GrantNotAllowed(LedgerError):
    code = "grant_not_allowed"


class SubjectTaken(LedgerError):
    code = "subject_taken"


class UnknownCredential(LedgerError):
    code = "unknown_credential"


class SecondPrincipalRequired(LedgerError):
    code = "second_principal_required"


@dataclass(frozen=True)
class Grantor:
    """Who grants or revokes: a principal of a city (`role`, `subject`, `city`, the credential it
    used), or the operator (`role` OPERATOR, no city). `actor` is how the audit trail names it."""

    role: str
    subject: str
    city: str | None
    actor: str

    def may_grant(self, role: str, city: str) -> bool:
        return self.role == OPERATOR or (self.city == city and role in GRANTS.get(self.role, frozenset()))

    def is_self(self, role: str, subject: str, city: str) -> bool:
        return (self.role, self.subject, self.city) == (role, subject, city)

    def may_read_credentials(self, city: str) -> bool:
        return self.role == OPERATOR or (self.city == city and self.role in CREDENTIAL_READERS)


def operator(user: str) -> Grantor:
    """The server's command line, run by the operating-system user `user`."""
    return Grantor(OPERATOR, user, None, f"cli:{user}")


def actor_name(role: str, subject: str, credential: str | None = None) -> str:
    """`role:subject`, and `/credential` when the action came with a token: the audit trail then says
    which token acted, and through the credential's record, who granted it."""
    return f"{role}:{subject}" + (f"/{credential}" if credential else "")


def identity(actor: str) -> str:
    """The principal behind an actor name (`finance:bob/3fa…` → `finance:bob`): two tokens of one
    person are one person, for the two-person rule."""
    return actor.split("/", 1)[0]


def check_grant(grantor: Grantor, city: str, role: str, subject: str, org_id: str | None, ttl_seconds: int,
                merchant_id: str | None = None) -> None:  # fmt: skip
    """Shape and permission of a grant; whether the subject is free is the service's to check."""
    if role not in PRINCIPAL_ROLES:
        raise GrantNotAllowed(f"{role!r} is not a role that can be granted", role=str(role)[:16])
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise InvalidRequest("subject: 1 to 64 letters, digits or . _ @ + -", field="subject", reason="invalid_value")
    if (role == "org") != (org_id is not None):
        raise InvalidRequest(
            "an organization token names its organization, and only it", field="org_id", reason="org_id_for_org_role"
        )
    if (role == "merchant") != (merchant_id is not None):
        raise InvalidRequest(
            "a merchant owner's token names its merchant, and only it",
            field="merchant_id",
            reason="merchant_id_for_merchant_role",
        )
    if type(ttl_seconds) is not int or not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidRequest(
            f"ttl_seconds is {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}",
            field="ttl_seconds",
            reason="out_of_range",
            min_value=MIN_TTL_SECONDS,
            max_value=MAX_TTL_SECONDS,
        )
    if not (grantor.may_grant(role, city) or grantor.is_self(role, subject, city)):
        raise GrantNotAllowed(f"a {grantor.role} may not grant the role {role}", role=role)


def require_reader(grantor: Grantor, city: str) -> None:
    if not grantor.may_read_credentials(city):
        raise Forbidden("only a city administrator or auditor may list the city's credentials")
