"""Every marketplace query, inside a caller's transaction (like ledger.adapters.journal).

Stock and per-resident limits are taken by conditional statements, so two buyers of the last unit
cannot both succeed whatever the isolation level: PostgreSQL locks the row on UPDATE and re-checks
the condition against the committed value; SQLite has one writer at a time (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from ledger.adapters.database import dialect_insert, first_row, insert_once
from ledger.adapters.tables import Base
from marketplace.adapters.tables import (
    CatalogItemRow,
    DisputeRow,
    PaymentEventRow,
    RedemptionCountRow,
    RedemptionRow,
    SearchOutboxRow,
    ShopRow,
)
from merchants.adapters.tables import MerchantRow

# SQLAlchemy types `__table__` as a FromClause; the metadata's entry is the same Table, typed as one.
I = Base.metadata.tables[CatalogItemRow.__tablename__]
S = Base.metadata.tables[ShopRow.__tablename__]
R = Base.metadata.tables[RedemptionRow.__tablename__]
RC = Base.metadata.tables[RedemptionCountRow.__tablename__]
OB = Base.metadata.tables[SearchOutboxRow.__tablename__]
PE = Base.metadata.tables[PaymentEventRow.__tablename__]
DI = Base.metadata.tables[DisputeRow.__tablename__]
M = Base.metadata.tables[MerchantRow.__tablename__]


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"title": json.loads(row["title"]), "description": json.loads(row["description"])}


# --- catalog items and shops --------------------------------------------------------------------


def item(conn: Connection, item_id: str, for_update: bool = False) -> dict | None:
    query = select(I).where(I.c.id == item_id)
    row = first_row(conn, query.with_for_update() if for_update else query)
    return None if row is None else _item(row)


def add_item(conn: Connection, **values) -> None:
    conn.execute(insert(I).values(**_encoded(values)))


def update_item(conn: Connection, item_id: str, **values) -> None:
    conn.execute(update(I).where(I.c.id == item_id).values(**_encoded(values)))


def _encoded(values: dict) -> dict:
    return {
        k: json.dumps(v, ensure_ascii=False, sort_keys=True) if k in ("title", "description") else v
        for k, v in values.items()
    }


def items(conn: Connection, *, city: str | None = None, merchant_id: str | None = None, kinds: tuple[str, ...] = (),
          after_id: str = "", limit: int = 100) -> list[dict]:  # fmt: skip
    query = select(I).where(I.c.id > after_id)
    if city is not None:
        query = query.where(I.c.city == city)
    if merchant_id is not None:
        query = query.where(I.c.merchant_id == merchant_id)
    if kinds:
        query = query.where(I.c.kind.in_(kinds))
    return [_item(r._asdict()) for r in conn.execute(query.order_by(I.c.id).limit(limit))]


def count_items(conn: Connection, *, city: str, merchant_id: str | None) -> int:
    query = select(func.count()).select_from(I).where(I.c.city == city)
    query = query.where(I.c.merchant_id == merchant_id) if merchant_id else query.where(I.c.merchant_id.is_(None))
    return conn.scalar(query) or 0


def count_all_items(conn: Connection) -> int:
    return conn.scalar(select(func.count()).select_from(I)) or 0


def units_taken(conn: Connection, item_id: str) -> int:
    """Units of the item held by redemptions that are not cancelled (call under the item's row lock)."""
    live = R.c.status.in_(("reserved", "awaiting_payment", "completed"))
    return int(conn.scalar(select(func.coalesce(func.sum(R.c.units), 0)).where(R.c.item_id == item_id, live)) or 0)


def shop(conn: Connection, merchant_id: str | None) -> dict | None:
    return None if merchant_id is None else first_row(conn, select(S).where(S.c.merchant_id == merchant_id))


def save_shop(conn: Connection, merchant_id: str, **values) -> None:
    stmt = dialect_insert(conn, S).values(merchant_id=merchant_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[S.c.merchant_id], set_=values))


def merchant_status(conn: Connection, merchant_id: str | None) -> str | None:
    return None if merchant_id is None else conn.scalar(select(M.c.status).where(M.c.id == merchant_id))


def unapproved_merchants(conn: Connection, cities: tuple[str, ...], limit: int) -> list[str]:
    """Merchants of these cities that are pending or suspended: their offers are hidden from search."""
    query = select(M.c.id).where(M.c.city.in_(cities), M.c.status != "approved").order_by(M.c.id).limit(limit)
    return list(conn.scalars(query))


# --- stock and per-resident limits --------------------------------------------------------------


def take_stock(conn: Connection, item_id: str, units: int) -> int | bool | None:
    """Take `units` from the stock: the units left (None when unlimited), or False if there are not enough.

    The UPDATE also matches an unlimited item (leaving it NULL), so it always locks the item's row:
    redemptions of one item serialize, and a change of its quantity sees a settled count.
    """
    enough = or_(I.c.remaining.is_(None), I.c.remaining >= units)
    taken = conn.execute(update(I).where(I.c.id == item_id, enough).values(remaining=I.c.remaining - units))
    if taken.rowcount != 1:
        return False
    return conn.scalar(select(I.c.remaining).where(I.c.id == item_id))


