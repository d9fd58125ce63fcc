use std::time::Instant;
use ledger_core_rs::batch::EntryBatch;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let t = Instant::now();
    let data = std::fs::read(&path).unwrap();
    println!("read {:?}", t.elapsed());
    let t = Instant::now();
    let b = EntryBatch::from_jsonl_bytes(&data).unwrap();
    println!("parse {:?} {}", t.elapsed(), b.len());
    let t = Instant::now();
    let r = ledger_core_rs::replay::replay(&b).unwrap();
    println!("replay {:?} {}", t.elapsed(), r.len());
}
