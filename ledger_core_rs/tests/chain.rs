//! Self-contained chain tests (no vectors file needed): a tiny sealed chain and each tamper case.

use ledger_core_rs::batch::EntryBatch;
use ledger_core_rs::canonical::{Entry, SealedEntry};
use ledger_core_rs::crypto::{key_id, public_key, seal, sign_hash, signing_key};
use ledger_core_rs::replay::replay;
use ledger_core_rs::util::{to_hex, FxHashMap};
use ledger_core_rs::verify::{ChainVerifier, KeySpec, Report};

const SEED: [u8; 32] = [42; 32];
const OTHER: [u8; 32] = [7; 32];
const T0: i64 = 1_767_225_600_000_000;

#[allow(clippy::too_many_arguments)]
fn e(
    n: u32,
    phase: &str,
    d: &str,
    c: &str,
    amount: i64,
    r: Option<u32>,
    exp: Option<i64>,
    t: i64,
) -> Entry {
    Entry {
        v: 1,
        ledger: "brossard".into(),
        sequence: 0,
        transfer_id: format!("{n:032x}"),
        kind: "k".into(),
        phase: phase.into(),
        debit_account: d.into(),
        credit_account: c.into(),
        amount,
        ref_: r.map(|x| format!("{x:032x}")),
        group: None,
        expires_at_us: exp,
        time_us: t,
        prev_hash: String::new(),
    }
}

fn chain(specs: Vec<Entry>, seed: &[u8; 32]) -> Vec<SealedEntry> {
    let mut es: Vec<Entry> = specs.into_iter().enumerate().map(|(i, mut x)| {
        x.sequence = i as i64 + 1;
        x
    }).collect();
    let sk = signing_key(seed);
    let kid = key_id(&public_key(seed));
    let heads: FxHashMap<String, String> = es.iter().map(|x| (x.ledger.clone(), "0".repeat(64))).collect();
    let sealed = seal(&mut es, &heads, &sk).expect("every ledger has a head");
    es.into_iter()
        .zip(sealed)
        .map(|(entry, (_, h, s))| SealedEntry { entry, hash: to_hex(&h), key_id: kid.clone(), signature: to_hex(&s) })
        .collect()
}

fn base() -> Vec<Entry> {
    let w = "citizen:r1:wallet";
    vec![
        e(1, "single", "program:funding", "program:budget", 1000, None, None, T0),
        e(2, "single", "program:budget", w, 300, None, None, T0 + 1),
        e(3, "pending", w, "merchant:m:redeemed", 200, None, Some(T0 + 2 + 10_000_000), T0 + 2),
        e(4, "post", w, "merchant:m:redeemed", 150, Some(3), None, T0 + 3),
        e(5, "pending", w, "merchant:m:redeemed", 50, None, Some(T0 + 4 + 10_000_000), T0 + 4),
        e(6, "void", w, "merchant:m:redeemed", 50, Some(5), None, T0 + 5),
        e(7, "single", "program:budget", w, 10, None, None, T0 + 6),
    ]
}

fn keys() -> Vec<KeySpec> {
    let pk = public_key(&SEED);
    vec![KeySpec { key_id: key_id(&pk), public_key: pk.to_vec(), valid_from_us: T0, valid_until_us: None }]
}

fn verify(rows: &[SealedEntry]) -> Report {
    let mut v = ChainVerifier::new(&keys());
    v.feed_rows(rows);
    let r = v.finish();
    // Same result row by row.
    let mut v2 = ChainVerifier::new(&keys());
    for row in rows {
        v2.feed_rows(std::slice::from_ref(row));
    }
    assert_eq!(v2.finish(), r);
    r
}

fn err(r: &Report) -> Option<(&str, i64)> {
    r.error.as_ref().map(|e| (e.code, e.sequence))
}

fn resign(mut row: SealedEntry, seed: &[u8; 32]) -> SealedEntry {
    let h = ledger_core_rs::canonical::entry_hash(&row.entry.fields());
    row.hash = to_hex(&h);
    row.key_id = key_id(&public_key(seed));
    row.signature = to_hex(&sign_hash(&signing_key(seed), &h));
    row
}

