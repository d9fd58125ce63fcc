//! The Python module `ledger._core`: converts arguments, releases the GIL for the heavy work and
//! returns plain Python values. All logic lives in the plain Rust modules.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::batch::{EntryBatch as CoreBatch, JsonlError};
use crate::bundle;
use crate::canonical::{canonical_bytes as core_canonical, entry_hash as core_entry_hash, Entry, SealedEntry};
use crate::crypto::{self, SigCheck};
use crate::expiry;
use crate::merkle;
use crate::replay::{self, Counters};
use crate::settlement::{self, Posting};
use crate::util::{py_fromhex, to_hex, FxHashMap};
use crate::verify::{self, CheckpointSpec, KeySpec, Report};

fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

const FIELDS: [&str; 16] = [
    "ledger",
    "sequence",
    "transfer_id",
    "kind",
    "phase",
    "debit_account",
    "credit_account",
    "amount",
    "ref",
    "group",
    "expires_at_us",
    "time_us",
    "prev_hash",
    "hash",
    "key_id",
    "signature",
];

struct Row<'a, 'py> {
    t: &'a Bound<'py, PyTuple>,
    what: &'a str,
    index: usize,
}

impl Row<'_, '_> {
    fn err(&self, field: usize, e: impl std::fmt::Display) -> PyErr {
        value_error(format!("{} {}: field {} ({}): {e}", self.what, self.index, field, FIELDS[field]))
    }
    fn string(&self, i: usize) -> PyResult<String> {
        let item = self.t.get_borrowed_item(i)?;
        let s = item.cast::<PyString>().map_err(|_| self.err(i, "expected str"))?;
        Ok(s.to_str().map_err(|e| self.err(i, e))?.to_owned())
    }
    fn opt_string(&self, i: usize) -> PyResult<Option<String>> {
        if self.t.get_borrowed_item(i)?.is_none() {
            Ok(None)
        } else {
            self.string(i).map(Some)
        }
    }
    fn int(&self, i: usize) -> PyResult<i64> {
        let item = self.t.get_borrowed_item(i)?;
        if item.is_instance_of::<PyString>() || item.is_instance_of::<PyBool>() {
            return Err(self.err(i, "expected int"));
        }
        item.extract::<i64>().map_err(|e| self.err(i, e))
    }
    fn opt_int(&self, i: usize) -> PyResult<Option<i64>> {
        if self.t.get_borrowed_item(i)?.is_none() {
            Ok(None)
        } else {
            self.int(i).map(Some)
        }
    }
}

fn as_tuple<'a, 'py>(obj: &'a Bound<'py, PyAny>, what: &str, index: usize, min: usize) -> PyResult<&'a Bound<'py, PyTuple>> {
    let t = obj.cast::<PyTuple>().map_err(|_| value_error(format!("{what} {index}: expected a tuple")))?;
    if t.len() < min {
        return Err(value_error(format!("{what} {index}: expected a tuple of {min} items, got {}", t.len())));
    }
    Ok(t)
}

/// Entry12 (prev_hash empty) or Entry13 from a tuple.
fn extract_entry(obj: &Bound<'_, PyAny>, what: &str, index: usize, with_prev: bool) -> PyResult<Entry> {
    let t = as_tuple(obj, what, index, if with_prev { 13 } else { 12 })?;
    let r = Row { t, what, index };
    Ok(Entry {
        v: 1,
        ledger: r.string(0)?,
        sequence: r.int(1)?,
        transfer_id: r.string(2)?,
        kind: r.string(3)?,
        phase: r.string(4)?,
        debit_account: r.string(5)?,
        credit_account: r.string(6)?,
        amount: r.int(7)?,
        ref_: r.opt_string(8)?,
        group: r.opt_string(9)?,
        expires_at_us: r.opt_int(10)?,
        time_us: r.int(11)?,
        prev_hash: if with_prev { r.string(12)? } else { String::new() },
    })
}

