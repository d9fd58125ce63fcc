//! Small helpers: a fast non-cryptographic hasher for internal maps and strict hex codecs.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// The FxHash function (as used by rustc): fast for small keys. Only used for internal
/// bookkeeping maps (interning, holds), never for anything that is hashed into the ledger.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            self.add(u64::from_le_bytes(bytes[..8].try_into().unwrap()));
            bytes = &bytes[8..];
        }
        if bytes.len() >= 4 {
            self.add(u32::from_le_bytes(bytes[..4].try_into().unwrap()) as u64);
            bytes = &bytes[4..];
        }
        for &b in bytes {
            self.add(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = HashMap<K, V, FxBuild>;
pub type FxHashSet<K> = HashSet<K, FxBuild>;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

const fn lower_hex_table() -> [u8; 256] {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
}

static LOWER_HEX: [u8; 256] = lower_hex_table();

/// Parses exactly `2*N` lowercase hex digits (the only form the format ever writes).
/// Anything else (uppercase, wrong length, other characters) gives `None`.
#[inline]
pub fn parse_lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let hi = LOWER_HEX[pair[0] as usize];
        let lo = LOWER_HEX[pair[1] as usize];
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0x80 == 0).then_some(out)
}

/// Parses hex of any case into exactly `N` bytes (used for inputs such as hashes passed to
/// `sign_hashes`, where case does not change the bytes being signed).
pub fn parse_hex_any<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Shortens a hex string for human messages: first 12 characters and an ellipsis.
pub fn short(s: &str) -> String {
    let mut it = s.chars();
    let head: String = it.by_ref().take(12).collect();
    if it.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// `bytes.fromhex(s)` as Python does it: pairs of hex digits of either case, ASCII whitespace
/// (space, `\t`, `\n`, `\v`, `\f`, `\r`) allowed before each pair. `None` where Python raises.
pub fn py_fromhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 2);
    let mut i = 0;
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    while i < b.len() {
        if is_space(b[i]) {
            i += 1;
            continue;
        }
        let hi = nib(b[i])?;
        let lo = nib(*b.get(i + 1)?)?;
        out.push((hi << 4) | lo);
        i += 2;
    }
    Some(out)
}

fn py_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x20 || u == 0x7f {
        return false;
    }
    if u < 0x7f {
        return true;
    }
    // Approximation of Python's str.isprintable for non-ASCII: controls, format characters,
    // separators other than space, surrogates and private use are not printable.
    !(matches!(u, 0x80..=0xa0 | 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x1680 | 0x180e
        | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f | 0x3000
        | 0xd800..=0xf8ff | 0xfeff | 0xfff9..=0xfffb | 0xe0001 | 0xe0020..=0xe007f
        | 0xf0000..=0x10ffff)
        || (u & 0xfffe) == 0xfffe)
}

/// Python's `repr()` of a `str` (used so human messages read like the oracle's).
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if py_printable(c) => out.push(c),
            c => {
                let u = c as u32;
                if u < 0x100 {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u < 0x10000 {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fromhex_like_python() {
        assert_eq!(py_fromhex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(py_fromhex(" 0a ff\n"), Some(vec![0x0a, 0xff]));
        assert_eq!(py_fromhex("0"), None);
        assert_eq!(py_fromhex("0 a"), None);
        assert_eq!(py_fromhex("zz"), None);
        assert_eq!(py_fromhex(""), Some(vec![]));
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(py_repr("single"), "'single'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(py_repr("t\tn\n\u{0}\u{7f}é😀\u{2028}"), "'t\\tn\\n\\x00\\x7fé😀\\u2028'");
    }

    #[test]
    fn strict_hex() {
        assert_eq!(parse_lower_hex::<2>("0aff"), Some([0x0a, 0xff]));
        assert_eq!(parse_lower_hex::<2>("0aFF"), None);
        assert_eq!(parse_lower_hex::<2>("0af"), None);
        assert_eq!(to_hex(&[0, 255, 16]), "00ff10");
    }
}
