"""Terminal keys, request nonces and the purchase amounts of awards (merchants themselves are city
members: community.adapters.store)."""

from __future__ import annotations

import msgspec
from sqlalchemy import Connection, bindparam, delete, func, insert, literal, or_, select, union_all, update

from community.adapters.tables import AwardRow, PrincipalRow
from ledger.adapters.audit_log import AU, MAX_AUDIT_PAGE, RECORD_COLUMNS
from ledger.adapters.database import insert_once
from ledger.adapters.tables import Base
from ledger.domain.audit_trail import AuditRecord
from marketplace.adapters.tables import CatalogItemRow
from merchants.adapters.tables import MerchantRow, NonceRow, OccurredAtRow, PairingCodeRow, TerminalRow

# SQLAlchemy types `__table__` as a FromClause; the metadata's entry is the same Table, typed as one.
M = Base.metadata.tables[MerchantRow.__tablename__]
T = Base.metadata.tables[TerminalRow.__tablename__]
N = Base.metadata.tables[NonceRow.__tablename__]
AW = Base.metadata.tables[AwardRow.__tablename__]  # an award's answer keeps its purchase amount
P = Base.metadata.tables[PairingCodeRow.__tablename__]
PR = Base.metadata.tables[PrincipalRow.__tablename__]
IT = Base.metadata.tables[CatalogItemRow.__tablename__]


def add_terminal(conn: Connection, **values) -> None:
    conn.execute(insert(T).values(**values))


# Built once: every signed request runs it, and building a select costs more than running it.
_TERMINAL = (
    select(T, M.c.city, M.c.status.label("merchant_status"), M.c.name.label("merchant_name"))
    .join(M, M.c.id == T.c.merchant_id)
    .where(T.c.key_id == bindparam("key_id"))
)


def terminal(conn: Connection, key_id: str) -> dict | None:
    """The terminal with its merchant's city, name and status: one indexed join per signed request."""
    row = conn.execute(_TERMINAL, {"key_id": key_id}).first()
    return None if row is None else row._asdict()


def terminals_of(conn: Connection, merchant_id: str) -> list[dict]:
    query = select(T.c.key_id, T.c.status, T.c.created_at_us).where(T.c.merchant_id == merchant_id)
    return [r._asdict() for r in conn.execute(query.order_by(T.c.created_at_us))]


def terminal_views(conn: Connection, merchant_id: str, limit: int) -> list[dict]:
    """The merchant's terminals, newest first, with whether a pairing code made each (a web till) and
    the `created` of its latest signed request still remembered (nonces live a few minutes only)."""
    paired = select(P.c.id).where(P.c.terminal_key_id == T.c.key_id).exists()
    last_seen = select(func.max(N.c.created_s)).where(N.c.key_id == T.c.key_id).scalar_subquery()
    query = select(T.c.key_id, T.c.name, T.c.status, T.c.created_at_us, paired.label("paired"),
                   last_seen.label("last_seen_s")).where(T.c.merchant_id == merchant_id)  # fmt: skip
    return [r._asdict() for r in conn.execute(query.order_by(T.c.created_at_us.desc(), T.c.key_id).limit(limit))]


def rename_terminal(conn: Connection, key_id: str, name: str | None) -> int:
    return conn.execute(update(T).where(T.c.key_id == key_id).values(name=name)).rowcount


MAX_OWNERS = 100  # principals bound to one merchant (a shop has a few owners)


