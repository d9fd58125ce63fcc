"""Tables of period closes, adjustments, payout accounts, Stripe connected accounts and the payout queue
(applied Stripe events share the marketplace's `payment_events`)."""

from __future__ import annotations

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from community.adapters.tables import BIG
from ledger.adapters.tables import Base


class CloseRow(Base):
    """A closed period: the statement as written, and its hash (closing again returns this row)."""

    __tablename__ = "period_closes"
    city: Mapped[str] = mapped_column(String(63), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    closed_at_us: Mapped[int] = mapped_column(BIG)
    closed_by: Mapped[str] = mapped_column(String(160))
    statement: Mapped[str] = mapped_column(Text)
    statement_sha256: Mapped[str] = mapped_column(String(64))


class AdjustmentRow(Base):
    """A correction in cents for a merchant, referencing the period it corrects; applied by the next close."""

    __tablename__ = "adjustments"
    id: Mapped[int] = mapped_column(BIG, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(String(63))
    merchant_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BIG)
    reason: Mapped[str] = mapped_column(String(500))
    ref_period: Mapped[str] = mapped_column(String(7))
    applied_period: Mapped[str | None] = mapped_column(String(7))
    created_at_us: Mapped[int] = mapped_column(BIG)
    created_by: Mapped[str] = mapped_column(String(160))
    __table_args__ = (Index("ix_adjustments_open", "city", "applied_period"),)


class PayoutAccountRow(Base):
    """Where a merchant is paid: a Canadian bank account (for pain.001) and a Stripe connected account."""

    __tablename__ = "payout_accounts"
    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder_name: Mapped[str] = mapped_column(String(140))
    institution: Mapped[str] = mapped_column(String(3))  # CPA institution number
    transit: Mapped[str] = mapped_column(String(5))  # branch transit number
    account_number: Mapped[str] = mapped_column(String(12))
    stripe_account_id: Mapped[str | None] = mapped_column(String(64))


class PayoutRow(Base):
    """One merchant's payout for one closed period: a durable queue entry and its state machine."""

    __tablename__ = "payouts"
    id: Mapped[str] = mapped_column(String(140), primary_key=True)  # <city>:<period>:<merchant>
    city: Mapped[str] = mapped_column(String(63))
    period: Mapped[str] = mapped_column(String(7))
    merchant_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BIG)
    status: Mapped[str] = mapped_column(String(16))  # queued | transferred | in_transit | paid | failed
    attempts: Mapped[int] = mapped_column(Integer)
    lease_until_us: Mapped[int] = mapped_column(BIG)  # a claimed payout is left alone until then
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(64))
    stripe_payout_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at_us: Mapped[int] = mapped_column(BIG)
    updated_at_us: Mapped[int] = mapped_column(BIG)
    __table_args__ = (Index("ix_payouts_due", "status", "lease_until_us"), Index("ix_payouts_period", "city", "period"))


class PayoutAccountChangeRow(Base):
    """A proposed payout account: used by payouts and bank files only once a second principal (another
    finance officer, or a city administrator) confirmed it; then it replaces `payout_accounts`' row."""

    __tablename__ = "payout_account_changes"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    merchant_id: Mapped[str] = mapped_column(String(64))
    holder_name: Mapped[str] = mapped_column(String(140))
    institution: Mapped[str] = mapped_column(String(3))
    transit: Mapped[str] = mapped_column(String(5))
    account_number: Mapped[str] = mapped_column(String(12))
    stripe_account_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | confirmed | rejected | superseded
    proposed_by: Mapped[str] = mapped_column(String(160))
    proposed_at_us: Mapped[int] = mapped_column(BIG)
    decided_by: Mapped[str | None] = mapped_column(String(160))
    decided_at_us: Mapped[int | None] = mapped_column(BIG)
    __table_args__ = (
        Index("ix_payout_changes_city", "city", "status"),
        Index("ix_payout_changes_merchant", "merchant_id", "status"),
    )


class BankStatementRow(Base):
    """An imported camt.053 bank statement of a city's treasury account: its message id and hash (importing it
    again changes nothing), the period it covers and how its entries matched (`bank_statement_results`)."""

    __tablename__ = "bank_statements"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    message_id: Mapped[str] = mapped_column(String(35))  # GrpHdr/MsgId, unique per city
    sha256: Mapped[str] = mapped_column(String(64))  # of the file as received
    account: Mapped[str] = mapped_column(String(34))
    currency: Mapped[str] = mapped_column(String(3))
    from_us: Mapped[int | None] = mapped_column(BIG)
    to_us: Mapped[int] = mapped_column(BIG)
    entries: Mapped[int] = mapped_column(Integer)
    imported_at_us: Mapped[int] = mapped_column(BIG)
    imported_by: Mapped[str] = mapped_column(String(160))
    __table_args__ = (UniqueConstraint("city", "message_id", name="uq_bank_statements_message"),
                      Index("ix_bank_statements_city", "city", "imported_at_us"))  # fmt: skip


class BankStatementResultRow(Base):
    """One line of an import's reconciliation: a bank entry matched (or not) to a payout or collection, or an
    expected payment the bank does not show. Amounts are signed cents of the city's account (a debit < 0)."""

    __tablename__ = "bank_statement_results"
    statement_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(20))  # matched | amount_differs | unknown_entry | missing_from_bank
    kind: Mapped[str | None] = mapped_column(String(16))  # payout | collection, when matched to one of ours
    end_to_end_id: Mapped[str | None] = mapped_column(String(35))
    period: Mapped[str | None] = mapped_column(String(7))
    merchant_id: Mapped[str | None] = mapped_column(String(64))
    expected_cents: Mapped[int | None] = mapped_column(BIG)
    bank_cents: Mapped[int | None] = mapped_column(BIG)
    booking_date: Mapped[str | None] = mapped_column(String(10))
    entry_ref: Mapped[str | None] = mapped_column(String(35))
    remittance: Mapped[str | None] = mapped_column(String(140))
    __table_args__ = (Index("ix_bank_results_reference", "end_to_end_id", "status"),)


class ConnectAccountRow(Base):
    """A merchant's Stripe connected account made by our server for Stripe's hosted onboarding, and
    what Stripe last said of it; with payouts enabled it is where the merchant's payouts go."""

    __tablename__ = "connect_accounts"
    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    stripe_account_id: Mapped[str] = mapped_column(String(64), unique=True)
    details_submitted: Mapped[bool] = mapped_column(Boolean)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean)
    created_at_us: Mapped[int] = mapped_column(BIG)
    updated_at_us: Mapped[int] = mapped_column(BIG)


class CollectionRow(Base):
    """What a merchant owes for a closed period whose net is negative; written by the close, once."""

    __tablename__ = "collections"
    id: Mapped[str] = mapped_column(String(140), primary_key=True)  # <city>:<period>:<merchant>
    city: Mapped[str] = mapped_column(String(63))
    period: Mapped[str] = mapped_column(String(7))
    merchant_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BIG)  # > 0
    method: Mapped[str] = mapped_column(String(16))  # invoice | direct_debit
    status: Mapped[str] = mapped_column(String(16))  # due | requested
    created_at_us: Mapped[int] = mapped_column(BIG)
    requested_at_us: Mapped[int | None] = mapped_column(BIG)
    requested_by: Mapped[str | None] = mapped_column(String(160))
    __table_args__ = (Index("ix_collections_period", "city", "period"),)
