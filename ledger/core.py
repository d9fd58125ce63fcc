"""The ledger's hot paths, as the Rust core provides them (`ledger._core`).

Production code imports from here. `ledger.oracle` implements the same functions in plain Python
and is used only by the tests, which check that both agree.
"""

from ledger._core import (  # noqa: F401  (re-exported API)
    FORMAT_VERSION,
    ChainVerifier,
    EntryBatch,
    bundle_jsonl,
    canonical_bytes,
    consistency_proof,
    entry_hash,
    expire_lots,
    inclusion_proof,
    key_id,
    leaf_hashes,
    merkle_root,
    movements,
    net_positions,
    public_key,
    seal,
    sign_hashes,
    verify_consistency,
    verify_export,
    verify_inclusion,
    verify_signature,
    verify_signatures,
)

GENESIS_HASH = "0" * 64