fn extract_sealed(obj: &Bound<'_, PyAny>, index: usize) -> PyResult<SealedEntry> {
    let entry = extract_entry(obj, "row", index, true)?;
    let t = as_tuple(obj, "row", index, 16)?;
    let r = Row { t, what: "row", index };
    Ok(SealedEntry { entry, hash: r.string(13)?, key_id: r.string(14)?, signature: r.string(15)? })
}

fn extract_rows(rows: &Bound<'_, PyAny>) -> PyResult<Vec<SealedEntry>> {
    let mut out = Vec::with_capacity(rows.len().unwrap_or(0));
    for (i, row) in rows.try_iter()?.enumerate() {
        out.push(extract_sealed(&row?, i)?);
    }
    Ok(out)
}

fn seed32(seed: &[u8]) -> PyResult<[u8; 32]> {
    seed.try_into().map_err(|_| value_error(format!("an Ed25519 seed is 32 bytes, got {}", seed.len())))
}

/// Python int that may be out of any machine range: `None` when it does not fit in i128.
fn big_int(obj: &Bound<'_, PyAny>) -> PyResult<Option<i128>> {
    if obj.is_instance_of::<PyString>() {
        return Err(value_error("expected int"));
    }
    match obj.extract::<i128>() {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

fn int_obj(py: Python<'_>, v: i128) -> PyResult<Bound<'_, PyAny>> {
    Ok(match i64::try_from(v) {
        Ok(small) => small.into_pyobject(py)?.into_any(),
        Err(_) => v.into_pyobject(py)?.into_any(),
    })
}

/// `(dp, cp, dpend, cpend)` as a Python tuple. Balances dicts can hold ~10^5 of these, so the
/// tuple is built directly and untracked by the cycle GC (a tuple of ints cannot be part of a
/// cycle; CPython untracks such tuples itself, but only at the next collection).
fn counters_obj<'py>(py: Python<'py>, c: &Counters) -> PyResult<Bound<'py, PyTuple>> {
    let ints = [int_obj(py, c[0])?, int_obj(py, c[1])?, int_obj(py, c[2])?, int_obj(py, c[3])?];
    // SAFETY: a fresh 4-tuple is filled with 4 owned references (stolen by PyTuple_SetItem)
    // before it is exposed; untracking an object that is tracked is always allowed.
    unsafe {
        let t = pyo3::ffi::PyTuple_New(4);
        if t.is_null() {
            return Err(PyErr::fetch(py));
        }
        let t = Bound::from_owned_ptr(py, t);
        for (i, o) in ints.into_iter().enumerate() {
            if pyo3::ffi::PyTuple_SetItem(t.as_ptr(), i as pyo3::ffi::Py_ssize_t, o.into_ptr()) != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        pyo3::ffi::PyObject_GC_UnTrack(t.as_ptr().cast());
        Ok(t.cast_into_unchecked())
    }
}

fn leaves_of(leaves: &[u8]) -> PyResult<Vec<[u8; 32]>> {
    if !leaves.len().is_multiple_of(32) {
        return Err(value_error("leaves must be a concatenation of 32-byte hashes"));
    }
    Ok(leaves.chunks_exact(32).map(|c| c.try_into().unwrap()).collect())
}

fn hashes_list<'py>(py: Python<'py>, hs: &[[u8; 32]]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, hs.iter().map(|h| PyBytes::new(py, h)))
}

fn jsonl_err(e: JsonlError) -> PyErr {
    match e {
        JsonlError::Io(e) => PyErr::from(e),
        JsonlError::Parse(m) => value_error(m),
    }
}

