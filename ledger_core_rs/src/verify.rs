//! Streaming chain verifier: spec "Verification", checks 1..8 per entry in stream order, the
//! first failure of the stream wins, then `zero_sum` at the end.
//!
//! Signatures of a fed chunk are batch-verified in parallel *before* the sequential pass; that
//! is state-independent (key, time, stored hash, signature), so the sequential pass only asks
//! "is this the first entry whose signature is bad?" and reports exactly what a purely
//! sequential check would.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::batch::{CEntry, EntryBatch, Phase, Tid, F_EXP, F_HASH_OK, F_PREV_RAW, F_SIG_RAW};
use crate::canonical::{entry_hash, SealedEntry};
use crate::crypto::{first_invalid, verifying_key, SigCheck};
use crate::replay::Counters;
use crate::util::{py_fromhex, py_repr, to_hex, FxHashMap};

/// Largest valid amount, 2^53 - 1.
pub const MAX_AMOUNT: i64 = (1 << 53) - 1;

/// One key of the keys file.
#[derive(Clone, Debug)]
pub struct KeySpec {
    pub key_id: String,
    pub public_key: Vec<u8>,
    pub valid_from_us: i64,
    pub valid_until_us: Option<i64>,
}

#[derive(Clone, Debug)]
struct Key {
    vk: Option<VerifyingKey>,
    from: i64,
    until: Option<i64>,
}

impl Key {
    fn valid_at(&self, t: i64) -> bool {
        self.from <= t && self.until.is_none_or(|u| t < u)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    pub ledger: String,
    pub sequence: i64,
    pub code: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug)]
struct Account {
    name: String,
    bal: Counters,
    non_negative: bool,
}

#[derive(Clone, Debug)]
struct Hold {
    debit: u32,
    credit: u32,
    amount: i64,
    expires: i64,
}

/// A posted transfer of a refundable kind, and what refunds left of it.
#[derive(Clone, Debug)]
struct Original {
    debit: u32,
    credit: u32,
    remaining: i64,
}

/// What a refund may reverse: a merchant's own sales (ledger/domain/transfers.py REFUNDABLE_KINDS).
pub const REFUNDABLE_KINDS: [&str; 2] = ["redeem", "earn_purchase"];

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum HoldKey {
    Hex([u8; 16]),
    Raw(Box<str>),
}

#[derive(Clone, Debug)]
struct LedgerState {
    name: String,
    next: i64,
    head_sequence: i64,
    head: [u8; 32],
    entries: u64,
    accounts: Vec<Account>,
    account_index: FxHashMap<Box<str>, u32>,
    holds: FxHashMap<HoldKey, Hold>,
    /// Refundable transfers by id: one entry per sale, the verifier's only state that grows with
    /// the journal rather than with its accounts.
    originals: FxHashMap<HoldKey, Original>,
}

impl LedgerState {
    fn new(name: &str) -> Self {
        LedgerState {
            name: name.to_string(),
            next: 1,
            head_sequence: 0,
            head: [0; 32],
            entries: 0,
            accounts: Vec::new(),
            account_index: FxHashMap::default(),
            holds: FxHashMap::default(),
            originals: FxHashMap::default(),
        }
    }
}

/// A `sequence > expected` anomaly: `gap` or `reordered`, decided at `finish`.
#[derive(Clone, Debug)]
struct PendingGap {
    ledger: String,
    expected: i64,
    seen: bool,
}

/// Final state of one ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerReport {
    pub ledger: String,
    pub entries: u64,
    pub head_sequence: i64,
    pub head_hash: String,
    pub balances: Vec<(String, Counters)>,
    pub open_holds: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub ok: bool,
    pub entries: u64,
    pub error: Option<VerifyError>,
    pub ledgers: Vec<LedgerReport>,
}

enum KeyRes<'k> {
    Unknown,
    NotValid,
    Valid(Option<&'k VerifyingKey>),
}

