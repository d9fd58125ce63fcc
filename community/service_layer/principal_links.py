"""A principal's account at the city's identity provider: staff and merchant owners sign in there
instead of with a passkey once the account (the provider's issuer and `sub`) is explicitly linked to
their principal. Never by an e-mail or a name: a provider's sign-in opens the portal or the office
only through a link made by the principal itself (signed in, from its security page) or by whoever
may grant its role (`POST /v1/admin/principals/{city}/oidc-links`, `entraide admin
principal-oidc-link`). An account links one principal; linking and unlinking are audited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from community.adapters import access_store as store
from community.adapters.secrets import MAX_CLAIM_CHARS
from community.domain.access import GrantNotAllowed, Grantor, UnknownCredential, require_reader
from community.domain.errors import Conflict, NotFound, ProviderAccountNotLinked
from community.schemas import ProviderLink, ProviderLinks
from ledger.domain.errors import InvalidRequest
from ledger.service_layer.audit_trail import AuditTrail

LINK_FIELDS = ("issuer", "subject", "principal_id", "city", "linked_by", "linked_at_us")


def _public(row: dict[str, Any]) -> ProviderLink:
    return ProviderLink(**{k: row[k] for k in LINK_FIELDS})


class PrincipalLinks:
    def __init__(self, engine: Engine, audit: AuditTrail, clock: Callable[[], int], issuer: str | None) -> None:
        self.engine, self.audit, self.clock, self._issuer = engine, audit, clock, issuer

    @property
    def issuer(self) -> str:
        """The deployment's identity provider; NotFound when it has none (ENTRAIDE_OIDC_ISSUER)."""
        if self._issuer is None:
            raise NotFound("no identity provider is configured")
        return self._issuer

    def _principal(self, conn: Connection, actor: Grantor, city: str, role: str, subject: str) -> dict[str, Any]:
        """The active principal (city, role, subject), for itself or whoever may grant its role."""
        found = store.principal(conn, city, role, subject, for_update=True) if isinstance(subject, str) else None
        if found is None or found["status"] != "active":
            raise UnknownCredential("no such principal in this city")
        if not (actor.may_grant(role, city) or actor.is_self(role, subject, city)):
            raise GrantNotAllowed(f"a {actor.role} may not link the accounts of the role {role}", role=role)
        return found

    def link(self, actor: Grantor, city: str, role: str, subject: str, provider_subject: str) -> ProviderLink:
        """Link the provider's account `provider_subject` to the principal; linking it again to the same
        principal changes nothing, to another is a Conflict (unlink it there first). Audited."""
        if not isinstance(provider_subject, str) or not 0 < len(provider_subject) <= MAX_CLAIM_CHARS:
            raise InvalidRequest("an account's subject is 1 to 255 characters", field="provider_subject",
                                 reason="invalid_value")  # fmt: skip
        issuer, now = self.issuer, self.clock()
        with self.engine.begin() as conn:
            principal = self._principal(conn, actor, city, role, subject)
            existing = store.oidc_link(conn, issuer, provider_subject)
            if existing is not None:
                if existing["principal_id"] != principal["id"]:
                    raise Conflict("this account at the provider is linked to another principal",
                                   field="provider_subject", reason="linked_elsewhere")  # fmt: skip
                return _public(existing)
            values = {"issuer": issuer, "subject": provider_subject, "principal_id": principal["id"], "city": city,
                      "linked_by": actor.actor, "linked_at_us": now}  # fmt: skip
            store.add_oidc_link(conn, **values)
            self.audit.record(conn, actor=actor.actor, action="principal.oidc_link", city=city, target=f"{role}:{subject}",
                              before=None, after={"issuer": issuer, "subject": provider_subject}, now_us=now)  # fmt: skip
        return _public(values)

    def unlink(self, actor: Grantor, city: str, role: str, subject: str, provider_subject: str) -> ProviderLinks:
        """Unlink the account from the principal (it signs nobody in from then on), audited; the links left."""
        issuer, now = self.issuer, self.clock()
        with self.engine.begin() as conn:
            principal = self._principal(conn, actor, city, role, subject)
            if not store.remove_oidc_link(conn, issuer, str(provider_subject), principal["id"]):
                raise NotFound("this account is not linked to this principal")
            self.audit.record(conn, actor=actor.actor, action="principal.oidc_unlink", city=city, target=f"{role}:{subject}",
                              before={"issuer": issuer, "subject": provider_subject}, after=None, now_us=now)  # fmt: skip
            return ProviderLinks(links=[_public(r) for r in store.oidc_links(conn, principal["id"])])

    def links(self, viewer: Grantor, city: str, role: str, subject: str) -> ProviderLinks:
        """A principal's linked accounts: for itself, whoever may grant its role, and the city's auditors."""
        with self.engine.connect() as conn:
            found = store.principal(conn, city, role, subject) if isinstance(subject, str) else None
            if found is None:
                raise UnknownCredential("no such principal in this city")
            if not (viewer.may_grant(role, city) or viewer.is_self(role, subject, city)):
                require_reader(viewer, city)
            return ProviderLinks(links=[_public(r) for r in store.oidc_links(conn, found["id"])])

    def principal_for(self, provider_subject: str, roles: tuple[str, ...]) -> tuple[str, str]:
        """(principal id, city) of the active principal, of one of `roles`, the account is linked to;
        else ProviderAccountNotLinked (nothing is made)."""
        with self.engine.connect() as conn:
            found = store.oidc_link(conn, self.issuer, provider_subject)
        if found is None or found["status"] != "active" or found["role"] not in roles:
            raise ProviderAccountNotLinked("no principal of this area is linked to this account")
        return found["principal_id"], found["city"]
