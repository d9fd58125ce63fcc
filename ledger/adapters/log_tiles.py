"""The public log's storage: hash tiles and entry bundles, and the journal and checkpoints read by
ranges, inside a caller's transaction. Every read is one indexed range or primary-key lookup, whatever
the log's size."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, func, select

from ledger.adapters.database import dialect_insert
from ledger.adapters.journal import ENTRY_COLUMNS, C, CheckpointRecord, J, L
from ledger.adapters.tables import LogBundleRow, LogTileRow
from ledger.domain.tiles import HASH_BYTES, TILE_WIDTH, Tile, bundle_width

T = LogTileRow.__table__
B = LogBundleRow.__table__

_TILE = select(T.c.hashes).where(
    T.c.ledger == bindparam("ledger"), T.c.level == bindparam("level"), T.c.tile_index == bindparam("tile_index")
)
_LAST_LEAF_TILE = (
    select(T.c.tile_index, T.c.hashes)
    .where(T.c.ledger == bindparam("ledger"), T.c.level == 0)
    .order_by(T.c.tile_index.desc())
    .limit(1)
)
_BUNDLE = select(B.c.entries).where(B.c.ledger == bindparam("ledger"), B.c.bundle_index == bindparam("bundle_index"))
_LAST_BUNDLE = (
    select(B.c.bundle_index, B.c.entries)
    .where(B.c.ledger == bindparam("ledger"))
    .order_by(B.c.bundle_index.desc())
    .limit(1)
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
_SIGNED_BUNDLE = select(_BUNDLE.scalar_subquery()).where(bindparam("end", type_=Integer) <= _SIGNED_SIZE)


def ledger_exists(conn: Connection, ledger: str) -> bool:
    return conn.execute(_LEDGER, {"ledger": ledger}).first() is not None


def tile(conn: Connection, ledger: str, level: int, index: int) -> bytes | None:
    """A stored tile's hashes (the latest width written), or None."""
    return conn.scalar(_TILE, {"ledger": ledger, "level": level, "tile_index": index})


def stored_size(conn: Connection, ledger: str) -> int:
    """The tree size the stored tiles and bundles both describe: where the last level-0 tile ends,
    or the last bundle when it ends before (a ledger tiled before bundles were stored)."""
    tile = conn.execute(_LAST_LEAF_TILE, {"ledger": ledger}).first()
    last = conn.execute(_LAST_BUNDLE, {"ledger": ledger}).first()
    tiled = 0 if tile is None else tile.tile_index * TILE_WIDTH + len(tile.hashes) // HASH_BYTES
    return min(tiled, 0 if last is None else last.bundle_index * TILE_WIDTH + bundle_width(last.entries))


def save_tiles(conn: Connection, ledger: str, tiles: Iterable[Tile]) -> None:
    """Write tiles, replacing a stored one of the same level and index (a right-edge tile that grew)."""
    rows = [{"ledger": ledger, "level": t.level, "tile_index": t.index, "hashes": t.hashes} for t in tiles]
    if rows:
        stmt = dialect_insert(conn, T)
        conn.execute(stmt.on_conflict_do_update(index_elements=[T.c.ledger, T.c.level, T.c.tile_index],
                                                set_={"hashes": stmt.excluded.hashes}), rows)  # fmt: skip


def save_bundles(conn: Connection, ledger: str, bundles: Iterable[tuple[int, bytes]]) -> None:
    """Write (index, bundle) pairs, replacing a stored one of the same index (a right-edge bundle that grew)."""
    rows = [{"ledger": ledger, "bundle_index": index, "entries": entries} for index, entries in bundles]
    if rows:
        stmt = dialect_insert(conn, B)
        conn.execute(stmt.on_conflict_do_update(index_elements=[B.c.ledger, B.c.bundle_index],
                                                set_={"entries": stmt.excluded.entries}), rows)  # fmt: skip


def entries(conn: Connection, ledger: str, after: int, upto: int) -> list[tuple[Any, ...]]:
    """Entry16 tuples of sequences after+1..upto, in order, fetched at once."""
    return [*map(tuple, conn.execute(_ENTRIES, {"ledger": ledger, "after": after, "upto": upto}).all())]


def signed_tile(conn: Connection, ledger: str, level: int, index: int, end: int) -> bytes | None:
    """A stored tile's hashes when the latest checkpoint covers `end` leaves, else None: one query."""
    return conn.scalar(_SIGNED_TILE, {"ledger": ledger, "level": level, "tile_index": index, "end": end})


def signed_bundle(conn: Connection, ledger: str, index: int, end: int) -> bytes | None:
    """A stored bundle (the latest width written) when the latest checkpoint covers `end` entries, else None:
    one query."""
    return conn.scalar(_SIGNED_BUNDLE, {"ledger": ledger, "bundle_index": index, "end": end})


def latest_checkpoint(conn: Connection, ledger: str) -> CheckpointRecord | None:
    row = conn.execute(_LATEST_CHECKPOINT, {"ledger": ledger}).first()
    return None if row is None else row._asdict()


def checkpoints(conn: Connection, ledger: str, after_size: int, limit: int) -> list[CheckpointRecord]:
    """Checkpoints of tree sizes above `after_size`, smallest first, at most `limit`."""
    rows = conn.execute(_CHECKPOINTS, {"ledger": ledger, "after_size": after_size, "limit": limit})
    return [r._asdict() for r in rows]
