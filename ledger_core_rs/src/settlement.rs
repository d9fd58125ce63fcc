//! Settlement math (issue 6): a period's posted movements per account, and the netting of
//! inter-city obligations. Pure functions over borrowed inputs; `ledger.oracle` is their twin.

use std::collections::BTreeMap;

use crate::batch::Phase;
use crate::util::{py_repr, FxHashMap};
use crate::verify::MAX_AMOUNT;

/// The fields of a journal entry that settlement reads.
#[derive(Clone, Copy, Debug)]
pub struct Posting<'a> {
    pub ledger: &'a str,
    pub debit_account: &'a str,
    pub credit_account: &'a str,
    pub amount_points: i64,
    pub phase: &'a str,
    pub time_us: i64,
}

/// (ledger, account, debits_points, credits_points).
pub type Movement<'a> = (&'a str, &'a str, i128, i128);

/// Posted debits and credits per (ledger, account) of the entries with `since_us <= time_us <
/// until_us`, sorted by (ledger, account). Only `single` and `post` move posted balances: a
/// `pending` only reserves, and `void`/`expire` release a reservation. Every entry is validated,
/// in the period or not, so that an error does not depend on the period asked for.
pub fn movements<'a>(entries: &[Posting<'a>], since_us: i64, until_us: i64) -> Result<Vec<Movement<'a>>, String> {
    if since_us > until_us {
        return Err(format!("since_us {since_us} is after until_us {until_us}"));
    }
    // One map per ledger: a period's entries come from one or a few ledgers, and a lookup then
    // compares only the account name (names are scattered in memory: comparisons miss the cache).
    let mut ledgers: FxHashMap<&'a str, FxHashMap<&'a str, [i128; 2]>> = FxHashMap::default();
    for (i, e) in entries.iter().enumerate() {
        if !(1..=MAX_AMOUNT).contains(&e.amount_points) {
            return Err(format!("entry {i}: amount {} is not in [1, 2^53-1]", e.amount_points));
        }
        let posts = match Phase::parse(e.phase) {
            Phase::Single | Phase::Post => true,
            Phase::Pending | Phase::Void | Phase::Expire => false,
            Phase::Unknown => return Err(format!("entry {i}: unknown phase {}", py_repr(e.phase))),
        };
        if !posts || e.time_us < since_us || e.time_us >= until_us {
            continue;
        }
        // i128: at most 2^53 per entry, so no realistic count of entries can overflow.
        let amount = e.amount_points as i128;
        let accounts = ledgers.entry(e.ledger).or_default();
        accounts.entry(e.debit_account).or_default()[0] += amount;
        accounts.entry(e.credit_account).or_default()[1] += amount;
    }
    let mut ledgers: Vec<_> = ledgers.into_iter().collect();
    ledgers.sort_unstable_by_key(|&(ledger, _)| ledger);
    let mut out: Vec<Movement<'a>> = Vec::new();
    for (ledger, accounts) in ledgers {
        let start = out.len();
        out.extend(accounts.into_iter().map(|(account, [d, c])| (ledger, account, d, c)));
        out[start..].sort_unstable_by_key(|m| m.1);
    }
    Ok(out)
}

/// (debtor_city, creditor_city, amount): what the debtor's residents redeemed at the creditor's
/// merchants in the period (credits to `interop:<creditor>` on the debtor's ledger), in any
/// integer unit (the caller values points in cents; rounding can give 0, which is allowed).
pub type Obligation<'a> = (&'a str, &'a str, i64);

/// Each city's net position, sorted by city (positive: the city is owed; they sum to zero).
pub type Positions<'a> = Vec<(&'a str, i128)>;

/// (payer, payee, amount) settlement transfers, sorted by (payer, payee).
pub type Transfers<'a> = Vec<(&'a str, &'a str, i128)>;

