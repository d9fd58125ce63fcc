//! The format's vocabulary (spec "Ledgers and accounts", "Entry"): ledger names, kinds, account
//! names and the fixed-width hex fields, as a verifier checks them (`invalid_entry`).
//!
//! Hand-written matchers for the patterns of `ledger/domain/accounts.py` and
//! `ledger/domain/transfers.py`; `tests/test_core_parity.py` checks them against the oracle's.

use crate::batch::SealedRef;

/// The program's own accounts, one per ledger.
const FIXED_ACCOUNTS: [&str; 5] = ["program:funding", "program:budget", "services:revenue", "breakage", "settlement:clearing"];

fn lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `^[a-z0-9][a-z0-9-]{0,62}$`: a ledger (city) name.
pub fn is_ledger_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len()) && lower_alnum(b[0]) && b[1..].iter().all(|&c| lower_alnum(c) || c == b'-')
}

/// `^[a-z0-9][a-z0-9_-]{0,63}$`: a resident, merchant or organization id.
fn is_id(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len()) && lower_alnum(b[0]) && b[1..].iter().all(|&c| lower_alnum(c) || c == b'-' || c == b'_')
}

/// `^[a-z][a-z0-9_]{0,31}$`: a transfer kind.
pub fn is_kind(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len()) && b[0].is_ascii_lowercase() && b[1..].iter().all(|&c| lower_alnum(c) || c == b'_')
}

/// An account name of the documented vocabulary.
pub fn is_account_name(s: &str) -> bool {
    if FIXED_ACCOUNTS.contains(&s) {
        return true;
    }
    if let Some(rest) = s.strip_prefix("merchant:") {
        return rest.strip_suffix(":issued").or_else(|| rest.strip_suffix(":redeemed")).is_some_and(is_id);
    }
    if let Some(rest) = s.strip_prefix("citizen:") {
        return rest.strip_suffix(":wallet").is_some_and(is_id);
    }
    if let Some(rest) = s.strip_prefix("org:") {
        return is_id(rest);
    }
    s.strip_prefix("interop:").is_some_and(is_ledger_name)
}

/// Exactly `n` lowercase hex digits.
pub fn is_lower_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Largest hold: the writer's `MAX_HOLD_SECONDS` (30 days), in µs.
pub const MAX_HOLD_US: i64 = 30 * 24 * 3600 * 1_000_000;

/// The first string or number member outside its format, as the `invalid_entry` detail (spec
/// "Verification", check 6, first part). The hex members `prev_hash`, `hash` and `signature` are
/// left to the chain, hash and signature checks, which a malformed one always fails.
pub fn format_problem(s: &SealedRef<'_>) -> Option<String> {
    let f = &s.fields;
    let bad = |field: &str, value: &str, want: &str| Some(format!("{field} {value:?} is not {want}"));
    if !is_ledger_name(f.ledger) {
        return bad("ledger", f.ledger, "a ledger name");
    }
    if !is_lower_hex(f.transfer_id, 32) {
        return bad("transfer_id", f.transfer_id, "32 lowercase hex digits");
    }
    if !is_kind(f.kind) {
        return bad("kind", f.kind, "a kind (^[a-z][a-z0-9_]{0,31}$)");
    }
    if !is_account_name(f.debit_account) {
        return bad("debit_account", f.debit_account, "an account name");
    }
    if !is_account_name(f.credit_account) {
        return bad("credit_account", f.credit_account, "an account name");
    }
    if let Some(r) = f.ref_.filter(|r| !is_lower_hex(r, 32)) {
        return bad("ref", r, "null or 32 lowercase hex digits");
    }
    if let Some(g) = f.group.filter(|g| !is_lower_hex(g, 32)) {
        return bad("group", g, "null or 32 lowercase hex digits");
    }
    if !is_lower_hex(s.key_id, 16) {
        return bad("key_id", s.key_id, "16 lowercase hex digits");
    }
    if f.time_us < 0 {
        return Some(format!("time_us {} is negative", f.time_us));
    }
    if let Some(x) = f.expires_at_us {
        let held = x as i128 - f.time_us as i128;
        if held < 1_000_000 || held > MAX_HOLD_US as i128 || held % 1_000_000 != 0 {
            return Some(format!("expires_at_us {x} is not a whole number of seconds, 1 s to 30 days, after time_us"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["brossard", "a", "saint-jean-2"] {
            assert!(is_ledger_name(ok), "{ok}");
        }
        for bad in ["", "-x", "Brossard", "a_b", &"a".repeat(64)] {
            assert!(!is_ledger_name(bad), "{bad}");
        }
        for ok in ["earn_civic", "r", "x9_"] {
            assert!(is_kind(ok), "{ok}");
        }
        for bad in ["", "9x", "Earn Civic!", "earn-civic", &"a".repeat(33)] {
            assert!(!is_kind(bad), "{bad}");
        }
        for ok in ["program:budget", "breakage", "merchant:m_1:issued", "merchant:m1:redeemed", "citizen:r-1:wallet",
                   "org:o1", "interop:laval"] {
            assert!(is_account_name(ok), "{ok}");
        }
        for bad in ["program:other", "merchant:m1", "merchant::issued", "citizen:r1", "citizen:R1:wallet", "org:",
                    "interop:a_b", "memo", "merchant:a:b:issued"] {
            assert!(!is_account_name(bad), "{bad}");
        }
        assert!(is_lower_hex("0a", 2) && !is_lower_hex("0A", 2) && !is_lower_hex("0a0", 2));
    }
}
