"""A terminal's name (what its shop calls it, "Till 1"): given at pairing, changed from the portal.

Revision ID: 0023
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("terminals") as batch:
        batch.add_column(sa.Column("name", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("terminals") as batch:
        batch.drop_column("name")
