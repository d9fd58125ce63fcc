//! Streaming chain verifier: spec "Verification", checks 1..9 per entry in stream order, the
//! first failure of the stream wins, then the end-of-stream checks (checkpoints, linked groups).
//!
//! Signatures of a fed chunk are batch-verified in parallel *before* the sequential pass; that
//! is state-independent (key, time, stored hash, signature), so the sequential pass only asks
//! "is this the first entry whose signature is bad?" and reports exactly what a purely
//! sequential check would.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::batch::{CEntry, EntryBatch, Phase, Tid, F_EXP, F_FORMAT_BAD, F_HASH_OK, F_PREV_RAW, F_SIG_RAW};
use crate::canonical::{entry_hash, SealedEntry};
use crate::crypto::{first_invalid, verifying_key, SigCheck};
use crate::merkle::{empty_root, leaf_hash, node_hash};
use crate::replay::Counters;
use crate::util::{parse_lower_hex, py_repr, to_hex, FxHashMap, FxHashSet};
use crate::vocab::format_problem;

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

/// A signed checkpoint the export must reach and agree with (its note already verified).
#[derive(Clone, Debug)]
pub struct CheckpointSpec {
    pub ledger: String,
    pub tree_size: u64,
    pub root: [u8; 32],
}

/// RFC 9162 root of a growing prefix of leaves, kept as the right edge of the tree: the roots of
/// its perfect subtrees, largest first (at most 64 of them).
#[derive(Clone, Debug, Default)]
struct CompactRange {
    subtrees: Vec<(u64, [u8; 32])>,
}

impl CompactRange {
    fn push(&mut self, entry_hash: &[u8; 32]) {
        self.subtrees.push((1, leaf_hash(entry_hash)));
        while let [.., (a, left), (b, right)] = self.subtrees[..] {
            if a != b {
                break;
            }
            self.subtrees.truncate(self.subtrees.len() - 2);
            self.subtrees.push((a + b, node_hash(&left, &right)));
        }
    }

    fn root(&self) -> [u8; 32] {
        let mut it = self.subtrees.iter().rev();
        let Some(&(_, mut root)) = it.next() else { return empty_root() };
        for (_, left) in it {
            root = node_hash(left, &root);
        }
        root
    }
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
    /// Interned by the verifier: a post, void or expire keeps its hold's kind.
    kind: u32,
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
    /// Refundable transfers by id: one entry per sale.
    originals: FxHashMap<HoldKey, Original>,
    /// Every transfer id of the ledger (each is used once).
    transfer_ids: FxHashSet<[u8; 16]>,
    time_us: i64,
    /// Signed checkpoints not reached yet, smallest tree size last, and the growing tree.
    checkpoints: Vec<(u64, [u8; 32])>,
    tree: CompactRange,
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
            transfer_ids: FxHashSet::default(),
            time_us: i64::MIN,
            checkpoints: Vec::new(),
            tree: CompactRange::default(),
        }
    }
}

/// Key of a cross-city flow in a linked group: (from ledger, to ledger, phase, kind, amount), names
/// interned by the verifier. The `from` half credits `interop:<to>`, the `to` half debits
/// `interop:<from>`.
type Flow = (u32, u32, Phase, u32, i64);

