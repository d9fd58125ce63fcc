"""Witnesses' cosignatures of checkpoints, and what each witness has cosigned of each ledger
(ledger/service_layer/witnessing.py). The checkpoints table stays append-only: a published note is
its row's note with the cosignature lines of this table appended (audit.published_note).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIG = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "cosignatures",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("tree_size", BIG, primary_key=True, autoincrement=False),
        sa.Column("witness", sa.String(255), primary_key=True),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("timestamp", BIG, nullable=False),
        sa.Column("received_us", BIG, nullable=False),
        sa.ForeignKeyConstraint(["ledger", "tree_size"], ["checkpoints.ledger", "checkpoints.tree_size"]),
    )
    op.create_table(
        "witness_state",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("witness", sa.String(255), primary_key=True),
        sa.Column("size", BIG, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tried_size", BIG, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("updated_us", BIG, nullable=False),
        sa.CheckConstraint("state IN ('ok', 'failed', 'fork')", name="ck_witness_state"),
        sa.CheckConstraint("size >= 0", name="ck_witness_state_size"),
    )


def downgrade() -> None:
    op.drop_table("witness_state")
    op.drop_table("cosignatures")
