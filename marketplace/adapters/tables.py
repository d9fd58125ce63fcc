"""Tables of the marketplace: catalog items, shops, redemptions and their per-resident counts, the search
outbox, and the Stripe events already applied (same database and metadata as the ledger)."""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from community.adapters.tables import BIG
from ledger.adapters.tables import Base


class CatalogItemRow(Base):
    """An offer, a municipal service or an event. `remaining` is the stock, taken by a conditional UPDATE."""

    __tablename__ = "catalog_items"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    city: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(8))  # offer | service | event
    merchant_id: Mapped[str | None] = mapped_column(String(64))  # offers only
    category: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)  # {"fr": …, "en": …} as JSON
    description: Mapped[str] = mapped_column(Text)
    price_points: Mapped[int] = mapped_column(BIG)
    cash_cents: Mapped[int] = mapped_column(BIG)
    quantity: Mapped[int | None] = mapped_column(BIG)  # NULL: unlimited
    remaining: Mapped[int | None] = mapped_column(BIG)
    per_resident_limit: Mapped[int | None] = mapped_column(Integer)
    valid_from_us: Mapped[int] = mapped_column(BIG)
    valid_until_us: Mapped[int] = mapped_column(BIG)
    status: Mapped[str] = mapped_column(String(16))  # draft | published | archived
    suspended: Mapped[bool] = mapped_column(Boolean)  # by city staff; the owner cannot lift it
    suspended_reason: Mapped[str | None] = mapped_column(String(500))
    lat_e6: Mapped[int | None] = mapped_column(BIG)
    lng_e6: Mapped[int | None] = mapped_column(BIG)
    address: Mapped[str] = mapped_column(String(300))
    starts_at_us: Mapped[int | None] = mapped_column(BIG)
    seats_total: Mapped[int | None] = mapped_column(BIG)
    version: Mapped[int] = mapped_column(BIG)  # +1 on every change; search documents carry it
    created_at_us: Mapped[int] = mapped_column(BIG)
    updated_at_us: Mapped[int] = mapped_column(BIG)
    __table_args__ = (
        CheckConstraint("price_points > 0 AND cash_cents >= 0", name="ck_items_price"),
        CheckConstraint("remaining IS NULL OR (remaining >= 0 AND remaining <= quantity)", name="ck_items_stock"),
        CheckConstraint("kind IN ('offer', 'service', 'event')", name="ck_items_kind"),
        CheckConstraint("status IN ('draft', 'published', 'archived')", name="ck_items_status"),
        Index("ix_items_city_kind", "city", "kind"),
        Index("ix_items_merchant", "merchant_id"),
    )


class ShopRow(Base):
    """Where a merchant's offers are, and whether the shop is open."""

    __tablename__ = "shops"
    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lat_e6: Mapped[int | None] = mapped_column(BIG)
    lng_e6: Mapped[int | None] = mapped_column(BIG)
    address: Mapped[str] = mapped_column(String(300))
    is_open: Mapped[bool] = mapped_column(Boolean)
    updated_at_us: Mapped[int] = mapped_column(BIG)


class RedemptionRow(Base):
    """A resident's redemption, booking or service payment, and where it stands (see marketplace/service_layer/redemptions.py)."""

    __tablename__ = "redemptions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    resident_id: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    item_id: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(63))  # the item's city
    home_city: Mapped[str] = mapped_column(String(63))  # the resident's, where the wallet is
    units: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BIG)
    cash_cents: Mapped[int] = mapped_column(BIG)
    status: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(
        Integer, server_default="0"
    )  # numbers the hold of each try (see redemptions.py)
    hold: Mapped[str | None] = mapped_column(Text)  # [[ledger, transfer_id], …] of the hold's halves, as JSON
    payment_intent_id: Mapped[str | None] = mapped_column(String(64))
    client_secret: Mapped[str | None] = mapped_column(String(255))
    # Paid on Stripe's hosted Checkout page instead (the wallet's pages): where it sends the resident
    # back (set when the redemption is made), then the session and its page.
    checkout_return_url: Mapped[str | None] = mapped_column(String(512))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255))
    checkout_url: Mapped[str | None] = mapped_column(Text)
    voucher: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(200))  # why the last attempt failed (a problem code)
    created_at_us: Mapped[int] = mapped_column(BIG)
    updated_at_us: Mapped[int] = mapped_column(BIG)
    __table_args__ = (
        UniqueConstraint("resident_id", "idempotency_key", name="uq_redemptions_key"),
        UniqueConstraint("payment_intent_id", name="uq_redemptions_payment_intent"),
        Index("uq_redemptions_checkout_session", "checkout_session_id", unique=True),
        CheckConstraint("units > 0 AND points > 0 AND cash_cents >= 0", name="ck_redemptions_amounts"),
        CheckConstraint(
            "status IN ('reserved', 'awaiting_payment', 'completed', 'cancelled', 'refunded', 'failed')",
            name="ck_redemptions_status",
        ),
        Index("ix_redemptions_status", "status", "updated_at_us"),
        Index("ix_redemptions_item", "item_id"),
        Index("ix_redemptions_resident", "resident_id", "created_at_us"),
    )


class RedemptionCountRow(Base):
    """Units a resident holds of an item, against its per-resident limit (a conditional upsert)."""

    __tablename__ = "redemption_counts"
    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    resident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    units: Mapped[int] = mapped_column(Integer)
    __table_args__ = (CheckConstraint("units >= 0", name="ck_redemption_counts_units"),)


class SearchOutboxRow(Base):
    """A catalog change waiting for the search backend, written in the change's own transaction."""

    __tablename__ = "search_outbox"
    id: Mapped[int] = mapped_column(BIG, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(BIG)
    document: Mapped[str | None] = mapped_column(Text)  # NULL: remove the item from the index
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at_us: Mapped[int] = mapped_column(BIG)
    delivered_at_us: Mapped[int | None] = mapped_column(BIG)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at_us: Mapped[int] = mapped_column(BIG)
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at_us",
            sqlite_where=text("delivered_at_us IS NULL"),
            postgresql_where=text("delivered_at_us IS NULL"),
        ),
        Index("ix_outbox_item", "item_id", "version"),
    )


class PaymentEventRow(Base):
    """Stripe events already applied to redemptions: a redelivered event changes nothing."""

    __tablename__ = "payment_events"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    received_at_us: Mapped[int] = mapped_column(BIG)


class DisputeRow(Base):
    """A card payment's dispute (chargeback) as Stripe last told it, linked to the redemption it paid for.

    Events may arrive out of order: a row only takes an event's state if that event is not older than
    the one it holds (`event_created_s`)."""

    __tablename__ = "disputes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Stripe's dp_…
    charge_id: Mapped[str] = mapped_column(String(64))
    payment_intent_id: Mapped[str | None] = mapped_column(String(64))
    redemption_id: Mapped[str | None] = mapped_column(String(32))  # None: not a payment of ours
    city: Mapped[str | None] = mapped_column(String(63))
    merchant_id: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BIG)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    funds_withdrawn: Mapped[bool] = mapped_column(Boolean)
    evidence_due_by_us: Mapped[int | None] = mapped_column(BIG)
    created_at_us: Mapped[int] = mapped_column(BIG)  # when Stripe opened it
    updated_at_us: Mapped[int] = mapped_column(BIG)  # when we last recorded an event of it
    closed_at_us: Mapped[int | None] = mapped_column(BIG)
    event_created_s: Mapped[int] = mapped_column(BIG)
    __table_args__ = (
        CheckConstraint("amount_cents >= 0", name="ck_disputes_amount"),
        Index("ix_disputes_city", "city", "created_at_us"),
    )
