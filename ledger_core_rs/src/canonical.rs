//! Canonical encoding (RFC 8785 / JCS restricted to the entry's value types) and entry hash.

use sha2::{Digest, Sha256};

/// Borrowed view of the 14 hashed fields of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    pub v: i64,
    pub ledger: &'a str,
    pub sequence: i64,
    pub transfer_id: &'a str,
    pub kind: &'a str,
    pub phase: &'a str,
    pub debit_account: &'a str,
    pub credit_account: &'a str,
    pub amount: i64,
    pub ref_: Option<&'a str>,
    pub group: Option<&'a str>,
    pub expires_at_us: Option<i64>,
    pub time_us: i64,
    pub prev_hash: &'a str,
}

/// Owned entry (the 14 hashed fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub v: i64,
    pub ledger: String,
    pub sequence: i64,
    pub transfer_id: String,
    pub kind: String,
    pub phase: String,
    pub debit_account: String,
    pub credit_account: String,
    pub amount: i64,
    pub ref_: Option<String>,
    pub group: Option<String>,
    pub expires_at_us: Option<i64>,
    pub time_us: i64,
    pub prev_hash: String,
}

impl Entry {
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            v: self.v,
            ledger: &self.ledger,
            sequence: self.sequence,
            transfer_id: &self.transfer_id,
            kind: &self.kind,
            phase: &self.phase,
            debit_account: &self.debit_account,
            credit_account: &self.credit_account,
            amount: self.amount,
            ref_: self.ref_.as_deref(),
            group: self.group.as_deref(),
            expires_at_us: self.expires_at_us,
            time_us: self.time_us,
            prev_hash: &self.prev_hash,
        }
    }
}

/// Owned sealed entry: the entry plus `hash`, `key_id`, `signature` as stored (not validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    pub entry: Entry,
    pub hash: String,
    pub key_id: String,
    pub signature: String,
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let neg = n < 0;
    let mut u = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `s` as a JCS string literal.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn push_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends the canonical encoding of `f` to `out`.
pub fn write_canonical(f: &Fields<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"amount\":");
    push_int(out, f.amount);
    out.extend_from_slice(b",\"credit_account\":");
    push_str(out, f.credit_account);
    out.extend_from_slice(b",\"debit_account\":");
    push_str(out, f.debit_account);
    out.extend_from_slice(b",\"expires_at_us\":");
    match f.expires_at_us {
        Some(x) => push_int(out, x),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"group\":");
    push_opt_str(out, f.group);
    out.extend_from_slice(b",\"kind\":");
    push_str(out, f.kind);
    out.extend_from_slice(b",\"ledger\":");
    push_str(out, f.ledger);
    out.extend_from_slice(b",\"phase\":");
    push_str(out, f.phase);
    out.extend_from_slice(b",\"prev_hash\":");
    push_str(out, f.prev_hash);
    out.extend_from_slice(b",\"ref\":");
    push_opt_str(out, f.ref_);
    out.extend_from_slice(b",\"sequence\":");
    push_int(out, f.sequence);
    out.extend_from_slice(b",\"time_us\":");
    push_int(out, f.time_us);
    out.extend_from_slice(b",\"transfer_id\":");
    push_str(out, f.transfer_id);
    out.extend_from_slice(b",\"v\":");
    push_int(out, f.v);
    out.push(b'}');
}

/// The canonical UTF-8 bytes of an entry.
pub fn canonical_bytes(f: &Fields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(400);
    write_canonical(f, &mut out);
    out
}

/// SHA-256 of the canonical encoding, reusing `buf` as scratch space.
pub fn entry_hash_with(f: &Fields<'_>, buf: &mut Vec<u8>) -> [u8; 32] {
    buf.clear();
    write_canonical(f, buf);
    Sha256::digest(&buf[..]).into()
}

/// SHA-256 of the canonical encoding.
pub fn entry_hash(f: &Fields<'_>) -> [u8; 32] {
    entry_hash_with(f, &mut Vec::with_capacity(400))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Entry {
        Entry {
            v: 1,
            ledger: "brossard".into(),
            sequence: 1,
            transfer_id: "00000000000000000000000000000001".into(),
            kind: "earn_civic".into(),
            phase: "single".into(),
            debit_account: "program:budget".into(),
            credit_account: "citizen:r1:wallet".into(),
            amount: 250,
            ref_: None,
            group: None,
            expires_at_us: None,
            time_us: 1763888400000000,
            prev_hash: "0".repeat(64),
        }
    }

    #[test]
    fn spec_example() {
        let e = example();
        let got = String::from_utf8(canonical_bytes(&e.fields())).unwrap();
        assert_eq!(
            got,
            "{\"amount\":250,\"credit_account\":\"citizen:r1:wallet\",\"debit_account\":\"program:budget\",\"expires_at_us\":null,\"group\":null,\"kind\":\"earn_civic\",\"ledger\":\"brossard\",\"phase\":\"single\",\"prev_hash\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"ref\":null,\"sequence\":1,\"time_us\":1763888400000000,\"transfer_id\":\"00000000000000000000000000000001\",\"v\":1}"
        );
    }

    #[test]
    fn escapes() {
        let mut out = Vec::new();
        push_str(&mut out, "a\"b\\c\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}é€😀/");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}é€😀/\""
        );
        let mut out = Vec::new();
        push_str(&mut out, "\u{1b}x\u{0b}");
        assert_eq!(String::from_utf8(out).unwrap(), "\"\\u001bx\\u000b\"");
    }

    #[test]
    fn ints() {
        for (n, s) in [(0i64, "0"), (-5, "-5"), (i64::MIN, "-9223372036854775808"), (i64::MAX, "9223372036854775807"), (10, "10")] {
            let mut out = Vec::new();
            push_int(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), s);
        }
    }

    #[test]
    fn optional_fields() {
        let mut e = example();
        e.phase = "pending".into();
        e.expires_at_us = Some(17);
        e.ref_ = Some("r".into());
        e.group = Some("g".into());
        let got = String::from_utf8(canonical_bytes(&e.fields())).unwrap();
        assert!(got.contains("\"expires_at_us\":17,\"group\":\"g\","));
        assert!(got.contains("\"ref\":\"r\","));
    }
}
