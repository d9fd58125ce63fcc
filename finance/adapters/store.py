"""Reading and writing the finance tables, inside a caller's transaction."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from finance.adapters.tables import (
    AdjustmentRow,
    CloseRow,
    ConnectAccountRow,
    PayoutAccountChangeRow,
    PayoutAccountRow,
    PayoutRow,
)
from ledger.adapters.database import first_row, insert_once
from ledger.adapters.tables import Base
from marketplace.adapters.store import claim_payment_event

# SQLAlchemy types `__table__` as a FromClause; the metadata's entry is the same Table, typed as one.
CL = Base.metadata.tables[CloseRow.__tablename__]
AD = Base.metadata.tables[AdjustmentRow.__tablename__]
PA = Base.metadata.tables[PayoutAccountRow.__tablename__]
PO = Base.metadata.tables[PayoutRow.__tablename__]
PC = Base.metadata.tables[PayoutAccountChangeRow.__tablename__]
CA = Base.metadata.tables[ConnectAccountRow.__tablename__]
MAX_CHANGES_LISTED = 1_000


# --- closes and adjustments ---------------------------------------------------------------------


def close(conn: Connection, city: str, period: str) -> dict | None:
    return first_row(conn, select(CL).where(CL.c.city == city, CL.c.period == period))


def closed_periods(conn: Connection, city: str, limit: int) -> list[str]:
    """The city's closed periods, latest first (at most `limit`)."""
    query = select(CL.c.period).where(CL.c.city == city).order_by(CL.c.period.desc()).limit(limit)
    return list(conn.execute(query).scalars())


def add_close(conn: Connection, **values) -> None:
    conn.execute(insert(CL).values(**values))


def add_adjustment(conn: Connection, **values) -> int:
    return conn.execute(insert(AD).values(**values).returning(AD.c.id)).scalar_one()


def open_adjustments(conn: Connection, city: str) -> list[dict]:
    query = select(AD).where(AD.c.city == city, AD.c.applied_period.is_(None)).order_by(AD.c.id)
    return [r._asdict() for r in conn.execute(query)]


def apply_adjustments(conn: Connection, ids: list[int], period: str) -> None:
    if ids:
        conn.execute(update(AD).where(AD.c.id.in_(ids)).values(applied_period=period))


# --- payout accounts and payouts ----------------------------------------------------------------


def set_payout_account(conn: Connection, **values) -> None:
    conn.execute(PA.delete().where(PA.c.merchant_id == values["merchant_id"]))
    conn.execute(insert(PA).values(**values))


def payout_accounts(conn: Connection, merchant_ids: list[str]) -> dict[str, dict]:
    if not merchant_ids:
        return {}
    return {r.merchant_id: r._asdict() for r in conn.execute(select(PA).where(PA.c.merchant_id.in_(merchant_ids)))}


def stripe_destinations(conn: Connection, merchant_ids: list[str]) -> dict[str, str]:
    """Merchant → the Stripe account its payouts go to: the one it onboarded on Stripe's hosted pages
    once Stripe enabled its payouts, else the one two principals confirmed (docs/security-model.md)."""
    if not merchant_ids:
        return {}
    confirmed = select(PA.c.merchant_id, PA.c.stripe_account_id).where(
        PA.c.merchant_id.in_(merchant_ids), PA.c.stripe_account_id.is_not(None)
    )
    onboarded = select(CA.c.merchant_id, CA.c.stripe_account_id).where(
        CA.c.merchant_id.in_(merchant_ids), CA.c.payouts_enabled.is_(True)
    )
    found = {r.merchant_id: r.stripe_account_id for r in conn.execute(confirmed)}
    return found | {r.merchant_id: r.stripe_account_id for r in conn.execute(onboarded)}


def connect_account(conn: Connection, merchant_id: str) -> dict | None:
    return first_row(conn, select(CA).where(CA.c.merchant_id == merchant_id))


