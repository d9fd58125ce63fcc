"""Payments review: a redemption attempt that failed stays as a `failed` row (its error and attempt
count), so that the retry with the same Idempotency-Key runs a new attempt under a new hold instead
of the ledger replaying the dead one.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD = "status IN ('reserved', 'awaiting_payment', 'completed', 'cancelled', 'refunded')"
NEW = "status IN ('reserved', 'awaiting_payment', 'completed', 'cancelled', 'refunded', 'failed')"


def _status_check(allowed: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table (its named checks are reflected).
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_constraint("ck_redemptions_status", type_="check")
        batch.create_check_constraint("ck_redemptions_status", allowed)


def upgrade() -> None:
    _status_check(NEW)


def downgrade() -> None:
    op.execute("DELETE FROM redemptions WHERE status = 'failed'")  # they hold nothing: no stock, no points
    _status_check(OLD)
