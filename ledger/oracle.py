"""The pure-Python reference of the ledger core (docs/ledger-format.md).

This module is the test oracle: small, sequential, written for reading rather than speed. The Rust
core (`ledger._core`) implements the same functions with the same signatures and must agree with it
on every input (tests/test_core_parity.py). Production code calls the Rust core through
`ledger.core`; nothing here touches a database or a file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.domain.accounts import ACCOUNT_NAME, LEDGER_NAME, is_non_negative
from ledger.domain.transfers import MAX_HOLD_SECONDS, REFUNDABLE_KINDS

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
MAX_AMOUNT = 2**53 - 1
PHASES = ("single", "pending", "post", "void", "expire")
RESOLVING_PHASES = ("post", "void", "expire")

# Tuple layouts shared with the Rust core (ledger/_core.pyi).
ENTRY_FIELDS = (
    "ledger", "sequence", "transfer_id", "kind", "phase", "debit_account", "credit_account",
    "amount", "ref", "group", "expires_at_us", "time_us", "prev_hash",
)  # fmt: skip
SEAL_FIELDS = ("hash", "key_id", "signature")

# An export line: exactly these members (spec "Export").
LINE_MEMBERS = frozenset((*ENTRY_FIELDS, *SEAL_FIELDS, "v"))
KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
HEX = re.compile(r"[0-9a-f]*")
MAX_HOLD_US = MAX_HOLD_SECONDS * 1_000_000

Entry12 = tuple  # ENTRY_FIELDS[:12]
Entry13 = tuple  # ENTRY_FIELDS
Entry16 = tuple  # ENTRY_FIELDS + SEAL_FIELDS
Counters = tuple[int, int, int, int]  # debits_posted, credits_posted, debits_pending, credits_pending


# --- canonical encoding and hashing -------------------------------------------------------------


def entry_object(entry: Entry13) -> dict:
    """The 14-field object that is canonicalized and hashed."""
    obj = dict(zip(ENTRY_FIELDS, entry[:13], strict=True))
    obj["v"] = FORMAT_VERSION
    return obj


def jcs(obj: dict) -> bytes:
    """RFC 8785 for objects of strings, integers and nulls: sorted keys, minimal escapes, UTF-8.

    json.dumps with ensure_ascii=False escapes exactly what JCS escapes, in lowercase hex; keys here
    are ASCII, so sorting by code point equals JCS's UTF-16 ordering. A lone surrogate cannot be
    encoded to UTF-8 and raises, as the format requires.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_bytes(entry: Entry13) -> bytes:
    return jcs(entry_object(entry))


def entry_hash(entry: Entry13) -> str:
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


# --- keys and signatures ------------------------------------------------------------------------


def public_key(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key_bytes: bytes) -> str:
    return hashlib.sha256(public_key_bytes).hexdigest()[:16]


def sign_hashes(hashes: Sequence[str], seed: bytes) -> list[str]:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return [key.sign(bytes.fromhex(h)).hex() for h in hashes]


