"""A city's public log, as C2SP tlog-tiles serves it: the latest checkpoint, hash tiles, entry
bundles, and (our additions) the checkpoint history and the log's keys.

Each read costs one primary-key lookup of the latest checkpoint and one of the tile, or one indexed
range of at most 256 journal rows: O(tile), never O(log). Only what the latest signed checkpoint
covers is published; a tile once served never changes (a narrower partial tile is a prefix of the
wider one, and of the full tile).
"""

from __future__ import annotations

import base64

from sqlalchemy import Connection, Engine

from ledger.adapters import journal, log_tiles
from ledger.adapters.journal import CheckpointRecord
from ledger.domain.checkpoint import ED25519, ORIGIN_PREFIX, key_hash
from ledger.domain.errors import InvariantViolation, NotInLog, UnknownLedger
from ledger.domain.tiles import HASH_BYTES, TILE_WIDTH, TilePathError, TileRef, bundle, parse_tile_path
from ledger.schemas import Checkpoint, CheckpointPage, LogKey, LogKeys
from ledger.service_layer.audit import entry_line

ED25519_ALGORITHM = bytes([ED25519])  # merge with main: its checkpoint module names the type as an int

CHECKPOINT_FIELDS = ("ledger", "tree_size", "root_hash", "time_us", "note")


def origin(city: str) -> str:
    return ORIGIN_PREFIX + city


def _latest(conn: Connection, city: str, path: str) -> CheckpointRecord:
    """The latest checkpoint; UnknownLedger, or NotInLog before the first checkpoint."""
    latest = log_tiles.latest_checkpoint(conn, city)
    if latest is None:
        if not log_tiles.ledger_exists(conn, city):
            raise UnknownLedger(f"no ledger named {city!r}", ledger=city)
        raise NotInLog(f"{city} has signed no checkpoint yet", ledger=city, path=path)
    return latest


def _published(conn: Connection, city: str, path: str, *, entries: bool) -> TileRef:
    size = int(_latest(conn, city, path)["tree_size"])
    try:
        ref = parse_tile_path(path, entries=entries)
    except TilePathError as exc:
        raise NotInLog(str(exc), ledger=city, path=path) from None
    if ref.end() > size:
        raise NotInLog(f"{path} is beyond the latest checkpoint of {city} ({size})", ledger=city, path=path)
    return ref


def checkpoint_note(engine: Engine, city: str) -> str:
    """The latest checkpoint's note as stored (with whatever cosignatures were added to it)."""
    with engine.connect() as conn:
        return str(_latest(conn, city, "checkpoint")["note"])


def tile(engine: Engine, city: str, path: str) -> bytes:
    """The hash tile at `<L>/<N>[.p/<W>]`."""
    with engine.connect() as conn:
        ref = _published(conn, city, path, entries=False)
        hashes = log_tiles.tile(conn, city, ref.level, ref.index)
    if hashes is None or len(hashes) < ref.width * HASH_BYTES:
        raise InvariantViolation(f"tile {ref} of {city} is covered by a checkpoint but not stored")
    return hashes[: ref.width * HASH_BYTES]


def entry_bundle(engine: Engine, city: str, path: str) -> bytes:
    """The entry bundle at `<N>[.p/<W>]`: each entry's export line, uint16-length-prefixed."""
    with engine.connect() as conn:
        ref = _published(conn, city, path, entries=True)
        first = ref.index * TILE_WIDTH
        rows = log_tiles.entries(conn, city, first, first + ref.width)
    if len(rows) != ref.width:
        raise InvariantViolation(f"bundle {ref} of {city} is covered by a checkpoint but has {len(rows)} entries")
    return bundle(entry_line(row).encode() for row in rows)


def checkpoint_history(engine: Engine, city: str, after_size: int | None, limit: int) -> CheckpointPage:
    """Signed checkpoints of tree sizes above `after_size` (all when None), smallest first."""
    with engine.connect() as conn:
        if not log_tiles.ledger_exists(conn, city):
            raise UnknownLedger(f"no ledger named {city!r}", ledger=city)
        rows = log_tiles.checkpoints(conn, city, -1 if after_size is None else after_size, limit)
    page = [Checkpoint(**{k: row[k] for k in CHECKPOINT_FIELDS}) for row in rows]
    return CheckpointPage(checkpoints=page, next_after_size=page[-1].tree_size if len(page) == limit else None)


def keys(engine: Engine, city: str) -> LogKeys:
    """The keys that sign the city's log, each with its signed-note verifier key under the origin."""
    with engine.connect() as conn:
        if not log_tiles.ledger_exists(conn, city):
            raise UnknownLedger(f"no ledger named {city!r}", ledger=city)
        rows = journal.signing_keys(conn)
    name = origin(city)
    return LogKeys(origin=name, keys=[LogKey(key_id=k["key_id"], public_key=k["public_key"], vkey=vkey(name, bytes.fromhex(k["public_key"])),
                                             valid_from_us=k["valid_from_us"], valid_until_us=k["valid_until_us"])
                                      for k in rows if k["algorithm"] == "ed25519"])  # fmt: skip


def vkey(name: str, public_key: bytes) -> str:
    """A C2SP signed-note verifier key: `<name>+<key hash, hex>+base64(0x01 || public key)`."""
    return f"{name}+{key_hash(name, public_key).hex()}+{base64.b64encode(ED25519_ALGORITHM + public_key).decode()}"
