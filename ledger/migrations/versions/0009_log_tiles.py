"""The public log's hash tiles (C2SP tlog-tiles), one row per tile, written with each checkpoint
(ledger/service_layer/tiles.py). Checkpoints signed before this revision get their tiles with the
next `make_checkpoints`.

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
        "log_tiles",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tile_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("log_tiles")
