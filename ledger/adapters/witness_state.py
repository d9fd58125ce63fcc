"""A witness's state directory: what it cosigned per log, and the fork evidence it kept.

    STATE/lock                                  flock'd around every check-and-persist
    STATE/logs/<origin hash>/latest.note        the latest cosigned checkpoint (log signature + ours)
    STATE/logs/<origin hash>/<size>.note        every checkpoint it cosigned, by size
    STATE/evidence/<origin hash>/<size>-<kind>-<note digest>.json   two conflicting signed notes

`<origin hash>` is lowercase hex SHA-256 of the origin (as tlog-witness's monitoring URL). Each file
is written to a temporary name, fsync'd, renamed over, and the directory fsync'd: a crash leaves the
old file or the new one, never half of one. The lock is an advisory `flock` on STATE/lock, so the
processes and threads sharing the directory check and persist one at a time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MAX_EVIDENCE_FILES = 1_000  # per read: evidence needs a validly signed note, so only a log can add it


def origin_hash(origin: str) -> str:
    return hashlib.sha256(origin.encode()).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class WitnessState:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state directory's lock (blocking) for a check and its persisting."""
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _log(self, origin: str) -> Path:
        return self.directory / "logs" / origin_hash(origin)

    def latest(self, origin: str) -> str | None:
        return self.latest_by_hash(origin_hash(origin))

    def latest_by_hash(self, hashed_origin: str) -> str | None:
        path = self.directory / "logs" / hashed_origin / "latest.note"
        return path.read_text() if len(hashed_origin) == 64 and path.is_file() else None

    def cosigned(self, origin: str, tree_size: int) -> str | None:
        path = self._log(origin) / f"{tree_size}.note"
        return path.read_text() if path.is_file() else None

    def save(self, origin: str, tree_size: int, note: str) -> None:
        """Record a cosigned checkpoint (the caller holds the lock): its size first, then as the latest."""
        data = note.encode()
        _write_atomically(self._log(origin) / f"{tree_size}.note", data)
        _write_atomically(self._log(origin) / "latest.note", data)

    def add_evidence(self, origin: str, tree_size: int, kind: str, record: dict[str, Any]) -> bool:
        """Keep a record of conflicting notes; False if this very submission was already kept."""
        digest = hashlib.sha256(record["submitted_note"].encode()).hexdigest()[:16]
        path = self.directory / "evidence" / origin_hash(origin) / f"{tree_size}-{kind}-{digest}.json"
        if path.exists():
            return False
        _write_atomically(path, json.dumps(record, sort_keys=True).encode())
        return True

    def evidence(self) -> list[dict[str, Any]]:
        """Every evidence record, oldest first (at most MAX_EVIDENCE_FILES)."""
        paths = sorted((self.directory / "evidence").glob("*/*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [json.loads(p.read_text()) for p in paths[:MAX_EVIDENCE_FILES]]
