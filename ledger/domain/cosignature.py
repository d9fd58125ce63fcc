"""Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`).

A cosignature is one more signature line on a checkpoint note, by a witness's key:

    — <witness name> base64(key id || u64 big-endian timestamp || Ed25519 signature)

with key id = SHA-256(name || "\\n" || 0x04 || public key)[:4], over the message
`cosignature/v1\\ntime <timestamp>\\n` followed by the checkpoint's whole text (extension lines
included). The timestamp is in seconds since the epoch. A cosignature states that, at that time,
this was the largest checkpoint of the log the witness had verified as consistent.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.domain.checkpoint import NoteError, key_hash, parse_note, signature_line

COSIGNATURE_V1 = 0x04
MAX_TIMESTAMP = 2**63 - 1

# Witnesses a client trusts: name -> raw Ed25519 public key.
Witnesses = Mapping[str, bytes]


def message(text: str, timestamp: int) -> bytes:
    """What a witness signs for a checkpoint text (the note's text, final newline included)."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(text: str, name: str, seed: bytes, timestamp: int) -> str:
    """The cosignature line of a witness named `name` on a checkpoint text."""
    if not 0 < timestamp <= MAX_TIMESTAMP:
        raise ValueError("a cosignature's timestamp is a positive u64 below 2^63")
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes_raw()
    stamp = struct.pack(">Q", timestamp)
    return signature_line(name, key_hash(name, public, COSIGNATURE_V1) + stamp + private.sign(message(text, timestamp)))


def verify(note: str, witnesses: Witnesses) -> dict[str, int]:
    """{witness name: timestamp} of the valid cosignatures on a note by the given witnesses.

    Lines by unknown keys are ignored; a line by a known witness key that does not verify rejects
    the whole note (NoteError), as signed-note says of known keys. The log's own signature is not
    checked here: see `checkpoint.open_note`.
    """
    parsed = parse_note(note)
    known = {(name, key_hash(name, public, COSIGNATURE_V1)): public for name, public in witnesses.items()}
    cosigned: dict[str, int] = {}
    for sig in parsed.signatures:
        public = known.get((sig.name, sig.key_hash))
        if public is None:
            continue
        if len(sig.signature) != 72:
            raise NoteError(f"the cosignature of {sig.name} is not a timestamped Ed25519 signature")
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        try:
            if timestamp > MAX_TIMESTAMP:
                raise InvalidSignature
            Ed25519PublicKey.from_public_bytes(public).verify(sig.signature[8:], message(parsed.text, timestamp))
        except InvalidSignature:
            raise NoteError(f"the cosignature of {sig.name} does not verify: the note is rejected") from None
        cosigned[sig.name] = timestamp
    return cosigned


def add(note: str, lines: list[str]) -> str:
    """The note with these signature lines appended (each once, in order)."""
    present = set(note.split("\n"))
    for line in lines:
        if line.rstrip("\n") not in present:
            present.add(line.rstrip("\n"))
            note += line
    return note
