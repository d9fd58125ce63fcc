"""Card remainders paid on Stripe's hosted Checkout page (the wallet's pages): the session, its page
and where it sends the resident back, beside the PaymentIntent that API clients confirm themselves.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("redemptions") as batch:
        batch.add_column(sa.Column("checkout_return_url", sa.String(512)))
        batch.add_column(sa.Column("checkout_session_id", sa.String(255)))
        batch.add_column(sa.Column("checkout_url", sa.Text))
    op.create_index("uq_redemptions_checkout_session", "redemptions", ["checkout_session_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_redemptions_checkout_session", "redemptions")
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_column("checkout_url")
        batch.drop_column("checkout_session_id")
        batch.drop_column("checkout_return_url")
