"""Signed checkpoints: C2SP signed notes whose body is a tlog-checkpoint (docs/ledger-format.md).

A checkpoint commits to a ledger's Merkle root at a tree size; anyone holding the public keys can
check it, and with a consistency proof, that a later checkpoint only appended to it. Witnesses add
their cosignatures (ledger/domain/cosignature.py) to the same note as further signature lines.

The rules followed, and where they come from:
- c2sp.org/signed-note: UTF-8 without control characters other than newline; the text ends at the
  last blank line; a signature is `— <name> base64(4-byte key id || signature)`; signatures whose
  (name, key id) match no known key are ignored; one by a known key that does not verify rejects
  the whole note; at least one by a known key must verify.
- c2sp.org/tlog-checkpoint: origin line, decimal size, base64 root, then any extension lines; the
  key name is the origin.
- Entraide: exactly one `time_us <µs>` extension line, when the log signed it; the key must be
  valid at that time (the keys file's `valid_from_us <= time_us < valid_until_us`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ORIGIN_PREFIX = "entraide/"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space, as C2SP signed-note requires
ED25519 = 0x01  # signed-note signature type of a log's Ed25519 signature
TIME_LABEL = "time_us"
MAX_NOTE_BYTES = 16_384
MAX_SIGNATURES = 100  # signed-note: verifiers must accept at least 16
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_TIME = re.compile(r"time_us (0|[1-9][0-9]{0,18})")

# Public keys by key id: (raw public key, valid_from_us, valid_until_us or None), from a keys file.
PublicKeys = Mapping[str, tuple[bytes, int, int | None]]


class NoteError(ValueError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    ledger: str
    tree_size: int
    root: bytes
    time_us: int
    key_id: str
    text: str  # the note's text (the checkpoint body, final newline included): what cosigners sign


@dataclass(frozen=True)
class Signature:
    name: str
    key_hash: bytes
    signature: bytes  # what follows the 4-byte key hash


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]


def origin(ledger: str) -> str:
    return ORIGIN_PREFIX + ledger


def key_hash(name: str, public_key: bytes, signature_type: int = ED25519) -> bytes:
    """signed-note's key id: SHA-256(name || "\\n" || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


def vkey(name: str, public_key: bytes, signature_type: int = ED25519) -> str:
    """The signed-note verifier key `<name>+<hex key id>+base64(type || public key)`."""
    material = base64.b64encode(bytes([signature_type]) + public_key).decode()
    return f"{name}+{key_hash(name, public_key, signature_type).hex()}+{material}"


def parse_vkey(text: str, signature_type: int = ED25519) -> tuple[str, bytes]:
    """(name, raw public key) of a verifier key of that type; NoteError if malformed or inconsistent."""
    name, sep1, rest = text.strip().partition("+")
    hash_hex, sep2, material = rest.partition("+")
    try:
        raw = base64.b64decode(material, validate=True)
    except ValueError:
        raise NoteError(f"malformed verifier key {text!r}") from None
    if not (sep1 and sep2 and name) or len(raw) != 33 or raw[0] != signature_type or " " in name:
        raise NoteError(f"{text!r} is not an Ed25519 verifier key of type 0x{signature_type:02x}")
    if key_hash(name, raw[1:], signature_type).hex() != hash_hex:
        raise NoteError(f"verifier key {text!r}: the key id does not match the name and key")
    return name, raw[1:]


def body(ledger: str, tree_size: int, root: bytes, time_us: int) -> str:
    return f"{origin(ledger)}\n{tree_size}\n{base64.b64encode(root).decode()}\n{TIME_LABEL} {time_us}\n"


def signature_line(name: str, blob: bytes) -> str:
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


def sign(ledger: str, tree_size: int, root: bytes, time_us: int, seed: bytes) -> str:
    """The full note text: body, blank line, the log's signature line (its key name is the origin)."""
    text = body(ledger, tree_size, root, time_us)
    private = Ed25519PrivateKey.from_private_bytes(seed)
    name = origin(ledger)
    blob = key_hash(name, private.public_key().public_bytes_raw()) + private.sign(text.encode())
    return f"{text}\n{signature_line(name, blob)}"


def parse_note(note: str) -> Note:
    """Split a signed note into its text and signature lines (no signature is checked here)."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError(f"a signed note is at most {MAX_NOTE_BYTES} bytes")
    if _CONTROL.search(note):
        raise NoteError("a signed note has no control characters other than newline")
    if not note.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    text, sep, block = note.rpartition("\n\n")
    if not sep or not block:
        raise NoteError("signed note has no signature block")
    lines = block.split("\n")[:-1]
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a signed note carries at most {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        name, space, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        if not line.startswith(SIGNATURE_PREFIX) or not space or not name or "+" in name or " " in encoded:
            raise NoteError(f"malformed signature line {line!r}")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise NoteError(f"malformed signature line {line!r}") from None
        if len(blob) < 5:
            raise NoteError(f"malformed signature line {line!r}")
        signatures.append(Signature(name, blob[:4], blob[4:]))
    return Note(text + "\n", tuple(signatures))


def parse_body(text: str) -> tuple[str, int, bytes, int]:
    """(ledger, tree size, root, time_us) of a checkpoint body; extension lines other than
    `time_us` are allowed (tlog-checkpoint) and ignored."""
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or not lines[0].startswith(ORIGIN_PREFIX):
        raise NoteError(f"a checkpoint's first line is its origin, {ORIGIN_PREFIX}<ledger>")
    if not _SIZE.fullmatch(lines[1]):
        raise NoteError("a checkpoint's second line is its tree size in decimal")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        root = b""
    if len(root) != 32:
        raise NoteError("a checkpoint's third line is its 32-byte root in base64")
    if any(not line for line in lines[3:]):
        raise NoteError("a checkpoint's extension lines are not empty")
    times = [line for line in lines[3:] if line.startswith(TIME_LABEL + " ")]
    if len(times) != 1 or not _TIME.fullmatch(times[0]):
        raise NoteError(f"an Entraide checkpoint has exactly one `{TIME_LABEL} <µs>` extension line")
    return lines[0][len(ORIGIN_PREFIX) :], int(lines[1]), root, int(times[0].split(" ")[1])


def open_note(note: str, keys: PublicKeys) -> Checkpoint:
    """Verify a checkpoint note against the log's public keys; the checkpoint, or NoteError.

    Every signature by a known key (the origin as name, a matching key id) must verify and be by a
    key valid at the checkpoint's time; at least one must be there. Other lines (witnesses'
    cosignatures, unknown keys) are ignored here.
    """
    parsed = parse_note(note)
    ledger, size, root, time_us = parse_body(parsed.text)
    name = origin(ledger)
    known = {key_hash(name, public): (kid, public, start, end) for kid, (public, start, end) in keys.items()}
    signer = None
    for sig in parsed.signatures:
        if sig.name != name or sig.key_hash not in known:
            continue
        kid, public, start, end = known[sig.key_hash]
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(sig.signature, parsed.text.encode())
        except InvalidSignature:
            raise NoteError(f"the signature by key {kid} does not verify: the note is rejected") from None
        if not (start <= time_us and (end is None or time_us < end)):
            raise NoteError(f"key {kid} was not valid at the checkpoint's time_us {time_us}")
        signer = signer or kid
    if signer is None:
        raise NoteError("no valid signature by a known key")
    return Checkpoint(ledger, size, root, time_us, signer, parsed.text)
