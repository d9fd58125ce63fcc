"""Collections: what a merchant whose closed period nets negative owes the program, and how it is
collected (an invoice or a pain.008 direct debit, the city's `collection_method`), written by the close
(finance/service_layer/collections.py). Periods closed before this revision have none.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.String(140), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("requested_at_us", sa.BigInteger, nullable=True),
        sa.Column("requested_by", sa.String(160), nullable=True),
    )
    op.create_index("ix_collections_period", "collections", ["city", "period"])


def downgrade() -> None:
    op.drop_index("ix_collections_period", "collections")
    op.drop_table("collections")
