"""Programs, residents, cards, organizations, merchants, terminals, nonces, awards, audit log.

One schema history for the one database: the ledger's tables come first (0001), the tables of the
people who use it build on them.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("city", sa.String(63), sa.ForeignKey("ledgers.name"), primary_key=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at_us", BIG, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BIG, primary_key=True, autoincrement=True),
        sa.Column("at_us", BIG, nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("target", sa.String(160), nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
    )
    op.create_index("ix_audit_city_time", "audit_log", ["city", "at_us"])
    op.create_table(
        "residents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("city", sa.String(63), sa.ForeignKey("ledgers.name"), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("valid_until_us", BIG, nullable=False),
        sa.Column("created_at_us", BIG, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary),
        sa.Column("personal", sa.LargeBinary),
        sa.UniqueConstraint("city", "subject", name="uq_residents_subject"),
        sa.CheckConstraint("level IN ('basic', 'verified', 'checked')", name="ck_residents_level"),
        sa.CheckConstraint("status IN ('active', 'erased')", name="ck_residents_status"),
    )
    op.create_table(
        "resident_opt_ins",
        sa.Column("resident_id", sa.String(32), sa.ForeignKey("residents.id"), primary_key=True),
        sa.Column("city", sa.String(63), sa.ForeignKey("ledgers.name"), primary_key=True),
        sa.Column("at_us", BIG, nullable=False),
    )
    op.create_table(
        "cards",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("resident_id", sa.String(32), sa.ForeignKey("residents.id"), nullable=False),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("issued_at_us", BIG, nullable=False),
        sa.Column("expires_at_us", BIG, nullable=False),
        sa.Column("revoked_at_us", BIG),
    )
    op.create_index("ix_cards_resident", "cards", ["resident_id"])
    op.create_index("ix_cards_revoked", "cards", ["city", "revoked_at_us"])
    op.create_table(
        "award_usage",
        sa.Column("resident_id", sa.String(32), primary_key=True),
        sa.Column("bucket", sa.String(80), primary_key=True),
        sa.Column("points", BIG, nullable=False),
        sa.CheckConstraint("points >= 0", name="ck_usage_points"),
    )
    for table in ("organizations", "merchants"):
        columns = [
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("city", sa.String(63), sa.ForeignKey("ledgers.name"), nullable=False),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("created_at_us", BIG, nullable=False),
            sa.CheckConstraint("status IN ('pending', 'approved', 'suspended')", name=f"ck_{table}_status"),
        ]
        if table == "merchants":
            columns.insert(3, sa.Column("category", sa.String(32), nullable=False))
        op.create_table(table, *columns)
        op.create_index(f"ix_{table}_city", table, ["city"])
    op.create_table(
        "terminals",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at_us", BIG, nullable=False),
        sa.CheckConstraint("status IN ('active', 'revoked')", name="ck_terminals_status"),
    )
    op.create_table(
        "request_nonces",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(128), primary_key=True),
        sa.Column("created_s", BIG, nullable=False),
    )
    op.create_index("ix_nonces_created", "request_nonces", ["created_s"])
    op.create_table(
        "awards",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("transfer_id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("resident_id", sa.String(32), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("time_us", BIG, nullable=False),
    )
    # History pages of a wallet and statements of a merchant read the journal by account.
    op.create_index("ix_journal_debit", "journal", ["ledger", "debit_account", "sequence"])
    op.create_index("ix_journal_credit", "journal", ["ledger", "credit_account", "sequence"])
    # Finds the other half of a cross-city transfer; only linked groups carry a group id.
    where = sa.text("group_id IS NOT NULL")
    op.create_index("ix_journal_group", "journal", ["group_id"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_journal_group", "journal")
    op.drop_index("ix_journal_credit", "journal")
    op.drop_index("ix_journal_debit", "journal")
    for table in ("awards", "request_nonces", "terminals", "merchants", "organizations", "award_usage", "cards",
                  "resident_opt_ins", "residents", "audit_log", "programs"):  # fmt: skip
        op.drop_table(table)
