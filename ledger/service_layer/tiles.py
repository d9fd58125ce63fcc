"""Keeping a ledger's hash tiles (C2SP tlog-tiles) in step with its checkpoints.

`make_checkpoints` calls `record` in the transaction that signs a checkpoint, so the tiles of every
signed tree size are stored before the checkpoint is visible; the work is proportional to the
entries added since the last one. `public_log` serves them.
"""

from __future__ import annotations

from sqlalchemy import Connection

from ledger.adapters import log_tiles
from ledger.domain.errors import InvariantViolation
from ledger.domain.tiles import HASH_BYTES, edge, grow, root_from_edge

STEP_ENTRIES = 1 << 16  # entries read at once when catching up (a ledger older than its tiles)


def record(conn: Connection, ledger: str, tree_size: int, root: bytes) -> None:
    """Extend the ledger's stored tiles to `tree_size` and check that they give the signed `root`."""
    size = log_tiles.tiled_size(conn, ledger)
    assert size <= tree_size, "tiles are only written with a checkpoint, which never shrinks"
    edge_tiles = _edge_tiles(conn, ledger, size)
    while size < tree_size:
        step = min(tree_size, size + STEP_ENTRIES)
        changed = grow(size, step, log_tiles.entry_hashes(conn, ledger, size, step), edge_tiles)
        log_tiles.save_tiles(conn, ledger, changed)
        by_ref = {(t.level, t.index): t.hashes for t in changed}
        edge_tiles = {r.level: by_ref.get((r.level, r.index), edge_tiles.get(r.level, b"")) for r in edge(step)}
        size = step
    if root_from_edge(tree_size, edge_tiles) != root:
        raise InvariantViolation(f"the tiles of {ledger} at size {tree_size} disagree with its signed root")


def _edge_tiles(conn: Connection, ledger: str, tree_size: int) -> dict[int, bytes]:
    tiles = {}
    for ref in edge(tree_size):
        hashes = log_tiles.tile(conn, ledger, ref.level, ref.index)
        assert hashes is not None and len(hashes) >= ref.width * HASH_BYTES, "a stored tree has its edge tiles"
        tiles[ref.level] = hashes[: ref.width * HASH_BYTES]
    return tiles