def give_back_stock(conn: Connection, item_id: str, units: int) -> int | None:
    conn.execute(update(I).where(I.c.id == item_id, I.c.remaining.is_not(None)).values(remaining=I.c.remaining + units))
    return conn.scalar(select(I.c.remaining).where(I.c.id == item_id))


def take_allowance(conn: Connection, item_id: str, resident_id: str, units: int, limit: int) -> bool:
    """Count `units` against the resident's limit for the item; False when that would exceed it."""
    if units > limit:
        return False
    stmt = dialect_insert(conn, RC).values(item_id=item_id, resident_id=resident_id, units=units)
    stmt = stmt.on_conflict_do_update(index_elements=[RC.c.item_id, RC.c.resident_id], set_={"units": RC.c.units + units},
                                      where=RC.c.units + units <= limit)  # fmt: skip
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT.
    return conn.execute(stmt.returning(RC.c.units)).first() is not None


def give_back_allowance(conn: Connection, item_id: str, resident_id: str, units: int) -> None:
    conn.execute(update(RC).where(RC.c.item_id == item_id, RC.c.resident_id == resident_id, RC.c.units >= units)
                 .values(units=RC.c.units - units))  # fmt: skip


# --- redemptions --------------------------------------------------------------------------------


def _redemption(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"hold": json.loads(row["hold"]) if row["hold"] else []}


def redemption(conn: Connection, redemption_id: str) -> dict | None:
    row = first_row(conn, select(R).where(R.c.id == redemption_id))
    return None if row is None else _redemption(row)


def redemption_by_payment(conn: Connection, payment_id: str) -> dict | None:
    """The redemption a payment pays for: its PaymentIntent (`pi_…`) or its Checkout Session (`cs_…`)."""
    column = R.c.checkout_session_id if payment_id.startswith("cs_") else R.c.payment_intent_id
    row = first_row(conn, select(R).where(column == payment_id))
    return None if row is None else _redemption(row)


def add_redemption(conn: Connection, **values) -> None:
    conn.execute(insert(R).values(**values))


def move_redemption(conn: Connection, redemption_id: str, from_status: tuple[str, ...], now_us: int, *,
                    when_attempt: int | None = None, when_held: bool | None = None, **values) -> bool:  # fmt: skip
    """Compare-and-set on the status (and, when given, the attempt and whether a hold is recorded):
    True only for the one caller that made the move."""
    if values.get("hold") is not None:
        values["hold"] = json.dumps(values["hold"])
    query = update(R).where(R.c.id == redemption_id, R.c.status.in_(from_status))
    if when_attempt is not None:
        query = query.where(R.c.attempt == when_attempt)
    if when_held is not None:
        query = query.where(R.c.hold.is_not(None) if when_held else R.c.hold.is_(None))
    return conn.execute(query.values(updated_at_us=now_us, **values)).rowcount == 1


def redeemed_items(conn: Connection, item_ids: set[str]) -> dict[str, dict]:
    """What a resident redeemed, by item id: kind, titles, merchant and the merchant's name (none for a city's)."""
    query = (select(I.c.id, I.c.kind, I.c.city, I.c.title, I.c.merchant_id, M.c.name.label("merchant_name"))
             .outerjoin(M, M.c.id == I.c.merchant_id).where(I.c.id.in_(sorted(item_ids))))  # fmt: skip
    return {r.id: r._asdict() | {"title": json.loads(r.title)} for r in conn.execute(query)}


def redemptions_of(conn: Connection, resident_id: str, before_us: int, limit: int) -> list[dict]:
    query = select(R).where(R.c.resident_id == resident_id, R.c.created_at_us < before_us)
    return [
        _redemption(r._asdict()) for r in conn.execute(query.order_by(R.c.created_at_us.desc(), R.c.id).limit(limit))
    ]


def stale_redemptions(conn: Connection, status: str, updated_before_us: int, limit: int) -> list[dict]:
    query = select(R).where(R.c.status == status, R.c.updated_at_us < updated_before_us).order_by(R.c.updated_at_us)
    return [_redemption(r._asdict()) for r in conn.execute(query.limit(limit))]


def failed_with_hold(conn: Connection, limit: int) -> list[dict]:
    """Failed attempts whose hold may still be open (a crash came between the failure and the void)."""
    query = select(R).where(R.c.status == "failed", R.c.hold.is_not(None)).order_by(R.c.updated_at_us)
    return [_redemption(r._asdict()) for r in conn.execute(query.limit(limit))]


def payment_event_seen(conn: Connection, event_id: str) -> bool:
    return conn.scalar(select(func.count()).select_from(PE).where(PE.c.id == event_id)) == 1


def claim_payment_event(conn: Connection, event_id: str, event_type: str, now_us: int) -> bool:
    """Remember a Stripe event (payments and payouts alike); False if it was applied before."""
    return insert_once(conn, PE, id=event_id, type=event_type, received_at_us=now_us)


