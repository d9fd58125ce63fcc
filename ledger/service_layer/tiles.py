"""Keeping a ledger's hash tiles (C2SP tlog-tiles) and entry bundles in step with its checkpoints.

`make_checkpoints` calls `record` in the transaction that signs a checkpoint, so the tiles and
bundles of every signed tree size are stored before the checkpoint is visible; the work is
proportional to the entries added since the last one. `public_log` serves them, each one row read.
"""

from __future__ import annotations

from sqlalchemy import Connection

from ledger.adapters import log_tiles
from ledger.domain.errors import InvariantViolation
from ledger.domain.tiles import HASH_BYTES, TILE_WIDTH, bundles, edge, grow, root_from_edge
from ledger.service_layer.entry_lines import ENTRY_KEYS, entry_json

STEP_ENTRIES = 1 << 14  # journal rows read at once when catching up (a ledger older than its tiles)
HASH = ENTRY_KEYS.index("hash")


def record(conn: Connection, ledger: str, tree_size: int, root: bytes) -> None:
    """Extend the ledger's stored tiles and bundles to `tree_size` and check that the tiles give the
    signed `root`."""
    size = log_tiles.stored_size(conn, ledger)
    assert size <= tree_size, "tiles are only written with a checkpoint, which never shrinks"
    edge_tiles = _edge_tiles(conn, ledger, size)
    while size < tree_size:
        step = min(tree_size, size + STEP_ENTRIES)
        start = size // TILE_WIDTH * TILE_WIDTH  # a partial bundle is written again whole, wider
        rows = log_tiles.entries(conn, ledger, start, step)
        assert len(rows) == step - start, "a checkpointed ledger has every entry up to its size"
        hashes = b"".join(bytes.fromhex(row[HASH]) for row in rows[size - start :])
        changed = grow(size, step, hashes, edge_tiles)
        log_tiles.save_tiles(conn, ledger, changed)
        log_tiles.save_bundles(conn, ledger, bundles(start // TILE_WIDTH, [entry_json(row) for row in rows]))
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
