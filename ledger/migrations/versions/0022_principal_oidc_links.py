"""Staff and merchant owners sign in through the city's identity provider: an explicit link from
the provider's account (issuer, `sub`) to one principal, made by the principal itself (signed in
with a passkey) or by whoever may grant its role; unlinking deletes the row (the audit trail keeps
both).

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "principal_oidc_links",
        sa.Column("issuer", sa.String(255), primary_key=True),
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("principal_id", sa.String(24), nullable=False),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("linked_by", sa.String(160), nullable=False),
        sa.Column("linked_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_principal_oidc_links_principal", "principal_oidc_links", ["principal_id"])


def downgrade() -> None:
    op.drop_index("ix_principal_oidc_links_principal", "principal_oidc_links")
    op.drop_table("principal_oidc_links")