def seal(entries: Sequence[Entry12], prev_hashes: Mapping[str, str], seed: bytes) -> list[tuple[str, str, str]]:
    """Chain the entries, each ledger from `prev_hashes[ledger]`, and sign each hash:
    (prev_hash, hash, signature) per entry, in input order."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    heads = dict(prev_hashes)
    sealed = []
    for index, entry in enumerate(entries):
        if entry[0] not in heads:
            raise ValueError(f"entry {index}: no prev_hash for ledger {json.dumps(entry[0])}")
        prev_hash = heads[entry[0]]
        digest = entry_hash((*entry[:12], prev_hash))
        sealed.append((prev_hash, digest, key.sign(bytes.fromhex(digest)).hex()))
        heads[entry[0]] = digest
    return sealed


def _signature_ok(hash_hex: str, signature_hex: str, public_key_bytes: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key_bytes).verify(
            bytes.fromhex(signature_hex), bytes.fromhex(hash_hex)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is the Ed25519 signature of `message` by `public_key` (raw bytes)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_signatures(items: Sequence[tuple[str, str, bytes]]) -> int | None:
    """Index of the first (hash, signature, public key) that does not verify, or None."""
    for index, (hash_hex, signature_hex, public_key_bytes) in enumerate(items):
        if not _signature_ok(hash_hex, signature_hex, public_key_bytes):
            return index
    return None


# --- Merkle tree (RFC 9162) ---------------------------------------------------------------------


def _leaf(entry_hash_bytes: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry_hash_bytes).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _leaves(leaves: bytes) -> list[bytes]:
    if len(leaves) % 32:
        raise ValueError("leaves must be a concatenation of 32-byte hashes")
    return [leaves[i : i + 32] for i in range(0, len(leaves), 32)]


def _mth(items: list[bytes]) -> bytes:
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return _leaf(items[0])
    k = _split(len(items))
    return _node(_mth(items[:k]), _mth(items[k:]))


def merkle_root(leaves: bytes) -> bytes:
    return _mth(_leaves(leaves))


def leaf_hashes(entry_hashes: bytes) -> bytes:
    return b"".join(_leaf(h) for h in _leaves(entry_hashes))


def bundle_jsonl(data: bytes, width: int) -> bytes:
    entries, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at : at + 2], "big")
        entries.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    if at != len(data) or len(entries) != width or any(b"\n" in e or not e.strip(b" \t\n\r\x0c") for e in entries):
        raise ValueError(f"not an entry bundle of {width} export lines")
    return b"".join(e + b"\n" for e in entries)


def _path(index: int, items: list[bytes]) -> list[bytes]:
    if len(items) <= 1:
        return []
    k = _split(len(items))
    if index < k:
        return _path(index, items[:k]) + [_mth(items[k:])]
    return _path(index - k, items[k:]) + [_mth(items[:k])]


def inclusion_proof(leaves: bytes, index: int) -> list[bytes]:
    items = _leaves(leaves)
    if not 0 <= index < len(items):
        raise ValueError("index out of range")
    return _path(index, items)


def _subproof(m: int, items: list[bytes], complete: bool) -> list[bytes]:
    n = len(items)
    if m == n:
        return [] if complete else [_mth(items)]
    k = _split(n)
    if m <= k:
        return _subproof(m, items[:k], complete) + [_mth(items[k:])]
    return _subproof(m - k, items[k:], False) + [_mth(items[:k])]


def consistency_proof(leaves: bytes, old_size: int) -> list[bytes]:
    items = _leaves(leaves)
    if not 0 <= old_size <= len(items):
        raise ValueError("old_size out of range")
    if old_size == 0:
        return []
    return _subproof(old_size, items, True)


def verify_inclusion(entry_hash_bytes: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, _leaf(entry_hash_bytes)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return old_root == new_root and not path
    if old_size == 0:
        return not path  # the empty tree is consistent with every tree
    if not path:
        return False
    path = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# --- balances -----------------------------------------------------------------------------------


@dataclass
class Hold:
    debit_account: str
    credit_account: str
    amount: int
    expires_at_us: int
    kind: str = ""


class ReplayError(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class Original:
    """A posted transfer of a refundable kind, and what refunds left of it."""

    debit_account: str
    credit_account: str
    remaining: int


@dataclass
class LedgerState:
    """Balances, open holds and refundable originals of one ledger; `apply` is the replay rule of
    the format."""

    counters: dict[str, list[int]] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    originals: dict[str, Original] = field(default_factory=dict)

    def _account(self, name: str) -> list[int]:
        counters = self.counters.get(name)
        if counters is None:
            counters = self.counters[name] = [0, 0, 0, 0]
        return counters

    def check(self, entry: Entry13) -> None:
        """Raise ReplayError if the entry is out of its domain or breaks a two-phase or refund rule
        (checks 6 and 9 of the format, without the format of each member: see `format_problem`)."""
        self.check_domain(entry)
        self.check_references(entry)

    def check_domain(self, entry: Entry13) -> None:
        """Raise ReplayError (invalid_entry) if the entry's members do not fit together."""
        _, _, _, _, phase, debit, credit, amount, ref, _, expires_at_us, _ = entry[:12]
        if not isinstance(amount, int) or not 1 <= amount <= MAX_AMOUNT:
            raise ReplayError("invalid_entry", f"amount {amount!r} is not in [1, 2^53-1]")
        if debit == credit:
            raise ReplayError("invalid_entry", "debit and credit accounts are the same")
        if phase not in PHASES:
            raise ReplayError("invalid_entry", f"unknown phase {phase!r}")
        if (phase == "pending") != (expires_at_us is not None):
            raise ReplayError("invalid_entry", "expires_at_us is required on pending entries only")
        if phase in RESOLVING_PHASES and ref is None:
            raise ReplayError("invalid_entry", f"a {phase} entry needs a ref")

    def check_references(self, entry: Entry13) -> None:
        """Raise ReplayError (bad_reference) if the entry breaks a two-phase or refund rule."""
        _, _, _, kind, phase, debit, credit, amount, ref, _, _, time_us = entry[:12]
        if phase == "single" and ref is not None:
            self._check_refund(debit, credit, amount, ref)
        if phase not in RESOLVING_PHASES:
            return
        hold = self.holds.get(ref)
        if hold is None:
            raise ReplayError("bad_reference", f"{phase} of {ref}, which is not an open hold")
        if (hold.debit_account, hold.credit_account) != (debit, credit):
            raise ReplayError("bad_reference", f"{phase} accounts differ from hold {ref}")
        if hold.kind != kind:
            raise ReplayError("bad_reference", f"{phase} kind differs from hold {ref}")
        if phase == "post" and (amount > hold.amount or time_us >= hold.expires_at_us):
            raise ReplayError("bad_reference", f"post exceeds hold {ref} or comes after its expiry")
        if phase in ("void", "expire") and amount != hold.amount:
            raise ReplayError("bad_reference", f"{phase} amount differs from hold {ref}")
        if phase == "void" and time_us >= hold.expires_at_us:
            raise ReplayError("bad_reference", f"void of hold {ref} comes after its expiry")
        if phase == "expire" and time_us < hold.expires_at_us:
            raise ReplayError("bad_reference", f"hold {ref} expired before its expiry time")

    def _check_refund(self, debit: str, credit: str, amount: int, ref: str) -> None:
        """A refund names an earlier sale of the ledger, reverses its accounts, and never takes
        more than earlier refunds left of it."""
        original = self.originals.get(ref)
        if original is None:
            raise ReplayError("bad_reference", f"refund of {ref}, which is not a refundable transfer of the ledger")
        if (debit, credit) != (original.credit_account, original.debit_account):
            raise ReplayError("bad_reference", f"refund accounts are not those of {ref} reversed")
        if amount > original.remaining:
            raise ReplayError("bad_reference", f"refund exceeds what is left of {ref}")

    def apply(self, entry: Entry13) -> None:
        """Apply a valid entry to the counters (the replay table of the format)."""
        transfer_id, kind, phase, debit, credit, amount, ref, _, expires_at_us = entry[2:11]
        d, c = self._account(debit), self._account(credit)
        if phase in RESOLVING_PHASES:
            hold = self.holds.pop(ref)
            d[2] -= hold.amount
            c[3] -= hold.amount
            if phase != "post":
                return
        if phase == "pending":
            d[2] += amount
            c[3] += amount
            self.holds[transfer_id] = Hold(debit, credit, amount, expires_at_us, kind)
        else:
            d[0] += amount
            c[1] += amount
            self._track_refunds(transfer_id, kind, phase, debit, credit, amount, ref)

    def _track_refunds(self, transfer_id: str, kind: str, phase: str, debit: str, credit: str, amount: int,
                       ref: str | None) -> None:  # fmt: skip
        if phase == "single" and ref is not None:
            original = self.originals.get(ref)
            if original is not None:  # replay alone does not check; the verifier already did
                original.remaining -= amount
        elif kind in REFUNDABLE_KINDS:
            self.originals[transfer_id] = Original(debit, credit, amount)

    def overdrawn(self, account: str) -> bool:
        dp, cp, dpend, _ = self.counters[account]
        return is_non_negative(account) and dp + dpend > cp

    def balances(self) -> dict[str, Counters]:
        return {name: (c[0], c[1], c[2], c[3]) for name, c in self.counters.items()}