#[derive(Clone, Debug)]
pub struct ChainVerifier {
    keys: Vec<Key>,
    key_index: HashMap<String, usize>,
    ledgers: Vec<LedgerState>,
    ledger_index: HashMap<String, usize>,
    entries: u64,
    error: Option<VerifyError>,
    gap: Option<PendingGap>,
}

enum Stop {
    Error(VerifyError),
    Gap(PendingGap),
}

impl ChainVerifier {
    /// As in a dict, a repeated `key_id` replaces the earlier one. A public key that is not a
    /// valid 32-byte point is kept: entries signed under it fail with `bad_signature`.
    pub fn new(keys: &[KeySpec]) -> Self {
        let mut v = ChainVerifier {
            keys: Vec::new(),
            key_index: HashMap::new(),
            ledgers: Vec::new(),
            ledger_index: HashMap::new(),
            entries: 0,
            error: None,
            gap: None,
        };
        for k in keys {
            v.key_index.insert(k.key_id.clone(), v.keys.len());
            v.keys.push(Key { vk: verifying_key(&k.public_key), from: k.valid_from_us, until: k.valid_until_us });
        }
        v
    }

    /// True once the outcome is decided (nothing more is checked, except the gap look-ahead).
    pub fn stopped(&self) -> bool {
        self.error.is_some() || self.gap.is_some()
    }

    /// While a `gap`/`reordered` anomaly is pending and undecided: the (ledger, sequence) whose
    /// later appearance makes it `reordered`.
    pub fn gap_wanted(&self) -> Option<(String, i64)> {
        self.gap.as_ref().filter(|g| !g.seen).map(|g| (g.ledger.clone(), g.expected))
    }

    /// Records that the entry named by `gap_wanted` appeared later in the stream.
    pub fn gap_seen(&mut self) {
        if let Some(g) = &mut self.gap {
            g.seen = true;
        }
    }

