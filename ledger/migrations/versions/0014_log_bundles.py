"""The public log's entry bundles, one row per level-0 tile, written with the tiles at each checkpoint
(ledger/service_layer/tiles.py), so that serving a bundle reads one row instead of 256 journal rows.
Ledgers tiled before this revision get their bundles with the next `make_checkpoints`.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_bundles",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("bundle_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entries", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("log_bundles")
