"""A resident's erasure waits a stated delay during which they can undo it: the pending requests
(community/service_layer/residents.py `request_erasure`), carried out by the `erasures` job.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_requests",
        sa.Column("resident_id", sa.String(32), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("requested_at_us", sa.BigInteger, nullable=False),
        sa.Column("due_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_erasure_requests_due", "erasure_requests", ["due_at_us"])
    op.create_index("ix_erasure_requests_city", "erasure_requests", ["city"])


def downgrade() -> None:
    op.drop_table("erasure_requests")