def replay(entries: Iterable[Entry13]) -> dict[str, dict[str, Counters]]:
    """Balances of every account of every ledger, from entries in stream order."""
    states: dict[str, LedgerState] = {}
    for entry in entries:
        state = states.setdefault(entry[0], LedgerState())
        if entry[4] in RESOLVING_PHASES and entry[8] not in state.holds:
            raise ReplayError("bad_reference", f"{entry[0]} #{entry[1]}: {entry[8]} is not an open hold")
        state.apply(entry)
    return {ledger: state.balances() for ledger, state in states.items()}


# --- chain verification -------------------------------------------------------------------------


def _is_hex(value: object, digits: int) -> bool:
    return isinstance(value, str) and len(value) == digits and HEX.fullmatch(value) is not None


def format_problem(row: Entry16) -> str | None:
    """The first member of the row outside its format (check 6 of the format, first part), or None.
    `prev_hash`, `hash` and `signature` are left to checks 2, 3 and 5, which a malformed one fails."""
    ledger, _, transfer_id, kind, _, debit, credit, _, ref, group, expires_at_us, time_us = row[:12]
    problems = (
        (not LEDGER_NAME.fullmatch(ledger), "ledger", ledger, "a ledger name"),
        (not _is_hex(transfer_id, 32), "transfer_id", transfer_id, "32 lowercase hex digits"),
        (not KIND.fullmatch(kind), "kind", kind, "a kind (^[a-z][a-z0-9_]{0,31}$)"),
        (not ACCOUNT_NAME.fullmatch(debit), "debit_account", debit, "an account name"),
        (not ACCOUNT_NAME.fullmatch(credit), "credit_account", credit, "an account name"),
        (ref is not None and not _is_hex(ref, 32), "ref", ref, "null or 32 lowercase hex digits"),
        (group is not None and not _is_hex(group, 32), "group", group, "null or 32 lowercase hex digits"),
        (not _is_hex(row[14], 16), "key_id", row[14], "16 lowercase hex digits"),
    )
    for bad, name, value, want in problems:
        if bad:
            return f"{name} {json.dumps(value, ensure_ascii=False)} is not {want}"
    if time_us < 0:
        return f"time_us {time_us} is negative"
    if expires_at_us is not None:
        held = expires_at_us - time_us
        if not 1_000_000 <= held <= MAX_HOLD_US or held % 1_000_000:
            return f"expires_at_us {expires_at_us} is not a whole number of seconds, 1 s to 30 days, after time_us"
    return None