fn line(r: &SealedEntry) -> String {
    let f = &r.entry;
    serde_json::json!({
        "v": f.v, "ledger": f.ledger, "sequence": f.sequence, "transfer_id": f.transfer_id, "kind": f.kind,
        "phase": f.phase, "debit_account": f.debit_account, "credit_account": f.credit_account,
        "amount": f.amount, "ref": f.ref_, "group": f.group, "expires_at_us": f.expires_at_us,
        "time_us": f.time_us, "prev_hash": f.prev_hash, "hash": r.hash, "key_id": r.key_id,
        "signature": r.signature,
    })
    .to_string()
}

#[test]
fn intact_chain_verifies_and_replays() {
    let rows = chain(base(), &SEED);
    let r = verify(&rows);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.entries, 7);
    let l = &r.ledgers[0];
    assert_eq!((l.head_sequence, l.head_hash.as_str(), l.open_holds), (7, rows[6].hash.as_str(), 0));
    let wallet = l.balances.iter().find(|(a, _)| a == "citizen:r1:wallet").unwrap().1;
    assert_eq!(wallet, [150, 310, 0, 0]);
    let b = EntryBatch::from_rows(&rows);
    let rep = replay(&b).unwrap();
    let (name, accounts) = &rep[0];
    assert_eq!(name, "brossard");
    for (a, c) in accounts {
        assert_eq!(Some(c), l.balances.iter().find(|(x, _)| x == a).map(|x| &x.1));
    }
    assert_eq!(b.leaf_hashes("brossard").unwrap().len(), 7);
}

#[test]
fn tamper_cases() {
    let rows = chain(base(), &SEED);
    let mut changed = rows.clone();
    changed[2].entry.amount = 201;
    assert_eq!(err(&verify(&changed)), Some(("hash_mismatch", 3)));

    let removed: Vec<_> = rows.iter().enumerate().filter(|(i, _)| *i != 3).map(|(_, r)| r.clone()).collect();
    assert_eq!(err(&verify(&removed)), Some(("gap", 4)));

    let mut swapped = rows.clone();
    swapped.swap(3, 4);
    assert_eq!(err(&verify(&swapped)), Some(("reordered", 4)));

    let mut dup = rows.clone();
    dup.insert(3, rows[2].clone());
    assert_eq!(err(&verify(&dup)), Some(("duplicate", 3)));

    let mut inserted = rows.clone();
    let mut forged = rows[1].clone();
    forged.entry.sequence = 3;
    forged.entry.prev_hash = rows[1].hash.clone();
    inserted.insert(2, resign(forged, &SEED));
    // A forged copy of #2 signed with the real key still reuses #2's transfer id.
    assert_eq!(err(&verify(&inserted)), Some(("reused_transfer_id", 3)));
    let mut forged = rows[1].clone();
    forged.entry.sequence = 3;
    forged.entry.prev_hash = rows[1].hash.clone();
    let mut inserted = rows.clone();
    inserted.insert(2, resign(forged, &OTHER));
    assert_eq!(err(&verify(&inserted)), Some(("unknown_key", 3)));

    let mut unknown = rows.clone();
    unknown[4] = resign(unknown[4].clone(), &OTHER);
    assert_eq!(err(&verify(&unknown)), Some(("unknown_key", 5)));

    let mut bad_sig = rows.clone();
    bad_sig[4].signature = rows[3].signature.clone();
    assert_eq!(err(&verify(&bad_sig)), Some(("bad_signature", 5)));

    let mut broken = rows.clone();
    broken[5].entry.prev_hash = "ab".repeat(32);
    broken[5] = resign(broken[5].clone(), &SEED);
    assert_eq!(err(&verify(&broken)), Some(("chain_break", 6)));

    let mut early = base();
    early[0].time_us = T0 - 1;
    assert_eq!(err(&verify(&chain(early, &SEED))), Some(("key_not_valid", 1)));

    let mut over = base();
    over[1].amount = 1001;
    assert_eq!(err(&verify(&chain(over, &SEED))), Some(("overdraft", 2)));

    let mut bad_ref = base();
    bad_ref[3].ref_ = Some(format!("{:032x}", 99));
    assert_eq!(err(&verify(&chain(bad_ref, &SEED))), Some(("bad_reference", 4)));

    let mut same = base();
    same[1].credit_account = "program:budget".into();
    assert_eq!(err(&verify(&chain(same, &SEED))), Some(("invalid_entry", 2)));

    let mut v2 = rows.clone();
    v2[6].entry.v = 2;
    v2[6] = resign(v2[6].clone(), &SEED);
    assert_eq!(err(&verify(&v2)), Some(("invalid_entry", 7)));
}