# --- disputes -----------------------------------------------------------------------------------


def record_dispute(conn: Connection, dispute: dict[str, Any], changes: dict[str, Any]) -> None:
    """Insert the dispute, or apply `changes` to it if the event is not older than the one it holds."""
    if not insert_once(conn, DI, **dispute):
        newer = DI.c.event_created_s <= dispute["event_created_s"]
        conn.execute(update(DI).where(DI.c.id == dispute["id"], newer).values(**changes))


def disputes(conn: Connection, city: str, limit: int) -> list[dict]:
    query = select(DI).where(DI.c.city == city).order_by(DI.c.created_at_us.desc(), DI.c.id).limit(limit)
    return [r._asdict() for r in conn.execute(query)]


# --- the search outbox --------------------------------------------------------------------------


def add_outbox(conn: Connection, item_id: str, version: int, document: dict | None, now_us: int) -> None:
    body = None if document is None else json.dumps(document, ensure_ascii=False, sort_keys=True)
    conn.execute(insert(OB).values(item_id=item_id, version=version, document=body, attempts=0, next_attempt_at_us=now_us,
                                   created_at_us=now_us))  # fmt: skip


def claim_outbox(conn: Connection, now_us: int, lease_until_us: int, limit: int) -> list[dict]:
    """Due rows, oldest first, with every other pending row of the same items (so the newest version is the
    one sent), leased to this worker until `lease_until_us`; on PostgreSQL another worker skips them."""
    pending = OB.c.delivered_at_us.is_(None)
    due = select(OB).where(pending, OB.c.next_attempt_at_us <= now_us).order_by(OB.c.id).limit(limit)
    rows = [r._asdict() for r in conn.execute(_skip_locked(conn, due))]
    if rows:
        items, taken = {r["item_id"] for r in rows}, [r["id"] for r in rows]
        siblings = select(OB).where(pending, OB.c.item_id.in_(items), OB.c.id.not_in(taken)).order_by(OB.c.id)
        rows += [r._asdict() for r in conn.execute(_skip_locked(conn, siblings))]
        conn.execute(update(OB).where(OB.c.id.in_([r["id"] for r in rows])).values(next_attempt_at_us=lease_until_us))
    return rows


def _skip_locked(conn: Connection, query):
    return query.with_for_update(skip_locked=True) if conn.dialect.name == "postgresql" else query


def outbox_delivered(conn: Connection, ids: list[int], now_us: int) -> None:
    conn.execute(update(OB).where(OB.c.id.in_(ids), OB.c.delivered_at_us.is_(None)).values(delivered_at_us=now_us))


def outbox_failed(conn: Connection, row_id: int, attempts: int, next_attempt_at_us: int, error: str) -> None:
    conn.execute(update(OB).where(OB.c.id == row_id, OB.c.delivered_at_us.is_(None))
                 .values(attempts=attempts, next_attempt_at_us=next_attempt_at_us, last_error=error[:500]))  # fmt: skip


def outbox_stats(conn: Connection) -> dict:
    pending = OB.c.delivered_at_us.is_(None)
    row = conn.execute(select(func.count(), func.min(OB.c.created_at_us), func.max(OB.c.attempts)).where(pending)).one()
    return {"pending": row[0], "oldest_pending_us": row[1], "max_attempts": row[2] or 0,
            "last_id": conn.scalar(select(func.max(OB.c.id))) or 0}  # fmt: skip


def pending_outbox_ids(conn: Connection, limit: int) -> list[int]:
    return list(conn.scalars(select(OB.c.id).where(OB.c.delivered_at_us.is_(None)).order_by(OB.c.id).limit(limit)))


def settle_outbox(conn: Connection, ids: list[int], now_us: int) -> int:
    """Mark rows delivered without sending them (a rebuild read their changes from the database)."""
    settled = 0
    for start in range(0, len(ids), 1_000):
        chunk = ids[start : start + 1_000]
        settled += conn.execute(update(OB).where(OB.c.id.in_(chunk), OB.c.delivered_at_us.is_(None))
                                .values(delivered_at_us=now_us)).rowcount  # fmt: skip
    return settled


def requeue_outbox(conn: Connection, delivered_since_us: int, now_us: int) -> int:
    """Deliver again what was delivered since a rebuild began: it may have gone to the index being replaced."""
    query = (
        update(OB)
        .where(OB.c.delivered_at_us >= delivered_since_us)
        .values(delivered_at_us=None, next_attempt_at_us=now_us)
    )
    return conn.execute(query).rowcount


def forget_delivered(conn: Connection, before_us: int) -> int:
    return conn.execute(OB.delete().where(OB.c.delivered_at_us < before_us)).rowcount


def outbox_rows(conn: Connection, item_id: str) -> list[dict]:
    return [r._asdict() for r in conn.execute(select(OB).where(OB.c.item_id == item_id).order_by(OB.c.id))]
