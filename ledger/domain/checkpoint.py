"""Signed checkpoints: C2SP signed notes whose body is a tlog-checkpoint (docs/ledger-format.md).

A checkpoint commits to a ledger's Merkle root at a tree size; anyone holding the public keys can
check it, and with a consistency proof, that a later checkpoint only appended to it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ORIGIN_PREFIX = "entraide/"
KEY_NAME_PREFIX = "entraide-"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space, as C2SP signed-note requires
ED25519_ALGORITHM = b"\x01"
MAX_NOTE_BYTES = 8192


class NoteError(ValueError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    ledger: str
    tree_size: int
    root: bytes
    time_us: int
    key_id: str


def key_name(key_id: str) -> str:
    return KEY_NAME_PREFIX + key_id


def key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_ALGORITHM + public_key).digest()[:4]


def body(ledger: str, tree_size: int, root: bytes, time_us: int) -> str:
    return f"{ORIGIN_PREFIX}{ledger}\n{tree_size}\n{base64.b64encode(root).decode()}\ntime_us {time_us}\n"


def sign(ledger: str, tree_size: int, root: bytes, time_us: int, key_id: str, seed: bytes) -> str:
    """The full note text: body, blank line, one signature line."""
    text = body(ledger, tree_size, root, time_us)
    private = Ed25519PrivateKey.from_private_bytes(seed)
    name = key_name(key_id)
    blob = key_hash(name, private.public_key().public_bytes_raw()) + private.sign(text.encode())
    return f"{text}\n{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


def _parse_body(text: str) -> tuple[str, int, bytes, int]:
    lines = text.split("\n")[:-1]
    if len(lines) != 4 or not lines[0].startswith(ORIGIN_PREFIX):
        raise NoteError("checkpoint body must be origin, size, root and a time_us line")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
        label, _, time_text = lines[3].partition(" ")
        time_us = int(time_text)
    except ValueError as exc:
        raise NoteError(f"malformed checkpoint body: {exc}") from None
    if label != "time_us" or len(root) != 32 or size < 0 or str(size) != lines[1]:
        raise NoteError("malformed checkpoint body")
    return lines[0][len(ORIGIN_PREFIX) :], size, root, time_us


def open_note(note: str, keys: dict[str, tuple[bytes, int, int | None]]) -> Checkpoint:
    """Verify a note against public keys {key_id: (public_key, valid_from_us, valid_until_us)}.

    Returns the checkpoint if at least one signature is by a known key valid at the checkpoint's
    time; raises NoteError otherwise.
    """
    if len(note.encode()) > MAX_NOTE_BYTES or not note.endswith("\n"):
        raise NoteError("not a signed note")
    text, sep, signatures = note.rpartition("\n\n")
    if not sep:
        raise NoteError("signed note has no signature block")
    text += "\n"
    ledger, size, root, time_us = _parse_body(text)
    for line in signatures.split("\n")[:-1]:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("malformed signature line")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        kid = name[len(KEY_NAME_PREFIX) :] if name.startswith(KEY_NAME_PREFIX) else None
        if kid not in keys:
            continue
        public, valid_from, valid_until = keys[kid]
        try:
            blob = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError("malformed signature") from None
        if len(blob) != 68 or blob[:4] != key_hash(name, public):
            continue
        if not (valid_from <= time_us and (valid_until is None or time_us < valid_until)):
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], text.encode())
        except InvalidSignature:
            continue
        return Checkpoint(ledger, size, root, time_us, kid)
    raise NoteError("no valid signature by a known key")
