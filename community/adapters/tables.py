"""Tables of programs, residents, cards and organizations (same database and metadata as the ledger).

Personal data lives only in `residents.personal`, encrypted with the resident's own key, which is
stored wrapped by the city's key; the journal only ever sees opaque ids (invariant 7).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.adapters.tables import Base

BIG = BigInteger().with_variant(Integer(), "sqlite")


class ProgramRow(Base):
    __tablename__ = "programs"
    city: Mapped[str] = mapped_column(String(63), primary_key=True)
    config: Mapped[str] = mapped_column(Text)  # the Program struct as JSON
    version: Mapped[int] = mapped_column(Integer)
    updated_at_us: Mapped[int] = mapped_column(BIG)


class ResidentRow(Base):
    __tablename__ = "residents"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    # The identity provider's `sub`, only when the city enrolled the resident with one; NULL otherwise
    # (and after erasure). A provider's token maps to a resident through this column alone.
    subject: Mapped[str | None] = mapped_column(String(255))
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # active | erased
    valid_until_us: Mapped[int] = mapped_column(BIG)
    created_at_us: Mapped[int] = mapped_column(BIG)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # NULL once erased
    personal: Mapped[bytes | None] = mapped_column(LargeBinary)
    __table_args__ = (
        UniqueConstraint("city", "subject", name="uq_residents_subject"),
        Index("ix_residents_subject", "subject"),
    )


class OptInRow(Base):
    """Another participating city a resident opted in to (their wallet stays in their home city)."""

    __tablename__ = "resident_opt_ins"
    resident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    city: Mapped[str] = mapped_column(String(63), primary_key=True)
    at_us: Mapped[int] = mapped_column(BIG)


class ErasureRequestRow(Base):
    """A resident's request to be erased, until it is carried out (due_at_us) or they undo it: then the
    row goes, and the audit trail keeps what happened."""

    __tablename__ = "erasure_requests"
    resident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))  # the resident's home city, for its staff
    requested_at_us: Mapped[int] = mapped_column(BIG)
    due_at_us: Mapped[int] = mapped_column(BIG)
    __table_args__ = (Index("ix_erasure_requests_due", "due_at_us"), Index("ix_erasure_requests_city", "city"))


class CardRow(Base):
    __tablename__ = "cards"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    resident_id: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(63))
    issued_at_us: Mapped[int] = mapped_column(BIG)
    expires_at_us: Mapped[int] = mapped_column(BIG)
    revoked_at_us: Mapped[int | None] = mapped_column(BIG)
    __table_args__ = (Index("ix_cards_resident", "resident_id"), Index("ix_cards_revoked", "city", "revoked_at_us"))


class CardKeyRow(Base):
    """Public half of every card key a city rotated to or from, with its validity (the private half
    stays in the keys directory). A city without rows still signs with its first key, the file
    `card-<city>.pem`; its first rotation records that key here, retired."""

    __tablename__ = "card_keys"
    kid: Mapped[str] = mapped_column(String(80), primary_key=True)  # card-<city>.<thumbprint start>
    city: Mapped[str] = mapped_column(String(63))
    public_key: Mapped[str] = mapped_column(String(64))  # the JWK's `x`, base64url
    valid_from_us: Mapped[int] = mapped_column(BIG)
    retired_at_us: Mapped[int | None] = mapped_column(BIG)  # NULL: the city's active key
    # Cards keep verifying with a retired key while `now_s < accepted_until_s`: the expiry (whole
    # seconds, as in the card's `exp`) of the last card of the city valid when the key retired.
    accepted_until_s: Mapped[int | None] = mapped_column(BIG)
    __table_args__ = (
        Index("ix_card_keys_city", "city"),
        Index(
            "uq_card_keys_one_active",
            "city",
            unique=True,
            sqlite_where=text("retired_at_us IS NULL"),
            postgresql_where=text("retired_at_us IS NULL"),
        ),
    )


class UsageRow(Base):
    """Points a resident earned per cap bucket (`day:…`, `month:…`, `campaign:…`)."""

    __tablename__ = "award_usage"
    resident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(80), primary_key=True)
    points: Mapped[int] = mapped_column(BIG)


class OrganizationRow(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | suspended
    created_at_us: Mapped[int] = mapped_column(BIG)
    __table_args__ = (Index("ix_organizations_city", "city"),)


class AwardRow(Base):
    """Points earned (a purchase at a merchant, an attested civic activity) and how they were computed.

    Kept beside the journal entry it produced: a retry returns the same explanation, and a refund of
    the purchase knows what to reverse.
    """

    __tablename__ = "awards"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    transfer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # purchase | civic
    actor_id: Mapped[str] = mapped_column(String(64))  # the merchant or the organization
    resident_id: Mapped[str] = mapped_column(String(32))
    body_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)  # the JSON answered, returned again on a retry
    time_us: Mapped[int] = mapped_column(BIG)


class PrincipalRow(Base):
    """A city's staff member, finance officer, auditor, administrator or organization coordinator:
    one per (city, role, subject), granted by someone allowed to (community/domain/access.py)."""

    __tablename__ = "principals"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    role: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))
    org_id: Mapped[str | None] = mapped_column(String(64))
    merchant_id: Mapped[str | None] = mapped_column(String(64))  # the merchant a `merchant` principal owns
    status: Mapped[str] = mapped_column(String(16))  # active | revoked
    granted_by: Mapped[str] = mapped_column(String(160))
    granted_at_us: Mapped[int] = mapped_column(BIG)
    revoked_by: Mapped[str | None] = mapped_column(String(160))
    revoked_at_us: Mapped[int | None] = mapped_column(BIG)
    __table_args__ = (UniqueConstraint("city", "role", "subject", name="uq_principals_subject"),)


class PrincipalOidcLinkRow(Base):
    """A principal's account at the city's identity provider (issuer, `sub`), explicitly linked: the
    only way a provider's sign-in opens the portal or the office (community/service_layer/principal_links.py)."""

    __tablename__ = "principal_oidc_links"
    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(24))
    city: Mapped[str] = mapped_column(String(63))
    linked_by: Mapped[str] = mapped_column(String(160))
    linked_at_us: Mapped[int] = mapped_column(BIG)
    __table_args__ = (Index("ix_principal_oidc_links_principal", "principal_id"),)