def _compact_push(subtrees: list[tuple[int, bytes]], entry_hash_bytes: bytes) -> None:
    """Add a leaf to the right edge of a tree (its perfect subtrees, largest first)."""
    subtrees.append((1, _leaf(entry_hash_bytes)))
    while len(subtrees) >= 2 and subtrees[-1][0] == subtrees[-2][0]:
        (size, right), (_, left) = subtrees.pop(), subtrees.pop()
        subtrees.append((2 * size, _node(left, right)))


def _compact_root(subtrees: list[tuple[int, bytes]]) -> bytes:
    if not subtrees:
        return hashlib.sha256(b"").digest()
    root = subtrees[-1][1]
    for _, left in reversed(subtrees[:-1]):
        root = _node(left, root)
    return root


@dataclass
class _Chain:
    state: LedgerState = field(default_factory=LedgerState)
    expected: int = 1
    prev_hash: str = GENESIS_HASH
    time_us: int | None = None
    entries: int = 0
    transfer_ids: set[str] = field(default_factory=set)
    checkpoints: list[tuple[int, bytes]] = field(default_factory=list)  # not reached yet, smallest last
    tree: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass
class _Anomaly:
    ledger: str
    expected: int
    seen_later: bool = False


@dataclass
class _Group:
    ledger: str
    sequence: int
    members: int = 0
    flows: dict[tuple, int] = field(default_factory=dict)  # (from, to, phase, kind, amount) -> +from -to


