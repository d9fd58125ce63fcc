"""Tables of merchants, terminals (public keys only), request nonces, pairing codes and offline sale times."""

from __future__ import annotations

from sqlalchemy import Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from community.adapters.tables import BIG
from ledger.adapters.tables import Base


class MerchantRow(Base):
    __tablename__ = "merchants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | suspended
    created_at_us: Mapped[int] = mapped_column(BIG)
    __table_args__ = (Index("ix_merchants_city", "city"),)


class TerminalRow(Base):
    """A POS terminal's Ed25519 public key; the private key never leaves the terminal."""

    __tablename__ = "terminals"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))  # active | revoked
    created_at_us: Mapped[int] = mapped_column(BIG)
    name: Mapped[str | None] = mapped_column(String(100))  # what the shop calls it, "Till 1" (pairing, the portal)


class NonceRow(Base):
    """Signature nonces seen within the freshness window: a captured request cannot be replayed."""

    __tablename__ = "request_nonces"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_s: Mapped[int] = mapped_column(BIG)
    __table_args__ = (Index("ix_nonces_created", "created_s"),)


class PairingCodeRow(Base):
    """A one-time code that lets a device register its own terminal key for a merchant (the web
    terminal's pairing): only its keyed hash is stored; it works once, for a few minutes."""

    __tablename__ = "terminal_pairing_codes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    city: Mapped[str] = mapped_column(String(63))
    name: Mapped[str | None] = mapped_column(String(100))  # the device's name, as given with the code
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)  # HMAC-SHA-256 of the code, hex
    status: Mapped[str] = mapped_column(String(16))  # live | used
    issued_by: Mapped[str] = mapped_column(String(160))
    issued_at_us: Mapped[int] = mapped_column(BIG)
    expires_at_us: Mapped[int] = mapped_column(BIG)
    terminal_key_id: Mapped[str | None] = mapped_column(String(64))  # the key it registered, once used


class OccurredAtRow(Base):
    """When an offline sale happened at the till, as its terminal signed it, beside the ledger's
    commit time (the journal's `time_us`), by transfer id."""

    __tablename__ = "pos_occurred_at"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    transfer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    occurred_at_us: Mapped[int] = mapped_column(BIG)


# The merchants table for queries shared with other members (community.adapters.store.member):
# SQLAlchemy types `MerchantRow.__table__` as a FromClause, the metadata holds it typed as a Table.
MERCHANTS = Base.metadata.tables[MerchantRow.__tablename__]
