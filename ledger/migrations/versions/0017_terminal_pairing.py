"""The web terminal: one-time pairing codes (a device registers its own key with a code the
merchant's owner or the city's staff gave it), and when each offline sale happened (`occurred_at_us`
beside the ledger's commit time, keyed by transfer id; the journal format does not change).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "terminal_pairing_codes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_by", sa.String(160), nullable=False),
        sa.Column("issued_at_us", sa.BigInteger, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
        sa.Column("terminal_key_id", sa.String(64), nullable=True),
    )
    op.create_table(
        "pos_occurred_at",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("transfer_id", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("occurred_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pos_occurred_at")
    op.drop_table("terminal_pairing_codes")