INTEROP = "interop:"


class ChainVerifier:
    """Streaming verifier of sealed entries (Entry16) in export order; see the format's checks 1-11
    and the end-of-stream checks. `checkpoints` are (ledger, tree_size, root) of verified notes."""

    def __init__(self, keys: Iterable[tuple[str, bytes, int, int | None]],
                 checkpoints: Iterable[tuple[str, int, bytes]] = ()) -> None:  # fmt: skip
        self._keys = {kid: (pub, start, end) for kid, pub, start, end in keys}
        self._checkpoints: dict[str, list[tuple[int, bytes]]] = {}
        for ledger, size, root in checkpoints:
            self._checkpoints.setdefault(ledger, []).append((size, root))
        for sizes in self._checkpoints.values():
            sizes[:] = sorted(set(sizes), reverse=True)
        self._chains: dict[str, _Chain] = {}
        self._groups: dict[str, _Group] = {}
        self._error: dict | None = None
        self._anomaly: _Anomaly | None = None
        self._checked = 0
        self._last: tuple[str, int] | None = None

    def feed(self, rows: Iterable[Entry16]) -> None:
        for row in rows:
            if self._anomaly is not None:
                if row[0] == self._anomaly.ledger and row[1] == self._anomaly.expected:
                    self._anomaly.seen_later = True
                continue
            if self._error is not None:
                return
            self._check(row)

    def malformed_line(self, detail: str) -> None:
        """The stream ended at a line that could not be read: named by the last entry before it."""
        if self._error is None and self._anomaly is None:
            ledger, sequence = self._last or ("", 0)
            self._fail(ledger, sequence, "malformed_line", detail)

    def _fail(self, ledger: str, sequence: int, code: str, detail: str) -> None:
        self._error = {"ledger": ledger, "sequence": sequence, "code": code, "detail": detail}

    def _check(self, row: Entry16) -> None:
        ledger, sequence = row[0], row[1]
        chain = self._chains.get(ledger)
        if chain is None:
            sizes = [c for c in self._checkpoints.get(ledger, []) if c[0] > 0]
            chain = self._chains[ledger] = _Chain(checkpoints=sizes)
        if sequence != chain.expected:
            if isinstance(sequence, int) and sequence < chain.expected:
                self._fail(ledger, sequence, "duplicate", f"sequence {sequence} appears again")
            else:
                self._anomaly = _Anomaly(ledger, chain.expected)
            return
        problem = self._entry_problem(chain, row)
        if problem is not None:
            self._fail(ledger, sequence, *problem)
            return
        chain.state.apply(row[:13])
        chain.transfer_ids.add(row[2])
        if chain.state.overdrawn(row[5]):
            self._fail(ledger, sequence, "overdraft", f"{row[5]} would go below zero")
            return
        chain.expected += 1
        chain.prev_hash = row[13]
        chain.time_us = row[11]
        chain.entries += 1
        if chain.checkpoints:
            _compact_push(chain.tree, bytes.fromhex(row[13]))
            while chain.checkpoints and chain.checkpoints[-1][0] == chain.entries:
                size, root = chain.checkpoints.pop()
                if _compact_root(chain.tree) != root:
                    detail = f"the root of entries 1..{size} is not the signed checkpoint's root"
                    self._fail(ledger, sequence, "checkpoint_mismatch", detail)
                    return
        if row[9] is not None:
            self._track_group(row)
        self._checked += 1
        self._last = (ledger, sequence)

    def _entry_problem(self, chain: _Chain, row: Entry16) -> tuple[str, str] | None:
        prev_hash, stored_hash, kid, signature = row[12:16]
        if prev_hash != chain.prev_hash:
            return "chain_break", f"prev_hash {prev_hash} is not the previous entry's hash {chain.prev_hash}"
        computed = entry_hash(row[:13])
        if computed != stored_hash:
            return "hash_mismatch", f"stored hash {stored_hash}, computed {computed}"
        key = self._keys.get(kid)
        if key is None:
            return "unknown_key", f"key {kid} is not in the keys file"
        pub, start, end = key
        if not (start <= row[11] and (end is None or row[11] < end)):
            return "key_not_valid", f"key {kid} was not valid at time_us {row[11]}"
        if not _is_hex(signature, 128) or not _signature_ok(stored_hash, signature, pub):
            return "bad_signature", f"signature does not verify with key {kid}"
        problem = format_problem(row)
        if problem is not None:
            return "invalid_entry", problem
        try:
            chain.state.check_domain(row[:13])
        except ReplayError as exc:
            return exc.code, exc.detail
        if row[2] in chain.transfer_ids:
            return "reused_transfer_id", f"transfer_id {row[2]} was used by an earlier entry"
        if chain.time_us is not None and row[11] < chain.time_us:
            return "time_reversed", f"time_us {row[11]} is before the previous entry's {chain.time_us}"
        try:
            chain.state.check_references(row[:13])
        except ReplayError as exc:
            return exc.code, exc.detail
        return None

    def _track_group(self, row: Entry16) -> None:
        ledger, sequence, _, kind, phase, debit, credit, amount, _, group_id = row[:10]
        group = self._groups.setdefault(group_id, _Group(ledger, sequence))
        group.members += 1
        flows = []
        if credit.startswith(INTEROP):
            flows.append(((ledger, credit[len(INTEROP) :], phase, kind, amount), 1))
        if debit.startswith(INTEROP):
            flows.append(((debit[len(INTEROP) :], ledger, phase, kind, amount), -1))
        for flow, n in flows:
            group.flows[flow] = group.flows.get(flow, 0) + n

    def _end_of_stream(self) -> tuple[str, int, str, str] | None:
        for ledger in sorted(self._checkpoints):
            chain = self._chains.get(ledger)
            entries, head = (chain.entries, chain.expected - 1) if chain else (0, 0)
            left = chain.checkpoints if chain else self._checkpoints[ledger]
            if any(size == 0 and root != hashlib.sha256(b"").digest() for size, root in self._checkpoints[ledger]):
                return ledger, 0, "checkpoint_mismatch", "the empty tree's root is not the signed checkpoint's root"
            beyond = [size for size, _ in left if size > entries]
            if beyond:
                return (
                    ledger,
                    head,
                    "truncated",
                    f"the export ends at #{head}, a signed checkpoint has size {min(beyond)}",
                )
        for group in self._groups.values():
            if group.members < 2:
                return group.ledger, group.sequence, "incomplete_group", "the linked group has no other member"
            if any(group.flows.values()):
                return (group.ledger, group.sequence, "incomplete_group",
                        "a cross-city half of the linked group has no counterpart in the other ledger")  # fmt: skip
        return None

    def finish(self) -> dict:
        if self._anomaly is not None:
            a = self._anomaly
            code = "reordered" if a.seen_later else "gap"
            detail = f"entry {a.expected} is out of order" if a.seen_later else f"entry {a.expected} is missing"
            self._fail(a.ledger, a.expected, code, detail)
            self._anomaly = None
        if self._error is None:
            failure = self._end_of_stream()
            if failure is not None:
                self._fail(*failure)
        return {
            "ok": self._error is None,
            "entries": self._checked,
            "error": self._error,
            "ledgers": {
                ledger: {
                    "entries": chain.entries,
                    "head_sequence": chain.expected - 1,
                    "head_hash": chain.prev_hash,
                    "balances": chain.state.balances(),
                    "open_holds": len(chain.state.holds),
                }
                for ledger, chain in self._chains.items()
            },
        }


