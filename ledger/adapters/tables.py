"""SQLAlchemy 2 typed mappings of the ledger's tables.

The journal is the system of record and is append-only (database triggers refuse UPDATE and
DELETE, see the migrations). Everything else here is a projection that replaying the journal
reproduces (balances, open holds) or metadata (ledgers' heads, public keys, checkpoints).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class LedgerRow(Base):
    """One hash chain per municipality. Its row is the lock that serializes appends to the chain."""

    __tablename__ = "ledgers"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    head_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    head_hash: Mapped[str] = mapped_column(String(64))
    head_time_us: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at_us: Mapped[int] = mapped_column(BigInteger)


class JournalRow(Base):
    __tablename__ = "journal"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    transfer_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str] = mapped_column(String(8))
    debit_account: Mapped[str] = mapped_column(String(160))
    credit_account: Mapped[str] = mapped_column(String(160))
    amount: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str | None] = mapped_column(String(32))
    group_id: Mapped[str | None] = mapped_column(String(32))
    expires_at_us: Mapped[int | None] = mapped_column(BigInteger)
    time_us: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
    # Not signed and not exported: the fingerprint of the request body, for idempotency.
    request_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("ledger", "transfer_id", name="uq_journal_transfer"),
        Index("ix_journal_ref", "ledger", "ref"),
        Index("ix_journal_time", "ledger", "time_us"),
        Index("ix_journal_debit", "ledger", "debit_account", "sequence"),
        Index("ix_journal_credit", "ledger", "credit_account", "sequence"),
        Index("ix_journal_group", "group_id", sqlite_where=text("group_id IS NOT NULL"), postgresql_where=text("group_id IS NOT NULL")),
    )


class AccountRow(Base):
    """Balance projection, updated in the same transaction as the journal append."""

    __tablename__ = "accounts"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(160), primary_key=True)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    non_negative: Mapped[bool] = mapped_column(Boolean)


class HoldRow(Base):
    """Open holds (pending transfers not yet posted, voided or expired)."""

    __tablename__ = "holds"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    transfer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    debit_account: Mapped[str] = mapped_column(String(160))
    credit_account: Mapped[str] = mapped_column(String(160))
    amount: Mapped[int] = mapped_column(BigInteger)
    expires_at_us: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_holds_expiry", "ledger", "expires_at_us"),)


class SigningKeyRow(Base):
    """Public half of every key that ever signed. Private keys never enter the database."""

    __tablename__ = "signing_keys"
    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), default="ed25519")
    public_key: Mapped[str] = mapped_column(String(64))
    valid_from_us: Mapped[int] = mapped_column(BigInteger)
    valid_until_us: Mapped[int | None] = mapped_column(BigInteger)


class CheckpointRow(Base):
    __tablename__ = "checkpoints"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    time_us: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text)
