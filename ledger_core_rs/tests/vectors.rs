//! Checks the crate against `tests/vectors/ledger-v1.json` (written by the Python oracle).

use std::path::PathBuf;

use ledger_core_rs::batch::EntryBatch;
use ledger_core_rs::canonical::{canonical_bytes, entry_hash, Entry, SealedEntry};
use ledger_core_rs::crypto::{key_id, public_key, sign_hash, signing_key};
use ledger_core_rs::merkle;
use ledger_core_rs::replay::replay;
use ledger_core_rs::util::{parse_lower_hex, to_hex};
use ledger_core_rs::verify::{ChainVerifier, KeySpec, Report};
use serde_json::Value;

fn load() -> Option<Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/ledger-v1.json");
    let text = std::fs::read_to_string(&p).ok()?;
    Some(serde_json::from_str(&text).expect("vectors file is valid JSON"))
}

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_string()
}

fn os(v: &Value) -> Option<String> {
    v.as_str().map(|x| x.to_string())
}

fn entry(f: &Value) -> Entry {
    Entry {
        v: f.get("v").and_then(Value::as_i64).unwrap_or(1),
        ledger: s(&f["ledger"]),
        sequence: f["sequence"].as_i64().unwrap(),
        transfer_id: s(&f["transfer_id"]),
        kind: s(&f["kind"]),
        phase: s(&f["phase"]),
        debit_account: s(&f["debit_account"]),
        credit_account: s(&f["credit_account"]),
        amount: f["amount"].as_i64().unwrap(),
        ref_: os(&f["ref"]),
        group: os(&f["group"]),
        expires_at_us: f["expires_at_us"].as_i64(),
        time_us: f["time_us"].as_i64().unwrap(),
        prev_hash: s(&f["prev_hash"]),
    }
}

fn sealed(f: &Value) -> SealedEntry {
    SealedEntry { entry: entry(f), hash: s(&f["hash"]), key_id: s(&f["key_id"]), signature: s(&f["signature"]) }
}

fn h32(v: &Value) -> [u8; 32] {
    parse_lower_hex(v.as_str().unwrap()).unwrap()
}

fn keys(d: &Value) -> Vec<KeySpec> {
    d["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| KeySpec {
            key_id: s(&k["key_id"]),
            public_key: h32(&k["public_key"]).to_vec(),
            valid_from_us: k["valid_from_us"].as_i64().unwrap(),
            valid_until_us: k["valid_until_us"].as_i64(),
        })
        .collect()
}

#[test]
fn keys_and_entries() {
    let Some(d) = load() else { return };
    let seeds: Vec<[u8; 32]> = d["keys"].as_array().unwrap().iter().map(|k| h32(&k["seed"])).collect();
    for (k, seed) in d["keys"].as_array().unwrap().iter().zip(&seeds) {
        let pk = public_key(seed);
        assert_eq!(to_hex(&pk), s(&k["public_key"]));
        assert_eq!(key_id(&pk), s(&k["key_id"]));
    }
    let entries = d["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for x in entries {
        let e = entry(&x["fields"]);
        assert_eq!(String::from_utf8(canonical_bytes(&e.fields())).unwrap(), s(&x["canonical"]));
        let h = entry_hash(&e.fields());
        assert_eq!(to_hex(&h), s(&x["hash"]));
        let sk = signing_key(&seeds[x["key_index"].as_u64().unwrap() as usize]);
        assert_eq!(to_hex(&sign_hash(&sk, &h)), s(&x["signature"]));
    }
    for x in d["encoding"].as_array().into_iter().flatten() {
        let e = entry(&x["fields"]);
        assert_eq!(String::from_utf8(canonical_bytes(&e.fields())).unwrap(), s(&x["canonical"]));
        assert_eq!(to_hex(&entry_hash(&e.fields())), s(&x["hash"]));
    }
}

