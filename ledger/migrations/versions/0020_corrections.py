"""Staff corrections: a compensating transfer with a reason, pending above the program's
`correction_approval_points` until a second principal approves it (community/service_layer/corrections.py).

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "corrections",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("resident_id", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("points", BIG, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("proposed_by", sa.String(200), nullable=False),
        sa.Column("proposed_at_us", BIG, nullable=False),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("decided_at_us", BIG),
        sa.Column("transfer_ids", sa.Text),
    )
    op.create_index("ix_corrections_city_status", "corrections", ["city", "status", "proposed_at_us"])
    op.create_index("ix_corrections_target", "corrections", ["city", "kind", "target"])


def downgrade() -> None:
    op.drop_table("corrections")
