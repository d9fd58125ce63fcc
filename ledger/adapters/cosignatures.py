"""Every query of witnesses' cosignatures and states, inside a caller's transaction (like journal.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, tuple_

from ledger.adapters.database import dialect_insert
from ledger.adapters.tables import CosignatureRow, WitnessStateRow

CS = CosignatureRow.__table__
WS = WitnessStateRow.__table__

# A witness_state row by column name.
WitnessStateRecord = dict[str, Any]


def lines(conn: Connection, pairs: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, str]]:
    """{(ledger, tree size): {witness: cosignature line}} of these checkpoints."""
    found: dict[tuple[str, int], dict[str, str]] = {pair: {} for pair in pairs}
    if not pairs:
        return found
    query = select(CS.c.ledger, CS.c.tree_size, CS.c.witness, CS.c.line).where(
        tuple_(CS.c.ledger, CS.c.tree_size).in_(pairs)
    )
    for ledger, size, witness, line in conn.execute(query.order_by(CS.c.ledger, CS.c.tree_size, CS.c.witness)):
        found[(ledger, size)][witness] = line
    return found


def add(conn: Connection, ledger: str, tree_size: int, witness: str, line: str, timestamp: int, now_us: int) -> None:
    """Store a cosignature; a witness's second one on the same checkpoint keeps the first."""
    statement = dialect_insert(conn, CS).values(ledger=ledger, tree_size=tree_size, witness=witness, line=line,
                                                timestamp=timestamp, received_us=now_us)  # fmt: skip
    conn.execute(statement.on_conflict_do_nothing())


def states(conn: Connection) -> dict[tuple[str, str], WitnessStateRecord]:
    """{(ledger, witness): state} of every witness that was ever submitted to."""
    return {(r.ledger, r.witness): r._asdict() for r in conn.execute(select(WS).order_by(WS.c.ledger, WS.c.witness))}


def set_state(conn: Connection, ledger: str, witness: str, *, size: int, state: str, tried_size: int,
              detail: str | None, now_us: int) -> None:  # fmt: skip
    values = {"size": size, "state": state, "tried_size": tried_size, "detail": detail, "updated_us": now_us}
    statement = dialect_insert(conn, WS).values(ledger=ledger, witness=witness, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=[WS.c.ledger, WS.c.witness], set_=values))