def merchant_activity(conn: Connection, city: str, merchant_id: str, before_seq: int | None,
                      limit: int) -> list[AuditRecord]:  # fmt: skip
    """The city's audit records about a merchant, newest first (before `before_seq`): done to it, to
    its terminals, its offers or its owners' principals, or done by its terminals or its owners."""
    owners = conn.execute(select(PR.c.subject).where(PR.c.city == city, PR.c.merchant_id == merchant_id,
                                                     PR.c.role == "merchant").limit(MAX_OWNERS)).scalars().all()  # fmt: skip
    targets = union_all(
        select(literal(merchant_id)),
        select(T.c.key_id).where(T.c.merchant_id == merchant_id),
        select(IT.c.id).where(IT.c.city == city, IT.c.merchant_id == merchant_id),
        select(PR.c.id).where(PR.c.city == city, PR.c.merchant_id == merchant_id),
    )
    actors = [f"merchant:{merchant_id}", *(f"merchant:{subject}" for subject in owners)]
    about = or_(AU.c.target.in_(select(targets.subquery().c[0])), AU.c.target.in_(actors), AU.c.actor.in_(actors),
                *(AU.c.actor.startswith(f"{actor}/", autoescape=True) for actor in actors))  # fmt: skip
    query = select(*RECORD_COLUMNS).where(AU.c.city == city, about)
    if before_seq is not None:
        query = query.where(AU.c.seq < before_seq)
    return [
        AuditRecord(*row) for row in conn.execute(query.order_by(AU.c.seq.desc()).limit(min(limit, MAX_AUDIT_PAGE)))
    ]


def revoke_terminal(conn: Connection, key_id: str) -> int:
    return conn.execute(update(T).where(T.c.key_id == key_id, T.c.status == "active").values(status="revoked")).rowcount


def claim_nonce(conn: Connection, key_id: str, nonce: str, created_s: int) -> bool:
    """Record a signature nonce; False if it was seen before (a replay). The primary key decides."""
    return insert_once(conn, N, key_id=key_id, nonce=nonce, created_s=created_s)


def forget_nonces(conn: Connection, older_than_s: int) -> int:
    """Nonces older than the freshness window cannot be replayed anyway (their signature expired)."""
    return conn.execute(delete(N).where(N.c.created_s < older_than_s)).rowcount


def purchase_amounts(conn: Connection, ledger: str, transfer_ids: list[str]) -> dict[str, int]:
    """The purchase amount (cents) of each of these awards that recorded one with its answer."""
    query = select(AW.c.transfer_id, AW.c.response).where(AW.c.ledger == ledger, AW.c.transfer_id.in_(transfer_ids),
                                                          AW.c.source == "purchase")  # fmt: skip
    amounts = {}
    for transfer_id, response in conn.execute(query):
        purchase_cents = msgspec.json.decode(response).get("purchase_cents")
        if purchase_cents is not None:
            amounts[transfer_id] = purchase_cents
    return amounts


O = Base.metadata.tables[OccurredAtRow.__tablename__]


def add_pairing_code(conn: Connection, **values) -> None:
    conn.execute(insert(P).values(**values))


def pairing_code_by_hash(conn: Connection, code_hash: str) -> dict | None:
    row = conn.execute(select(P).where(P.c.code_hash == code_hash)).first()
    return None if row is None else row._asdict()


def use_pairing_code(conn: Connection, code_id: str, key_id: str) -> bool:
    """Mark a live code used by the key it registered; False if it was not live any more (a race)."""
    used = update(P).where(P.c.id == code_id, P.c.status == "live").values(status="used", terminal_key_id=key_id)
    return conn.execute(used).rowcount == 1


def record_occurred_at(conn: Connection, ledger: str, transfer_id: str, key_id: str, occurred_at_us: int) -> None:
    """When an offline sale happened, once per transfer (a replayed upload keeps the first)."""
    insert_once(conn, O, ledger=ledger, transfer_id=transfer_id, key_id=key_id, occurred_at_us=occurred_at_us)


def occurred_at(conn: Connection, ledger: str, transfer_ids: list[str]) -> dict[str, int]:
    query = select(O.c.transfer_id, O.c.occurred_at_us).where(O.c.ledger == ledger, O.c.transfer_id.in_(transfer_ids))
    return {
        row.transfer_id: row.occurred_at_us for row in conn.execute(query)
    }  # dict(Result) would take it as a mapping
