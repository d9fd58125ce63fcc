//! Compact in-memory store of sealed entries, built from owned rows or from a JSONL export.
//!
//! Strings that repeat (ledger, kind, phase, accounts, key ids, groups) are interned; the fixed
//! hex fields are kept as raw bytes when they are in canonical lowercase form, and any other
//! spelling is interned as-is (flagged) so a tampered export is still represented exactly.
//! Accounts are interned per (ledger, account) "slot", so replay indexes plain vectors.
//! The canonical hash of every entry is computed (in parallel) when it is added.

use std::borrow::Cow;
use std::io::Read;

use rayon::prelude::*;
use serde::{Deserialize, Deserializer};

use crate::canonical::{entry_hash_with, Entry, Fields, SealedEntry};
use crate::util::{parse_lower_hex, to_hex, FxHashMap, FxHashSet};
use crate::vocab::format_problem;

pub const NULL_ID: u32 = u32::MAX;

/// `expires_at_us` is present.
pub const F_EXP: u8 = 1;
/// `prev_hash` is not 64 lowercase hex; `prev_hash[..4]` holds an interned string id.
pub const F_PREV_RAW: u8 = 2;
/// `hash` is not 64 lowercase hex; `hash[..4]` holds an interned string id.
pub const F_HASH_RAW: u8 = 4;
/// `signature` is not 128 lowercase hex; `signature[..4]` holds an interned string id.
pub const F_SIG_RAW: u8 = 8;
/// The stored `hash` equals the SHA-256 of the canonical encoding.
pub const F_HASH_OK: u8 = 16;
/// A member is outside its format (`vocab::format_problem`): `invalid_entry`.
pub const F_FORMAT_BAD: u8 = 32;

const CHUNK: usize = 1 << 16;



/// A transfer id (or a `ref`): null, 32 lowercase hex as 16 bytes, or an interned string.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Tid {
    pub tag: u8,
    pub bytes: [u8; 16],
}

impl std::hash::Hash for Tid {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let lo = u64::from_le_bytes(self.bytes[..8].try_into().unwrap());
        let hi = u64::from_le_bytes(self.bytes[8..].try_into().unwrap());
        state.write_u64(lo ^ self.tag as u64);
        state.write_u64(hi);
    }
}

impl Tid {
    pub const NULL: Tid = Tid { tag: 0, bytes: [0; 16] };
    fn hex(b: [u8; 16]) -> Tid {
        Tid { tag: 1, bytes: b }
    }
    fn raw(id: u32) -> Tid {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&id.to_le_bytes());
        Tid { tag: 2, bytes }
    }
    pub fn is_null(&self) -> bool {
        self.tag == 0
    }
}

#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Phase {
    Single,
    Pending,
    Post,
    Void,
    Expire,
    Unknown,
}

impl Phase {
    pub fn parse(s: &str) -> Phase {
        match s {
            "single" => Phase::Single,
            "pending" => Phase::Pending,
            "post" => Phase::Post,
            "void" => Phase::Void,
            "expire" => Phase::Expire,
            _ => Phase::Unknown,
        }
    }
    /// `post`, `void` or `expire`: resolves a hold.
    pub fn resolves(self) -> bool {
        matches!(self, Phase::Post | Phase::Void | Phase::Expire)
    }
}

/// Is `name` a non-negative account (spec: `program:budget`, `org:*`, `citizen:*:wallet`)?
pub fn is_non_negative(name: &str) -> bool {
    name == "program:budget" || name.starts_with("org:") || (name.starts_with("citizen:") && name.ends_with(":wallet"))
}

/// One compact entry (~232 bytes).
#[derive(Clone, Debug)]
pub struct CEntry {
    pub amount: i64,
    pub ledger: u32,
    /// Slot of the debit account.
    pub debit: u32,
    /// Slot of the credit account.
    pub credit: u32,
    pub phase: Phase,
    pub flags: u8,
    pub transfer_id: Tid,
    pub ref_: Tid,
    pub sequence: i64,
    pub v: i64,
    pub time_us: i64,
    /// Meaningful when `flags & F_EXP`.
    pub expires_at_us: i64,
    pub kind: u32,
    pub phase_str: u32,
    pub key_id: u32,
    /// Interned group or `NULL_ID`.
    pub group: u32,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub signature: [u8; 64],
}