fn extract_keys(keys: &Bound<'_, PyAny>) -> PyResult<Vec<KeySpec>> {
    let mut out = Vec::new();
    for (i, k) in keys.try_iter()?.enumerate() {
        let k = k?;
        let t = k.cast::<PyTuple>().map_err(|_| value_error(format!("key {i}: expected a tuple")))?;
        if t.len() != 4 {
            return Err(value_error(format!("key {i}: expected (key_id, public_key, valid_from_us, valid_until_us)")));
        }
        let bad = |e: PyErr| value_error(format!("key {i}: {e}"));
        let key_id: String = t.get_item(0)?.cast::<PyString>().map_err(|_| value_error(format!("key {i}: key_id must be str")))?.to_str()?.to_owned();
        let public_key: Vec<u8> = t
            .get_item(1)?
            .cast::<PyBytes>()
            .map_err(|_| value_error(format!("key {i}: public_key must be bytes")))?
            .as_bytes()
            .to_vec();
        let valid_from_us: i64 = t.get_item(2)?.extract().map_err(bad)?;
        let until = t.get_item(3)?;
        let valid_until_us: Option<i64> = if until.is_none() { None } else { Some(until.extract().map_err(bad)?) };
        out.push(KeySpec { key_id, public_key, valid_from_us, valid_until_us });
    }
    Ok(out)
}

fn report_obj<'py>(py: Python<'py>, r: &Report) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ok", r.ok)?;
    d.set_item("entries", r.entries)?;
    match &r.error {
        None => d.set_item("error", py.None())?,
        Some(e) => {
            let ed = PyDict::new(py);
            ed.set_item("ledger", &e.ledger)?;
            ed.set_item("sequence", e.sequence)?;
            ed.set_item("code", e.code)?;
            ed.set_item("detail", &e.detail)?;
            d.set_item("error", ed)?;
        }
    }
    let ledgers = PyDict::new(py);
    for l in &r.ledgers {
        let ld = PyDict::new(py);
        ld.set_item("entries", l.entries)?;
        ld.set_item("head_sequence", l.head_sequence)?;
        ld.set_item("head_hash", &l.head_hash)?;
        let bal = PyDict::new(py);
        for (name, c) in &l.balances {
            bal.set_item(name, counters_obj(py, c)?)?;
        }
        ld.set_item("balances", bal)?;
        ld.set_item("open_holds", l.open_holds)?;
        ledgers.set_item(&l.ledger, ld)?;
    }
    d.set_item("ledgers", ledgers)?;
    Ok(d)
}

// --- functions ----------------------------------------------------------------------------------

/// Canonical (RFC 8785) UTF-8 encoding of an Entry13 (v = 1).
#[pyfunction]
fn canonical_bytes<'py>(py: Python<'py>, entry: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let e = extract_entry(entry, "entry", 0, true)?;
    Ok(PyBytes::new(py, &core_canonical(&e.fields())))
}

/// Lowercase hex SHA-256 of the canonical encoding of an Entry13.
#[pyfunction]
fn entry_hash(entry: &Bound<'_, PyAny>) -> PyResult<String> {
    let e = extract_entry(entry, "entry", 0, true)?;
    Ok(to_hex(&core_entry_hash(&e.fields())))
}

/// Ed25519 public key (32 bytes) of a 32-byte seed.
#[pyfunction]
fn public_key<'py>(py: Python<'py>, seed: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &crypto::public_key(&seed32(seed)?)))
}

/// `hex(SHA-256(public_key))[:16]`.
#[pyfunction]
fn key_id(public_key: &[u8]) -> String {
    crypto::key_id(public_key)
}

/// Chains Entry12s, each ledger from its `prev_hashes[ledger]`, and signs them:
/// `(prev_hash, hash, signature)` per entry, in input order.
#[pyfunction]
fn seal(
    py: Python<'_>,
    entries: &Bound<'_, PyAny>,
    prev_hashes: FxHashMap<String, String>,
    seed: &[u8],
) -> PyResult<Vec<(String, String, String)>> {
    let seed = seed32(seed)?;
    let mut es = Vec::with_capacity(entries.len().unwrap_or(0));
    for (i, e) in entries.try_iter()?.enumerate() {
        es.push(extract_entry(&e?, "entry", i, false)?);
    }
    let sealed = py.detach(|| {
        let key = crypto::signing_key(&seed);
        crypto::seal(&mut es, &prev_hashes, &key)
            .map(|v| v.into_iter().map(|(p, h, s)| (p, to_hex(&h), to_hex(&s))).collect::<Vec<_>>())
    });
    sealed.map_err(|i| value_error(format!("entry {i}: no prev_hash for ledger {:?}", es[i].ledger)))
}

