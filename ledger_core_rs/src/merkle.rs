//! RFC 9162 Merkle tree over raw 32-byte entry hashes: root, inclusion and consistency proofs
//! (generation per RFC 6962 §2.1.1/§2.1.2, verification per RFC 9162 §2.1.3.2/§2.1.4.2).

use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

const PAR_MIN: usize = 4096;

/// `SHA-256(0x00 || entry_hash)`.
pub fn leaf_hash(entry_hash: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry_hash);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &[u8], right: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// Leaf hashes of all entry hashes (parallel).
pub fn leaf_hashes(leaves: &[Hash]) -> Vec<Hash> {
    if leaves.len() >= PAR_MIN {
        leaves.par_iter().with_min_len(1024).map(|l| leaf_hash(l)).collect()
    } else {
        leaves.iter().map(|l| leaf_hash(l)).collect()
    }
}

/// Root of the tree whose leaf hashes are `level` (bottom-up; an unpaired last node moves up
/// unchanged, which yields exactly the RFC 9162 left-balanced tree).
fn root_of_level(mut level: Vec<Hash>) -> Hash {
    if level.is_empty() {
        return empty_root();
    }
    while level.len() > 1 {
        let next: Vec<Hash> = if level.len() >= PAR_MIN {
            level
                .par_chunks(2)
                .with_min_len(512)
                .map(|p| if p.len() == 2 { node_hash(&p[0], &p[1]) } else { p[0] })
                .collect()
        } else {
            level
                .chunks(2)
                .map(|p| if p.len() == 2 { node_hash(&p[0], &p[1]) } else { p[0] })
                .collect()
        };
        level = next;
    }
    level[0]
}

/// MTH over already-hashed leaves.
fn mth(lh: &[Hash]) -> Hash {
    root_of_level(lh.to_vec())
}

/// Merkle tree head of the entry hashes `leaves`.
pub fn root(leaves: &[Hash]) -> Hash {
    root_of_level(leaf_hashes(leaves))
}

/// Largest power of two strictly less than `n` (n >= 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1usize << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn path(m: usize, lh: &[Hash], out: &mut Vec<Hash>) {
    let n = lh.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &lh[..k], out);
        out.push(mth(&lh[k..]));
    } else {
        path(m - k, &lh[k..], out);
        out.push(mth(&lh[..k]));
    }
}

/// Inclusion proof (audit path) of leaf `index` in the tree of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Result<Vec<Hash>, String> {
    if index >= leaves.len() {
        return Err(format!("index {index} out of range for tree size {}", leaves.len()));
    }
    let lh = leaf_hashes(leaves);
    let mut out = Vec::new();
    path(index, &lh, &mut out);
    Ok(out)
}

fn subproof(m: usize, lh: &[Hash], b: bool, out: &mut Vec<Hash>) {
    let n = lh.len();
    if m == n {
        if !b {
            out.push(mth(lh));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &lh[..k], b, out);
        out.push(mth(&lh[k..]));
    } else {
        subproof(m - k, &lh[k..], false, out);
        out.push(mth(&lh[..k]));
    }
}

/// Consistency proof between the first `old_size` leaves and all of `leaves`.
/// Empty when `old_size` is 0 or equal to the tree size.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Result<Vec<Hash>, String> {
    let n = leaves.len();
    if old_size > n {
        return Err(format!("old_size {old_size} is larger than the tree size {n}"));
    }
    let mut out = Vec::new();
    if old_size == 0 || old_size == n {
        return Ok(out);
    }
    let lh = leaf_hashes(leaves);
    subproof(old_size, &lh, true, &mut out);
    Ok(out)
}

