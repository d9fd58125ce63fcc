"""Granting, checking, listing and revoking the built-in issuer's bearer tokens.

Every token names a credential (`jti`) recorded here, and every non-resident token a principal:
one per (city, role, subject), so that nobody can mint a token under somebody else's name. A grant
and a revocation are audited with the granting principal and the credential it used; each request
checks that its credential is neither revoked nor its principal's grant withdrawn.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from community.adapters import access_store as store
from community.adapters import store as community_store
from community.adapters.secrets import BUILTIN_ISSUER, TokenService
from community.adapters.tables import OrganizationRow
from community.domain.access import (
    RESIDENT,
    GrantNotAllowed,
    Grantor,
    SubjectTaken,
    TokenRevoked,
    UnknownCredential,
    actor_name,
    check_grant,
    identity,
    require_reader,
)
from community.domain.errors import Conflict, Unauthorized, UnknownOrganization, UnknownProgram, WrongTenant
from community.schemas import Credential, Credentials, IssuedToken, Principal, PrincipalRevocation, Principals
from ledger.adapters import idempotency
from ledger.schemas import Result
from ledger.service_layer.audit_trail import AuditTrail
from merchants.adapters.tables import MERCHANTS
from merchants.errors import UnknownMerchant

RESIDENT_TTL_SECONDS_MAX = 90 * 86_400


def _public(row: dict[str, Any]) -> Credential:
    """A credential as listed: everything but the token, which is never stored."""
    keys = ("jti", "principal_id", "city", "role", "subject", "issued_by", "issued_at_us", "expires_at_us", "revoked_by",
            "revoked_at_us")  # fmt: skip
    return Credential(**{k: row[k] for k in keys})


class Granted(Result, frozen=True):
    """A credential as its grant's Idempotency-Key keeps it: what signs its token again on a retry,
    never the token's text."""

    jti: str
    principal_id: str | None
    city: str
    role: str
    subject: str
    org_id: str | None
    issued_at_s: int
    ttl_seconds: int
    expires_at_us: int
    merchant_id: str | None = None


