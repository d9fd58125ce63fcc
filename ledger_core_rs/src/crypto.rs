//! SHA-256, Ed25519 keys, signing and (batch) signature verification.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::util::{to_hex, FxHashMap};

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Signing key from a 32-byte RFC 8032 seed.
pub fn signing_key(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(seed)
}

/// The 32-byte Ed25519 public key of a seed.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    signing_key(seed).verifying_key().to_bytes()
}

/// `key_id = lowercase_hex(SHA-256(public_key))[0:16]`.
pub fn key_id(public_key: &[u8]) -> String {
    to_hex(&sha256(public_key)[..8])
}

/// Ed25519 signature of the raw bytes of an entry hash (normally 32 bytes).
pub fn sign_hash(key: &SigningKey, hash: &[u8]) -> [u8; 64] {
    key.sign(hash).to_bytes()
}

/// Below this many signatures, signing stays on the calling thread: waking the pool's threads
/// (which then spin a while before sleeping again) costs more CPU than it saves time.
const PARALLEL_SIGN_MIN: usize = 128;

/// Signs many hashes, in parallel when there are enough of them.
pub fn sign_many<H: AsRef<[u8]> + Sync>(key: &SigningKey, hashes: &[H]) -> Vec<[u8; 64]> {
    if hashes.len() < PARALLEL_SIGN_MIN {
        return hashes.iter().map(|h| sign_hash(key, h.as_ref())).collect();
    }
    hashes.par_iter().with_min_len(PARALLEL_SIGN_MIN / 2).map(|h| sign_hash(key, h.as_ref())).collect()
}

/// One sealed entry: the hash of the previous entry of its chain (hex), its own hash, its signature.
pub type Sealed = (String, [u8; 32], [u8; 64]);

/// Chains `entries` in order, each on its own ledger's chain starting from `prev_hashes[ledger]`
/// (each entry's `prev_hash` is set, in place, to the hash of the previous entry of its ledger),
/// and signs every hash. Returns `(prev_hash, hash, signature)` per entry, or the index of the
/// first entry whose ledger has no starting hash. Hashing is sequential (each hash depends on the
/// previous one of its chain); signing, most of the cost, is parallel over the whole batch.
pub fn seal(
    entries: &mut [crate::canonical::Entry],
    prev_hashes: &FxHashMap<String, String>,
    key: &SigningKey,
) -> Result<Vec<Sealed>, usize> {
    let mut heads: FxHashMap<&str, String> = prev_hashes.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut buf = Vec::with_capacity(512);
    let mut hashes = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter_mut().enumerate() {
        let head = heads.get_mut(e.ledger.as_str()).ok_or(i)?;
        e.prev_hash = std::mem::take(head);
        let h = crate::canonical::entry_hash_with(&e.fields(), &mut buf);
        *head = to_hex(&h);
        hashes.push(h);
    }
    let sigs = sign_many(key, &hashes);
    Ok(entries.iter().zip(hashes).zip(sigs).map(|((e, h), s)| (e.prev_hash.clone(), h, s)).collect())
}

/// Decodes a public key; `None` when the bytes are not a valid curve point encoding.
pub fn verifying_key(public_key: &[u8]) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = public_key.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// One item of a verification run.
pub enum SigCheck<'a> {
    /// Not part of the run (counts as valid).
    Skip,
    /// Known invalid (malformed input).
    Invalid,
    /// Verify `sig` over `msg` under `key`.
    Verify(&'a VerifyingKey, &'a [u8], [u8; 64]),
}

/// True when the `R` half of a signature is the canonical encoding of a point (or at least of
/// an integer `y < p` without a "negative zero" sign bit). Single verification compares `R`'s
/// bytes with a freshly compressed point, so a non-canonical `R` never verifies; batch
/// verification decompresses `R` instead. Rejecting these up front makes both agree.
pub fn r_is_canonical(r: &[u8]) -> bool {
    // y = r with bit 255 cleared, little endian; p = 2^255 - 19.
    let top = r[31] & 0x7f;
    let y_ge_p = top == 0x7f && r[1..31].iter().all(|&b| b == 0xff) && r[0] >= 0xed;
    if y_ge_p {
        return false;
    }
    let sign = r[31] & 0x80 != 0;
    if sign {
        // x == 0 exactly when y == 1 or y == p - 1; "-0" is not canonical.
        let y_is_one = r[0] == 1 && r[1..31].iter().all(|&b| b == 0) && top == 0;
        let y_is_pm1 = r[0] == 0xec && r[1..31].iter().all(|&b| b == 0xff) && top == 0x7f;
        if y_is_one || y_is_pm1 {
            return false;
        }
    }
    true
}