def connect_account_by_stripe_id(conn: Connection, stripe_account_id: str, for_update: bool = False) -> dict | None:
    query = select(CA).where(CA.c.stripe_account_id == stripe_account_id)
    return first_row(conn, query.with_for_update() if for_update else query)


def add_connect_account(conn: Connection, **values) -> bool:
    """Remember the merchant's connected account; False if it already has one."""
    return insert_once(conn, CA, **values)


def update_connect_account(conn: Connection, stripe_account_id: str, now_us: int, **values) -> None:
    conn.execute(update(CA).where(CA.c.stripe_account_id == stripe_account_id).values(updated_at_us=now_us, **values))


def add_account_change(conn: Connection, **values) -> None:
    conn.execute(insert(PC).values(**values))


def account_change(conn: Connection, change_id: str, for_update: bool = False) -> dict | None:
    query = select(PC).where(PC.c.id == change_id)
    return first_row(conn, query.with_for_update() if for_update else query)


def account_changes(conn: Connection, city: str, status: str | None) -> list[dict]:
    query = select(PC).where(PC.c.city == city)
    if status is not None:
        query = query.where(PC.c.status == status)
    return [
        r._asdict() for r in conn.execute(query.order_by(PC.c.proposed_at_us.desc(), PC.c.id).limit(MAX_CHANGES_LISTED))
    ]


def decide_account_change(conn: Connection, change_id: str, status: str, decided_by: str, now_us: int) -> bool:
    """Compare-and-set from pending: True only for the one caller that decided it."""
    query = update(PC).where(PC.c.id == change_id, PC.c.status == "pending")
    return conn.execute(query.values(status=status, decided_by=decided_by, decided_at_us=now_us)).rowcount == 1


def supersede_account_changes(conn: Connection, merchant_id: str, decided_by: str, now_us: int) -> int:
    query = update(PC).where(PC.c.merchant_id == merchant_id, PC.c.status == "pending")
    return conn.execute(query.values(status="superseded", decided_by=decided_by, decided_at_us=now_us)).rowcount


def add_payout(conn: Connection, **values) -> bool:
    """Queue a payout; False if it is already queued (a payout id names one merchant's period)."""
    return insert_once(conn, PO, **values)


def payout(conn: Connection, payout_id: str, for_update: bool = False) -> dict | None:
    query = select(PO).where(PO.c.id == payout_id)
    return first_row(conn, query.with_for_update() if for_update else query)


def payouts(conn: Connection, city: str, period: str) -> list[dict]:
    query = select(PO).where(PO.c.city == city, PO.c.period == period).order_by(PO.c.merchant_id)
    return [r._asdict() for r in conn.execute(query)]


def claim_payout(conn: Connection, city: str, now_us: int, lease_us: int) -> dict | None:
    """Take the city's next payout that is due (queued, or claimed by a worker whose lease ran out).

    PostgreSQL's SKIP LOCKED lets several workers claim different payouts at once; SQLite's single
    writer makes the claim exclusive anyway.
    """
    due = PO.c.status.in_(("queued", "transferred"))
    query = select(PO).where(PO.c.city == city, due, PO.c.lease_until_us <= now_us)
    query = query.order_by(PO.c.lease_until_us, PO.c.id).limit(1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = first_row(conn, query)
    if row is None:
        return None
    conn.execute(update(PO).where(PO.c.id == row["id"]).values(lease_until_us=now_us + lease_us, attempts=PO.c.attempts + 1,
                                                               updated_at_us=now_us))  # fmt: skip
    return row | {"attempts": row["attempts"] + 1}


def update_payout(conn: Connection, payout_id: str, now_us: int, **values) -> None:
    conn.execute(update(PO).where(PO.c.id == payout_id).values(updated_at_us=now_us, **values))


record_event = claim_payment_event  # one table of applied Stripe events, payments and payouts alike
