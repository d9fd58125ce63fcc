"""Card keys rotate: the public half and validity of every card key a city rotated to or from
(community/service_layer/card_keys.py). A city without rows still signs with its first key file.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_keys",
        sa.Column("kid", sa.String(80), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("valid_from_us", sa.BigInteger, nullable=False),
        sa.Column("retired_at_us", sa.BigInteger),
        sa.Column("accepted_until_s", sa.BigInteger),
    )
    op.create_index("ix_card_keys_city", "card_keys", ["city"])
    # At most one active key per city: two rotations at once cannot both win.
    op.create_index("uq_card_keys_one_active", "card_keys", ["city"], unique=True,
                    postgresql_where=sa.text("retired_at_us IS NULL"), sqlite_where=sa.text("retired_at_us IS NULL"))  # fmt: skip


def downgrade() -> None:
    op.drop_table("card_keys")
