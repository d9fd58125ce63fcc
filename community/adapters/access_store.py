"""Principals and credentials, inside a caller's transaction (like ledger.adapters.journal)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from community.adapters.tables import CredentialRow, PrincipalOidcLinkRow, PrincipalRow
from ledger.adapters.database import first_row

PR = PrincipalRow.__table__
CR = CredentialRow.__table__
LR = PrincipalOidcLinkRow.__table__
MAX_LISTED = 1_000

# Built once: every bearer request runs it. A credential with its principal's status (NULL for a resident's).
_CHECK = (
    select(CR.c.city, CR.c.role, CR.c.subject, CR.c.expires_at_us, CR.c.revoked_at_us, PR.c.status.label("principal_status"),
           PR.c.org_id, PR.c.merchant_id)
    .select_from(CR.outerjoin(PR, PR.c.id == CR.c.principal_id))
    .where(CR.c.jti == bindparam("jti"))
)  # fmt: skip


def credential_state(conn: Connection, jti: str) -> dict | None:
    row = conn.execute(_CHECK, {"jti": jti}).first()
    return None if row is None else row._asdict()


def principal(conn: Connection, city: str, role: str, subject: str, for_update: bool = False) -> dict | None:
    query = select(PR).where(PR.c.city == city, PR.c.role == role, PR.c.subject == subject)
    return first_row(conn, query.with_for_update() if for_update else query)


def principal_by_id(conn: Connection, principal_id: str) -> dict | None:
    return first_row(conn, select(PR).where(PR.c.id == principal_id))


def add_principal(conn: Connection, **values) -> None:
    conn.execute(insert(PR).values(**values))


def set_principal(conn: Connection, principal_id: str, **values) -> None:
    conn.execute(update(PR).where(PR.c.id == principal_id).values(**values))


def principals(conn: Connection, city: str) -> list[dict]:
    query = select(PR).where(PR.c.city == city).order_by(PR.c.role, PR.c.subject).limit(MAX_LISTED)
    return [r._asdict() for r in conn.execute(query)]


def add_credential(conn: Connection, **values) -> None:
    conn.execute(insert(CR).values(**values))


def credential(conn: Connection, jti: str) -> dict | None:
    return first_row(conn, select(CR).where(CR.c.jti == jti))


def credentials(
    conn: Connection, city: str, role: str | None, subject: str | None, live_at_us: int | None
) -> list[dict]:
    """The city's credentials, newest first; with `live_at_us`, only those unrevoked and unexpired then."""
    query = select(CR).where(CR.c.city == city)
    if role is not None:
        query = query.where(CR.c.role == role)
    if subject is not None:
        query = query.where(CR.c.subject == subject)
    if live_at_us is not None:
        query = query.where(CR.c.revoked_at_us.is_(None), CR.c.expires_at_us > live_at_us)
    return [r._asdict() for r in conn.execute(query.order_by(CR.c.issued_at_us.desc(), CR.c.jti).limit(MAX_LISTED))]


def revoke_credentials(conn: Connection, now_us: int, revoked_by: str, *, jti: str | None = None,
                       principal_id: str | None = None, resident_id: str | None = None, city: str | None = None) -> int:  # fmt: skip
    assert [jti, principal_id, resident_id].count(None) == 2
    if jti is not None:
        where = CR.c.jti == jti
    elif principal_id is not None:
        where = CR.c.principal_id == principal_id
    else:  # every token of a resident (issued in their home city, `city`)
        where = (CR.c.city == city) & (CR.c.role == "resident") & (CR.c.subject == resident_id)
    query = update(CR).where(where, CR.c.revoked_at_us.is_(None)).values(revoked_at_us=now_us, revoked_by=revoked_by)
    return conn.execute(query).rowcount


# --- a principal's accounts at the city's identity provider -------------------------------------------


def oidc_link(conn: Connection, issuer: str, subject: str) -> dict | None:
    """The link of a provider's account, with its principal's role, subject, status and city."""
    query = (
        select(LR, PR.c.role, PR.c.subject.label("principal_subject"), PR.c.status)
        .select_from(LR.join(PR, PR.c.id == LR.c.principal_id))
        .where(LR.c.issuer == issuer, LR.c.subject == subject)
    )
    return first_row(conn, query)


def oidc_links(conn: Connection, principal_id: str) -> list[dict]:
    query = select(LR).where(LR.c.principal_id == principal_id).order_by(LR.c.issuer, LR.c.subject).limit(MAX_LISTED)
    return [r._asdict() for r in conn.execute(query)]


def add_oidc_link(conn: Connection, **values) -> None:
    conn.execute(insert(LR).values(**values))


def remove_oidc_link(conn: Connection, issuer: str, subject: str, principal_id: str) -> int:
    query = delete(LR).where(LR.c.issuer == issuer, LR.c.subject == subject, LR.c.principal_id == principal_id)
    return conn.execute(query).rowcount
