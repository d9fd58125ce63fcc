"""Rust core of the Entraide ledger (crate `ledger_core_rs`), see docs/ledger-format.md.

Tuple layouts (`v` is implicitly 1 for tuples):

- Entry12 = (ledger, sequence, transfer_id, kind, phase, debit_account, credit_account, amount,
  ref, group, expires_at_us, time_us)
- Entry13 = Entry12 + (prev_hash,)
- Entry16 = Entry13 + (hash, key_id, signature)

Longer tuples are accepted (extra items are ignored). A tuple whose items have the wrong types
raises ValueError naming the row and field. Heavy work runs with the GIL released.
"""

from collections.abc import Iterable, Mapping
from typing import TypedDict

Entry12 = tuple[str, int, str, str, str, str, str, int, str | None, str | None, int | None, int]
Entry13 = tuple[str, int, str, str, str, str, str, int, str | None, str | None, int | None, int, str]
Entry16 = tuple[str, int, str, str, str, str, str, int, str | None, str | None, int | None, int, str, str, str, str]
Counters = tuple[int, int, int, int]
"""(debits_posted, credits_posted, debits_pending, credits_pending)"""
VerifierKey = tuple[str, bytes, int, int | None]
"""(key_id, public_key, valid_from_us, valid_until_us)"""
VerifierCheckpoint = tuple[str, int, bytes]
"""(ledger, tree_size, 32-byte root) of a checkpoint note whose signature was checked"""
Posting = tuple[str, str, str, int, str, int]
"""(ledger, debit_account, credit_account, amount, phase, time_us)"""
Movement = tuple[str, str, int, int]
"""(ledger, account, debits_points, credits_points)"""
Obligation = tuple[str, str, int]
"""(debtor_city, creditor_city, amount)"""
LotEvent = tuple[str, int, int]
"""(account, time_us, delta_points)"""

class VerifyError(TypedDict):
    ledger: str
    sequence: int
    code: str
    """gap, reordered, duplicate, chain_break, hash_mismatch, unknown_key, key_not_valid,
    bad_signature, invalid_entry, reused_transfer_id, time_reversed, bad_reference, overdraft,
    checkpoint_mismatch, malformed_line, truncated or incomplete_group (docs/ledger-format.md,
    "Verification"; head_mismatch and projection_mismatch come from the database check)"""
    detail: str

class LedgerReport(TypedDict):
    entries: int
    head_sequence: int
    head_hash: str
    balances: dict[str, Counters]
    open_holds: int

class Report(TypedDict):
    ok: bool
    entries: int
    """Rows that passed every check before the first error."""
    error: VerifyError | None
    ledgers: dict[str, LedgerReport]

FORMAT_VERSION: int
"""Format version written in every entry (`v`), 1."""

def canonical_bytes(entry: Entry13) -> bytes:
    """RFC 8785 (JCS) UTF-8 encoding of the entry's 14-field object (v = 1)."""

def entry_hash(entry: Entry13) -> str:
    """Lowercase hex SHA-256 of `canonical_bytes(entry)`."""

def public_key(seed: bytes) -> bytes:
    """32-byte Ed25519 public key of a 32-byte seed (ValueError for another length)."""

def key_id(public_key: bytes) -> str:
    """`sha256(public_key).hexdigest()[:16]`."""

def seal(entries: list[Entry12], prev_hashes: Mapping[str, str], seed: bytes) -> list[tuple[str, str, str]]:
    """Chain the entries in order, each on its ledger's chain from `prev_hashes[ledger]` (an
    entry's prev_hash is the hash of the previous entry of its ledger), and sign each hash:
    `(prev_hash, hash, signature_hex)` per entry, in input order. ValueError for an entry whose
    ledger has no starting hash."""

def sign_hashes(hashes: list[str], seed: bytes) -> list[str]:
    """Hex Ed25519 signatures of the raw bytes of each hex hash (decoded like bytes.fromhex;
    ValueError if one is not hex)."""

def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool: ...
def verify_signatures(items: list[tuple[str, str, bytes]]) -> int | None:
    """Index of the first (hash_hex, signature_hex, public_key) that does not verify, or None.
    Malformed hex or an invalid public key counts as not verifying. Parallel batch verification."""

def merkle_root(leaves: bytes) -> bytes:
    """RFC 9162 tree head of the leaves (concatenated raw 32-byte entry hashes); SHA-256(b"")
    for no leaves. ValueError if len(leaves) is not a multiple of 32."""

def leaf_hashes(entry_hashes: bytes) -> bytes:
    """RFC 9162 leaf hashes SHA-256(0x00 || h) of concatenated raw 32-byte entry hashes, concatenated.
    ValueError if len(entry_hashes) is not a multiple of 32."""

def bundle_jsonl(data: bytes, width: int) -> bytes:
    """The entries of a public log's entry bundle (each a big-endian uint16 length, then the entry)
    as JSON Lines, each entry then b"\n". ValueError unless the bundle is exactly `width` entries,
    none blank or holding a newline."""