/// Net positions and bilateral netting: one transfer per unordered pair of cities whose
/// obligations do not cancel out, from the pair's net debtor to its net creditor. Bilateral
/// rather than multilateral so that each transfer still traces to the two cities' own ledgers.
pub fn net_positions<'a>(obligations: &[Obligation<'a>]) -> Result<(Positions<'a>, Transfers<'a>), String> {
    let mut positions: BTreeMap<&'a str, i128> = BTreeMap::new();
    // (a, b) with a < b: what a owes b, net of what b owes a.
    let mut pairs: BTreeMap<(&'a str, &'a str), i128> = BTreeMap::new();
    for (i, &(debtor, creditor, amount)) in obligations.iter().enumerate() {
        if amount < 0 {
            return Err(format!("obligation {i}: amount {amount} is negative"));
        }
        if debtor == creditor {
            return Err(format!("obligation {i}: {} cannot owe itself", py_repr(debtor)));
        }
        let amount = amount as i128;
        *positions.entry(debtor).or_default() -= amount;
        *positions.entry(creditor).or_default() += amount;
        if debtor < creditor {
            *pairs.entry((debtor, creditor)).or_default() += amount;
        } else {
            *pairs.entry((creditor, debtor)).or_default() -= amount;
        }
    }
    assert_eq!(positions.values().sum::<i128>(), 0, "net positions must sum to zero");
    let mut transfers: Transfers<'a> = pairs
        .into_iter()
        .filter(|&(_, net)| net != 0)
        .map(|((a, b), net)| if net > 0 { (a, b, net) } else { (b, a, -net) })
        .collect();
    transfers.sort_unstable();
    Ok((positions.into_iter().collect(), transfers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p<'a>(ledger: &'a str, d: &'a str, c: &'a str, amount: i64, phase: &'a str, t: i64) -> Posting<'a> {
        Posting { ledger, debit_account: d, credit_account: c, amount_points: amount, phase, time_us: t }
    }

    #[test]
    fn only_posted_phases_move() {
        let es = [
            p("a", "w", "m", 10, "single", 0),
            p("a", "w", "m", 20, "pending", 1),
            p("a", "w", "m", 15, "post", 2),
            p("a", "w", "m", 30, "pending", 3),
            p("a", "w", "m", 30, "void", 4),
            p("a", "w", "m", 40, "pending", 5),
            p("a", "w", "m", 40, "expire", 6),
        ];
        assert_eq!(movements(&es, 0, 10).unwrap(), vec![("a", "m", 0, 25), ("a", "w", 25, 0)]);
    }

    #[test]
    fn since_is_inclusive_until_exclusive() {
        let es = [p("a", "x", "y", 1, "single", 99), p("a", "x", "y", 2, "single", 100), p("a", "x", "y", 4, "single", 200)];
        assert_eq!(movements(&es, 100, 200).unwrap(), vec![("a", "x", 2, 0), ("a", "y", 0, 2)]);
        assert_eq!(movements(&es, 100, 100).unwrap(), vec![]);
        assert!(movements(&es, 101, 100).is_err());
    }

    #[test]
    fn sorted_by_ledger_then_account_and_sums_to_zero() {
        let es = [
            p("b", "w", "m", 3, "single", 0),
            p("a", "z", "w", 5, "single", 0),
            p("a", "w", "interop:b", 2, "single", 0),
        ];
        let m = movements(&es, 0, 1).unwrap();
        let keys: Vec<_> = m.iter().map(|x| (x.0, x.1)).collect();
        assert_eq!(keys, vec![("a", "interop:b"), ("a", "w"), ("a", "z"), ("b", "m"), ("b", "w")]);
        for ledger in ["a", "b"] {
            assert_eq!(m.iter().filter(|x| x.0 == ledger).map(|x| x.3 - x.2).sum::<i128>(), 0);
        }
    }

    #[test]
    fn bad_entries_are_errors_even_outside_the_period() {
        let err = movements(&[p("a", "x", "y", 0, "single", 0)], 5, 6).unwrap_err();
        assert_eq!(err, "entry 0: amount 0 is not in [1, 2^53-1]");
        assert!(movements(&[p("a", "x", "y", -3, "single", 0)], 0, 1).is_err());
        assert!(movements(&[p("a", "x", "y", MAX_AMOUNT + 1, "single", 0)], 0, 1).is_err());
        let err = movements(&[p("a", "x", "y", 1, "single", 0), p("a", "x", "y", 1, "posted", 0)], 0, 1).unwrap_err();
        assert_eq!(err, "entry 1: unknown phase 'posted'");
    }

    #[test]
    fn large_sums_do_not_overflow() {
        let es = vec![p("a", "x", "y", MAX_AMOUNT, "single", 0); 2048];
        let m = movements(&es, 0, 1).unwrap();
        assert_eq!(m[0].2, MAX_AMOUNT as i128 * 2048);
    }

    #[test]
    fn bilateral_netting() {
        let obligations = [("quebec", "levis", 100), ("levis", "quebec", 30), ("levis", "wendake", 50), ("wendake", "levis", 50), ("quebec", "levis", 5)];
        let (positions, transfers) = net_positions(&obligations).unwrap();
        assert_eq!(positions, vec![("levis", 75), ("quebec", -75), ("wendake", 0)]);
        assert_eq!(transfers, vec![("quebec", "levis", 75)]);
    }

    #[test]
    fn netting_sums_to_zero_and_transfers_settle_positions() {
        let obligations = [("a", "b", 10), ("b", "c", 20), ("c", "a", 5), ("c", "b", 7), ("d", "a", 0)];
        let (positions, transfers) = net_positions(&obligations).unwrap();
        assert_eq!(positions.iter().map(|x| x.1).sum::<i128>(), 0);
        assert_eq!(positions, vec![("a", -5), ("b", -3), ("c", 8), ("d", 0)]);
        assert_eq!(transfers, vec![("a", "b", 10), ("b", "c", 13), ("c", "a", 5)]);
        for &(city, net) in &positions {
            let received: i128 = transfers.iter().filter(|t| t.1 == city).map(|t| t.2).sum();
            let paid: i128 = transfers.iter().filter(|t| t.0 == city).map(|t| t.2).sum();
            assert_eq!(received - paid, net);
        }
    }

    #[test]
    fn netting_rejects_bad_obligations() {
        assert_eq!(net_positions(&[("a", "b", -1)]).unwrap_err(), "obligation 0: amount -1 is negative");
        assert_eq!(net_positions(&[("a", "b", 1), ("a", "a", 1)]).unwrap_err(), "obligation 1: 'a' cannot owe itself");
        assert_eq!(net_positions(&[]).unwrap(), (vec![], vec![]));
    }
}