/// Signs hex hashes (decoded like `bytes.fromhex`) with the seed's key; hex signatures.
#[pyfunction]
fn sign_hashes(py: Python<'_>, hashes: Vec<String>, seed: &[u8]) -> PyResult<Vec<String>> {
    let seed = seed32(seed)?;
    let mut msgs = Vec::with_capacity(hashes.len());
    for (i, h) in hashes.iter().enumerate() {
        msgs.push(py_fromhex(h).ok_or_else(|| value_error(format!("hash {i}: not hex: {h:?}")))?);
    }
    Ok(py.detach(move || {
        let key = crypto::signing_key(&seed);
        crypto::sign_many(&key, &msgs).iter().map(|s| to_hex(s)).collect()
    }))
}

/// Index of the first (hash_hex, signature_hex, public_key) that does not verify, or None.
#[pyfunction]
fn verify_signatures(py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    struct Item {
        key: Option<u32>,
        msg: Vec<u8>,
        sig: Option<[u8; 64]>,
    }
    let mut keys: Vec<Option<ed25519_dalek::VerifyingKey>> = Vec::new();
    let mut key_ids: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
    let mut parsed: Vec<Item> = Vec::with_capacity(items.len().unwrap_or(0));
    for (i, it) in items.try_iter()?.enumerate() {
        let it = it?;
        let t = it.cast::<PyTuple>().map_err(|_| value_error(format!("item {i}: expected a tuple")))?;
        if t.len() != 3 {
            return Err(value_error(format!("item {i}: expected (hash_hex, signature_hex, public_key)")));
        }
        let (h, s, k) = (t.get_borrowed_item(0)?, t.get_borrowed_item(1)?, t.get_borrowed_item(2)?);
        let text = |o: &Borrowed<'_, '_, PyAny>, what: &str| -> PyResult<Option<Vec<u8>>> {
            let s = o.cast::<PyString>().map_err(|_| value_error(format!("item {i}: {what} must be str")))?;
            Ok(py_fromhex(s.to_str()?))
        };
        let msg = text(&h, "hash")?;
        let sig = text(&s, "signature")?.and_then(|v| <[u8; 64]>::try_from(v).ok());
        let pk_obj = k.cast::<PyBytes>().map_err(|_| value_error(format!("item {i}: public_key must be bytes")))?;
        let pk = pk_obj.as_bytes();
        let key = match key_ids.get(pk) {
            Some(&id) => id,
            None => {
                let id = keys.len() as u32;
                keys.push(crypto::verifying_key(pk));
                key_ids.insert(pk.to_vec(), id);
                id
            }
        };
        parsed.push(match msg {
            Some(msg) => Item { key: keys[key as usize].is_some().then_some(key), msg, sig },
            None => Item { key: None, msg: Vec::new(), sig: None },
        });
    }
    Ok(py.detach(move || {
        crypto::first_invalid(parsed.len(), |i| {
            let it = &parsed[i];
            match (it.key, it.sig) {
                (Some(k), Some(sig)) => SigCheck::Verify(keys[k as usize].as_ref().unwrap(), &it.msg, sig),
                _ => SigCheck::Invalid,
            }
        })
    }))
}

/// Whether `signature` (64 bytes) is the Ed25519 signature of `message` by `public_key` (32 bytes),
/// checked as one item of `verify_signatures` is (RFC 8032, canonical S and R), with the GIL
/// released: a POS request's RFC 9421 signature base, checked while other requests run.
#[pyfunction]
fn verify_signature(py: Python<'_>, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Some(key), Ok(sig)) = (crypto::verifying_key(public_key), <[u8; 64]>::try_from(signature)) else {
        return false;
    };
    py.detach(|| crypto::r_is_canonical(&sig[..32]) && crypto::verify_one(&key, message, &sig))
}