def inclusion_proof(leaves: bytes, index: int) -> list[bytes]:
    """Audit path of leaf `index` (RFC 9162 §2.1.3.1). ValueError if index is out of range."""

def consistency_proof(leaves: bytes, old_size: int) -> list[bytes]:
    """Consistency proof from the first `old_size` leaves to all leaves (RFC 9162 §2.1.4.1);
    empty for old_size 0 or len. ValueError if old_size is out of range."""

def verify_inclusion(entry_hash: bytes, index: int, tree_size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2 (the leaf hash of `entry_hash` is computed here)."""

def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2. Equal sizes need equal roots and an empty path; old_size 0 needs an
    empty path; old_size > new_size is False."""

def verify_export(
    jsonl_path: str, keys: list[VerifierKey], checkpoints: list[VerifierCheckpoint] | None = None
) -> Report:
    """Parse an export up to its first malformed line, verify its entries with
    `ChainVerifier(keys, checkpoints)`, then report the malformed line (`malformed_line`, named by
    the last entry before it) unless an entry failed first; GIL released. OSError if unreadable."""

def movements(entries: Iterable[Posting], since_us: int, until_us: int) -> list[Movement]:
    """Posted debits and credits per (ledger, account) of the entries with since_us <= time_us <
    until_us, sorted by (ledger, account). Only `single` and `post` count (`pending`, `void` and
    `expire` do not move posted balances). ValueError for an amount outside [1, 2^53-1] or an
    unknown phase (on any entry, in the period or not), or since_us > until_us."""

def net_positions(obligations: Iterable[Obligation]) -> tuple[list[tuple[str, int]], list[tuple[str, str, int]]]:
    """`(positions, transfers)`: each city's net position (positive: it is owed; they sum to zero),
    sorted by city, and one `(payer, payee, amount)` per unordered pair of cities whose
    obligations do not cancel out (bilateral netting), sorted. ValueError for a negative amount
    (0 is allowed) or a city owing itself."""

def expire_lots(events: Iterable[LotEvent], cutoff_us: int) -> list[tuple[str, int]]:
    """Per account (sorted; zeros omitted), the points left of its lots dated before cutoff_us.
    A positive delta is a lot dated time_us; a negative one (spend, open reservation, earlier
    breakage) consumes the oldest lots first. Accounts may be interleaved; each account's events
    must be in journal order. ValueError for a delta of 0 or beyond ±(2^53-1), a lot dated before
    the account's previous lot, or a consumption larger than what the account has left (the
    message names the account)."""

class EntryBatch:
    """Sealed entries in compact Rust memory (their canonical hashes computed on insertion)."""

    def __init__(self, rows: list[Entry16] = ...) -> None: ...
    @staticmethod
    def from_jsonl(path: str) -> EntryBatch:
        """Parse an export: one JSON object per line with exactly the 14 entry fields plus hash,
        key_id and signature (blank lines skipped). A malformed line (not an object, a member
        missing, repeated or unknown, a wrong JSON type, `v` other than 1) raises ValueError naming
        its 1-based line number; OSError if unreadable."""

    @staticmethod
    def from_jsonl_bytes(data: bytes) -> EntryBatch:
        """`from_jsonl` of JSON Lines held in memory (ValueError naming a malformed line)."""

    def extend(self, rows: list[Entry16]) -> None:
        """Append rows."""

    def __len__(self) -> int: ...
    def replay(self) -> dict[str, dict[str, Counters]]:
        """Pure balance replay in stream order: ledger -> account -> counters. Raises
        ValueError naming ledger and sequence when a post/void/expire references no open hold."""

    def leaf_hashes(self, ledger: str) -> bytes:
        """Concatenated raw 32-byte stored hashes of `ledger`'s entries in stream order (empty
        for an unknown ledger; ValueError if a stored hash is not 64 lowercase hex)."""

class ChainVerifier:
    """Streaming verifier of sealed entries in export order (docs/ledger-format.md,
    "Verification"): checks 1-11 per entry, the first failure of the stream wins, then the
    end-of-stream checks (truncated, incomplete_group) at finish. A repeated key_id replaces the
    earlier key, as in a dict. Each checkpoint's ledger must reach its tree size with its root."""

    def __init__(self, keys: list[VerifierKey], checkpoints: list[VerifierCheckpoint] | None = None) -> None: ...
    def feed(self, rows: list[Entry16]) -> None:
        """Check the next rows of the stream (signatures batch-verified in parallel)."""

    def feed_batch(self, batch: EntryBatch) -> None:
        """Check the batch's rows as the next rows of the stream."""

    def finish(self) -> Report:
        """The report. `gap` vs `reordered` and the end-of-stream checks are decided here; the outcome
        is then final (rows fed afterwards are ignored). Can be called more than once."""