#[test]
fn merkle_vectors() {
    let Some(d) = load() else { return };
    let m = &d["merkle"];
    let leaves: Vec<[u8; 32]> = m["leaves"].as_array().unwrap().iter().map(h32).collect();
    let roots: Vec<[u8; 32]> = m["roots"].as_array().unwrap().iter().map(h32).collect();
    assert_eq!(roots.len(), leaves.len() + 1);
    for (n, r) in roots.iter().enumerate() {
        assert_eq!(&merkle::root(&leaves[..n]), r, "root of size {n}");
    }
    for c in m["inclusion"].as_array().unwrap() {
        let n = c["size"].as_u64().unwrap() as usize;
        let i = c["index"].as_u64().unwrap() as usize;
        let want: Vec<[u8; 32]> = c["path"].as_array().unwrap().iter().map(h32).collect();
        assert_eq!(merkle::inclusion_proof(&leaves[..n], i).unwrap(), want, "inclusion {i} in {n}");
        let p: Vec<&[u8]> = want.iter().map(|x| &x[..]).collect();
        assert!(merkle::verify_inclusion(&leaves[i], i as u128, n as u128, &p, &roots[n]));
    }
    for c in m["consistency"].as_array().unwrap() {
        let old = c["old_size"].as_u64().unwrap() as usize;
        let new = c["new_size"].as_u64().unwrap() as usize;
        let want: Vec<[u8; 32]> = c["path"].as_array().unwrap().iter().map(h32).collect();
        assert_eq!(merkle::consistency_proof(&leaves[..new], old).unwrap(), want, "consistency {old}->{new}");
        let p: Vec<&[u8]> = want.iter().map(|x| &x[..]).collect();
        assert!(merkle::verify_consistency(old as u128, new as u128, &roots[old], &roots[new], &p));
    }
}

fn intact_rows(d: &Value) -> Vec<SealedEntry> {
    let seeds: Vec<[u8; 32]> = d["keys"].as_array().unwrap().iter().map(|k| h32(&k["seed"])).collect();
    d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let e = entry(&x["fields"]);
            let pk = public_key(&seeds[x["key_index"].as_u64().unwrap() as usize]);
            SealedEntry { entry: e, hash: s(&x["hash"]), key_id: key_id(&pk), signature: s(&x["signature"]) }
        })
        .collect()
}

#[test]
fn replay_vectors() {
    let Some(d) = load() else { return };
    let b = EntryBatch::from_rows(&intact_rows(&d));
    let got = replay(&b).unwrap();
    let want = d["replay"].as_object().unwrap();
    assert_eq!(got.len(), want.len());
    for (ledger, accounts) in &got {
        let w = want[ledger].as_object().unwrap();
        assert_eq!(accounts.len(), w.len(), "{ledger}");
        for (name, c) in accounts {
            let wc: Vec<i128> = w[name].as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i128).collect();
            assert_eq!(&c[..], &wc[..], "{ledger} {name}");
        }
    }
}

fn code_of(r: &Report) -> Option<(String, String, i64)> {
    r.error.as_ref().map(|e| (e.code.to_string(), e.ledger.clone(), e.sequence))
}

#[test]
fn verify_vectors() {
    let Some(d) = load() else { return };
    let ks = keys(&d);
    let cases = d["verify"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let name = s(&c["name"]);
        let rows: Vec<SealedEntry> = c["lines"].as_array().unwrap().iter().map(sealed).collect();
        let want = if c["error"].is_null() {
            None
        } else {
            Some((s(&c["error"]["code"]), s(&c["error"]["ledger"]), c["error"]["sequence"].as_i64().unwrap()))
        };
        // All at once.
        let mut v = ChainVerifier::new(&ks);
        v.feed_rows(&rows);
        let all = v.finish();
        assert_eq!(code_of(&all), want, "{name}");
        assert_eq!(all.ok, want.is_none(), "{name}");
        // One row per feed.
        let mut v = ChainVerifier::new(&ks);
        for r in &rows {
            v.feed_rows(std::slice::from_ref(r));
        }
        assert_eq!(v.finish(), all, "{name} (row by row)");
        // Through the JSONL parser.
        let jsonl: String = c["lines"].as_array().unwrap().iter().map(|l| format!("{l}\n")).collect();
        let b = EntryBatch::from_jsonl_bytes(jsonl.as_bytes()).unwrap();
        assert_eq!(b.len(), rows.len());
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&b.row(i), r, "{name} row {i}");
        }
        let mut v = ChainVerifier::new(&ks);
        v.feed_batch(&b);
        assert_eq!(v.finish(), all, "{name} (jsonl)");
    }
}