/// RFC 9162 Merkle tree head of `leaves` (concatenated raw 32-byte entry hashes).
#[pyfunction]
fn merkle_root<'py>(py: Python<'py>, leaves: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let root = py.detach(|| leaves_of(leaves).map(|l| merkle::root(&l)))?;
    Ok(PyBytes::new(py, &root))
}

/// RFC 9162 leaf hashes `SHA-256(0x00 || h)` of concatenated raw 32-byte entry hashes.
#[pyfunction]
fn leaf_hashes<'py>(py: Python<'py>, entry_hashes: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let hashes = py.detach(|| leaves_of(entry_hashes).map(|l| merkle::leaf_hashes(&l)))?;
    Ok(PyBytes::new(py, hashes.as_flattened()))
}

/// An entry bundle's entries as JSON Lines; ValueError unless it is `width` entries of one
/// non-blank line each.
#[pyfunction]
fn bundle_jsonl<'py>(py: Python<'py>, data: &[u8], width: usize) -> PyResult<Bound<'py, PyBytes>> {
    let lines = bundle::to_jsonl(data, width).ok_or_else(|| value_error(format!("not an entry bundle of {width} export lines")))?;
    Ok(PyBytes::new(py, &lines))
}

/// Inclusion proof (audit path) of leaf `index`.
#[pyfunction]
fn inclusion_proof<'py>(py: Python<'py>, leaves: &[u8], index: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let n = leaves.len() / 32;
    let index = match big_int(index)? {
        Some(i) if i >= 0 && (i as u128) < n as u128 => i as usize,
        _ => return Err(value_error("index out of range")),
    };
    let path = py.detach(|| leaves_of(leaves).map(|l| merkle::inclusion_proof(&l, index)))?.map_err(value_error)?;
    hashes_list(py, &path)
}

/// Consistency proof from the first `old_size` leaves to all of them.
#[pyfunction]
fn consistency_proof<'py>(py: Python<'py>, leaves: &[u8], old_size: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let n = leaves.len() / 32;
    let old = match big_int(old_size)? {
        Some(m) if m >= 0 && (m as u128) <= n as u128 => m as usize,
        _ => return Err(value_error("old_size out of range")),
    };
    let path = py.detach(|| leaves_of(leaves).map(|l| merkle::consistency_proof(&l, old)))?.map_err(value_error)?;
    hashes_list(py, &path)
}