class Access:
    def __init__(
        self,
        engine: Engine,
        tokens: TokenService,
        audit: AuditTrail,
        clock: Callable[[], int],
    ) -> None:
        self.engine, self.tokens, self.audit, self.clock = engine, tokens, audit, clock

    # --- granting ---------------------------------------------------------------------------

    def grant(self, grantor: Grantor, city: str, role: str, subject: str, org_id: str | None = None,
              ttl_seconds: int = 3_600, *, key: str, merchant_id: str | None = None) -> IssuedToken:  # fmt: skip
        """A new token for (city, role, subject); creates the principal on its first grant.

        A principal that exists and is active gets a new token only from itself (renewal) or the
        operator: a staff member cannot mint a token under a colleague's subject. A revoked one
        is granted again by whoever may grant its role. A retry with the same `key` (per city and
        grantor) returns the same token: its key keeps the claims, never the token's text, and the
        token is signed again from them (an Ed25519 signature of the same bytes is the same).
        """
        check_grant(grantor, city, role, subject, org_id, ttl_seconds, merchant_id)
        now = self.clock()
        request = {
            "role": role,
            "subject": subject,
            "org_id": org_id,
            "ttl_seconds": ttl_seconds,
        } | ({"merchant_id": merchant_id} if merchant_id else {})
        with self.engine.begin() as conn:
            granted = idempotency.once(conn, f"{city}:{identity(grantor.actor)}:tokens.grant", key, request, Granted,
                                       lambda: self._grant(conn, grantor, city, role, subject, org_id, merchant_id,
                                                           ttl_seconds, now), now)  # fmt: skip
        return IssuedToken(
            token=self._sign(granted),
            **{f: getattr(granted, f) for f in IssuedToken.__struct_fields__ if f != "token"},
        )

    def enrol(self, conn: Connection, grantor: Grantor, city: str, role: str, subject: str, org_id: str | None,
              merchant_id: str | None, now: int, *, renewal: bool = True) -> tuple[str, dict[str, Any] | None]:  # fmt: skip
        """The principal (city, role, subject), made on its first grant, inside the caller's transaction:
        its id and its row as it was (None if new). The grant's shape is the caller's to check
        (`check_grant`). An active principal is renewed only by itself or the operator when `renewal`;
        without it (an activation code) by whoever may grant its role."""
        if community_store.program(conn, city) is None:
            raise UnknownProgram(f"no program for {city!r}", city=city)
        if org_id is not None:
            org = community_store.member(conn, OrganizationRow.__table__, org_id)
            if org is None or org["city"] != city:
                raise UnknownOrganization(f"no organization {org_id!r} in {city}")
        if merchant_id is not None:
            merchant = community_store.member(conn, MERCHANTS, merchant_id)
            if merchant is None or merchant["city"] != city:
                raise UnknownMerchant(f"no merchant {merchant_id!r} in {city}")
        found = store.principal(conn, city, role, subject, for_update=True)
        if found is None:
            principal_id = "p" + secrets.token_hex(10)
            store.add_principal(conn, id=principal_id, city=city, role=role, subject=subject, org_id=org_id, merchant_id=merchant_id,
                                status="active",
                                granted_by=grantor.actor, granted_at_us=now)  # fmt: skip
        else:
            principal_id = found["id"]
            if found["org_id"] != org_id:
                raise Conflict(
                    f"{subject} coordinates another organization in {city}",
                    field="org_id",
                    reason="other_organization",
                )
            if found["merchant_id"] != merchant_id:
                raise Conflict(
                    f"{subject} owns another merchant in {city}",
                    field="merchant_id",
                    reason="other_merchant",
                )
            renewing = grantor.role == "operator" or grantor.is_self(role, subject, city)
            if found["status"] == "active" and not (renewing if renewal else grantor.may_grant(role, city)):
                raise SubjectTaken(
                    f"{subject} already holds {role} in {city}",
                    subject=subject,
                    role=role,
                )
            if found["status"] == "revoked":
                if not grantor.may_grant(role, city):
                    raise GrantNotAllowed(f"a {grantor.role} may not grant the role {role}", role=role)
                store.set_principal(conn, principal_id, status="active", granted_by=grantor.actor, granted_at_us=now,
                                    revoked_by=None, revoked_at_us=None)  # fmt: skip
        return principal_id, found

    def _grant(self, conn: Connection, grantor: Grantor, city: str, role: str, subject: str, org_id: str | None,
               merchant_id: str | None, ttl_seconds: int, now: int) -> Granted:  # fmt: skip
        principal_id, found = self.enrol(conn, grantor, city, role, subject, org_id, merchant_id, now)
        granted = self._issue(
            conn, principal_id, city, role, subject, org_id, ttl_seconds, grantor.actor, now, merchant_id
        )
        self.audit.record(conn, actor=grantor.actor, action="credential.grant", city=city, target=f"{role}:{subject}",
                          before=None if found is None else {"status": found["status"]},
                          after={k: getattr(granted, k) for k in ("jti", "principal_id", "role", "subject", "org_id", "expires_at_us")},
                          now_us=now)  # fmt: skip
        return granted

    def issue_resident(self, resident_id: str, city: str, ttl_seconds: int, issued_by: str) -> str:
        """A resident's bearer token from the built-in issuer (the embedded default's sign-in)."""
        assert 0 < ttl_seconds <= RESIDENT_TTL_SECONDS_MAX
        with self.engine.begin() as conn:
            granted = self._issue(
                conn,
                None,
                city,
                RESIDENT,
                resident_id,
                None,
                ttl_seconds,
                issued_by,
                self.clock(),
            )
        return self._sign(granted)

    def issue_principal(self, principal_id: str, ttl_seconds: int, issued_by: str) -> str:
        """A session token of an active principal (its web sign-in: `issued_by` says how, e.g.
        "web:passkey"), with the principal's own role, subject, city and binding; audited
        `principal.sign_in`."""
        assert 0 < ttl_seconds <= RESIDENT_TTL_SECONDS_MAX
        with self.engine.begin() as conn:
            row = store.principal_by_id(conn, principal_id)
            if row is None or row["status"] != "active":
                raise TokenRevoked("this principal's grant was withdrawn")
            now = self.clock()
            granted = self._issue(conn, principal_id, row["city"], row["role"], row["subject"], row["org_id"], ttl_seconds,
                                  issued_by, now, row["merchant_id"])  # fmt: skip
            # A principal's sign-in is in its city's trail (the office's audit, the owner's activity).
            self.audit.record(conn, actor=actor_name(row["role"], row["subject"], granted.jti), action="principal.sign_in",
                              city=row["city"], target=f"{row['role']}:{row['subject']}", before=None,
                              after={"how": issued_by, "expires_at_us": granted.expires_at_us}, now_us=now)  # fmt: skip
        return self._sign(granted)

    def _issue(self, conn: Connection, principal_id: str | None, city: str, role: str, subject: str, org_id: str | None,
               ttl_seconds: int, issued_by: str, now_us: int, merchant_id: str | None = None) -> Granted:  # fmt: skip
        """Record a new credential; its token is `_sign(granted)`."""
        now_s = now_us // 1_000_000
        granted = Granted(jti=secrets.token_hex(16), principal_id=principal_id, city=city, role=role, subject=subject,
                          org_id=org_id, issued_at_s=now_s, ttl_seconds=ttl_seconds,
                          expires_at_us=(now_s + ttl_seconds) * 1_000_000, merchant_id=merchant_id)  # fmt: skip
        store.add_credential(conn, jti=granted.jti, principal_id=principal_id, city=city, role=role, subject=subject,
                             issued_by=issued_by, issued_at_us=now_us, expires_at_us=granted.expires_at_us)  # fmt: skip
        return granted

    def _sign(self, granted: Granted) -> str:
        """The credential's token: the same claims in the same order give the same text."""
        claims = {
            "sub": granted.subject,
            "role": granted.role,
            "city": granted.city,
            "jti": granted.jti,
        }
        if granted.org_id:
            claims["org"] = granted.org_id
        if granted.merchant_id:
            claims["merchant"] = granted.merchant_id
        return self.tokens.issue(claims, granted.ttl_seconds, granted.issued_at_s)

    # --- every request ------------------------------------------------------------------------

    def check(self, claims: dict[str, Any]) -> str:
        """The credential id of a verified built-in token, refused if it was revoked, its principal's
        grant withdrawn, or it names another role, subject, city or organization than was granted."""
        jti = claims.get("jti")
        if claims.get("iss") != BUILTIN_ISSUER or not isinstance(jti, str) or len(jti) != 32:
            raise Unauthorized("invalid token")
        with self.engine.connect() as conn:
            row = store.credential_state(conn, jti)
        claimed = (
            claims.get("role"),
            claims.get("sub"),
            claims.get("city"),
            claims.get("org"),
            claims.get("merchant"),
        )
        if row is None or (row["role"], row["subject"], row["city"], row["org_id"], row["merchant_id"]) != claimed:
            raise Unauthorized("invalid token")
        if row["revoked_at_us"] is not None or row["principal_status"] == "revoked":
            raise TokenRevoked("this token was revoked")
        return jti

    # --- listing and revoking ---------------------------------------------------------------

    def credentials(self, viewer: Grantor, city: str, role: str | None = None, subject: str | None = None,
                    live_only: bool = True) -> Credentials:  # fmt: skip
        """A city's credentials for its administrators and auditors; anyone else sees their own."""
        if not viewer.may_read_credentials(city):
            if viewer.city != city:
                raise WrongTenant("this belongs to another city")
            role, subject = viewer.role, viewer.subject
        with self.engine.connect() as conn:
            rows = store.credentials(conn, city, role, subject, self.clock() if live_only else None)
        return Credentials(credentials=[_public(r) for r in rows])

    def principals(self, viewer: Grantor, city: str) -> Principals:
        """A city's principals, for its administrators and auditors."""
        require_reader(viewer, city)
        with self.engine.connect() as conn:
            return Principals(principals=[Principal(**row) for row in store.principals(conn, city)])

    def principal_id(self, city: str, role: str, subject: str) -> str:
        """The id of an active principal (whose passkeys and codes are kept under it)."""
        with self.engine.connect() as conn:
            found = store.principal(conn, city, role, subject)
        if found is None or found["status"] != "active":
            raise UnknownCredential("no such principal in this city")
        return str(found["id"])

    def revoke(self, revoker: Grantor, city: str, jti: str) -> Credential:
        """Revoke one token: its holder (signing out), whoever may grant its role, or the operator."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = store.credential(conn, jti) if isinstance(jti, str) else None
            if row is None or row["city"] != city:
                raise UnknownCredential("no such token in this city")
            if not (revoker.may_grant(row["role"], city) or revoker.is_self(row["role"], row["subject"], city)):
                raise GrantNotAllowed(
                    f"a {revoker.role} may not revoke the role {row['role']}",
                    role=row["role"],
                )
            revoked = store.revoke_credentials(conn, now, revoker.actor, jti=jti)
            if revoked:
                self.audit.record(conn, actor=revoker.actor, action="credential.revoke", city=city,
                                  target=f"{row['role']}:{row['subject']}", before=None, after={"jti": jti}, now_us=now)  # fmt: skip
            return _public(store.credential(conn, jti))  # type: ignore[arg-type]

    def revoke_principal(self, revoker: Grantor, city: str, role: str, subject: str) -> PrincipalRevocation:
        """Withdraw a principal's grant: every token it holds stops working at once."""
        now = self.clock()
        with self.engine.begin() as conn:
            found = store.principal(conn, city, role, subject, for_update=True) if isinstance(subject, str) else None
            if found is None:
                raise UnknownCredential("no such principal in this city")
            if not revoker.may_grant(role, city):
                raise GrantNotAllowed(f"a {revoker.role} may not revoke the role {role}", role=role)
            revoked = store.revoke_credentials(conn, now, revoker.actor, principal_id=found["id"])
            if found["status"] == "active":
                store.set_principal(
                    conn,
                    found["id"],
                    status="revoked",
                    revoked_by=revoker.actor,
                    revoked_at_us=now,
                )
                self.audit.record(conn, actor=revoker.actor, action="principal.revoke", city=city, target=f"{role}:{subject}",
                                  before={"status": "active"}, after={"status": "revoked", "tokens_revoked": revoked},
                                  now_us=now)  # fmt: skip
            return PrincipalRevocation(**store.principal(conn, city, role, subject), tokens_revoked=revoked)  # type: ignore[arg-type]

    def sign_out_everywhere(self, holder: Grantor, principal_id: str) -> int:
        """A principal signs itself out everywhere: every live token of theirs (each browser's
        session, each token granted to them) stops working at once, audited; how many."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = store.principal_by_id(conn, principal_id)
            if row is None or not holder.is_self(row["role"], row["subject"], row["city"]):
                raise UnknownCredential("no such principal in this city")
            revoked = store.revoke_credentials(conn, now, holder.actor, principal_id=principal_id)
            self.audit.record(conn, actor=holder.actor, action="credential.revoke_all", city=row["city"],
                              target=f"{row['role']}:{row['subject']}", before=None, after={"tokens_revoked": revoked},
                              now_us=now)  # fmt: skip
        return revoked

    def revoke_resident(self, resident_id: str, city: str, actor: str) -> int:
        """Sign a resident out everywhere: every live token of theirs stops working at once (each
        browser's session, each app's token), audited; how many were revoked."""
        now = self.clock()
        with self.engine.begin() as conn:
            revoked = store.revoke_credentials(conn, now, actor, resident_id=resident_id, city=city)
            self.audit.record(conn, actor=actor, action="credential.revoke_all", city=city, target=f"{RESIDENT}:{resident_id}",
                              before=None, after={"tokens_revoked": revoked}, now_us=now)  # fmt: skip
        return revoked
