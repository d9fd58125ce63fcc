"""Identity: look residents up by provider subject alone.

A provider token that names no city is resolved by its subject in every city (and refused when more
than one city enrolled it); the (city, subject) unique index cannot serve that lookup.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_residents_subject", "residents", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_residents_subject", "residents")
