"""The bank's camt.053 statements imported for reconciliation, and each import's match results
(finance/service_layer/reconciliation.py).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bank_statements",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("message_id", sa.String(35), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("account", sa.String(34), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("from_us", BIG, nullable=True),
        sa.Column("to_us", BIG, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("imported_at_us", BIG, nullable=False),
        sa.Column("imported_by", sa.String(160), nullable=False),
        sa.UniqueConstraint("city", "message_id", name="uq_bank_statements_message"),
    )
    op.create_index("ix_bank_statements_city", "bank_statements", ["city", "imported_at_us"])
    op.create_table(
        "bank_statement_results",
        sa.Column("statement_id", sa.String(24), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("end_to_end_id", sa.String(35), nullable=True),
        sa.Column("period", sa.String(7), nullable=True),
        sa.Column("merchant_id", sa.String(64), nullable=True),
        sa.Column("expected_cents", BIG, nullable=True),
        sa.Column("bank_cents", BIG, nullable=True),
        sa.Column("booking_date", sa.String(10), nullable=True),
        sa.Column("entry_ref", sa.String(35), nullable=True),
        sa.Column("remittance", sa.String(140), nullable=True),
    )
    op.create_index("ix_bank_results_reference", "bank_statement_results", ["end_to_end_id", "status"])


def downgrade() -> None:
    op.drop_table("bank_statement_results")
    op.drop_table("bank_statements")