/// Single (non-batch) verification, RFC 8032 cofactorless equation as in ed25519-dalek's
/// `verify` (canonical S required).
pub fn verify_one(key: &VerifyingKey, msg: &[u8], sig: &[u8; 64]) -> bool {
    key.verify(msg, &Signature::from_bytes(sig)).is_ok()
}

/// Chunk size for batch verification; large enough for the multiscalar speed-up.
pub const BATCH_CHUNK: usize = 256;

fn first_invalid_in_chunk<'a, F>(lo: usize, hi: usize, get: &F) -> Option<usize>
where
    F: Fn(usize) -> SigCheck<'a> + Sync,
{
    let mut msgs: Vec<&[u8]> = Vec::with_capacity(hi - lo);
    let mut sigs: Vec<Signature> = Vec::with_capacity(hi - lo);
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(hi - lo);
    let mut idx: Vec<usize> = Vec::with_capacity(hi - lo);
    let mut invalid = None;
    for i in lo..hi {
        match get(i) {
            SigCheck::Skip => {}
            SigCheck::Invalid => {
                invalid = Some(i);
                break;
            }
            SigCheck::Verify(k, m, s) => {
                if !r_is_canonical(&s[..32]) {
                    invalid = Some(i);
                    break;
                }
                msgs.push(m);
                sigs.push(Signature::from_bytes(&s));
                keys.push(*k);
                idx.push(i);
            }
        }
    }
    if msgs.is_empty() {
        return invalid;
    }
    let ok = if msgs.len() == 1 {
        keys[0].verify(msgs[0], &sigs[0]).is_ok()
    } else {
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
    };
    if ok {
        return invalid;
    }
    for j in 0..msgs.len() {
        if keys[j].verify(msgs[j], &sigs[j]).is_err() {
            return Some(idx[j]);
        }
    }
    invalid
}

/// Index of the first item of `0..n` that is `Invalid` or does not verify, or `None`.
/// Runs batch verification on chunks in parallel; a failing chunk is re-checked one by one.
pub fn first_invalid<'a, F>(n: usize, get: F) -> Option<usize>
where
    F: Fn(usize) -> SigCheck<'a> + Sync,
{
    let chunks = n.div_ceil(BATCH_CHUNK);
    (0..chunks).into_par_iter().find_map_first(|c| {
        let lo = c * BATCH_CHUNK;
        let hi = (lo + BATCH_CHUNK).min(n);
        first_invalid_in_chunk(lo, hi, &get)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::parse_lower_hex;

    // RFC 8032 section 7.1, TEST 1.
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PK: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const SIG: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    #[test]
    fn rfc8032_test1() {
        let seed: [u8; 32] = parse_lower_hex(SEED).unwrap();
        assert_eq!(to_hex(&public_key(&seed)), PK);
        let sk = signing_key(&seed);
        assert_eq!(to_hex(&sk.sign(b"").to_bytes()), SIG);
        let vk = verifying_key(&public_key(&seed)).unwrap();
        let sig: [u8; 64] = parse_lower_hex(SIG).unwrap();
        assert!(verify_one(&vk, b"", &sig));
    }

    #[test]
    fn key_id_is_prefix_of_sha256() {
        let pk: [u8; 32] = parse_lower_hex(PK).unwrap();
        let id = key_id(&pk);
        assert_eq!(id.len(), 16);
        assert_eq!(id, to_hex(&sha256(&pk))[..16]);
    }

    #[test]
    fn batch_first_invalid() {
        let seed = [7u8; 32];
        let sk = signing_key(&seed);
        let vk = verifying_key(&public_key(&seed)).unwrap();
        let n = 1000;
        let msgs: Vec<[u8; 32]> = (0..n).map(|i| sha256(&(i as u64).to_le_bytes())).collect();
        let mut sigs = sign_many(&sk, &msgs);
        assert_eq!(first_invalid(n, |i| SigCheck::Verify(&vk, &msgs[i], sigs[i])), None);
        sigs[700][3] ^= 1;
        sigs[900][3] ^= 1;
        assert_eq!(first_invalid(n, |i| SigCheck::Verify(&vk, &msgs[i], sigs[i])), Some(700));
        assert_eq!(
            first_invalid(n, |i| if i == 650 { SigCheck::Invalid } else { SigCheck::Verify(&vk, &msgs[i], sigs[i]) }),
            Some(650)
        );
        assert_eq!(
            first_invalid(n, |i| if i == 700 { SigCheck::Skip } else { SigCheck::Verify(&vk, &msgs[i], sigs[i]) }),
            Some(900)
        );
        // Non-canonical R ("-0" sign bit on the identity's y = 1) is always invalid.
        let mut bad = sigs[1];
        bad[..32].copy_from_slice(&{
            let mut r = [0u8; 32];
            r[0] = 1;
            r[31] = 0x80;
            r
        });
        assert!(!r_is_canonical(&bad[..32]));
        assert!(r_is_canonical(&sigs[1][..32]));
    }
}
