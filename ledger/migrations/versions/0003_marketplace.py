"""The marketplace: catalog, offers, events, municipal services, redemptions, payments, search outbox.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = sa.text("delivered_at_us IS NULL")


def upgrade() -> None:
    op.create_table(
        "catalog_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("city", sa.String(63), sa.ForeignKey("ledgers.name"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id")),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("price_points", BIG, nullable=False),
        sa.Column("cash_cents", BIG, nullable=False),
        sa.Column("quantity", BIG),
        sa.Column("remaining", BIG),
        sa.Column("per_resident_limit", sa.Integer),
        sa.Column("valid_from_us", BIG, nullable=False),
        sa.Column("valid_until_us", BIG, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("suspended", sa.Boolean, nullable=False),
        sa.Column("suspended_reason", sa.String(500)),
        sa.Column("lat_e6", BIG),
        sa.Column("lng_e6", BIG),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("starts_at_us", BIG),
        sa.Column("seats_total", BIG),
        sa.Column("version", BIG, nullable=False),
        sa.Column("created_at_us", BIG, nullable=False),
        sa.Column("updated_at_us", BIG, nullable=False),
        sa.CheckConstraint("price_points > 0 AND cash_cents >= 0", name="ck_items_price"),
        sa.CheckConstraint("remaining IS NULL OR (remaining >= 0 AND remaining <= quantity)", name="ck_items_stock"),
        sa.CheckConstraint("kind IN ('offer', 'service', 'event')", name="ck_items_kind"),
        sa.CheckConstraint("status IN ('draft', 'published', 'archived')", name="ck_items_status"),
    )
    op.create_index("ix_items_city_kind", "catalog_items", ["city", "kind"])
    op.create_index("ix_items_merchant", "catalog_items", ["merchant_id"])
    op.create_table(
        "shops",
        sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), primary_key=True),
        sa.Column("lat_e6", BIG),
        sa.Column("lng_e6", BIG),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("updated_at_us", BIG, nullable=False),
    )
    op.create_table(
        "redemptions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("resident_id", sa.String(32), sa.ForeignKey("residents.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(32), sa.ForeignKey("catalog_items.id"), nullable=False),
        sa.Column("city", sa.String(63), nullable=False),
        sa.Column("home_city", sa.String(63), nullable=False),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("points", BIG, nullable=False),
        sa.Column("cash_cents", BIG, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("hold", sa.Text),
        sa.Column("payment_intent_id", sa.String(64)),
        sa.Column("client_secret", sa.String(255)),
        sa.Column("voucher", sa.String(16), nullable=False),
        sa.Column("error", sa.String(200)),
        sa.Column("created_at_us", BIG, nullable=False),
        sa.Column("updated_at_us", BIG, nullable=False),
        sa.UniqueConstraint("resident_id", "idempotency_key", name="uq_redemptions_key"),
        sa.UniqueConstraint("payment_intent_id", name="uq_redemptions_payment_intent"),
        sa.CheckConstraint("units > 0 AND points > 0 AND cash_cents >= 0", name="ck_redemptions_amounts"),
        sa.CheckConstraint(
            "status IN ('reserved', 'awaiting_payment', 'completed', 'cancelled', 'refunded')",
            name="ck_redemptions_status",
        ),
    )
    op.create_index("ix_redemptions_status", "redemptions", ["status", "updated_at_us"])
    op.create_index("ix_redemptions_item", "redemptions", ["item_id"])
    op.create_index("ix_redemptions_resident", "redemptions", ["resident_id", "created_at_us"])
    op.create_table(
        "redemption_counts",
        sa.Column("item_id", sa.String(32), sa.ForeignKey("catalog_items.id"), primary_key=True),
        sa.Column("resident_id", sa.String(32), primary_key=True),
        sa.Column("units", sa.Integer, nullable=False),
        sa.CheckConstraint("units >= 0", name="ck_redemption_counts_units"),
    )
    op.create_table(
        "search_outbox",
        sa.Column("id", BIG, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("version", BIG, nullable=False),
        sa.Column("document", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at_us", BIG, nullable=False),
        sa.Column("delivered_at_us", BIG),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at_us", BIG, nullable=False),
    )
    op.create_index(
        "ix_outbox_pending", "search_outbox", ["next_attempt_at_us"], sqlite_where=PENDING, postgresql_where=PENDING
    )
    op.create_index("ix_outbox_item", "search_outbox", ["item_id", "version"])
    op.create_table(
        "payment_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("received_at_us", BIG, nullable=False),
    )


def downgrade() -> None:
    for table in ("payment_events", "search_outbox", "redemption_counts", "redemptions", "shops", "catalog_items"):
        op.drop_table(table)
