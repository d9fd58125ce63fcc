"""The public log's storage: hash tiles, and the journal and checkpoints read by ranges, inside a
caller's transaction. Every read is one indexed range or primary-key lookup, whatever the log's size."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, func, select

from ledger.adapters.database import dialect_insert
from ledger.adapters.journal import ENTRY_COLUMNS, C, CheckpointRecord, J, L
from ledger.adapters.tables import LogTileRow
from ledger.domain.tiles import HASH_BYTES, TILE_WIDTH, Tile

T = LogTileRow.__table__

_TILE = select(T.c.hashes).where(
    T.c.ledger == bindparam("ledger"), T.c.level == bindparam("level"), T.c.tile_index == bindparam("tile_index")
)
_LAST_LEAF_TILE = (
    select(T.c.tile_index, T.c.hashes)
    .where(T.c.ledger == bindparam("ledger"), T.c.level == 0)
    .order_by(T.c.tile_index.desc())
    .limit(1)
)
_ENTRY_HASHES = (
    select(J.c.hash)
    .where(J.c.ledger == bindparam("ledger"), J.c.sequence > bindparam("after"), J.c.sequence <= bindparam("upto"))
    .order_by(J.c.sequence)
)
_ENTRIES = (
    select(*ENTRY_COLUMNS)
    .where(J.c.ledger == bindparam("ledger"), J.c.sequence > bindparam("after"), J.c.sequence <= bindparam("upto"))
    .order_by(J.c.sequence)
)
_LATEST_CHECKPOINT = select(C).where(C.c.ledger == bindparam("ledger")).order_by(C.c.tree_size.desc()).limit(1)
_CHECKPOINTS = (
    select(C)
    .where(C.c.ledger == bindparam("ledger"), C.c.tree_size > bindparam("after_size"))
    .order_by(C.c.tree_size)
    .limit(bindparam("limit", type_=Integer))
)
_LEDGER = select(L.c.name).where(L.c.name == bindparam("ledger"))
_SIGNED_SIZE = select(func.max(C.c.tree_size)).where(C.c.ledger == bindparam("ledger")).scalar_subquery()
_SIGNED_TILE = select(_TILE.scalar_subquery()).where(bindparam("end", type_=Integer) <= _SIGNED_SIZE)
_SIGNED_ENTRIES = _ENTRIES.where(J.c.sequence <= _SIGNED_SIZE)


def ledger_exists(conn: Connection, ledger: str) -> bool:
    return conn.execute(_LEDGER, {"ledger": ledger}).first() is not None


def tile(conn: Connection, ledger: str, level: int, index: int) -> bytes | None:
    """A stored tile's hashes (the latest width written), or None."""
    return conn.scalar(_TILE, {"ledger": ledger, "level": level, "tile_index": index})


def tiled_size(conn: Connection, ledger: str) -> int:
    """The tree size the stored tiles describe: where the last level-0 tile ends."""
    row = conn.execute(_LAST_LEAF_TILE, {"ledger": ledger}).first()
    return 0 if row is None else row.tile_index * TILE_WIDTH + len(row.hashes) // HASH_BYTES


def save_tiles(conn: Connection, ledger: str, tiles: Iterable[Tile]) -> None:
    """Write tiles, replacing a stored one of the same level and index (a right-edge tile that grew)."""
    rows = [{"ledger": ledger, "level": t.level, "tile_index": t.index, "hashes": t.hashes} for t in tiles]
    if rows:
        stmt = dialect_insert(conn, T)
        conn.execute(stmt.on_conflict_do_update(index_elements=[T.c.ledger, T.c.level, T.c.tile_index],
                                                set_={"hashes": stmt.excluded.hashes}), rows)  # fmt: skip


def entry_hashes(conn: Connection, ledger: str, after: int, upto: int) -> bytes:
    """Raw hashes of entries after+1..upto, concatenated."""
    hashes = conn.scalars(_ENTRY_HASHES, {"ledger": ledger, "after": after, "upto": upto})
    return b"".join(bytes.fromhex(h) for h in hashes)


def entries(conn: Connection, ledger: str, after: int, upto: int) -> list[tuple[Any, ...]]:
    """Entry16 tuples of sequences after+1..upto, in order, fetched at once."""
    return [*map(tuple, conn.execute(_ENTRIES, {"ledger": ledger, "after": after, "upto": upto}).all())]


def signed_tile(conn: Connection, ledger: str, level: int, index: int, end: int) -> bytes | None:
    """A stored tile's hashes when the latest checkpoint covers `end` leaves, else None: one query."""
    return conn.scalar(_SIGNED_TILE, {"ledger": ledger, "level": level, "tile_index": index, "end": end})


def signed_entries(conn: Connection, ledger: str, after: int, upto: int) -> list[tuple[Any, ...]]:
    """`entries`, but only those the latest checkpoint covers: one query."""
    return [*map(tuple, conn.execute(_SIGNED_ENTRIES, {"ledger": ledger, "after": after, "upto": upto}).all())]


def latest_checkpoint(conn: Connection, ledger: str) -> CheckpointRecord | None:
    row = conn.execute(_LATEST_CHECKPOINT, {"ledger": ledger}).first()
    return None if row is None else row._asdict()


def checkpoints(conn: Connection, ledger: str, after_size: int, limit: int) -> list[CheckpointRecord]:
    """Checkpoints of tree sizes above `after_size`, smallest first, at most `limit`."""
    rows = conn.execute(_CHECKPOINTS, {"ledger": ledger, "after_size": after_size, "limit": limit})
    return [r._asdict() for r in rows]