class CredentialRow(Base):
    """A bearer token the built-in issuer signed, by its `jti`: checked on every request, revocable.
    The token itself is never stored."""

    __tablename__ = "credentials"
    jti: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str | None] = mapped_column(String(24))  # NULL for a resident's token
    city: Mapped[str] = mapped_column(String(63))
    role: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))  # the principal's subject, or the resident id
    issued_by: Mapped[str] = mapped_column(String(160))
    issued_at_us: Mapped[int] = mapped_column(BIG)
    expires_at_us: Mapped[int] = mapped_column(BIG)
    revoked_by: Mapped[str | None] = mapped_column(String(160))
    revoked_at_us: Mapped[int | None] = mapped_column(BIG)
    __table_args__ = (
        Index("ix_credentials_principal", "principal_id"),
        Index("ix_credentials_subject", "city", "role", "subject"),
    )


class ActivationCodeRow(Base):
    """A one-time code the city gives a resident to sign in on the web for the first time (or on a
    new device): only its keyed hash is stored; the newest live one replaces any older."""

    __tablename__ = "activation_codes"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    resident_id: Mapped[str | None] = mapped_column(String(32))  # whose code: a resident's,
    principal_id: Mapped[str | None] = mapped_column(String(24))  # or a principal's (web sign-in of staff, owners)
    city: Mapped[str] = mapped_column(String(63))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)  # HMAC-SHA-256 of the code, hex
    status: Mapped[str] = mapped_column(String(16))  # live | used | replaced
    issued_by: Mapped[str] = mapped_column(String(160))
    issued_at_us: Mapped[int] = mapped_column(BIG)
    expires_at_us: Mapped[int] = mapped_column(BIG)
    ended_at_us: Mapped[int | None] = mapped_column(BIG)  # used or replaced
    __table_args__ = (
        Index("ix_activation_codes_resident", "resident_id"),
        Index("ix_activation_codes_principal", "principal_id"),
    )


class PasskeyRow(Base):
    """A resident's WebAuthn credential (a passkey): its public key, never anything secret."""

    __tablename__ = "passkeys"
    credential_id: Mapped[str] = mapped_column(String(255), primary_key=True)  # base64url, as browsers send it
    resident_id: Mapped[str | None] = mapped_column(String(32))  # a resident's passkey,
    principal_id: Mapped[str | None] = mapped_column(String(24))  # or a principal's
    city: Mapped[str] = mapped_column(String(63))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE
    sign_count: Mapped[int] = mapped_column(BIG)
    transports: Mapped[str] = mapped_column(String(255))  # JSON list, e.g. ["internal", "hybrid"]
    created_at_us: Mapped[int] = mapped_column(BIG)
    last_used_at_us: Mapped[int | None] = mapped_column(BIG)
    __table_args__ = (Index("ix_passkeys_resident", "resident_id"), Index("ix_passkeys_principal", "principal_id"))


class CorrectionRow(Base):
    """A staff correction: a compensating transfer, its reason, and whether a second principal approved it
    (community/service_layer/corrections.py). `target` is what it corrects: an attestation's transfer id,
    a redemption id, or a resident id (a wallet correction)."""

    __tablename__ = "corrections"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))  # attestation | redemption | wallet
    target: Mapped[str] = mapped_column(String(64))
    resident_id: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(8))  # credit | debit: the resident's wallet
    points: Mapped[int] = mapped_column(BIG)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))  # pending | posted | rejected
    proposed_by: Mapped[str] = mapped_column(String(200))
    proposed_at_us: Mapped[int] = mapped_column(BIG)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at_us: Mapped[int | None] = mapped_column(BIG)
    transfer_ids: Mapped[str | None] = mapped_column(Text)  # [[ledger, transfer_id], …] once posted, as JSON
    __table_args__ = (
        Index("ix_corrections_city_status", "city", "status", "proposed_at_us"),
        Index("ix_corrections_target", "city", "kind", "target"),
    )
