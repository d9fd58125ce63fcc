"""Finance: period closes, adjustments, payout accounts and the payout queue.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "period_closes",
        sa.Column("city", sa.String(63), sa.ForeignKey("ledgers.name"), primary_key=True),
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("closed_at_us", BIG, nullable=False),
        sa.Column("closed_by", sa.String(160), nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("statement_sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "adjustments",
        sa.Column("id", BIG, primary_key=True, autoincrement=True),
        sa.Column("city", sa.String(63), sa.ForeignKey("ledgers.name"), nullable=False),
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("amount_cents", BIG, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("ref_period", sa.String(7), nullable=False),
        sa.Column("applied_period", sa.String(7)),
        sa.Column("created_at_us", BIG, nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.CheckConstraint("amount_cents <> 0", name="ck_adjustments_amount"),
    )
    op.create_index("ix_adjustments_open", "adjustments", ["city", "applied_period"])
    op.create_table(
        "payout_accounts",
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), primary_key=True),
        sa.Column("holder_name", sa.String(140), nullable=False),
        sa.Column("institution", sa.String(3), nullable=False),
        sa.Column("transit", sa.String(5), nullable=False),
        sa.Column("account_number", sa.String(12), nullable=False),
        sa.Column("stripe_account_id", sa.String(64)),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(140), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("amount_cents", BIG, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_until_us", BIG, nullable=False),
        sa.Column("stripe_transfer_id", sa.String(64)),
        sa.Column("stripe_payout_id", sa.String(64)),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at_us", BIG, nullable=False),
        sa.Column("updated_at_us", BIG, nullable=False),
        sa.CheckConstraint("amount_cents > 0", name="ck_payouts_amount"),
        sa.CheckConstraint(
            "status IN ('queued', 'transferred', 'in_transit', 'paid', 'failed')", name="ck_payouts_status"
        ),
    )
    op.create_index("ix_payouts_due", "payouts", ["status", "lease_until_us"])
    op.create_index("ix_payouts_period", "payouts", ["city", "period"])


def downgrade() -> None:
    for table in ("payouts", "payout_accounts", "adjustments", "period_closes"):
        op.drop_table(table)
