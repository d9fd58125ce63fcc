"""SQLAlchemy 2 typed mappings of the ledger's tables.

The journal is the system of record and is append-only (database triggers refuse UPDATE and
DELETE, see the migrations). Everything else here is a projection that replaying the journal
reproduces (balances, open holds) or metadata (ledgers' heads, public keys, checkpoints).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

if TYPE_CHECKING:
    from sqlalchemy import Table


class Base(DeclarativeBase):
    if TYPE_CHECKING:
        # Every mapping here is declared with __tablename__, so its __table__ is a Table (the
        # stubs say FromClause, which insert/update/delete and Members refuse).
        __table__: ClassVar[Table]


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
        Index(
            "ix_journal_group",
            "group_id",
            sqlite_where=text("group_id IS NOT NULL"),
            postgresql_where=text("group_id IS NOT NULL"),
        ),
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


class LogTileRow(Base):
    """A ledger's Merkle tree as tlog-tiles (ledger/domain/tiles.py): the 32-byte hashes of one tile,
    written with the checkpoint that makes them public. A full tile (8,192 bytes) never changes; the
    right-edge tile of a level grows until it is full."""

    __tablename__ = "log_tiles"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tile_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LogBundleRow(Base):
    """A ledger's entry bundle (ledger/domain/tiles.py): the export lines of the 256 entries of one
    level-0 tile, each uint16-length-prefixed, stored with the checkpoint that publishes them so that
    serving one is a single row read. A full bundle never changes; the right-edge bundle grows until
    it is full, as its tile does."""

    __tablename__ = "log_bundles"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    bundle_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entries: Mapped[bytes] = mapped_column(LargeBinary)


class AuditRow(Base):
    """Who changed what, when, with the state before and after: one hash chain per city, each record
    signed by the ledger's active key (ledger/domain/audit_trail.py). Append-only, like the journal."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    city: Mapped[str] = mapped_column(String(63))
    seq: Mapped[int] = mapped_column(BigInteger)
    at_us: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(160))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(16))  # NULL only for records written before the trail was signed
    signature: Mapped[str | None] = mapped_column(String(128))
    __table_args__ = (
        UniqueConstraint("city", "seq", name="uq_audit_city_seq"),
        Index("ix_audit_city_time", "city", "at_us"),
    )


class AuditHeadRow(Base):
    """The last record of each city's audit chain; its row lock serializes the city's audit writes."""

    __tablename__ = "audit_heads"
    city: Mapped[str] = mapped_column(String(63), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class JobRow(Base):
    """A recurring job of `entraide serve`: who holds its lease (one runner across workers), when it
    runs next, and how its last run ended."""

    __tablename__ = "jobs"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until_us: Mapped[int] = mapped_column(BigInteger)
    next_run_us: Mapped[int] = mapped_column(BigInteger)
    last_started_us: Mapped[int | None] = mapped_column(BigInteger)
    last_finished_us: Mapped[int | None] = mapped_column(BigInteger)
    last_result: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(String(500))
    runs: Mapped[int] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(BigInteger)


class RequestKeyRow(Base):
    """An Idempotency-Key of a creating request (an offer, an enrolment, a token ...): the request's
    fingerprint and the result it produced, written in the creation's own transaction
    (ledger/adapters/idempotency.py). Money-moving requests keep theirs in the journal."""

    __tablename__ = "request_keys"
    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    result: Mapped[bytes | None] = mapped_column(LargeBinary)
    time_us: Mapped[int] = mapped_column(BigInteger)


class CosignatureRow(Base):
    """A witness's cosignature line on a checkpoint (c2sp.org/tlog-cosignature), verified before it is stored."""

    __tablename__ = "cosignatures"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(255), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[int] = mapped_column(BigInteger)  # the cosignature's, in seconds
    received_us: Mapped[int] = mapped_column(BigInteger)


class WitnessStateRow(Base):
    """What a witness has cosigned of a ledger, and how the last submission to it went."""

    __tablename__ = "witness_state"
    ledger: Mapped[str] = mapped_column(String(63), primary_key=True)
    witness: Mapped[str] = mapped_column(String(255), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)  # the witness's latest cosigned size, as it last told us
    state: Mapped[str] = mapped_column(String(16))  # ok | failed | fork
    tried_size: Mapped[int] = mapped_column(BigInteger)  # the checkpoint last submitted to it
    detail: Mapped[str | None] = mapped_column(Text)
    updated_us: Mapped[int] = mapped_column(BigInteger)