fn path_slices<'a>(path: &'a [Bound<'_, PyBytes>]) -> Vec<&'a [u8]> {
    path.iter().map(|p| p.as_bytes()).collect()
}

/// RFC 9162 §2.1.3.2 inclusion proof verification.
#[pyfunction]
fn verify_inclusion(
    entry_hash: &[u8],
    index: &Bound<'_, PyAny>,
    tree_size: &Bound<'_, PyAny>,
    path: Vec<Bound<'_, PyBytes>>,
    root: &[u8],
) -> PyResult<bool> {
    let (Some(i), Some(n)) = (big_int(index)?, big_int(tree_size)?) else { return Ok(false) };
    if i < 0 || n < 0 {
        return Ok(false);
    }
    Ok(merkle::verify_inclusion(entry_hash, i as u128, n as u128, &path_slices(&path), root))
}

/// RFC 9162 §2.1.4.2 consistency proof verification.
#[pyfunction]
fn verify_consistency(
    old_size: &Bound<'_, PyAny>,
    new_size: &Bound<'_, PyAny>,
    old_root: &[u8],
    new_root: &[u8],
    path: Vec<Bound<'_, PyBytes>>,
) -> PyResult<bool> {
    let (Some(m), Some(n)) = (big_int(old_size)?, big_int(new_size)?) else { return Ok(false) };
    if m < 0 || n < 0 {
        return Ok(false);
    }
    Ok(merkle::verify_consistency(m as u128, n as u128, old_root, new_root, &path_slices(&path)))
}

/// (ledger, tree_size, 32-byte root) of verified checkpoint notes.
fn extract_checkpoints(checkpoints: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<CheckpointSpec>> {
    let Some(checkpoints) = checkpoints else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (i, c) in checkpoints.try_iter()?.enumerate() {
        let bad = || value_error(format!("checkpoint {i}: expected (ledger, tree_size, 32-byte root)"));
        let (ledger, tree_size, root): (String, u64, Vec<u8>) = c?.extract().map_err(|_| bad())?;
        let root: [u8; 32] = root.try_into().map_err(|_| bad())?;
        out.push(CheckpointSpec { ledger, tree_size, root });
    }
    Ok(out)
}

/// Parses a JSONL export and verifies it (GIL released).
#[pyfunction]
#[pyo3(signature = (jsonl_path, keys, checkpoints = None))]
fn verify_export<'py>(
    py: Python<'py>,
    jsonl_path: &str,
    keys: &Bound<'py, PyAny>,
    checkpoints: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let keys = extract_keys(keys)?;
    let checkpoints = extract_checkpoints(checkpoints)?;
    let path = jsonl_path.to_string();
    let report = py.detach(move || verify::verify_export(&path, &keys, &checkpoints))?;
    report_obj(py, &report)
}

// --- settlement and expiry ---------------------------------------------------------------------

/// The tuples of `rows`, each of `len` items. The caller keeps them while the GIL is released,
/// which keeps valid the strings borrowed from them (a tuple and its strs are immutable).
fn tuples_of<'py>(rows: &Bound<'py, PyAny>, what: &str, len: usize) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let mut out = Vec::with_capacity(rows.len().unwrap_or(0));
    for (i, row) in rows.try_iter()?.enumerate() {
        let t = row?.cast_into::<PyTuple>().map_err(|_| value_error(format!("{what} {i}: expected a tuple")))?;
        if t.len() != len {
            return Err(value_error(format!("{what} {i}: expected a tuple of {len} items, got {}", t.len())));
        }
        out.push(t);
    }
    Ok(out)
}

/// Item `field` of row `index`, a str borrowed from the tuple.
fn str_item<'a>(t: &'a Bound<'_, PyTuple>, what: &str, index: usize, field: usize, name: &str) -> PyResult<&'a str> {
    t.get_borrowed_item(field)?.extract::<&'a str>().map_err(|_| value_error(format!("{what} {index}: {name} must be str")))
}

fn int_item(t: &Bound<'_, PyTuple>, what: &str, index: usize, field: usize, name: &str) -> PyResult<i64> {
    let item = t.get_borrowed_item(field)?;
    if !item.is_instance_of::<PyInt>() || item.is_instance_of::<PyBool>() {
        return Err(value_error(format!("{what} {index}: {name} must be int")));
    }
    item.extract::<i64>().map_err(|_| value_error(format!("{what} {index}: {name} is beyond 64 bits")))
}

/// Posted debits and credits per (ledger, account) of the entries in [since_us, until_us).
#[pyfunction]
fn movements<'py>(py: Python<'py>, entries: &Bound<'py, PyAny>, since_us: i64, until_us: i64) -> PyResult<Bound<'py, PyList>> {
    let rows = tuples_of(entries, "entry", 6)?;
    let mut postings = Vec::with_capacity(rows.len());
    for (i, t) in rows.iter().enumerate() {
        let text = |field, name| str_item(t, "entry", i, field, name);
        postings.push(Posting {
            ledger: text(0, "ledger")?,
            debit_account: text(1, "debit_account")?,
            credit_account: text(2, "credit_account")?,
            amount_points: int_item(t, "entry", i, 3, "amount")?,
            phase: text(4, "phase")?,
            time_us: int_item(t, "entry", i, 5, "time_us")?,
        });
    }
    let out = py.detach(|| settlement::movements(&postings, since_us, until_us)).map_err(value_error)?;
    let mut items = Vec::with_capacity(out.len());
    // Sorted by ledger: one str per ledger, not one per row.
    let mut last: Option<(&str, Bound<'py, PyString>)> = None;
    for (ledger, account, debits, credits) in out {
        let ledger = match &last {
            Some((name, obj)) if *name == ledger => obj.clone(),
            _ => last.insert((ledger, PyString::new(py, ledger))).1.clone(),
        };
        items.push((ledger, account, int_obj(py, debits)?, int_obj(py, credits)?).into_pyobject(py)?);
    }
    PyList::new(py, items)
}

/// Net position per city and bilateral settlement transfers of (debtor, creditor, amount).
#[pyfunction]
fn net_positions<'py>(py: Python<'py>, obligations: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let rows = tuples_of(obligations, "obligation", 3)?;
    let mut parsed = Vec::with_capacity(rows.len());
    for (i, t) in rows.iter().enumerate() {
        let debtor = str_item(t, "obligation", i, 0, "debtor_city")?;
        let creditor = str_item(t, "obligation", i, 1, "creditor_city")?;
        parsed.push((debtor, creditor, int_item(t, "obligation", i, 2, "amount")?));
    }
    let (positions, transfers) = settlement::net_positions(&parsed).map_err(value_error)?;
    let mut cities = Vec::with_capacity(positions.len());
    for (city, net) in positions {
        cities.push((city, int_obj(py, net)?).into_pyobject(py)?);
    }
    let mut payments = Vec::with_capacity(transfers.len());
    for (payer, payee, amount) in transfers {
        payments.push((payer, payee, int_obj(py, amount)?).into_pyobject(py)?);
    }
    Ok((PyList::new(py, cities)?, PyList::new(py, payments)?))
}

