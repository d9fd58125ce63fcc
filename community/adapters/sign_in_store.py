"""Queries of the web sign-in: activation codes and passkeys (community/service_layer/activation.py
and passkeys.py)."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from community.adapters.tables import ActivationCodeRow, PasskeyRow
from ledger.adapters.database import first_row

AC = ActivationCodeRow.__table__
PK = PasskeyRow.__table__


# --- activation codes ---------------------------------------------------------------------------


def add_code(conn: Connection, **values) -> None:
    conn.execute(insert(AC).values(**values))


def code_by_hash(conn: Connection, code_hash: str) -> dict | None:
    return first_row(conn, select(AC).where(AC.c.code_hash == code_hash).with_for_update())


def end_codes(conn: Connection, resident_id: str, status: str, now_us: int, code_id: str | None = None) -> int:
    """End the resident's live codes (or only `code_id`): `used` or `replaced`."""
    query = update(AC).where(AC.c.resident_id == resident_id, AC.c.status == "live")
    if code_id is not None:
        query = query.where(AC.c.id == code_id)
    return conn.execute(query.values(status=status, ended_at_us=now_us)).rowcount


def codes_of(conn: Connection, resident_id: str) -> list[dict]:
    return [
        r._asdict() for r in conn.execute(select(AC).where(AC.c.resident_id == resident_id).order_by(AC.c.issued_at_us))
    ]


# --- passkeys -----------------------------------------------------------------------------------


def add_passkey(conn: Connection, **values) -> None:
    conn.execute(insert(PK).values(**values))


def passkey(conn: Connection, credential_id: str, for_update: bool = False) -> dict | None:
    query = select(PK).where(PK.c.credential_id == credential_id)
    return first_row(conn, query.with_for_update() if for_update else query)


def passkeys_of(conn: Connection, resident_id: str) -> list[dict]:
    query = select(PK).where(PK.c.resident_id == resident_id).order_by(PK.c.created_at_us, PK.c.credential_id)
    return [r._asdict() for r in conn.execute(query)]


def used_passkey(conn: Connection, credential_id: str, sign_count: int, now_us: int) -> None:
    conn.execute(
        update(PK).where(PK.c.credential_id == credential_id).values(sign_count=sign_count, last_used_at_us=now_us)
    )


def remove_passkey(conn: Connection, resident_id: str, credential_id: str) -> int:
    query = delete(PK).where(PK.c.resident_id == resident_id, PK.c.credential_id == credential_id)
    return conn.execute(query).rowcount
