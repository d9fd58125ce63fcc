"""Reading and writing the community tables, inside a caller's transaction (like ledger.adapters.journal)."""

from __future__ import annotations

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from community.adapters.tables import (
    AwardRow,
    CardKeyRow,
    CardRow,
    CorrectionRow,
    ErasureRequestRow,
    OptInRow,
    OrganizationRow,
    ProgramRow,
    ResidentRow,
    UsageRow,
)
from ledger.adapters.database import dialect_insert, first_row

P = ProgramRow.__table__
R = ResidentRow.__table__
O = OptInRow.__table__
CA = CardRow.__table__
CK = CardKeyRow.__table__
U = UsageRow.__table__
ORG = OrganizationRow.__table__
AW = AwardRow.__table__
ER = ErasureRequestRow.__table__
CO = CorrectionRow.__table__


# --- programs -----------------------------------------------------------------


def program(conn: Connection, city: str) -> dict | None:
    return first_row(conn, select(P).where(P.c.city == city))


def program_cities(conn: Connection) -> list[str]:
    return list(conn.scalars(select(P.c.city).order_by(P.c.city)))


def save_program(conn: Connection, city: str, config_json: str, now_us: int) -> int:
    stmt = dialect_insert(conn, P).values(city=city, config=config_json, version=1, updated_at_us=now_us)
    stmt = stmt.on_conflict_do_update(
        index_elements=[P.c.city], set_={"config": config_json, "version": P.c.version + 1, "updated_at_us": now_us}
    )
    conn.execute(stmt)
    version: int = conn.execute(select(P.c.version).where(P.c.city == city)).scalar_one()
    return version


# --- residents, opt-ins and cards ---------------------------------------------------------------


def add_resident(conn: Connection, **values) -> None:
    conn.execute(insert(R).values(**values))


def resident(conn: Connection, resident_id: str, for_update: bool = False) -> dict | None:
    query = select(R).where(R.c.id == resident_id)
    return first_row(conn, query.with_for_update() if for_update else query)


def residents_by_subject(conn: Connection, subject: str, city: str | None, limit: int) -> list[dict]:
    """Residents enrolled with this identity provider subject, in `city` or in any city (NULL
    subjects never match)."""
    query = select(R).where(R.c.subject == subject)
    if city is not None:
        query = query.where(R.c.city == city)
    return [r._asdict() for r in conn.execute(query.order_by(R.c.city).limit(limit))]


def update_resident(conn: Connection, resident_id: str, **values) -> None:
    conn.execute(update(R).where(R.c.id == resident_id).values(**values))


_OPT_INS = select(O.c.city).where(O.c.resident_id == bindparam("resident_id")).order_by(O.c.city)


def opt_ins(conn: Connection, resident_id: str) -> list[str]:
    return list(conn.scalars(_OPT_INS, {"resident_id": resident_id}))


def add_opt_in(conn: Connection, resident_id: str, city: str, now_us: int) -> None:
    conn.execute(
        dialect_insert(conn, O).values(resident_id=resident_id, city=city, at_us=now_us).on_conflict_do_nothing()
    )


def remove_opt_in(conn: Connection, resident_id: str, city: str) -> int:
    return conn.execute(delete(O).where(O.c.resident_id == resident_id, O.c.city == city)).rowcount


# --- erasure requests ---------------------------------------------------------------------------


def erasure_request(conn: Connection, resident_id: str) -> dict | None:
    return first_row(conn, select(ER).where(ER.c.resident_id == resident_id))


def add_erasure_request(conn: Connection, resident_id: str, city: str, requested_at_us: int, due_at_us: int) -> None:
    conn.execute(
        dialect_insert(conn, ER)
        .values(resident_id=resident_id, city=city, requested_at_us=requested_at_us, due_at_us=due_at_us)
        .on_conflict_do_nothing()
    )


def remove_erasure_request(conn: Connection, resident_id: str) -> int:
    return conn.execute(delete(ER).where(ER.c.resident_id == resident_id)).rowcount


def due_erasures(conn: Connection, now_us: int, limit: int) -> list[str]:
    """Residents whose erasure is due, the longest due first."""
    query = select(ER.c.resident_id).where(ER.c.due_at_us <= now_us).order_by(ER.c.due_at_us, ER.c.resident_id)
    return list(conn.scalars(query.limit(limit)))


def add_card(conn: Connection, **values) -> None:
    conn.execute(insert(CA).values(**values))


def card(conn: Connection, card_id: str) -> dict | None:
    return first_row(conn, select(CA).where(CA.c.id == card_id))


_HOLDER = R.alias("holder")
_CARD_AND_HOLDER = (
    select(CA, _HOLDER).join(_HOLDER, _HOLDER.c.id == CA.c.resident_id).where(CA.c.id == bindparam("card_id"))
)


def card_and_holder(conn: Connection, card_id: str) -> tuple[dict, dict] | None:
    """A card and its resident, in one indexed join (every presented card asks for both)."""
    row = conn.execute(_CARD_AND_HOLDER, {"card_id": card_id}).first()
    if row is None:
        return None
    values = tuple(row)
    card_columns = len(CA.columns)
    # the join selects every column of both tables, cards first
    card = dict(zip(CA.columns.keys(), values[:card_columns], strict=True))
    return card, dict(zip(R.columns.keys(), values[card_columns:], strict=True))