/// Per account, the unspent points of its lots dated before `cutoff_us`, oldest lot first.
#[pyfunction]
fn expire_lots<'py>(py: Python<'py>, events: &Bound<'py, PyAny>, cutoff_us: i64) -> PyResult<Bound<'py, PyList>> {
    let rows = tuples_of(events, "event", 3)?;
    let mut parsed = Vec::with_capacity(rows.len());
    for (i, t) in rows.iter().enumerate() {
        let account = str_item(t, "event", i, 0, "account")?;
        parsed.push((account, int_item(t, "event", i, 1, "time_us")?, int_item(t, "event", i, 2, "delta")?));
    }
    let out = py.detach(|| expiry::expire_lots(&parsed, cutoff_us)).map_err(value_error)?;
    let mut items = Vec::with_capacity(out.len());
    for (account, points) in out {
        items.push((account, int_obj(py, points)?).into_pyobject(py)?);
    }
    PyList::new(py, items)
}

// --- classes ------------------------------------------------------------------------------------

/// Sealed entries held in compact Rust memory.
#[pyclass(module = "ledger._core", name = "EntryBatch")]
struct PyEntryBatch {
    inner: CoreBatch,
}

#[pymethods]
impl PyEntryBatch {
    #[new]
    #[pyo3(signature = (rows = None))]
    fn new(py: Python<'_>, rows: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut inner = CoreBatch::new();
        if let Some(rows) = rows {
            let rows = extract_rows(rows)?;
            py.detach(|| inner.extend(&rows));
        }
        Ok(PyEntryBatch { inner })
    }

    /// Parses a JSONL export; a malformed line raises ValueError naming its 1-based number.
    #[staticmethod]
    fn from_jsonl(py: Python<'_>, path: &str) -> PyResult<Self> {
        let path = path.to_string();
        let inner = py.detach(move || CoreBatch::from_jsonl_path(&path)).map_err(jsonl_err)?;
        Ok(PyEntryBatch { inner })
    }