#[test]
fn writer_rules_and_formats() {
    let case = |f: &dyn Fn(&mut Vec<Entry>)| {
        let mut es = base();
        f(&mut es);
        err(&verify(&chain(es, &SEED))).map(|(c, s)| (c.to_string(), s))
    };
    let want = |c: &str, s: i64| Some((c.to_string(), s));
    assert_eq!(case(&|es| es[4].transfer_id = es[1].transfer_id.clone()), want("reused_transfer_id", 5));
    assert_eq!(case(&|es| es[6].time_us = T0 + 4), want("time_reversed", 7));
    assert_eq!(case(&|es| es[3].kind = "other".into()), want("bad_reference", 4));
    assert_eq!(case(&|es| es[5].time_us = T0 + 4 + 10_000_000), want("bad_reference", 6));
    assert_eq!(case(&|es| es[1].transfer_id = "NOT-HEX".into()), want("invalid_entry", 2));
    assert_eq!(case(&|es| es[1].kind = "Earn Civic!".into()), want("invalid_entry", 2));
    assert_eq!(case(&|es| es[1].credit_account = "memo".into()), want("invalid_entry", 2));
    assert_eq!(case(&|es| es[2].expires_at_us = Some(T0 + 2 + 1_500_000)), want("invalid_entry", 3));
    // A linked group needs a second member; a cross-city half needs its counterpart.
    assert_eq!(case(&|es| es[1].group = Some("ab".repeat(16))), want("incomplete_group", 2));
    let g = Some("cd".repeat(16));
    let pair = |es: &mut Vec<Entry>| {
        es[1].group = g.clone();
        es[6].group = g.clone();
    };
    assert_eq!(case(&pair), None);
    let cross = |es: &mut Vec<Entry>| {
        pair(es);
        es[6].credit_account = "interop:laval".into();
    };
    assert_eq!(case(&cross), want("incomplete_group", 2));
}

#[test]
fn checkpoints_and_malformed_lines() {
    use ledger_core_rs::merkle::root;
    use ledger_core_rs::verify::CheckpointSpec;
    let rows = chain(base(), &SEED);
    let leaves: Vec<[u8; 32]> = EntryBatch::from_rows(&rows).leaf_hashes("brossard").unwrap();
    let cp = |n: usize, r: [u8; 32]| CheckpointSpec { ledger: "brossard".into(), tree_size: n as u64, root: r };
    let run = |rows: &[SealedEntry], cps: &[CheckpointSpec]| {
        let mut v = ChainVerifier::new(&keys()).with_checkpoints(cps);
        v.feed_rows(rows);
        let r = v.finish();
        r.error.map(|e| (e.code, e.sequence))
    };
    let all: Vec<_> = (0..=7).map(|n| cp(n, root(&leaves[..n]))).collect();
    assert_eq!(run(&rows, &all), None);
    assert_eq!(run(&rows[..5], &all), Some(("truncated", 5)));
    assert_eq!(run(&rows, &[cp(4, root(&leaves[..3]))]), Some(("checkpoint_mismatch", 4)));
    assert_eq!(run(&rows, &[cp(0, root(&leaves[..1]))]), Some(("checkpoint_mismatch", 0)));
    // A line with a member the format does not have stops the stream there.
    let mut text: String = rows[..3].iter().map(|r| line(r) + "\n").collect();
    text.push_str(&line(&rows[3]).replacen('{', "{\"memo\":\"x\",", 1));
    let b = EntryBatch::read_jsonl(text.as_bytes(), 1 << 10).ok().unwrap();
    assert_eq!(b.len(), 3);
    assert!(b.malformed.as_deref().unwrap().starts_with("line 4: "), "{:?}", b.malformed);
    for bad in ["[1]", "{}", "\"x\""] {
        let b = EntryBatch::read_jsonl(bad.as_bytes(), 1 << 10).ok().unwrap();
        assert!(b.is_empty() && b.malformed.is_some(), "{bad}");
    }
}