# --- export lines -------------------------------------------------------------------------------

_INT_MEMBERS = frozenset(("sequence", "amount", "time_us", "v"))
_NULLABLE = frozenset(("ref", "group", "expires_at_us"))
_I64 = range(-(2**63), 2**63)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("a member appears twice")
    return obj


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_line(line: bytes) -> tuple[int, ...] | tuple[object, ...]:
    """Entry16 of one export line (spec "Export"), or ValueError saying why it is malformed: not
    UTF-8 JSON, not an object, not exactly the 17 members, a member of the wrong JSON type (an
    integer has no fraction or exponent and fits in 64 bits; true and false are not integers), a
    string that is not valid Unicode, or `v` other than 1."""
    obj = json.loads(line.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_float=_float, parse_int=_int,
                     parse_constant=_reject_constant)  # fmt: skip
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004  (every malformed line is a ValueError)
    if obj.keys() != LINE_MEMBERS:
        missing, extra = sorted(LINE_MEMBERS - obj.keys()), sorted(obj.keys() - LINE_MEMBERS)
        raise ValueError(f"members missing {missing}, unknown {extra}")
    for name, value in obj.items():
        if value is None and name in _NULLABLE:
            continue
        if name in _INT_MEMBERS or name == "expires_at_us":
            if type(value) is not int or value not in _I64:
                raise ValueError(f"{name} is not a 64-bit integer")
        elif not isinstance(value, str):
            raise ValueError(f"{name} is not a string")
        else:
            value.encode("utf-8")  # a lone surrogate is not Unicode
    if obj["v"] != FORMAT_VERSION:
        raise ValueError(f"v is {obj['v']}, this verifier reads format version 1")
    return tuple(obj[f] for f in (*ENTRY_FIELDS, *SEAL_FIELDS))


