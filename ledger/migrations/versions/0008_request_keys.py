"""Idempotency-Keys of creating requests (offers, enrolments, tokens, items ...): the key, the
request's fingerprint and the stored result (ledger/adapters/idempotency.py).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_keys",
        sa.Column("scope", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("time_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("request_keys")