/// An account of one ledger.
#[derive(Clone, Debug)]
pub struct Slot {
    pub ledger: u32,
    pub account: u32,
    pub non_negative: bool,
}

#[derive(Default, Clone, Debug)]
pub struct Interner {
    map: FxHashMap<Box<str>, u32>,
    strs: Vec<Box<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = self.strs.len() as u32;
        self.strs.push(s.into());
        self.map.insert(s.into(), id);
        id
    }
    pub fn get(&self, id: u32) -> &str {
        &self.strs[id as usize]
    }
    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }
}

/// Borrowed view of a sealed entry.
#[derive(Clone, Copy, Debug)]
pub struct SealedRef<'a> {
    pub fields: Fields<'a>,
    pub hash: &'a str,
    pub key_id: &'a str,
    pub signature: &'a str,
}

impl SealedEntry {
    pub fn as_ref(&self) -> SealedRef<'_> {
        SealedRef { fields: self.entry.fields(), hash: &self.hash, key_id: &self.key_id, signature: &self.signature }
    }
}

/// Work done per entry in parallel before interning.
struct Prep {
    computed: [u8; 32],
    prev: Option<[u8; 32]>,
    hash: Option<[u8; 32]>,
    sig: Option<[u8; 64]>,
    tid: Option<[u8; 16]>,
    ref_: Option<[u8; 16]>,
    format_ok: bool,
}

fn prepare(s: &SealedRef<'_>, buf: &mut Vec<u8>) -> Prep {
    Prep {
        computed: entry_hash_with(&s.fields, buf),
        prev: parse_lower_hex(s.fields.prev_hash),
        hash: parse_lower_hex(s.hash),
        sig: parse_lower_hex(s.signature),
        tid: parse_lower_hex(s.fields.transfer_id),
        ref_: s.fields.ref_.and_then(parse_lower_hex),
        format_ok: format_problem(s).is_none(),
    }
}