/// RFC 9162 §2.1.3.2. Inputs of any length are hashed as given (a wrong length simply fails
/// to reproduce the root).
pub fn verify_inclusion(entry_hash: &[u8], index: u128, tree_size: u128, path: &[&[u8]], root: &[u8]) -> bool {
    if index >= tree_size {
        return false;
    }
    let mut fnn = index;
    let mut sn = tree_size - 1;
    let mut r = leaf_hash(entry_hash);
    for p in path {
        if sn == 0 {
            return false;
        }
        if fnn & 1 == 1 || fnn == sn {
            r = node_hash(p, &r);
            if fnn & 1 == 0 {
                while fnn != 0 && fnn & 1 == 0 {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    sn == 0 && r[..] == root[..]
}

/// RFC 9162 §2.1.4.2, with the usual edge cases: `old_size > new_size` never verifies; equal
/// sizes need equal roots and an empty path; `old_size == 0` needs an empty path (the empty
/// tree is consistent with every tree).
pub fn verify_consistency(old_size: u128, new_size: u128, old_root: &[u8], new_root: &[u8], path: &[&[u8]]) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return old_root == new_root && path.is_empty();
    }
    if old_size == 0 {
        return path.is_empty();
    }
    if path.is_empty() {
        return false;
    }
    let mut items: Vec<&[u8]> = Vec::with_capacity(path.len() + 1);
    if old_size.is_power_of_two() {
        items.push(old_root);
    }
    items.extend_from_slice(path);
    let mut fnn = old_size - 1;
    let mut sn = new_size - 1;
    while fnn & 1 == 1 {
        fnn >>= 1;
        sn >>= 1;
    }
    // The first node may be of any length (it is only compared or hashed).
    let first = items[0];
    let mut fr: Option<Hash> = None;
    let mut sr: Option<Hash> = None;
    for c in &items[1..] {
        if sn == 0 {
            return false;
        }
        let f: &[u8] = fr.as_ref().map_or(first, |x| &x[..]);
        let s: &[u8] = sr.as_ref().map_or(first, |x| &x[..]);
        if fnn & 1 == 1 || fnn == sn {
            let nf = node_hash(c, f);
            let ns = node_hash(c, s);
            fr = Some(nf);
            sr = Some(ns);
            if fnn & 1 == 0 {
                while fnn != 0 && fnn & 1 == 0 {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = Some(node_hash(s, c));
        }
        fnn >>= 1;
        sn >>= 1;
    }
    let f: &[u8] = fr.as_ref().map_or(first, |x| &x[..]);
    let s: &[u8] = sr.as_ref().map_or(first, |x| &x[..]);
    f == old_root && s == new_root && sn == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sha256;
    use crate::util::to_hex;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| sha256(&(i as u64).to_le_bytes())).collect()
    }

    /// RFC 6962 definition, recursively.
    fn mth_ref(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => leaf_hash(&d[0]),
            n => {
                let k = split(n);
                node_hash(&mth_ref(&d[..k]), &mth_ref(&d[k..]))
            }
        }
    }

    #[test]
    fn empty_is_sha256_of_nothing() {
        assert_eq!(to_hex(&root(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn small_trees_by_hand() {
        let d = leaves(3);
        let (a, b, c) = (leaf_hash(&d[0]), leaf_hash(&d[1]), leaf_hash(&d[2]));
        assert_eq!(root(&d[..1]), a);
        assert_eq!(root(&d[..2]), node_hash(&a, &b));
        assert_eq!(root(&d), node_hash(&node_hash(&a, &b), &c));
        assert_eq!(inclusion_proof(&d, 2).unwrap(), vec![node_hash(&a, &b)]);
        assert_eq!(inclusion_proof(&d, 0).unwrap(), vec![b, c]);
        assert_eq!(consistency_proof(&d, 2).unwrap(), vec![c]);
        assert_eq!(consistency_proof(&d, 1).unwrap(), vec![b, c]);
    }

    #[test]
    fn roots_match_recursive_definition() {
        let d = leaves(5000);
        for n in (0..70).chain([1023, 1024, 1025, 4095, 4096, 4097, 5000]) {
            assert_eq!(root(&d[..n]), mth_ref(&d[..n]), "n={n}");
        }
    }

    #[test]
    fn proofs_roundtrip() {
        let d = leaves(40);
        for n in 1..=d.len() {
            let r = root(&d[..n]);
            for i in 0..n {
                let p = inclusion_proof(&d[..n], i).unwrap();
                let pr: Vec<&[u8]> = p.iter().map(|x| &x[..]).collect();
                assert!(verify_inclusion(&d[i], i as u128, n as u128, &pr, &r), "n={n} i={i}");
                assert!(!verify_inclusion(&d[(i + 1) % n], i as u128, n as u128, &pr, &r) || n == 1);
            }
            for m in 0..=n {
                let p = consistency_proof(&d[..n], m).unwrap();
                let pr: Vec<&[u8]> = p.iter().map(|x| &x[..]).collect();
                let old = root(&d[..m]);
                assert!(verify_consistency(m as u128, n as u128, &old, &r, &pr), "m={m} n={n}");
                if m > 0 && m < n {
                    assert!(!verify_consistency(m as u128, n as u128, &r, &r, &pr));
                    assert!(!verify_consistency(m as u128, n as u128, &old, &old, &pr));
                }
            }
        }
        assert!(inclusion_proof(&d, 40).is_err());
        assert!(consistency_proof(&d, 41).is_err());
    }
}