/// The members of one linked group seen so far.
#[derive(Clone, Debug)]
struct GroupState {
    ledger: usize,
    sequence: i64,
    members: u32,
    /// +1 per `from` half, -1 per `to` half: a complete group ends with every count at zero.
    flows: FxHashMap<Flow, i64>,
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
    /// Kinds and city names, interned across batches.
    names: FxHashMap<Box<str>, u32>,
    checkpoints: HashMap<String, Vec<(u64, [u8; 32])>>,
    groups: Vec<GroupState>,
    group_index: FxHashMap<[u8; 16], usize>,
    /// (ledger index, sequence) of the last entry that passed every check.
    last: Option<(usize, i64)>,
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
            names: FxHashMap::default(),
            checkpoints: HashMap::new(),
            groups: Vec::new(),
            group_index: FxHashMap::default(),
            last: None,
        };
        for k in keys {
            v.key_index.insert(k.key_id.clone(), v.keys.len());
            v.keys.push(Key { vk: verifying_key(&k.public_key), from: k.valid_from_us, until: k.valid_until_us });
        }
        v
    }

    /// Adds signed checkpoints: the stream must reach each one's tree size, and its first
    /// `tree_size` entries of the ledger must have the checkpoint's root.
    pub fn with_checkpoints(mut self, checkpoints: &[CheckpointSpec]) -> Self {
        for c in checkpoints {
            self.checkpoints.entry(c.ledger.clone()).or_default().push((c.tree_size, c.root));
        }
        for sizes in self.checkpoints.values_mut() {
            sizes.sort_by(|a, b| b.cmp(a));
            sizes.dedup();
        }
        self
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.names.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.insert(s.into(), id);
        id
    }

    /// The stream ended at a line that could not be read (`detail` names it): `malformed_line`,
    /// named by the last entry read before it, unless an earlier entry already failed.
    pub fn malformed_line(&mut self, detail: String) {
        if self.stopped() {
            return;
        }
        let (ledger, sequence) = match self.last {
            Some((li, sequence)) => (self.ledgers[li].name.clone(), sequence),
            None => (String::new(), 0),
        };
        self.error = Some(VerifyError { ledger, sequence, code: "malformed_line", detail });
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
                    // A signature that is not 128 lowercase hex does not verify.
                    KeyRes::Valid(Some(vk)) if e.flags & F_SIG_RAW == 0 => SigCheck::Verify(vk, &e.hash, e.signature),
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
                            let mut state = LedgerState::new(name);
                            let sizes = self.checkpoints.get(name).map(|c| c.iter().filter(|c| c.0 > 0).copied().collect());
                            state.checkpoints = sizes.unwrap_or_default();
                            self.ledgers.push(state);
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
                Ok(()) => {
                    self.entries += 1;
                    self.last = Some((li, e.sequence));
                }
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
        // 6. domain: every member in its format, then the rules between members
        let phase = b.str(e.phase_str);
        let invalid = |what: String| err("invalid_entry", e.sequence, what);
        if e.flags & F_FORMAT_BAD != 0 {
            return invalid(format_problem(&b.row(i).as_ref()).unwrap_or_default());
        }
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
        // 7. transfer ids are never reused in a ledger (all are hex after check 6)
        if l.transfer_ids.contains(&e.transfer_id.bytes) {
            let t = b.tid_string(&e.transfer_id).unwrap_or_default();
            return err("reused_transfer_id", e.sequence, format!("transfer_id {t} was used by an earlier entry"));
        }
        // 8. time never goes backwards within a chain
        if e.time_us < l.time_us {
            return err("time_reversed", e.sequence, format!("time_us {} is before the previous entry's {}", e.time_us, l.time_us));
        }
        let kind = self.intern(b.str(e.kind));
        // 9. reference
        let mut resolved: Option<HoldKey> = None;
        if e.phase.resolves() {
            let d_existing = self.account_of(b, li, e.debit, slot_map);
            let c_existing = self.account_of(b, li, e.credit, slot_map);
            let l = &self.ledgers[li];
            let err = |code: &'static str, sequence: i64, detail: String| {
                Err(Stop::Error(VerifyError { ledger: l.name.clone(), sequence, code, detail }))
            };
            let key = Self::hold_key(b, &e.ref_);
            let r = b.tid_string(&e.ref_).unwrap_or_default();
            let bad = |what: String| err("bad_reference", e.sequence, what);
            let Some(h) = l.holds.get(&key) else {
                return bad(format!("{phase} of {r}, which is not an open hold"));
            };
            if d_existing != Some(h.debit) || c_existing != Some(h.credit) {
                return bad(format!("{phase} accounts differ from hold {r}"));
            }
            if h.kind != kind {
                return bad(format!("{phase} kind differs from hold {r}"));
            }
            if e.phase == Phase::Post && (e.amount > h.amount || e.time_us >= h.expires) {
                return bad(format!("post exceeds hold {r} or comes after its expiry"));
            }
            if e.phase != Phase::Post && e.amount != h.amount {
                return bad(format!("{phase} amount differs from hold {r}"));
            }
            if e.phase == Phase::Void && e.time_us >= h.expires {
                return bad(format!("void of hold {r} comes after its expiry"));
            }
            if e.phase == Phase::Expire && e.time_us < h.expires {
                return bad(format!("hold {r} expired before its expiry time"));
            }
            resolved = Some(key);
        }
        // 9. reference: a refund names an earlier sale, reverses its accounts, takes no more than is left.
        let refund = e.phase == Phase::Single && !e.ref_.is_null();
        if refund {
            let d_existing = self.account_of(b, li, e.debit, slot_map);
            let c_existing = self.account_of(b, li, e.credit, slot_map);
            let l = &self.ledgers[li];
            let err = |code: &'static str, sequence: i64, detail: String| {
                Err(Stop::Error(VerifyError { ledger: l.name.clone(), sequence, code, detail }))
            };
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
                let hold = Hold { debit: di as u32, credit: ci as u32, amount: e.amount, expires: e.expires_at_us, kind };
                l.holds.insert(hk, hold);
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
        l.transfer_ids.insert(e.transfer_id.bytes);
        // 10. overdraft (only the debit side can lose funds)
        let d = &l.accounts[di];
        if d.non_negative && d.bal[0] + d.bal[2] > d.bal[1] {
            let detail = format!("{} would go below zero", d.name);
            return Err(Stop::Error(VerifyError { ledger: l.name.clone(), sequence: e.sequence, code: "overdraft", detail }));
        }
        l.next = e.sequence + 1;
        l.head_sequence = e.sequence;
        l.head = e.hash;
        l.time_us = e.time_us;
        l.entries += 1;
        // 11. a signed checkpoint of this size must have the root of the entries so far
        if !l.checkpoints.is_empty() {
            l.tree.push(&e.hash);
            while let Some(&(size, root)) = l.checkpoints.last().filter(|c| c.0 == l.entries) {
                l.checkpoints.pop();
                if l.tree.root() != root {
                    let detail = format!("the root of entries 1..{size} is not the signed checkpoint's root");
                    return Err(Stop::Error(VerifyError { ledger: l.name.clone(), sequence: e.sequence, code: "checkpoint_mismatch", detail }));
                }
            }
        }
        if e.group != crate::batch::NULL_ID {
            self.track_group(b, e, li, kind);
        }
        Ok(())
    }

    /// Records an accepted member of a linked group and its cross-city flows.
    fn track_group(&mut self, b: &EntryBatch, e: &CEntry, li: usize, kind: u32) {
        let Some(id) = parse_lower_hex::<16>(b.str(e.group)) else { return };
        let here = self.intern(&self.ledgers[li].name.clone());
        let mut flows: Vec<(Flow, i64)> = Vec::new();
        if let Some(city) = b.account_name(e.credit).strip_prefix("interop:") {
            flows.push(((here, self.intern(city), e.phase, kind, e.amount), 1));
        }
        if let Some(city) = b.account_name(e.debit).strip_prefix("interop:") {
            flows.push(((self.intern(city), here, e.phase, kind, e.amount), -1));
        }
        let gi = *self.group_index.entry(id).or_insert_with(|| {
            self.groups.push(GroupState { ledger: li, sequence: e.sequence, members: 0, flows: FxHashMap::default() });
            self.groups.len() - 1
        });
        let g = &mut self.groups[gi];
        g.members += 1;
        for (flow, n) in flows {
            *g.flows.entry(flow).or_insert(0) += n;
        }
    }

    /// End of stream, nothing failed before: every signed checkpoint reached (`truncated`), every
    /// linked group complete (`incomplete_group`).
    fn end_of_stream(&self) -> Option<VerifyError> {
        let mut ledgers: Vec<&String> = self.checkpoints.keys().collect();
        ledgers.sort();
        for name in ledgers {
            let state = self.ledger_index.get(name).map(|&li| &self.ledgers[li]);
            let all = &self.checkpoints[name];
            let (entries, head, left) = match state {
                Some(l) => (l.entries, l.head_sequence, &l.checkpoints),
                None => (0, 0, all),
            };
            if all.iter().any(|&(size, root)| size == 0 && root != empty_root()) {
                let detail = "the empty tree's root is not the signed checkpoint's root".to_string();
                return Some(VerifyError { ledger: name.clone(), sequence: 0, code: "checkpoint_mismatch", detail });
            }
            if let Some(&(size, _)) = left.iter().rev().find(|(size, _)| *size > entries) {
                let detail = format!("the export ends at #{head}, a signed checkpoint has size {size}");
                return Some(VerifyError { ledger: name.clone(), sequence: head, code: "truncated", detail });
            }
        }
        let g = self.groups.iter().find(|g| g.members < 2 || g.flows.values().any(|&n| n != 0))?;
        let detail = if g.members < 2 {
            "the linked group has no other member".to_string()
        } else {
            "a cross-city half of the linked group has no counterpart in the other ledger".to_string()
        };
        Some(VerifyError { ledger: self.ledgers[g.ledger].name.clone(), sequence: g.sequence, code: "incomplete_group", detail })
    }

    /// The report. Decides `gap` vs `reordered`, then runs the end-of-stream checks; the outcome is then final
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
            self.error = self.end_of_stream();
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

/// Parses and verifies a JSONL export: its entries up to the first malformed line, then that line.
pub fn verify_export(path: &str, keys: &[KeySpec], checkpoints: &[CheckpointSpec]) -> Result<Report, std::io::Error> {
    let b = EntryBatch::read_jsonl(std::fs::File::open(path)?, 16 << 20).map_err(|e| match e {
        crate::batch::JsonlError::Io(e) => e,
        crate::batch::JsonlError::Parse(m) => std::io::Error::other(m),
    })?;
    let mut v = ChainVerifier::new(keys).with_checkpoints(checkpoints);
    v.feed_batch(&b);
    if let Some(m) = &b.malformed {
        v.malformed_line(m.clone());
    }
    Ok(v.finish())
}