    /// Parses JSON Lines held in memory, as `from_jsonl` a file.
    #[staticmethod]
    fn from_jsonl_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let inner = py.detach(|| CoreBatch::from_jsonl_bytes(data)).map_err(value_error)?;
        Ok(PyEntryBatch { inner })
    }

    fn extend(&mut self, py: Python<'_>, rows: &Bound<'_, PyAny>) -> PyResult<()> {
        let rows = extract_rows(rows)?;
        let inner = &mut self.inner;
        py.detach(move || inner.extend(&rows));
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("<EntryBatch of {} entries>", self.inner.len())
    }

    /// Pure balance replay: ledger -> account -> (dp, cp, dpend, cpend).
    fn replay<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let b = &self.inner;
        let counters = py.detach(|| replay::replay_slots(b)).map_err(value_error)?;
        let out = PyDict::new(py);
        let mut dicts: FxHashMap<u32, Bound<'py, PyDict>> = FxHashMap::default();
        for &l in &b.ledgers {
            let d = PyDict::new(py);
            out.set_item(b.str(l), &d)?;
            dicts.insert(l, d);
        }
        for (slot, c) in b.slots.iter().zip(&counters) {
            dicts[&slot.ledger].set_item(b.str(slot.account), counters_obj(py, c)?)?;
        }
        Ok(out)
    }

    /// Raw concatenated 32-byte hashes of `ledger`'s entries, in stream order.
    fn leaf_hashes<'py>(&self, py: Python<'py>, ledger: &str) -> PyResult<Bound<'py, PyBytes>> {
        let hs = self.inner.leaf_hashes(ledger).map_err(value_error)?;
        Ok(PyBytes::new(py, hs.as_flattened()))
    }
}

/// Streaming verifier of sealed entries in export order.
#[pyclass(module = "ledger._core", name = "ChainVerifier")]
struct PyChainVerifier {
    inner: verify::ChainVerifier,
}

#[pymethods]
impl PyChainVerifier {
    #[new]
    #[pyo3(signature = (keys, checkpoints = None))]
    fn new(keys: &Bound<'_, PyAny>, checkpoints: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let checkpoints = extract_checkpoints(checkpoints)?;
        Ok(PyChainVerifier { inner: verify::ChainVerifier::new(&extract_keys(keys)?).with_checkpoints(&checkpoints) })
    }

    fn feed(&mut self, py: Python<'_>, rows: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some((ledger, expected)) = self.inner.gap_wanted() {
            // Only looking for (ledger, expected) now.
            for (i, row) in rows.try_iter()?.enumerate() {
                let row = row?;
                let t = as_tuple(&row, "row", i, 2)?;
                let r = Row { t, what: "row", index: i };
                let seq = t.get_borrowed_item(1)?;
                if !seq.is_instance_of::<PyString>() && seq.extract::<i64>().ok() == Some(expected) && r.string(0).ok().as_deref() == Some(ledger.as_str()) {
                    self.inner.gap_seen();
                    break;
                }
            }
            return Ok(());
        }
        if self.inner.stopped() {
            return Ok(());
        }
        let rows = extract_rows(rows)?;
        let inner = &mut self.inner;
        py.detach(move || inner.feed_rows(&rows));
        Ok(())
    }

    fn feed_batch(&mut self, py: Python<'_>, batch: PyRef<'_, PyEntryBatch>) {
        let inner = &mut self.inner;
        let b = &batch.inner;
        py.detach(move || inner.feed_batch(b));
    }

    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        report_obj(py, &self.inner.finish())
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FORMAT_VERSION", crate::FORMAT_VERSION)?;
    m.add_function(wrap_pyfunction!(canonical_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(entry_hash, m)?)?;
    m.add_function(wrap_pyfunction!(public_key, m)?)?;
    m.add_function(wrap_pyfunction!(key_id, m)?)?;
    m.add_function(wrap_pyfunction!(seal, m)?)?;
    m.add_function(wrap_pyfunction!(sign_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(verify_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(verify_signature, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(leaf_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(bundle_jsonl, m)?)?;
    m.add_function(wrap_pyfunction!(inclusion_proof, m)?)?;
    m.add_function(wrap_pyfunction!(consistency_proof, m)?)?;
    m.add_function(wrap_pyfunction!(verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(verify_consistency, m)?)?;
    m.add_function(wrap_pyfunction!(verify_export, m)?)?;
    m.add_function(wrap_pyfunction!(movements, m)?)?;
    m.add_function(wrap_pyfunction!(net_positions, m)?)?;
    m.add_function(wrap_pyfunction!(expire_lots, m)?)?;
    m.add_class::<PyEntryBatch>()?;
    m.add_class::<PyChainVerifier>()?;
    Ok(())
}