    fn resolve_key(&self, key: Option<usize>, t: i64) -> KeyRes<'_> {
        match key.map(|i| &self.keys[i]) {
            None => KeyRes::Unknown,
            Some(k) if k.valid_at(t) => KeyRes::Valid(k.vk.as_ref()),
            Some(_) => KeyRes::NotValid,
        }
    }

    /// Feeds owned rows.
    pub fn feed_rows(&mut self, rows: &[SealedEntry]) {
        if let Some(g) = &mut self.gap {
            if !g.seen {
                g.seen = rows.iter().any(|r| r.entry.ledger == g.ledger && r.entry.sequence == g.expected);
            }
            return;
        }
        if self.error.is_some() || rows.is_empty() {
            return;
        }
        let b = EntryBatch::from_rows(rows);
        self.feed_batch(&b);
    }

    fn scan_gap(&mut self, b: &EntryBatch, from: usize) {
        let Some(g) = &mut self.gap else { return };
        if g.seen {
            return;
        }
        let Some(lid) = b.strings.lookup(&g.ledger) else { return };
        let e = g.expected;
        g.seen = b.entries[from..].iter().any(|x| x.ledger == lid && x.sequence == e);
    }

    /// Feeds a batch (in its order).
    pub fn feed_batch(&mut self, b: &EntryBatch) {
        if self.gap.is_some() {
            self.scan_gap(b, 0);
            return;
        }
        if self.error.is_some() || b.is_empty() {
            return;
        }
        // Map the batch's key ids to our keys.
        let kmap: FxHashMap<u32, Option<usize>> =
            b.key_ids.iter().map(|&id| (id, self.key_index.get(b.str(id)).copied())).collect();
        let first_bad_sig = {
            let this = &*self;
            let kmap = &kmap;
            first_invalid(b.len(), move |i| {
                let e = &b.entries[i];
                if e.flags & F_HASH_OK == 0 {
                    return SigCheck::Skip;
                }
                match this.resolve_key(kmap[&e.key_id], e.time_us) {
                    KeyRes::Valid(Some(vk)) => {
                        if e.flags & F_SIG_RAW == 0 {
                            return SigCheck::Verify(vk, &e.hash, e.signature);
                        }
                        // Not canonical lowercase hex: decode as Python's bytes.fromhex would.
                        match py_fromhex(&b.signature_string(e)).and_then(|v| <[u8; 64]>::try_from(v).ok()) {
                            Some(sig) => SigCheck::Verify(vk, &e.hash, sig),
                            None => SigCheck::Invalid,
                        }
                    }
                    KeyRes::Valid(None) => SigCheck::Invalid,
                    _ => SigCheck::Skip,
                }
            })
        };
        let mut ledger_map: FxHashMap<u32, usize> = FxHashMap::default();
        let mut slot_map: Vec<u32> = vec![u32::MAX; b.slots.len()];
        for (i, e) in b.entries.iter().enumerate() {
            let li = match ledger_map.get(&e.ledger) {
                Some(&li) => li,
                None => {
                    let name = b.str(e.ledger);
                    let li = match self.ledger_index.get(name) {
                        Some(&li) => li,
                        None => {
                            self.ledgers.push(LedgerState::new(name));
                            self.ledger_index.insert(name.to_string(), self.ledgers.len() - 1);
                            self.ledgers.len() - 1
                        }
                    };
                    ledger_map.insert(e.ledger, li);
                    li
                }
            };
            let key = kmap[&e.key_id];
            match self.check(b, i, e, li, first_bad_sig == Some(i), key, &mut slot_map) {
                Ok(()) => self.entries += 1,
                Err(Stop::Error(err)) => {
                    self.error = Some(err);
                    return;
                }
                Err(Stop::Gap(g)) => {
                    self.gap = Some(g);
                    self.scan_gap(b, i + 1);
                    return;
                }
            }
        }
    }

    fn account_of(&self, b: &EntryBatch, li: usize, slot: u32, slot_map: &mut [u32]) -> Option<u32> {
        let m = slot_map[slot as usize];
        if m != u32::MAX {
            return Some(m);
        }
        let idx = *self.ledgers[li].account_index.get(b.account_name(slot))?;
        slot_map[slot as usize] = idx;
        Some(idx)
    }

    fn account_or_create(&mut self, b: &EntryBatch, li: usize, slot: u32, slot_map: &mut [u32]) -> u32 {
        if let Some(i) = self.account_of(b, li, slot, slot_map) {
            return i;
        }
        let name = b.account_name(slot);
        let l = &mut self.ledgers[li];
        let idx = l.accounts.len() as u32;
        l.accounts.push(Account { name: name.to_string(), bal: [0; 4], non_negative: b.slots[slot as usize].non_negative });
        l.account_index.insert(name.into(), idx);
        slot_map[slot as usize] = idx;
        idx
    }

    fn hold_key(b: &EntryBatch, t: &Tid) -> HoldKey {
        if t.tag == 1 {
            HoldKey::Hex(t.bytes)
        } else {
            HoldKey::Raw(b.tid_string(t).unwrap_or_default().into())
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        b: &EntryBatch,
        i: usize,
        e: &CEntry,
        li: usize,
        bad_sig: bool,
        key: Option<usize>,
        slot_map: &mut [u32],
    ) -> Result<(), Stop> {
        let l = &self.ledgers[li];
        let err = |code: &'static str, sequence: i64, detail: String| {
            Err(Stop::Error(VerifyError { ledger: l.name.clone(), sequence, code, detail }))
        };
        // 1. sequence
        let expected = l.next;
        if e.sequence < expected {
            return err("duplicate", e.sequence, format!("sequence {} appears again", e.sequence));
        }
        if e.sequence > expected {
            return Err(Stop::Gap(PendingGap { ledger: l.name.clone(), expected, seen: false }));
        }
        // 2. chain
        if e.flags & F_PREV_RAW != 0 || e.prev_hash != l.head {
            return err(
                "chain_break",
                e.sequence,
                format!("prev_hash {} is not the previous entry's hash {}", b.prev_hash_string(e), to_hex(&l.head)),
            );
        }
        // 3. hash
        if e.flags & F_HASH_OK == 0 {
            let row = b.row(i);
            let computed = to_hex(&entry_hash(&row.entry.fields()));
            return err("hash_mismatch", e.sequence, format!("stored hash {}, computed {computed}", row.hash));
        }
        // 4. key
        let kid = b.str(e.key_id);
        match self.resolve_key(key, e.time_us) {
            KeyRes::Unknown => return err("unknown_key", e.sequence, format!("key {kid} is not in the keys file")),
            KeyRes::NotValid => {
                return err("key_not_valid", e.sequence, format!("key {kid} was not valid at time_us {}", e.time_us));
            }
            KeyRes::Valid(_) => {}
        }
        // 5. signature (verified in bulk before this pass)
        if bad_sig {
            return err("bad_signature", e.sequence, format!("signature does not verify with key {kid}"));
        }
        // 6. domain
        let phase = b.str(e.phase_str);
        let invalid = |what: String| err("invalid_entry", e.sequence, what);
        if !(1..=MAX_AMOUNT).contains(&e.amount) {
            return invalid(format!("amount {} is not in [1, 2^53-1]", e.amount));
        }
        if e.debit == e.credit {
            return invalid("debit and credit accounts are the same".into());
        }
        if e.phase == Phase::Unknown {
            return invalid(format!("unknown phase {}", py_repr(phase)));
        }
        if (e.phase == Phase::Pending) != (e.flags & F_EXP != 0) {
            return invalid("expires_at_us is required on pending entries only".into());
        }
        if e.phase.resolves() && e.ref_.is_null() {
            return invalid(format!("a {phase} entry needs a ref"));
        }
        if e.v != 1 {
            return invalid(format!("v is {}, not 1", e.v));
        }
        // 7. reference
        let mut resolved: Option<HoldKey> = None;
        if e.phase.resolves() {
            let d_existing = self.account_of(b, li, e.debit, slot_map);
            let c_existing = self.account_of(b, li, e.credit, slot_map);
            let l = &self.ledgers[li];
            let key = Self::hold_key(b, &e.ref_);
            let r = b.tid_string(&e.ref_).unwrap_or_default();
            let bad = |what: String| err("bad_reference", e.sequence, what);
            let Some(h) = l.holds.get(&key) else {
                return bad(format!("{phase} of {r}, which is not an open hold"));
            };
            if d_existing != Some(h.debit) || c_existing != Some(h.credit) {
                return bad(format!("{phase} accounts differ from hold {r}"));
            }
            if e.phase == Phase::Post && (e.amount > h.amount || e.time_us >= h.expires) {
                return bad(format!("post exceeds hold {r} or comes after its expiry"));
            }
            if e.phase != Phase::Post && e.amount != h.amount {
                return bad(format!("{phase} amount differs from hold {r}"));
            }
            if e.phase == Phase::Expire && e.time_us < h.expires {
                return bad(format!("hold {r} expired before its expiry time"));
            }
            resolved = Some(key);
        }
        // 7. reference: a refund names an earlier sale, reverses its accounts, takes no more than is left.
        let refund = e.phase == Phase::Single && !e.ref_.is_null();
        if refund {
            let d_existing = self.account_of(b, li, e.debit, slot_map);
            let c_existing = self.account_of(b, li, e.credit, slot_map);
            let l = &self.ledgers[li];
            let r = b.tid_string(&e.ref_).unwrap_or_default();
            let bad = |what: String| err("bad_reference", e.sequence, what);
            let Some(o) = l.originals.get(&Self::hold_key(b, &e.ref_)) else {
                return bad(format!("refund of {r}, which is not a refundable transfer of the ledger"));
            };
            if d_existing != Some(o.credit) || c_existing != Some(o.debit) {
                return bad(format!("refund accounts are not those of {r} reversed"));
            }
            if e.amount > o.remaining {
                return bad(format!("refund exceeds what is left of {r}"));
            }
        }
        let posted = matches!(e.phase, Phase::Single | Phase::Post);
        let refundable = !refund && posted && REFUNDABLE_KINDS.contains(&b.str(e.kind));
        // Apply (as the oracle does, the effect stays even if the overdraft check below fails).
        let di = self.account_or_create(b, li, e.debit, slot_map) as usize;
        let ci = self.account_or_create(b, li, e.credit, slot_map) as usize;
        let l = &mut self.ledgers[li];
        let a = e.amount as i128;
        match e.phase {
            Phase::Single => {
                l.accounts[di].bal[0] += a;
                l.accounts[ci].bal[1] += a;
                if refund {
                    l.originals.get_mut(&Self::hold_key(b, &e.ref_)).unwrap().remaining -= e.amount;
                }
            }
            Phase::Pending => {
                l.accounts[di].bal[2] += a;
                l.accounts[ci].bal[3] += a;
                let hk = Self::hold_key(b, &e.transfer_id);
                l.holds.insert(hk, Hold { debit: di as u32, credit: ci as u32, amount: e.amount, expires: e.expires_at_us });
            }
            Phase::Post | Phase::Void | Phase::Expire => {
                let h = l.holds.remove(&resolved.unwrap()).unwrap();
                let held = h.amount as i128;
                l.accounts[di].bal[2] -= held;
                l.accounts[ci].bal[3] -= held;
                if e.phase == Phase::Post {
                    l.accounts[di].bal[0] += a;
                    l.accounts[ci].bal[1] += a;
                }
            }
            Phase::Unknown => unreachable!(),
        }
        if refundable {
            let o = Original { debit: di as u32, credit: ci as u32, remaining: e.amount };
            l.originals.insert(Self::hold_key(b, &e.transfer_id), o);
        }
        // 8. overdraft (only the debit side can lose funds)
        let d = &l.accounts[di];
        if d.non_negative && d.bal[0] + d.bal[2] > d.bal[1] {
            let detail = format!("{} would go below zero", d.name);
            return Err(Stop::Error(VerifyError { ledger: l.name.clone(), sequence: e.sequence, code: "overdraft", detail }));
        }
        l.next = e.sequence + 1;
        l.head_sequence = e.sequence;
        l.head = e.hash;
        l.entries += 1;
        Ok(())
    }

    /// The report. Decides `gap` vs `reordered` and checks `zero_sum`; the outcome is then final
    /// (as in the oracle, rows fed afterwards are ignored). May be called more than once.
    pub fn finish(&mut self) -> Report {
        if let Some(g) = self.gap.take() {
            let (code, detail) = if g.seen {
                ("reordered", format!("entry {} is out of order", g.expected))
            } else {
                ("gap", format!("entry {} is missing", g.expected))
            };
            self.error = Some(VerifyError { ledger: g.ledger, sequence: g.expected, code, detail });
        }
        if self.error.is_none() {
            let mut order: Vec<&LedgerState> = self.ledgers.iter().collect();
            order.sort_by(|a, b| a.name.cmp(&b.name));
            for l in order {
                let mut posted: i128 = 0;
                let mut pending: i128 = 0;
                for a in &l.accounts {
                    posted += a.bal[1] - a.bal[0];
                    pending += a.bal[3] - a.bal[2];
                }
                if posted != 0 || pending != 0 {
                    self.error = Some(VerifyError {
                        ledger: l.name.clone(),
                        sequence: l.head_sequence,
                        code: "zero_sum",
                        detail: "balances do not sum to zero".into(),
                    });
                    break;
                }
            }
        }
        let error = self.error.clone();
        Report {
            ok: error.is_none(),
            entries: self.entries,
            error,
            ledgers: self
                .ledgers
                .iter()
                .map(|l| LedgerReport {
                    ledger: l.name.clone(),
                    entries: l.entries,
                    head_sequence: l.head_sequence,
                    head_hash: to_hex(&l.head),
                    balances: l.accounts.iter().map(|a| (a.name.clone(), a.bal)).collect(),
                    open_holds: l.holds.len(),
                })
                .collect(),
        }
    }
}

/// Parses and verifies a JSONL export.
pub fn verify_export(path: &str, keys: &[KeySpec]) -> Result<Report, crate::batch::JsonlError> {
    let b = EntryBatch::from_jsonl_path(path)?;
    let mut v = ChainVerifier::new(keys);
    v.feed_batch(&b);
    Ok(v.finish())
}
