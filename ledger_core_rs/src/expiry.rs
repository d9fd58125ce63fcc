//! Expiry, oldest lot first (issue 6): how many of an account's points, earned before a cutoff,
//! are still unspent. `ledger.oracle.expire_lots` is the twin.

use std::collections::VecDeque;

use crate::util::{py_repr, FxHashMap};
use crate::verify::MAX_AMOUNT;

/// (account, time_us, delta_points). A positive delta is an earning: a lot dated `time_us`. A
/// negative delta consumes the oldest points: a spend, a pending reservation (it holds the oldest
/// points too) or an earlier breakage transfer, which is what makes a re-run expire nothing.
pub type LotEvent<'a> = (&'a str, i64, i64);

#[derive(Default)]
struct Lots {
    /// (time_us, points_left) of the lots not yet consumed, oldest first.
    queue: VecDeque<(i64, i64)>,
    left_points: i128,
    newest_us: Option<i64>,
}

impl Lots {
    fn consume(&mut self, mut points: i64) {
        while points > 0 {
            let lot = self.queue.front_mut().expect("the caller checked left_points");
            let taken = lot.1.min(points);
            lot.1 -= taken;
            points -= taken;
            if lot.1 == 0 {
                self.queue.pop_front();
            }
        }
    }
}

/// Per account (sorted; accounts with nothing to expire omitted): the points left of its lots
/// dated strictly before `cutoff_us`, after every consumption, oldest lot first.
///
/// Accounts may be interleaved; each account's events must be in journal order, which is
/// checked for its lots (dates never go back) because only then is first-in the oldest. A
/// consumption larger than what the account has left is an error naming it: the ledger never lets
/// a wallet go negative, so the events are incomplete.
pub fn expire_lots<'a>(events: &[LotEvent<'a>], cutoff_us: i64) -> Result<Vec<(&'a str, i128)>, String> {
    let mut accounts: FxHashMap<&'a str, Lots> = FxHashMap::default();
    for (i, &(account, time_us, delta)) in events.iter().enumerate() {
        if delta == 0 || delta.unsigned_abs() > MAX_AMOUNT as u64 {
            return Err(format!("event {i}: delta {delta} is 0 or beyond ±(2^53-1)"));
        }
        let lots = accounts.entry(account).or_default();
        if delta > 0 {
            if let Some(newest_us) = lots.newest_us.filter(|&n| time_us < n) {
                return Err(format!("event {i}: {} earns a lot dated {time_us} after one dated {newest_us}; events must be in journal order", py_repr(account)));
            }
            lots.newest_us = Some(time_us);
            lots.queue.push_back((time_us, delta));
            lots.left_points += delta as i128;
        } else {
            let points = -delta;
            if points as i128 > lots.left_points {
                return Err(format!("event {i}: {} consumes {points} points but only {} remain", py_repr(account), lots.left_points));
            }
            lots.consume(points);
            lots.left_points -= points as i128;
        }
    }
    let mut out: Vec<(&'a str, i128)> = accounts
        .into_iter()
        .map(|(account, lots)| {
            let expired: i128 = lots.queue.iter().take_while(|lot| lot.0 < cutoff_us).map(|lot| lot.1 as i128).sum();
            (account, expired)
        })
        .filter(|&(_, expired)| expired > 0)
        .collect();
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "citizen:r1:wallet";

    #[test]
    fn oldest_lot_first_with_partial_consumption() {
        // Lots 100 @10 and 50 @20; spending 120 empties the first lot and takes 20 of the second.
        let events = [(W, 10, 100), (W, 20, 50), (W, 30, -120)];
        assert_eq!(expire_lots(&events, 21).unwrap(), vec![(W, 30)]);
        assert_eq!(expire_lots(&events, 20).unwrap(), vec![]); // the 10 lot is spent
        assert_eq!(expire_lots(&events, 5).unwrap(), vec![]);
    }

    #[test]
    fn refund_is_a_new_lot() {
        // A refund of a spend credits the wallet again: a lot dated when it happened.
        let events = [(W, 10, 100), (W, 20, -100), (W, 40, 60)];
        assert_eq!(expire_lots(&events, 30).unwrap(), vec![]);
        assert_eq!(expire_lots(&events, 41).unwrap(), vec![(W, 60)]);
    }

    #[test]
    fn reservations_hold_the_oldest_points() {
        let events = [(W, 10, 100), (W, 20, 100), (W, 25, -30)];
        assert_eq!(expire_lots(&events, 15).unwrap(), vec![(W, 70)]);
    }

    #[test]
    fn overspend_is_an_error_naming_the_account() {
        let events = [(W, 10, 100), ("citizen:r2:wallet", 10, 5), (W, 20, -101)];
        assert_eq!(expire_lots(&events, 15).unwrap_err(), "event 2: 'citizen:r1:wallet' consumes 101 points but only 100 remain");
        assert!(expire_lots(&[(W, 10, -1)], 15).is_err());
    }

    #[test]
    fn rerun_after_breakage_expires_nothing() {
        let mut events = vec![(W, 10, 100), ("org:o1", 12, 40), (W, 20, 50), (W, 30, -30), ("org:o1", 40, 7)];
        let expired = expire_lots(&events, 25).unwrap();
        assert_eq!(expired, vec![("citizen:r1:wallet", 120), ("org:o1", 40)]);
        for &(account, points) in &expired {
            events.push((account, 50, -(points as i64)));
        }
        assert_eq!(expire_lots(&events, 25).unwrap(), vec![]);
        assert_eq!(expire_lots(&events, 60).unwrap(), vec![("org:o1", 7)]);
    }

    #[test]
    fn interleaved_accounts_keep_their_own_order() {
        let events = [(W, 10, 5), ("b", 1, 3), (W, 11, 5), ("b", 2, -1), (W, 12, -6)];
        assert_eq!(expire_lots(&events, 100).unwrap(), vec![("b", 2), (W, 4)]);
    }

    #[test]
    fn bad_events_are_errors() {
        assert!(expire_lots(&[(W, 10, 0)], 15).is_err());
        assert!(expire_lots(&[(W, 10, MAX_AMOUNT + 1)], 15).is_err());
        assert!(expire_lots(&[(W, 10, i64::MIN)], 15).is_err());
        let err = expire_lots(&[(W, 10, 1), (W, 9, 1)], 15).unwrap_err();
        assert!(err.starts_with("event 1: 'citizen:r1:wallet' earns a lot dated 9 after one dated 10"), "{err}");
        // Consumptions carry no date constraint (the caller appends open reservations last).
        assert_eq!(expire_lots(&[(W, 10, 2), (W, 1, -1)], 15).unwrap(), vec![(W, 1)]);
    }
}