class _Float(float):
    pass


def _float(text: str) -> _Float:
    return _Float(text)  # a number with a fraction or an exponent: never an integer member


def _int(text: str) -> int | _Float:
    return _Float(text) if text == "-0" else int(text)  # `-0` is a float to JSON parsers that keep the sign


_BLANK = frozenset(b" \t\n\r\x0c")  # Rust's is_ascii_whitespace


def verify_export(path: str, keys: Iterable[tuple[str, bytes, int, int | None]],
                  checkpoints: Iterable[tuple[str, int, bytes]] = ()) -> dict:  # fmt: skip
    """Verify a JSONL export: its entries up to the first malformed line, then that line."""
    verifier = ChainVerifier(keys, checkpoints)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\n")
            line = line[:-1] if line.endswith(b"\r") else line
            if all(b in _BLANK for b in line):
                continue
            try:
                row = parse_line(line)
            except (ValueError, UnicodeError) as exc:
                verifier.malformed_line(f"line {number}: malformed entry: {exc}")
                break
            verifier.feed([row])
    return verifier.finish()


# --- settlement and expiry ----------------------------------------------------------------------

POSTING_PHASES = ("single", "post")  # a pending only reserves; void and expire release a reservation


def movements(entries: Iterable[tuple], since_us: int, until_us: int) -> list[tuple[str, str, int, int]]:
    """(ledger, account, debits, credits) posted by the entries (ledger, debit, credit, amount,
    phase, time_us) with since_us <= time_us < until_us, sorted. Every entry is validated."""
    if since_us > until_us:
        raise ValueError(f"since_us {since_us} is after until_us {until_us}")
    sums: dict[tuple[str, str], list[int]] = {}
    for index, (ledger, debit, credit, amount, phase, time_us) in enumerate(entries):
        if not 1 <= amount <= MAX_AMOUNT:
            raise ValueError(f"entry {index}: amount {amount} is not in [1, 2^53-1]")
        if phase not in PHASES:
            raise ValueError(f"entry {index}: unknown phase {phase!r}")
        if phase in POSTING_PHASES and since_us <= time_us < until_us:
            sums.setdefault((ledger, debit), [0, 0])[0] += amount
            sums.setdefault((ledger, credit), [0, 0])[1] += amount
    return [(ledger, account, debits, credits) for (ledger, account), (debits, credits) in sorted(sums.items())]