fn prepare_all(rows: &[SealedRef<'_>]) -> Vec<Prep> {
    rows.par_iter()
        .with_min_len(256)
        .map_init(|| Vec::with_capacity(512), |buf, s| prepare(s, buf))
        .collect()
}

fn id_bytes<const N: usize>(id: u32) -> [u8; N] {
    let mut b = [0u8; N];
    b[..4].copy_from_slice(&id.to_le_bytes());
    b
}

fn bytes_id(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

/// The compact batch.
#[derive(Default, Clone, Debug)]
pub struct EntryBatch {
    pub entries: Vec<CEntry>,
    pub strings: Interner,
    pub slots: Vec<Slot>,
    slot_map: FxHashMap<u64, u32>,
    /// Distinct interned `key_id` values, in order of first use.
    pub key_ids: Vec<u32>,
    /// Distinct interned ledger names, in order of first use.
    pub ledgers: Vec<u32>,
    /// (0, ledger) and (1, key_id) already listed above.
    seen: FxHashSet<(u8, u32)>,
    /// The first malformed line of a JSONL export ("line N: why"); nothing after it was read.
    pub malformed: Option<String>,
}

impl EntryBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn slot(&mut self, ledger: u32, account: &str) -> u32 {
        let acc = self.strings.intern(account);
        let key = ((ledger as u64) << 32) | acc as u64;
        if let Some(&s) = self.slot_map.get(&key) {
            return s;
        }
        let s = self.slots.len() as u32;
        self.slots.push(Slot { ledger, account: acc, non_negative: is_non_negative(account) });
        self.slot_map.insert(key, s);
        s
    }

    fn push(&mut self, s: &SealedRef<'_>, p: &Prep) {
        let f = &s.fields;
        let mut flags = 0u8;
        let ledger = self.strings.intern(f.ledger);
        if self.seen.insert((0, ledger)) {
            self.ledgers.push(ledger);
        }
        let kind = self.strings.intern(f.kind);
        let phase_str = self.strings.intern(f.phase);
        let debit = self.slot(ledger, f.debit_account);
        let credit = self.slot(ledger, f.credit_account);
        let key_id = self.strings.intern(s.key_id);
        if self.seen.insert((1, key_id)) {
            self.key_ids.push(key_id);
        }
        let group = match f.group {
            Some(g) => self.strings.intern(g),
            None => NULL_ID,
        };
        let transfer_id = match p.tid {
            Some(b) => Tid::hex(b),
            None => Tid::raw(self.strings.intern(f.transfer_id)),
        };
        let ref_ = match (f.ref_, p.ref_) {
            (None, _) => Tid::NULL,
            (Some(_), Some(b)) => Tid::hex(b),
            (Some(r), None) => Tid::raw(self.strings.intern(r)),
        };
        let prev_hash = match p.prev {
            Some(b) => b,
            None => {
                flags |= F_PREV_RAW;
                id_bytes(self.strings.intern(f.prev_hash))
            }
        };
        let hash = match p.hash {
            Some(b) => {
                if b == p.computed {
                    flags |= F_HASH_OK;
                }
                b
            }
            None => {
                flags |= F_HASH_RAW;
                id_bytes(self.strings.intern(s.hash))
            }
        };
        let signature = match p.sig {
            Some(b) => b,
            None => {
                flags |= F_SIG_RAW;
                id_bytes(self.strings.intern(s.signature))
            }
        };
        if f.expires_at_us.is_some() {
            flags |= F_EXP;
        }
        if !p.format_ok {
            flags |= F_FORMAT_BAD;
        }
        self.entries.push(CEntry {
            v: f.v,
            sequence: f.sequence,
            amount: f.amount,
            time_us: f.time_us,
            expires_at_us: f.expires_at_us.unwrap_or(0),
            ledger,
            kind,
            phase_str,
            debit,
            credit,
            key_id,
            group,
            transfer_id,
            ref_,
            prev_hash,
            hash,
            signature,
            phase: Phase::parse(f.phase),
            flags,
        });
    }

    /// Appends borrowed rows (hashing in parallel).
    pub fn extend_refs(&mut self, rows: &[SealedRef<'_>]) {
        for chunk in rows.chunks(CHUNK) {
            let preps = prepare_all(chunk);
            self.entries.reserve(chunk.len());
            for (s, p) in chunk.iter().zip(&preps) {
                self.push(s, p);
            }
        }
    }

    /// Appends owned rows (hashing in parallel).
    pub fn extend(&mut self, rows: &[SealedEntry]) {
        for chunk in rows.chunks(CHUNK) {
            let refs: Vec<SealedRef<'_>> = chunk.iter().map(|r| r.as_ref()).collect();
            self.extend_refs(&refs);
        }
    }

    pub fn from_rows(rows: &[SealedEntry]) -> Self {
        let mut b = Self::new();
        b.extend(rows);
        b
    }

    pub fn str(&self, id: u32) -> &str {
        self.strings.get(id)
    }

    pub fn ledger_name(&self, e: &CEntry) -> &str {
        self.str(e.ledger)
    }

    pub fn account_name(&self, slot: u32) -> &str {
        self.str(self.slots[slot as usize].account)
    }

    pub fn tid_string(&self, t: &Tid) -> Option<String> {
        match t.tag {
            0 => None,
            1 => Some(to_hex(&t.bytes)),
            _ => Some(self.str(bytes_id(&t.bytes)).to_string()),
        }
    }

    pub fn prev_hash_string(&self, e: &CEntry) -> String {
        if e.flags & F_PREV_RAW != 0 {
            self.str(bytes_id(&e.prev_hash)).to_string()
        } else {
            to_hex(&e.prev_hash)
        }
    }

    pub fn hash_string(&self, e: &CEntry) -> String {
        if e.flags & F_HASH_RAW != 0 {
            self.str(bytes_id(&e.hash)).to_string()
        } else {
            to_hex(&e.hash)
        }
    }

    pub fn signature_string(&self, e: &CEntry) -> String {
        if e.flags & F_SIG_RAW != 0 {
            self.str(bytes_id(&e.signature)).to_string()
        } else {
            to_hex(&e.signature)
        }
    }

    /// Rebuilds entry `i` as an owned row (exactly as it was added).
    pub fn row(&self, i: usize) -> SealedEntry {
        let e = &self.entries[i];
        SealedEntry {
            entry: Entry {
                v: e.v,
                ledger: self.str(e.ledger).to_string(),
                sequence: e.sequence,
                transfer_id: self.tid_string(&e.transfer_id).unwrap_or_default(),
                kind: self.str(e.kind).to_string(),
                phase: self.str(e.phase_str).to_string(),
                debit_account: self.account_name(e.debit).to_string(),
                credit_account: self.account_name(e.credit).to_string(),
                amount: e.amount,
                ref_: self.tid_string(&e.ref_),
                group: if e.group == NULL_ID { None } else { Some(self.str(e.group).to_string()) },
                expires_at_us: if e.flags & F_EXP != 0 { Some(e.expires_at_us) } else { None },
                time_us: e.time_us,
                prev_hash: self.prev_hash_string(e),
            },
            hash: self.hash_string(e),
            key_id: self.str(e.key_id).to_string(),
            signature: self.signature_string(e),
        }
    }

    /// Raw 32-byte stored hashes of `ledger`'s entries, in stream order.
    pub fn leaf_hashes(&self, ledger: &str) -> Result<Vec<[u8; 32]>, String> {
        let Some(lid) = self.strings.lookup(ledger) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| e.ledger == lid) {
            if e.flags & F_HASH_RAW != 0 {
                return Err(format!(
                    "ledger {ledger} sequence {}: stored hash {:?} is not 64 lowercase hex",
                    e.sequence,
                    self.hash_string(e)
                ));
            }
            out.push(e.hash);
        }
        Ok(out)
    }

    /// Parses and appends the lines of `block` (the first is line `first_line`), up to the first
    /// malformed one, which is recorded in `malformed`; returns the number of newlines seen.
    /// Blank lines are skipped.
    fn push_jsonl_block<'b>(&mut self, block: &'b [u8], first_line: usize) -> usize {
        let mut lines: Vec<(usize, &'b [u8])> = Vec::with_capacity(block.len() / 400 + 1);
        let mut start = 0;
        let mut no = first_line;
        let mut add = |line: &'b [u8], no: usize| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(|b| b.is_ascii_whitespace()) {
                lines.push((no, line));
            }
        };
        for nl in memchr::memchr_iter(b'\n', block) {
            add(&block[start..nl], no);
            start = nl + 1;
            no += 1;
        }
        add(&block[start..], no);
        let newlines = no - first_line;
        for chunk in lines.chunks(CHUNK) {
            let parsed: Vec<Result<(JsonEntry<'_>, Prep), String>> = chunk
                .par_iter()
                .with_min_len(256)
                .map_init(
                    || Vec::with_capacity(512),
                    |buf, (no, line)| {
                        let je = parse_line(line).map_err(|m| format!("line {no}: {m}"))?;
                        let p = prepare(&je.as_ref(), buf);
                        Ok((je, p))
                    },
                )
                .collect();
            self.entries.reserve(parsed.len());
            for r in parsed {
                match r {
                    Ok((je, p)) => self.push(&je.as_ref(), &p),
                    Err(m) => {
                        self.malformed = Some(m);
                        return newlines;
                    }
                }
            }
        }
        newlines
    }

    fn strict(self) -> Result<Self, String> {
        match self.malformed {
            Some(m) => Err(m),
            None => Ok(self),
        }
    }

    /// Parses a JSONL export (see `docs/ledger-format.md`, "Export"). Blank lines are skipped.
    /// Errors name the 1-based line number.
    pub fn from_jsonl_bytes(data: &[u8]) -> Result<Self, String> {
        let mut batch = Self::new();
        batch.push_jsonl_block(data, 1);
        batch.strict()
    }

    /// Reads a JSONL export from `r` in blocks (bounded memory besides the batch itself).
    pub fn from_jsonl_reader<R: Read>(r: R) -> Result<Self, JsonlError> {
        Self::read_jsonl(r, 16 << 20)?.strict().map_err(JsonlError::Parse)
    }

    /// Reads a JSONL export up to its first malformed line, recorded in `malformed` (the entries
    /// before it are kept: the verifier checks them first, spec "Verification").
    pub fn read_jsonl<R: Read>(r: R, block: usize) -> Result<Self, JsonlError> {
        let block = block.max(1);
        let mut r = r;
        let mut batch = Self::new();
        let mut buf: Vec<u8> = Vec::with_capacity(block);
        let mut line_no = 1usize;
        let mut eof = false;
        while !eof && batch.malformed.is_none() {
            // Read up to `block` more bytes after the carried-over partial line.
            let start = buf.len();
            buf.resize(start + block, 0);
            let mut filled = start;
            while filled < buf.len() {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(JsonlError::Io(e)),
                }
            }
            buf.truncate(filled);
            let end = if eof {
                buf.len()
            } else {
                match memchr::memrchr(b'\n', &buf) {
                    Some(p) => p + 1,
                    // No complete line yet: read more.
                    None => continue,
                }
            };
            line_no += batch.push_jsonl_block(&buf[..end], line_no);
            buf.drain(..end);
        }
        Ok(batch)
    }

    /// `from_jsonl_reader` reading `block` bytes at a time (exposed for tests).
    #[doc(hidden)]
    pub fn from_jsonl_reader_blocks<R: Read>(r: R, block: usize) -> Result<Self, JsonlError> {
        Self::read_jsonl(r, block)?.strict().map_err(JsonlError::Parse)
    }

    pub fn from_jsonl_path(path: &str) -> Result<Self, JsonlError> {
        let f = std::fs::File::open(path).map_err(JsonlError::Io)?;
        Self::from_jsonl_reader(f)
    }
}

