"""Every query of the audit trail, inside a caller's transaction (like ledger.adapters.journal)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, bindparam, func, insert, select, update

from ledger.adapters.database import insert_once
from ledger.adapters.tables import AuditHeadRow, AuditRow
from ledger.domain.audit_trail import GENESIS_HASH, AuditRecord

AU = AuditRow.__table__
AH = AuditHeadRow.__table__
RECORD_COLUMNS = tuple(AU.c[name] for name in AuditRecord._fields)
MAX_AUDIT_PAGE = 1_000
STREAM_CHUNK = 5_000

_HEAD = select(AH.c.seq, AH.c.hash).where(AH.c.city == bindparam("city"))


def lock_head(conn: Connection, city: str) -> tuple[int, str]:
    """The city's last (seq, hash), its row locked until the transaction ends (one writer per city)."""
    insert_once(conn, AH, city=city, seq=0, hash=GENESIS_HASH)
    query = _HEAD.with_for_update() if conn.dialect.name == "postgresql" else _HEAD
    seq, hash_ = conn.execute(query, {"city": city}).one()
    return seq, hash_


def append(conn: Connection, record: AuditRecord) -> None:
    conn.execute(insert(AU).values(**record._asdict()))
    conn.execute(update(AH).where(AH.c.city == record.city).values(seq=record.seq, hash=record.hash))


def page(conn: Connection, city: str, after_seq: int, limit: int) -> list[AuditRecord]:
    query = select(*RECORD_COLUMNS).where(AU.c.city == city, AU.c.seq > after_seq).order_by(AU.c.seq)
    return [AuditRecord(*row) for row in conn.execute(query.limit(min(limit, MAX_AUDIT_PAGE)))]


def search(
    conn: Connection,
    city: str,
    *,
    actor: str,
    family: str,
    target: str,
    since_us: int | None,
    until_us: int | None,
    before_seq: int | None,
    limit: int,
) -> list[AuditRecord]:
    """The city's records newest first, narrowed by each filter given (an empty one: no filter): the
    actor and the target by their beginning, the action by its family (`merchant` is `merchant.*`)."""
    query = select(*RECORD_COLUMNS).where(AU.c.city == city)
    if actor:
        query = query.where(AU.c.actor.startswith(actor, autoescape=True))
    if family:
        query = query.where(AU.c.action.startswith(family + ".", autoescape=True))
    if target:
        query = query.where(AU.c.target.startswith(target, autoescape=True))
    if since_us is not None:
        query = query.where(AU.c.at_us >= since_us)
    if until_us is not None:
        query = query.where(AU.c.at_us < until_us)
    if before_seq is not None:
        query = query.where(AU.c.seq < before_seq)
    query = query.order_by(AU.c.seq.desc()).limit(min(limit, MAX_AUDIT_PAGE))
    return [AuditRecord(*row) for row in conn.execute(query)]


def families(conn: Connection, city: str, limit: int) -> list[str]:
    """The kinds of action in the city's trail (`program`, `merchant`, ...), at most `limit` of them."""
    family = (
        func.substr(AU.c.action, 1, func.instr(AU.c.action, ".") - 1)
        if conn.dialect.name == "sqlite"
        else func.split_part(AU.c.action, ".", 1)
    )
    query = select(family).where(AU.c.city == city).distinct().order_by(family).limit(limit)
    return [name for (name,) in conn.execute(query) if name]


def stream(conn: Connection, city: str | None = None) -> Iterator[list[AuditRecord]]:
    """Every record in (city, seq) order, a chunk at a time (keyset paging: bounded memory)."""
    last = ("", 0)
    while True:
        query = select(*RECORD_COLUMNS)
        if city is not None:
            query = query.where(AU.c.city == city, AU.c.seq > last[1])
        else:
            query = query.where((AU.c.city > last[0]) | ((AU.c.city == last[0]) & (AU.c.seq > last[1])))
        rows = [AuditRecord(*row) for row in conn.execute(query.order_by(AU.c.city, AU.c.seq).limit(STREAM_CHUNK))]
        if not rows:
            return
        yield rows
        last = (rows[-1].city, rows[-1].seq)


def heads(conn: Connection) -> dict[str, tuple[int, str]]:
    return {row.city: (row.seq, row.hash) for row in conn.execute(select(AH))}
