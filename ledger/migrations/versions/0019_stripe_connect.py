"""Stripe Connect onboarding and card disputes: the merchant's connected account made for Stripe's hosted
onboarding (and whether Stripe enabled its payouts), and each dispute of a card payment, linked to its
redemption (docs/operations.md, "Stripe Connect" and "Disputes").

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connect_accounts",
        sa.Column("merchant_id", sa.String(64), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("stripe_account_id", sa.String(64), nullable=False, unique=True),
        sa.Column("details_submitted", sa.Boolean, nullable=False),
        sa.Column("payouts_enabled", sa.Boolean, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "disputes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("charge_id", sa.String(64), nullable=False),
        sa.Column("payment_intent_id", sa.String(64)),
        sa.Column("redemption_id", sa.String(32)),
        sa.Column("city", sa.String(63)),
        sa.Column("merchant_id", sa.String(64)),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("funds_withdrawn", sa.Boolean, nullable=False),
        sa.Column("evidence_due_by_us", sa.BigInteger),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.Column("closed_at_us", sa.BigInteger),
        sa.Column("event_created_s", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount_cents >= 0", name="ck_disputes_amount"),
    )
    op.create_index("ix_disputes_city", "disputes", ["city", "created_at_us"])


def downgrade() -> None:
    op.drop_index("ix_disputes_city", "disputes")
    op.drop_table("disputes")
    op.drop_table("connect_accounts")
