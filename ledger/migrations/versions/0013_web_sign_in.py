"""Residents sign in on the web: one-time activation codes (only their keyed hash) and passkeys
(WebAuthn credentials: public keys and sign counts).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BIG = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "activation_codes",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("resident_id", sa.String(32), nullable=False),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_by", sa.String(160), nullable=False),
        sa.Column("issued_at_us", BIG, nullable=False),
        sa.Column("expires_at_us", BIG, nullable=False),
        sa.Column("ended_at_us", BIG),
    )
    op.create_index("ix_activation_codes_resident", "activation_codes", ["resident_id"])
    op.create_table(
        "passkeys",
        sa.Column("credential_id", sa.String(255), primary_key=True),
        sa.Column("resident_id", sa.String(32), nullable=False),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", BIG, nullable=False),
        sa.Column("transports", sa.String(255), nullable=False),
        sa.Column("created_at_us", BIG, nullable=False),
        sa.Column("last_used_at_us", BIG),
    )
    op.create_index("ix_passkeys_resident", "passkeys", ["resident_id"])


def downgrade() -> None:
    op.drop_table("passkeys")
    op.drop_table("activation_codes")
