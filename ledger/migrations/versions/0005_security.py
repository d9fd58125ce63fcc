"""Security review: a chained, signed, append-only audit trail; principals and credentials; payout
account changes confirmed by a second person; redemption attempts; resident subjects only when
enrolled explicitly; leases and outcomes of recurring jobs.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from ledger.domain.audit_trail import GENESIS_HASH, record_hash

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROLES = "'resident', 'org', 'staff', 'finance', 'auditor', 'admin'"


def _chain_existing_audit_records(bind) -> None:
    """Records written before this revision get their city's sequence and hash chain; they stay
    unsigned (no key is at hand in a migration), and the next signed record of the city covers them."""
    rows = bind.execute(
        sa.text("SELECT id, city, at_us, actor, action, target, before, after FROM audit_log ORDER BY city, id")
    )
    heads: dict[str, tuple[int, str]] = {}
    for row in rows.mappings().all():
        seq, prev = heads.get(row["city"], (0, GENESIS_HASH))
        fields = dict(row) | {"seq": seq + 1, "prev_hash": prev}
        digest = record_hash(fields)
        bind.execute(sa.text("UPDATE audit_log SET seq = :seq, prev_hash = :prev, hash = :hash WHERE id = :id"),
                     {"seq": seq + 1, "prev": prev, "hash": digest, "id": row["id"]})  # fmt: skip
        heads[row["city"]] = (seq + 1, digest)
    for city, (seq, digest) in heads.items():
        bind.execute(sa.text("INSERT INTO audit_heads (city, seq, hash) VALUES (:city, :seq, :hash)"),
                     {"city": city, "seq": seq, "hash": digest})  # fmt: skip


def _append_only(bind, table: str) -> None:
    if bind.dialect.name == "postgresql":  # the function is 0001's
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION entraide_append_only()")  # fmt: skip
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION entraide_append_only()")  # fmt: skip
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END")  # fmt: skip


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("seq", BIG))
        batch.add_column(sa.Column("prev_hash", sa.String(64)))
        batch.add_column(sa.Column("hash", sa.String(64)))
        batch.add_column(sa.Column("key_id", sa.String(16)))
        batch.add_column(sa.Column("signature", sa.String(128)))
    op.create_table(
        "audit_heads",
        sa.Column("city", sa.String(63), primary_key=True),
        sa.Column("seq", BIG, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    _chain_existing_audit_records(bind)
    with op.batch_alter_table("audit_log") as batch:
        for name in ("seq", "prev_hash", "hash"):
            batch.alter_column(name, nullable=False)
        batch.create_unique_constraint("uq_audit_city_seq", ["city", "seq"])
    _append_only(bind, "audit_log")

    op.create_table(
        "principals",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("granted_by", sa.String(160), nullable=False),
        sa.Column("granted_at_us", BIG, nullable=False),
        sa.Column("revoked_by", sa.String(160)),
        sa.Column("revoked_at_us", BIG),
        sa.UniqueConstraint("city", "role", "subject", name="uq_principals_subject"),
        sa.CheckConstraint(f"role IN ({ROLES})", name="ck_principals_role"),
        sa.CheckConstraint("status IN ('active', 'revoked')", name="ck_principals_status"),
    )
    op.create_table(
        "credentials",
        sa.Column("jti", sa.String(32), primary_key=True),
        sa.Column("principal_id", sa.String(24), sa.ForeignKey("principals.id")),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("issued_by", sa.String(160), nullable=False),
        sa.Column("issued_at_us", BIG, nullable=False),
        sa.Column("expires_at_us", BIG, nullable=False),
        sa.Column("revoked_by", sa.String(160)),
        sa.Column("revoked_at_us", BIG),
        sa.CheckConstraint(f"role IN ({ROLES})", name="ck_credentials_role"),
    )
    op.create_index("ix_credentials_principal", "credentials", ["principal_id"])
    op.create_index("ix_credentials_subject", "credentials", ["city", "role", "subject"])

    op.create_table(
        "payout_account_changes",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("holder_name", sa.String(140), nullable=False),
        sa.Column("institution", sa.String(3), nullable=False),
        sa.Column("transit", sa.String(5), nullable=False),
        sa.Column("account_number", sa.String(12), nullable=False),
        sa.Column("stripe_account_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("proposed_by", sa.String(160), nullable=False),
        sa.Column("proposed_at_us", BIG, nullable=False),
        sa.Column("decided_by", sa.String(160)),
        sa.Column("decided_at_us", BIG),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'rejected', 'superseded')", name="ck_payout_changes_status"
        ),
    )
    op.create_index("ix_payout_changes_city", "payout_account_changes", ["city", "status"])
    op.create_index("ix_payout_changes_merchant", "payout_account_changes", ["merchant_id", "status"])

    with op.batch_alter_table("redemptions") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer, nullable=False, server_default="0"))

    # A subject is the identity provider's; enrolments without one used to copy the resident id.
    with op.batch_alter_table("residents") as batch:
        batch.alter_column("subject", existing_type=sa.String(255), nullable=True)
    op.execute("UPDATE residents SET subject = NULL WHERE subject = id")

    op.create_table(
        "jobs",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until_us", BIG, nullable=False),
        sa.Column("next_run_us", BIG, nullable=False),
        sa.Column("last_started_us", BIG),
        sa.Column("last_finished_us", BIG),
        sa.Column("last_result", sa.Text),
        sa.Column("last_error", sa.String(500)),
        sa.Column("runs", BIG, nullable=False),
        sa.Column("failures", BIG, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the audit trail is never dropped by a migration")
