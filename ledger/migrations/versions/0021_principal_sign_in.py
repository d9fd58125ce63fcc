"""Merchant owners and city staff sign in on the web: a principal may be bound to one merchant
(`merchant` role), and activation codes and passkeys belong to a resident or to a principal
(exactly one of `resident_id`, `principal_id`).

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

OLD_ROLES = "'resident', 'org', 'staff', 'finance', 'auditor', 'admin'"
ROLES = "'resident', 'org', 'merchant', 'staff', 'finance', 'auditor', 'admin'"


def _roles(roles: str) -> None:
    for table in ("principals", "credentials"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"ck_{table}_role", type_="check")
            batch.create_check_constraint(f"ck_{table}_role", sa.text(f"role IN ({roles})"))


def upgrade() -> None:
    _roles(ROLES)
    with op.batch_alter_table("principals") as batch:
        batch.add_column(sa.Column("merchant_id", sa.String(64)))
    for table in ("activation_codes", "passkeys"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("resident_id", existing_type=sa.String(32), nullable=True)
            batch.add_column(sa.Column("principal_id", sa.String(24)))
            batch.create_index(f"ix_{table}_principal", ["principal_id"])


def downgrade() -> None:
    for table in ("passkeys", "activation_codes"):
        op.execute(sa.text(f"DELETE FROM {table} WHERE resident_id IS NULL"))
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_principal")
            batch.drop_column("principal_id")
            batch.alter_column("resident_id", existing_type=sa.String(32), nullable=False)
    op.execute(sa.text("DELETE FROM credentials WHERE role = 'merchant'"))
    op.execute(sa.text("DELETE FROM principals WHERE role = 'merchant'"))
    with op.batch_alter_table("principals") as batch:
        batch.drop_column("merchant_id")
    _roles(OLD_ROLES)
