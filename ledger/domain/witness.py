"""A witness's rules (c2sp.org/tlog-witness `add-checkpoint`), without I/O: the request body, the
logs a witness trusts, its key, and the checks between what it holds and what it is sent.

The service (ledger/service_layer/witness.py) runs these under the state directory's lock; the
HTTP app only maps the errors below to the statuses the spec names.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import core
from ledger.domain.checkpoint import MAX_NOTE_BYTES, NoteError, PublicKeys, key_hash, parse_vkey
from ledger.domain.cosignature import COSIGNATURE_V1
from ledger.domain.errors import LedgerError

MAX_PROOF_LINES = 63  # tlog-witness: a client sends at most 63 proof lines
MAX_BODY_BYTES = len("old 18446744073709551615\n") + MAX_PROOF_LINES * 45 + 1 + MAX_NOTE_BYTES
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962 §2.1: the root of the empty tree
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")
_VALIDITY = re.compile(r"(valid_from_us|valid_until_us)=(0|[1-9][0-9]{0,18})")

# What a witness trusts: for each origin, the log's keys by key id (hex key hash), with validity.
TrustedLogs = Mapping[str, PublicKeys]


# Each refusal is a LedgerError of its own code (api/problems.py): nothing was cosigned.


class MalformedSubmission(LedgerError):
    code = "witness_malformed_submission"  # 400


class UnknownLog(LedgerError):
    code = "witness_unknown_log"  # 404


class UntrustedCheckpoint(LedgerError):
    code = "witness_untrusted_checkpoint"  # 403


class SizeConflict(LedgerError):
    """The old size is not the size the witness last cosigned (409, the body tells that size)."""

    code = "witness_size_conflict"

    def __init__(self, detail: str, *, tree_size: int) -> None:
        super().__init__(detail, tree_size=tree_size)
        self.tree_size = tree_size


class InconsistentCheckpoint(LedgerError):
    code = "witness_inconsistent_checkpoint"  # 422


@dataclass(frozen=True)
class Submission:
    old_size: int
    proof: tuple[bytes, ...]
    note: str


@dataclass(frozen=True)
class WitnessKey:
    name: str
    seed: bytes

    @property
    def public_key(self) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()

    def vkey(self) -> str:
        """The witness's verifier key, `<name>+<hex key id>+base64(0x04 || public key)`."""
        material = base64.b64encode(bytes([COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{key_hash(self.name, self.public_key, COSIGNATURE_V1).hex()}+{material}"

    def private_text(self) -> str:
        """The key file's one line: `PRIVATE+KEY+<name>+<hex key id>+base64(0x04 || seed)`."""
        material = base64.b64encode(bytes([COSIGNATURE_V1]) + self.seed).decode()
        return (
            f"{PRIVATE_KEY_PREFIX}{self.name}+{key_hash(self.name, self.public_key, COSIGNATURE_V1).hex()}+{material}\n"
        )


def parse_private_key(text: str) -> WitnessKey:
    """A witness key file's content; ValueError if it is not one."""
    name, _, rest = text.strip().removeprefix(PRIVATE_KEY_PREFIX).partition("+")
    hash_hex, _, material = rest.partition("+")
    try:
        raw = base64.b64decode(material, validate=True)
    except ValueError:
        raw = b""
    if not text.startswith(PRIVATE_KEY_PREFIX) or not name or len(raw) != 33 or raw[0] != COSIGNATURE_V1:
        raise ValueError("not a witness key: expected one line PRIVATE+KEY+<name>+<key id>+base64(0x04 || seed)")
    key = WitnessKey(name, raw[1:])
    if key_hash(name, key.public_key, COSIGNATURE_V1).hex() != hash_hex:
        raise ValueError("witness key: the key id does not match the name and key")
    return key


def parse_logs(text: str) -> dict[str, dict[str, tuple[bytes, int, int | None]]]:
    """The LOGS file: one log verifier key (type 0x01) per line, its name the origin, optionally
    followed by `valid_from_us=N` and `valid_until_us=N`; `#` starts a comment. ValueError names the line."""
    logs: dict[str, dict[str, tuple[bytes, int, int | None]]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.partition("#")[0].split()
        if not words:
            continue
        try:
            origin, public = parse_vkey(words[0])
        except NoteError as exc:
            raise ValueError(f"logs line {number}: {exc}") from None
        validity = {"valid_from_us": 0, "valid_until_us": None}
        for word in words[1:]:
            match = _VALIDITY.fullmatch(word)
            if match is None:
                raise ValueError(f"logs line {number}: expected valid_from_us=N or valid_until_us=N, not {word!r}")
            validity[match[1]] = int(match[2])
        kid = key_hash(origin, public).hex()
        if kid in logs.get(origin, {}):
            raise ValueError(f"logs line {number}: key {kid} of {origin} is listed twice")
        start, end = validity["valid_from_us"], validity["valid_until_us"]
        assert start is not None
        logs.setdefault(origin, {})[kid] = (public, start, end)
    return logs


def logs_line(vkey: str, valid_from_us: int, valid_until_us: int | None) -> str:
    """One line of a LOGS file (what `entraide witness logs` prints)."""
    until = "" if valid_until_us is None else f" valid_until_us={valid_until_us}"
    return f"{vkey} valid_from_us={valid_from_us}{until}"


def parse_submission(body: bytes) -> Submission:
    """An add-checkpoint body: `old <size>`, at most 63 base64 hashes, an empty line, the note."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedSubmission(f"an add-checkpoint body is at most {MAX_BODY_BYTES} bytes", field="body",
                                  reason="too_large")  # fmt: skip
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise MalformedSubmission("the body is not UTF-8", field="body", reason="not_utf8") from None
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if not sep or match is None:
        raise MalformedSubmission("the body starts with `old <size>`, then proof lines, then an empty line",
                                  field="body", reason="old_size_line")  # fmt: skip
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise MalformedSubmission(f"at most {MAX_PROOF_LINES} proof lines", field="body", reason="proof_lines")
    proof = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line, validate=True)
        except ValueError:
            node = b""
        if len(node) != 32:
            raise MalformedSubmission(f"proof line {line!r} is not a base64 SHA-256 hash", field="body",
                                      reason="proof_lines")  # fmt: skip
        proof.append(node)
    return Submission(int(match[1]), tuple(proof), note)


def check_consistency(old_size: int, old_root: bytes | None, size: int, root: bytes, proof: tuple[bytes, ...]) -> None:
    """tlog-witness's 422 rules, once the old size is known to be the witness's own."""
    if size == 0 and root != EMPTY_ROOT:
        raise InconsistentCheckpoint("a checkpoint of size 0 has the empty tree's root", reason="empty_root")
    if old_size == 0:
        if proof:
            raise InconsistentCheckpoint("from old size 0 the consistency proof is empty", reason="proof_not_empty")
        return
    assert old_root is not None, "a witness holding a size holds its root"
    if old_size == size and old_root != root:
        raise InconsistentCheckpoint(f"size {size} was cosigned with another root", reason="fork",
                                     tree_size=size)  # fmt: skip
    if not core.verify_consistency(old_size, size, old_root, root, list(proof)):
        raise InconsistentCheckpoint(f"the proof from size {old_size} to {size} does not verify",
                                     reason="bad_proof", tree_size=size)  # fmt: skip
