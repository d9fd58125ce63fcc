//! Entraide ledger core: canonical encoding, hashing, signing, chain verification, replay,
//! RFC 9162 Merkle proofs, settlement netting and expiry. See `docs/ledger-format.md` (the spec
//! this crate follows).

pub mod batch;
pub mod bundle;
pub mod canonical;
pub mod crypto;
pub mod expiry;
pub mod merkle;
pub mod replay;
pub mod settlement;
pub mod util;
pub mod vocab;
pub mod verify;

#[cfg(feature = "python")]
mod py;

/// Format version written in every entry (`v`).
pub const FORMAT_VERSION: i64 = 1;