#[test]
fn gap_decided_across_feeds() {
    let rows = chain(base(), &SEED);
    let mut v = ChainVerifier::new(&keys());
    v.feed_rows(&rows[..2]);
    v.feed_rows(&rows[3..5]);
    v.feed_rows(&rows[5..]);
    v.feed_rows(&rows[2..3]);
    let r = v.finish();
    assert_eq!(err(&r), Some(("reordered", 3)));
    assert_eq!(r.entries, 2);
    let mut v = ChainVerifier::new(&keys());
    v.feed_rows(&rows[..2]);
    v.feed_rows(&rows[3..5]);
    assert_eq!(err(&v.finish()), Some(("gap", 3)));
    // The outcome is final once reported.
    v.feed_rows(&rows[2..3]);
    assert_eq!(err(&v.finish()), Some(("gap", 3)));
}

#[test]
fn jsonl_errors_name_the_line() {
    let rows = chain(base(), &SEED);
    let good: String = rows.iter().map(|r| line(r) + "\n").collect();
    let b = EntryBatch::from_jsonl_bytes(good.as_bytes()).unwrap();
    assert_eq!(b.len(), 7);
    for block in [1, 7, 100, 1000, 1 << 20] {
        let via_reader = EntryBatch::from_jsonl_reader_blocks(good.as_bytes(), block).unwrap();
        assert_eq!((0..via_reader.len()).map(|i| via_reader.row(i)).collect::<Vec<_>>(), rows);
    }

    let missing = good.replacen(",\"group\":null", "", 1);
    let e = EntryBatch::from_jsonl_bytes(missing.as_bytes()).unwrap_err();
    assert!(e.starts_with("line 1:") && e.contains("group"), "{e}");

    let mut lines: Vec<String> = rows.iter().map(line).collect();
    lines[4] = lines[4].replace("\"amount\":", "\"amount\":\"x\",\"was\":");
    let e = EntryBatch::from_jsonl_bytes((lines.join("\n") + "\n").as_bytes()).unwrap_err();
    assert!(e.starts_with("line 5:"), "{e}");

    let with_blank = format!("{}\n\n{}\n{{oops\n", line(&rows[0]), line(&rows[1]));
    let e = EntryBatch::from_jsonl_bytes(with_blank.as_bytes()).unwrap_err();
    assert!(e.starts_with("line 4:"), "{e}");
    for block in [1, 50, 1 << 20] {
        match EntryBatch::from_jsonl_reader_blocks(with_blank.as_bytes(), block) {
            Err(ledger_core_rs::batch::JsonlError::Parse(e)) => assert!(e.starts_with("line 4:"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn interleaved_ledgers_chain_as_if_sealed_apart() {
    let seed = [7u8; 32];
    let sk = signing_key(&seed);
    let mut a = base();
    let mut b = base();
    for x in b.iter_mut() {
        x.ledger = "other".into();
    }
    let mut mixed: Vec<Entry> = a.iter().cloned().zip(b.iter().cloned()).flat_map(|(x, y)| [x, y]).collect();
    let genesis = "0".repeat(64);
    let heads = |names: &[&str]| -> FxHashMap<String, String> { names.iter().map(|n| (n.to_string(), genesis.clone())).collect() };
    let name = a[0].ledger.clone();
    let together = seal(&mut mixed, &heads(&[&name, "other"]), &sk).unwrap();
    let apart_a = seal(&mut a, &heads(&[&name]), &sk).unwrap();
    let apart_b = seal(&mut b, &heads(&["other"]), &sk).unwrap();
    let interleaved: Vec<_> = apart_a.into_iter().zip(apart_b).flat_map(|(x, y)| [x, y]).collect();
    assert_eq!(together, interleaved);
    // A ledger without a starting hash is refused, naming the first such entry.
    let mut lone = base();
    assert_eq!(seal(&mut lone, &heads(&["other"]), &sk), Err(0));
}
