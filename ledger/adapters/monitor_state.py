"""A monitor's state directory (`entraide monitor --state DIR`, docs/ledger-format.md, "Monitoring").

    DIR/state.json        what was verified: the log's URL, the keys first seen, per ledger the
                          checkpoint (note, size, root, time) and where its mirror ends
    DIR/<ledger>.jsonl    the ledger's verified entries, one export line each, sequence order

`state.json` is replaced atomically (written aside, fsynced, renamed) and only after the mirrors
were appended to and fsynced; a mirror longer than its `mirror_bytes` (a run that stopped between
the two) is cut back to it on loading, so the directory always describes one verified state.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from ledger.schemas import SigningKey

STATE_FORMAT = "entraide.monitor/1"
STATE_FILE = "state.json"
MAX_STATE_BYTES = 64 << 20  # keys and one note per ledger: far below this


class StateError(ValueError):
    """A state directory that cannot be read as one (it was not written by a monitor, or damaged)."""


class LedgerState(msgspec.Struct, frozen=True):
    size: int  # the verified checkpoint's tree size (= entries in the mirror)
    root: str  # its root, lowercase hex
    time_us: int  # its time_us
    note: str  # the checkpoint note as verified, signatures included
    head_hash: str  # hash of entry `size` (64 zeros for an empty log)
    mirror_bytes: int  # length of the mirror at `size` entries
    partial_offset: int  # byte offset in the mirror of the first entry of the last, partial, tile
    witnessed: int = 0  # valid cosignatures by the configured witnesses on that note


class MonitorState(msgspec.Struct):
    format: str
    url: str
    keys: list[SigningKey]  # the log's keys as last accepted (trust on first use, then only appended to)
    verified_time_us: int = 0  # the largest checkpoint time_us verified, over every ledger
    ledgers: dict[str, LedgerState] = msgspec.field(default_factory=dict)


def mirror_path(directory: Path, ledger: str) -> Path:
    return directory / f"{ledger}.jsonl"


def load(directory: Path) -> MonitorState | None:
    """The state of a previous run, None for a directory with none; mirrors are cut back to it."""
    path = directory / STATE_FILE
    if not path.exists():
        return None
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_STATE_BYTES:
            raise StateError(f"{path} is larger than a monitor state can be")
        state = msgspec.json.decode(raw, type=MonitorState)
    except (OSError, msgspec.DecodeError) as exc:
        raise StateError(f"cannot read monitor state {path}: {exc}") from None
    if state.format != STATE_FORMAT:
        raise StateError(f"{path} is not an {STATE_FORMAT} monitor state")
    for ledger, verified in state.ledgers.items():
        mirror = mirror_path(directory, ledger)
        length = mirror.stat().st_size if mirror.exists() else 0
        if length < verified.mirror_bytes:
            raise StateError(
                f"{mirror} is shorter than the verified state says ({length} < {verified.mirror_bytes} bytes)"
            )
        if length > verified.mirror_bytes:
            os.truncate(mirror, verified.mirror_bytes)
    return state


def read_mirror_tail(directory: Path, ledger: str, offset: int, end: int) -> bytes:
    """Bytes [offset, end) of a ledger's mirror (the entries of its last, partial, tile)."""
    with mirror_path(directory, ledger).open("rb") as handle:
        handle.seek(offset)
        return handle.read(end - offset)


def append_mirror(directory: Path, ledger: str, lines: bytes) -> int:
    """Append verified export lines to a ledger's mirror, durably; the mirror's new length."""
    with mirror_path(directory, ledger).open("ab") as handle:
        handle.write(lines)
        handle.flush()
        os.fsync(handle.fileno())
        return handle.tell()


def save(directory: Path, state: MonitorState) -> None:
    """Replace state.json atomically (after the mirrors it describes were appended to)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{STATE_FILE}.partial"
    with tmp.open("wb") as handle:
        handle.write(msgspec.json.format(msgspec.json.encode(state), indent=1))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, directory / STATE_FILE)