/// One export line as the format requires it (spec "Export"): a JSON object with exactly the 17
/// members, each of its JSON type (integers without fraction or exponent), `v` equal to 1.
fn parse_line(line: &[u8]) -> Result<JsonEntry<'_>, String> {
    // serde would also read a struct from a JSON array, by position.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("malformed entry: not a JSON object".into());
    }
    let je: JsonEntry<'_> = serde_json::from_slice(line).map_err(|e| {
        // serde's position is within the line: report it as a column.
        let msg = e.to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => &msg[..i],
            None => &msg,
        };
        format!("malformed entry (column {}): {msg}", e.column())
    })?;
    if je.v != 1 {
        return Err(format!("malformed entry: v is {}, this verifier reads format version 1", je.v));
    }
    Ok(je)
}

#[derive(Debug)]
pub enum JsonlError {
    Io(std::io::Error),
    Parse(String),
}

/// A JSON string, borrowed from the line when it has no escapes.
struct JStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Required (possibly null) field: unlike plain `Option`, a missing key is an error.
fn required<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// One line of the export: the 14 hashed fields plus `hash`, `key_id`, `signature`, nothing else
/// (a missing, repeated or unknown member is an error).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry<'a> {
    v: i64,
    #[serde(borrow)]
    ledger: JStr<'a>,
    sequence: i64,
    #[serde(borrow)]
    transfer_id: JStr<'a>,
    #[serde(borrow)]
    kind: JStr<'a>,
    #[serde(borrow)]
    phase: JStr<'a>,
    #[serde(borrow)]
    debit_account: JStr<'a>,
    #[serde(borrow)]
    credit_account: JStr<'a>,
    amount: i64,
    #[serde(borrow, rename = "ref", deserialize_with = "required")]
    ref_: Option<JStr<'a>>,
    #[serde(borrow, deserialize_with = "required")]
    group: Option<JStr<'a>>,
    #[serde(deserialize_with = "required")]
    expires_at_us: Option<i64>,
    time_us: i64,
    #[serde(borrow)]
    prev_hash: JStr<'a>,
    #[serde(borrow)]
    hash: JStr<'a>,
    #[serde(borrow)]
    key_id: JStr<'a>,
    #[serde(borrow)]
    signature: JStr<'a>,
}

impl JsonEntry<'_> {
    fn as_ref(&self) -> SealedRef<'_> {
        SealedRef {
            fields: Fields {
                v: self.v,
                ledger: &self.ledger.0,
                sequence: self.sequence,
                transfer_id: &self.transfer_id.0,
                kind: &self.kind.0,
                phase: &self.phase.0,
                debit_account: &self.debit_account.0,
                credit_account: &self.credit_account.0,
                amount: self.amount,
                ref_: self.ref_.as_ref().map(|s| &*s.0),
                group: self.group.as_ref().map(|s| &*s.0),
                expires_at_us: self.expires_at_us,
                time_us: self.time_us,
                prev_hash: &self.prev_hash.0,
            },
            hash: &self.hash.0,
            key_id: &self.key_id.0,
            signature: &self.signature.0,
        }
    }
}