def net_positions(
    obligations: Iterable[tuple[str, str, int]],
) -> tuple[list[tuple[str, int]], list[tuple[str, str, int]]]:
    """Each city's net position (positive: it is owed) and one transfer per pair of cities whose
    (debtor, creditor, amount) obligations do not cancel out, from the pair's net debtor."""
    positions: dict[str, int] = {}
    owed: dict[tuple[str, str], int] = {}
    for index, (debtor, creditor, amount) in enumerate(obligations):
        if amount < 0:
            raise ValueError(f"obligation {index}: amount {amount} is negative")
        if debtor == creditor:
            raise ValueError(f"obligation {index}: {debtor!r} cannot owe itself")
        positions[debtor] = positions.get(debtor, 0) - amount
        positions[creditor] = positions.get(creditor, 0) + amount
        owed[debtor, creditor] = owed.get((debtor, creditor), 0) + amount
    assert sum(positions.values()) == 0
    transfers = []
    for a, b in {(min(pair), max(pair)) for pair in owed}:
        net = owed.get((a, b), 0) - owed.get((b, a), 0)
        if net:
            transfers.append((a, b, net) if net > 0 else (b, a, -net))
    return sorted(positions.items()), sorted(transfers)


def expire_lots(events: Iterable[tuple[str, int, int]], cutoff_us: int) -> list[tuple[str, int]]:
    """Per account, the points left of its lots dated before cutoff_us, after the (account,
    time_us, delta) events: a positive delta is a lot, a negative one consumes the oldest lots."""
    lots: dict[str, deque[list[int]]] = {}  # [time_us, points_left], oldest first
    left: dict[str, int] = {}
    newest_us: dict[str, int] = {}
    for index, (account, time_us, delta) in enumerate(events):
        if delta == 0 or abs(delta) > MAX_AMOUNT:
            raise ValueError(f"event {index}: delta {delta} is 0 or beyond ±(2^53-1)")
        queue = lots.setdefault(account, deque())
        if delta > 0:
            if account in newest_us and time_us < newest_us[account]:
                raise ValueError(f"event {index}: {account!r} earns a lot dated {time_us} after one dated "
                                 f"{newest_us[account]}; events must be in journal order")  # fmt: skip
            newest_us[account] = time_us
            queue.append([time_us, delta])
            left[account] = left.get(account, 0) + delta
            continue
        points = -delta
        if points > left.get(account, 0):
            raise ValueError(
                f"event {index}: {account!r} consumes {points} points but only {left.get(account, 0)} remain"
            )
        left[account] -= points
        while points:
            taken = min(queue[0][1], points)
            queue[0][1] -= taken
            points -= taken
            if queue[0][1] == 0:
                queue.popleft()
    expired = {account: sum(p for t, p in queue if t < cutoff_us) for account, queue in lots.items()}
    return sorted((account, points) for account, points in expired.items() if points)
