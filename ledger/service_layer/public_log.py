"""A city's public log, as C2SP tlog-tiles serves it: the latest checkpoint, hash tiles, entry
bundles, and (our additions) the checkpoint history and the log's keys.

Each read costs one query: a primary-key lookup of the tile or bundle (stored with the checkpoint
that published it) under the latest checkpoint's size: O(tile), never O(log). Only what the latest
signed checkpoint covers is published; a tile once served never changes (a narrower partial tile is
a prefix of the wider one, and of the full tile), nor does a bundle.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from ledger.adapters import journal, log_tiles
from ledger.adapters.database import reading
from ledger.adapters.journal import CheckpointRecord
from ledger.domain import checkpoint as notes
from ledger.domain.errors import InvariantViolation, NotInLog, UnknownLedger
from ledger.domain.tiles import HASH_BYTES, TilePathError, TileRef, bundle_prefix, parse_tile_path
from ledger.domain.witnesses import WitnessConfig
from ledger.schemas import CheckpointPage, LogKey, LogKeys
from ledger.service_layer.audit import published_checkpoints, published_note


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
    """The latest checkpoint's note as published, with the witnesses' cosignatures gathered so far."""
    with reading(engine).connect() as conn:
        size = int(_latest(conn, city, "checkpoint")["tree_size"])
        note = published_note(conn, city, size)
    assert note is not None, "the checkpoint was just read"
    return note


def _parse(conn: Connection, city: str, path: str, *, entries: bool) -> TileRef:
    try:
        return parse_tile_path(path, entries=entries)
    except TilePathError:
        return _published(conn, city, path, entries=entries)  # raises, UnknownLedger first


def tile(engine: Engine, city: str, path: str) -> bytes:
    """The hash tile at `<L>/<N>[.p/<W>]`. One query when it is published; the errors' cases are told
    apart only then."""
    with reading(engine).connect() as conn:
        ref = _parse(conn, city, path, entries=False)
        hashes = log_tiles.signed_tile(conn, city, ref.level, ref.index, ref.end())
        if hashes is None:
            _published(conn, city, path, entries=False)  # raises when the checkpoint does not cover it
    if hashes is None or len(hashes) < ref.width * HASH_BYTES:
        raise InvariantViolation(f"tile {ref} of {city} is covered by a checkpoint but not stored")
    return hashes[: ref.width * HASH_BYTES]


def entry_bundle(engine: Engine, city: str, path: str) -> bytes:
    """The entry bundle at `<N>[.p/<W>]`: each entry's export line, uint16-length-prefixed. One query
    when it is published; the errors' cases are told apart only then."""
    with reading(engine).connect() as conn:
        ref = _parse(conn, city, path, entries=True)
        stored = log_tiles.signed_bundle(conn, city, ref.index, ref.end())
        if stored is None:
            _published(conn, city, path, entries=True)  # raises when the checkpoint does not cover it
    if stored is None:
        raise InvariantViolation(f"bundle {ref} of {city} is covered by a checkpoint but not stored")
    try:
        return bundle_prefix(stored, ref.width)
    except ValueError:
        raise InvariantViolation(f"bundle {ref} of {city} is stored narrower than a checkpoint covers") from None


def checkpoint_history(engine: Engine, city: str, after_size: int | None, limit: int,
                       witnesses: WitnessConfig | None = None) -> CheckpointPage:  # fmt: skip
    """Signed checkpoints of tree sizes above `after_size` (all when None), smallest first, as published."""
    with reading(engine).connect() as conn:
        if not log_tiles.ledger_exists(conn, city):
            raise UnknownLedger(f"no ledger named {city!r}", ledger=city)
        rows = log_tiles.checkpoints(conn, city, -1 if after_size is None else after_size, limit)
        page = published_checkpoints(conn, rows, witnesses)
    return CheckpointPage(checkpoints=page, next_after_size=page[-1].tree_size if len(page) == limit else None)


def keys(engine: Engine, city: str) -> LogKeys:
    """The keys that sign the city's log, each with its signed-note verifier key under the origin."""
    with reading(engine).connect() as conn:
        if not log_tiles.ledger_exists(conn, city):
            raise UnknownLedger(f"no ledger named {city!r}", ledger=city)
        rows = journal.signing_keys(conn)
    name = notes.origin(city)
    return LogKeys(origin=name, keys=[LogKey(key_id=k["key_id"], public_key=k["public_key"], vkey=notes.vkey(name, bytes.fromhex(k["public_key"])),
                                             valid_from_us=k["valid_from_us"], valid_until_us=k["valid_until_us"])
                                      for k in rows if k["algorithm"] == "ed25519"])  # fmt: skip
