"""The signed journal, its projections, keys and checkpoints; append-only triggers.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIG = sa.BigInteger
APPEND_ONLY = ("journal", "checkpoints")


def upgrade() -> None:
    op.create_table(
        "ledgers",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("head_sequence", BIG, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("head_time_us", BIG, nullable=False),
        sa.Column("created_at_us", BIG, nullable=False),
    )
    op.create_table(
        "journal",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("sequence", BIG, primary_key=True, autoincrement=False),
        sa.Column("transfer_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        sa.Column("debit_account", sa.String(160), nullable=False),
        sa.Column("credit_account", sa.String(160), nullable=False),
        sa.Column("amount", BIG, nullable=False),
        sa.Column("ref", sa.String(32)),
        sa.Column("group_id", sa.String(32)),
        sa.Column("expires_at_us", BIG),
        sa.Column("time_us", BIG, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64)),
        sa.CheckConstraint("amount > 0", name="ck_journal_amount_positive"),
        sa.CheckConstraint("sequence > 0", name="ck_journal_sequence_positive"),
        sa.CheckConstraint("debit_account <> credit_account", name="ck_journal_two_accounts"),
        sa.UniqueConstraint("ledger", "transfer_id", name="uq_journal_transfer"),
    )
    op.create_index("ix_journal_ref", "journal", ["ledger", "ref"])
    op.create_index("ix_journal_time", "journal", ["ledger", "time_us"])
    op.create_table(
        "accounts",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(160), primary_key=True),
        sa.Column("debits_posted", BIG, nullable=False),
        sa.Column("credits_posted", BIG, nullable=False),
        sa.Column("debits_pending", BIG, nullable=False),
        sa.Column("credits_pending", BIG, nullable=False),
        sa.Column("non_negative", sa.Boolean, nullable=False),
        sa.CheckConstraint(
            "NOT non_negative OR debits_posted + debits_pending <= credits_posted", name="ck_accounts_not_overdrawn"
        ),
    )
    op.create_table(
        "holds",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("transfer_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("debit_account", sa.String(160), nullable=False),
        sa.Column("credit_account", sa.String(160), nullable=False),
        sa.Column("amount", BIG, nullable=False),
        sa.Column("expires_at_us", BIG, nullable=False),
    )
    op.create_index("ix_holds_expiry", "holds", ["ledger", "expires_at_us"])
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("valid_from_us", BIG, nullable=False),
        sa.Column("valid_until_us", BIG),
    )
    # At most one active key: two processes initialising an empty database cannot both win.
    op.create_index(
        "uq_signing_keys_one_active",
        "signing_keys",
        [sa.text("(valid_until_us IS NULL)")],
        unique=True,
        postgresql_where=sa.text("valid_until_us IS NULL"),
        sqlite_where=sa.text("valid_until_us IS NULL"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("ledger", sa.String(63), primary_key=True),
        sa.Column("tree_size", BIG, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("time_us", BIG, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION entraide_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION entraide_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION entraide_append_only()"
            )
    else:
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
                )


def downgrade() -> None:
    raise NotImplementedError("the journal is never dropped by a migration")