def cards_of(conn: Connection, resident_id: str) -> list[dict]:
    return [
        r._asdict() for r in conn.execute(select(CA).where(CA.c.resident_id == resident_id).order_by(CA.c.issued_at_us))
    ]


def revoke_cards(conn: Connection, now_us: int, *, card_id: str | None = None, resident_id: str | None = None) -> int:
    query = update(CA).where(CA.c.revoked_at_us.is_(None))
    query = query.where(CA.c.id == card_id) if card_id is not None else query.where(CA.c.resident_id == resident_id)
    return conn.execute(query.values(revoked_at_us=now_us)).rowcount


def revoked_cards(conn: Connection, city: str, since_us: int, limit: int) -> list[dict]:
    query = select(CA.c.id, CA.c.revoked_at_us, CA.c.expires_at_us).where(
        CA.c.city == city, CA.c.revoked_at_us >= since_us
    )
    return [r._asdict() for r in conn.execute(query.order_by(CA.c.revoked_at_us, CA.c.id).limit(limit))]


def last_card_expiry_us(conn: Connection, city: str, now_us: int) -> int | None:
    """When the last of the city's valid (unrevoked, unexpired) cards expires; None without one."""
    query = select(func.max(CA.c.expires_at_us)).where(
        CA.c.city == city, CA.c.revoked_at_us.is_(None), CA.c.expires_at_us > now_us
    )
    return conn.execute(query).scalar()


# --- card keys ----------------------------------------------------------------------------------


def card_keys(conn: Connection, city: str | None = None, for_update: bool = False) -> list[dict]:
    """The card keys recorded for `city` (every city's when None), oldest first."""
    query = select(CK).order_by(CK.c.city, CK.c.valid_from_us, CK.c.kid)
    query = query if city is None else query.where(CK.c.city == city)
    return [r._asdict() for r in conn.execute(query.with_for_update() if for_update else query)]


def add_card_key(conn: Connection, **values) -> None:
    conn.execute(insert(CK).values(**values))


def retire_card_key(conn: Connection, kid: str, retired_at_us: int, accepted_until_s: int) -> None:
    conn.execute(
        update(CK).where(CK.c.kid == kid).values(retired_at_us=retired_at_us, accepted_until_s=accepted_until_s)
    )


# --- earning: cap usage and award records -------------------------------------------------------


def usage(conn: Connection, resident_id: str, buckets: list[str]) -> dict[str, int]:
    query = select(U.c.bucket, U.c.points).where(U.c.resident_id == resident_id, U.c.bucket.in_(buckets))
    return {r.bucket: r.points for r in conn.execute(query)}


def add_usage(conn: Connection, resident_id: str, increments: dict[str, int]) -> None:
    for bucket, points in sorted(increments.items()):
        stmt = dialect_insert(conn, U).values(resident_id=resident_id, bucket=bucket, points=points)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[U.c.resident_id, U.c.bucket], set_={"points": U.c.points + points}
            )
        )


def award(conn: Connection, ledger: str, transfer_id: str) -> dict | None:
    return first_row(conn, select(AW).where(AW.c.ledger == ledger, AW.c.transfer_id == transfer_id))


def add_award(conn: Connection, **values) -> None:
    conn.execute(insert(AW).values(**values))


# --- organizations and merchants: members a city approves -------------------------------------


def member(conn: Connection, table: Table, member_id: str) -> dict | None:
    return first_row(conn, select(table).where(table.c.id == member_id))


def add_member(conn: Connection, table: Table, **values) -> None:
    conn.execute(insert(table).values(**values))


def set_member_status(conn: Connection, table: Table, member_id: str, status: str) -> None:
    conn.execute(update(table).where(table.c.id == member_id).values(status=status))


def members(conn: Connection, table: Table, city: str) -> list[dict]:
    return [r._asdict() for r in conn.execute(select(table).where(table.c.city == city).order_by(table.c.id))]


# --- corrections ------------------------------------------------------------------------------


def add_correction(conn: Connection, **values) -> None:
    conn.execute(insert(CO).values(**values))


def correction(conn: Connection, correction_id: str, for_update: bool = False) -> dict | None:
    query = select(CO).where(CO.c.id == correction_id)
    return first_row(conn, query.with_for_update() if for_update else query)


def decide_correction(conn: Connection, correction_id: str, **values) -> bool:
    """Move a pending correction on (posted or rejected); False if a concurrent call decided it first."""
    moved = conn.execute(update(CO).where(CO.c.id == correction_id, CO.c.status == "pending").values(**values))
    return moved.rowcount == 1


def corrected_points(conn: Connection, city: str, kind: str, target: str, statuses: tuple[str, ...]) -> int:
    """Points that corrections of `target` in `statuses` take back (or give back) already."""
    query = select(func.coalesce(func.sum(CO.c.points), 0)).where(
        CO.c.city == city, CO.c.kind == kind, CO.c.target == target, CO.c.status.in_(statuses)
    )
    return int(conn.scalar(query) or 0)


def corrections(conn: Connection, city: str, status: str | None, before_us: int | None, limit: int) -> list[dict]:
    """The city's corrections in `status` (None: all), newest first, proposed before `before_us`."""
    query = select(CO).where(CO.c.city == city)
    if status is not None:
        query = query.where(CO.c.status == status)
    if before_us is not None:
        query = query.where(CO.c.proposed_at_us < before_us)
    rows = conn.execute(query.order_by(CO.c.proposed_at_us.desc(), CO.c.id.desc()).limit(limit))
    return [row._asdict() for row in rows]
