"""Queries of the web sign-in: activation codes and passkeys (community/service_layer/activation.py
and passkeys.py). Each belongs to a holder: a resident, or a principal (staff, a merchant's owner),
named by `(kind, id)` with kind "resident" or "principal"."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from community.adapters.tables import ActivationCodeRow, PasskeyRow
from ledger.adapters.database import first_row

AC = ActivationCodeRow.__table__
PK = PasskeyRow.__table__
RESIDENT, PRINCIPAL = "resident", "principal"


def _holder(table, kind: str):
    """The column naming the holder of a code or passkey of this kind."""
    assert kind in (RESIDENT, PRINCIPAL)
    return table.c.resident_id if kind == RESIDENT else table.c.principal_id


def holder_values(kind: str, holder_id: str) -> dict[str, str | None]:
    """The holder's columns of a new row: exactly one of them set."""
    return {
        "resident_id": holder_id if kind == RESIDENT else None,
        "principal_id": holder_id if kind == PRINCIPAL else None,
    }


# --- activation codes ---------------------------------------------------------------------------


def add_code(conn: Connection, **values) -> None:
    conn.execute(insert(AC).values(**values))


def code_by_hash(conn: Connection, code_hash: str) -> dict | None:
    return first_row(conn, select(AC).where(AC.c.code_hash == code_hash).with_for_update())


def end_codes(conn: Connection, kind: str, holder_id: str, status: str, now_us: int, code_id: str | None = None) -> int:
    """End the holder's live codes (or only `code_id`): `used` or `replaced`."""
    query = update(AC).where(_holder(AC, kind) == holder_id, AC.c.status == "live")
    if code_id is not None:
        query = query.where(AC.c.id == code_id)
    return conn.execute(query.values(status=status, ended_at_us=now_us)).rowcount


def codes_of(conn: Connection, kind: str, holder_id: str) -> list[dict]:
    query = select(AC).where(_holder(AC, kind) == holder_id).order_by(AC.c.issued_at_us)
    return [r._asdict() for r in conn.execute(query)]


# --- passkeys -----------------------------------------------------------------------------------


def add_passkey(conn: Connection, **values) -> None:
    conn.execute(insert(PK).values(**values))


def passkey(conn: Connection, credential_id: str, for_update: bool = False) -> dict | None:
    query = select(PK).where(PK.c.credential_id == credential_id)
    return first_row(conn, query.with_for_update() if for_update else query)


def passkeys_of(conn: Connection, kind: str, holder_id: str) -> list[dict]:
    query = select(PK).where(_holder(PK, kind) == holder_id).order_by(PK.c.created_at_us, PK.c.credential_id)
    return [r._asdict() for r in conn.execute(query)]


def used_passkey(conn: Connection, credential_id: str, sign_count: int, now_us: int) -> None:
    conn.execute(
        update(PK).where(PK.c.credential_id == credential_id).values(sign_count=sign_count, last_used_at_us=now_us)
    )


def remove_passkey(conn: Connection, kind: str, holder_id: str, credential_id: str) -> int:
    query = delete(PK).where(_holder(PK, kind) == holder_id, PK.c.credential_id == credential_id)
    return conn.execute(query).rowcount
