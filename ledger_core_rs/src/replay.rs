//! Pure balance replay (spec "Balance replay" table), without any verification.

use crate::batch::{EntryBatch, Phase, Tid};
use crate::util::FxHashMap;

/// Counters of one account: (debits_posted, credits_posted, debits_pending, credits_pending).
pub type Counters = [i128; 4];

/// Per ledger (in order of first appearance): its accounts (in order of first appearance).
pub type Balances = Vec<(String, Vec<(String, Counters)>)>;

/// Replays every entry of `b` in stream order. Only a `post`/`void`/`expire` whose `ref` is not
/// an open hold of its ledger is an error; the table's other rules are not checked here (that is
/// the verifier's job). A resolving entry releases the hold's amount from pending (for a valid
/// `void`/`expire` that is its own amount) and a `post` then posts its own amount. Like the
/// oracle, any phase other than `pending`/`post`/`void`/`expire` posts like `single`.
pub fn replay(b: &EntryBatch) -> Result<Balances, String> {
    let bal = replay_slots(b)?;
    let mut per_ledger: FxHashMap<u32, usize> = FxHashMap::default();
    let mut out: Balances = Vec::with_capacity(b.ledgers.len());
    for &l in &b.ledgers {
        per_ledger.insert(l, out.len());
        out.push((b.str(l).to_string(), Vec::new()));
    }
    for (slot, counters) in b.slots.iter().zip(bal) {
        let i = per_ledger[&slot.ledger];
        out[i].1.push((b.str(slot.account).to_string(), counters));
    }
    Ok(out)
}

/// The replay itself: the counters of every slot of `b` (see `EntryBatch::slots`).
pub fn replay_slots(b: &EntryBatch) -> Result<Vec<Counters>, String> {
    let mut bal: Vec<Counters> = vec![[0; 4]; b.slots.len()];
    let mut holds: FxHashMap<(u32, Tid), i64> = FxHashMap::default();
    for e in &b.entries {
        let a = e.amount as i128;
        let d = e.debit as usize;
        let c = e.credit as usize;
        match e.phase {
            Phase::Single | Phase::Unknown => {
                bal[d][0] += a;
                bal[c][1] += a;
            }
            Phase::Pending => {
                bal[d][2] += a;
                bal[c][3] += a;
                holds.insert((e.ledger, e.transfer_id), e.amount);
            }
            Phase::Post | Phase::Void | Phase::Expire => {
                let Some(held) = holds.remove(&(e.ledger, e.ref_)) else {
                    let r = b.tid_string(&e.ref_).unwrap_or_else(|| "None".into());
                    return Err(format!("{} #{}: {r} is not an open hold", b.ledger_name(e), e.sequence));
                };
                bal[d][2] -= held as i128;
                bal[c][3] -= held as i128;
                if e.phase == Phase::Post {
                    bal[d][0] += a;
                    bal[c][1] += a;
                }
            }
        }
    }
    Ok(bal)
}
