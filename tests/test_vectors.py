"""The committed test vectors pin the format; the Rust core and the oracle must both reproduce them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger import core, oracle

VECTORS = json.loads((Path(__file__).parent / "vectors" / "ledger-v1.json").read_text(encoding="utf-8"))
IMPLEMENTATIONS = [pytest.param(core, id="rust"), pytest.param(oracle, id="oracle")]
FIELDS = oracle.ENTRY_FIELDS


def e13(obj: dict) -> tuple:
    return tuple(obj[f] for f in FIELDS)


def e16(obj: dict) -> tuple:
    return e13(obj) + (obj["hash"], obj["key_id"], obj["signature"])


def verifier_keys() -> list[tuple]:
    return [
        (k["key_id"], bytes.fromhex(k["public_key"]), k["valid_from_us"], k["valid_until_us"]) for k in VECTORS["keys"]
    ]


def test_rfc8032_test_vector_1():
    """Independent of our own vectors: RFC 8032 §7.1, TEST 1 (empty message)."""
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    signature = ("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
                 "d25bf5f0595bbe24655141438e7a100b")  # fmt: skip
    for impl in (core, oracle):
        assert impl.public_key(seed).hex() == public
    # Our signatures cover a 32-byte hash; the empty message is still signed the same way by both.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert Ed25519PrivateKey.from_private_bytes(seed).sign(b"").hex() == signature


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_keys(impl):
    for k in VECTORS["keys"]:
        public = impl.public_key(bytes.fromhex(k["seed"]))
        assert public.hex() == k["public_key"] and impl.key_id(public) == k["key_id"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_canonical_encoding_hash_and_signature(impl):
    for case in VECTORS["entries"] + VECTORS["encoding"]:
        entry = e13(case["fields"])
        assert impl.canonical_bytes(entry).decode("utf-8") == case["canonical"]
        assert impl.entry_hash(entry) == case["hash"]
    for case in VECTORS["entries"]:
        seed = bytes.fromhex(VECTORS["keys"][case["key_index"]]["seed"])
        assert impl.sign_hashes([case["hash"]], seed) == [case["signature"]]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_merkle_roots_and_proofs(impl):
    m = VECTORS["merkle"]
    leaves = b"".join(bytes.fromhex(h) for h in m["leaves"])
    for size, root in enumerate(m["roots"]):
        assert impl.merkle_root(leaves[: 32 * size]).hex() == root
    assert m["roots"][0] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256("")
    for case in m["inclusion"]:
        size, index = case["size"], case["index"]
        path = impl.inclusion_proof(leaves[: 32 * size], index)
        assert [p.hex() for p in path] == case["path"]
        leaf, root = bytes.fromhex(m["leaves"][index]), bytes.fromhex(m["roots"][size])
        assert impl.verify_inclusion(leaf, index, size, path, root)
        assert not impl.verify_inclusion(leaf, index, size, path, bytes.fromhex(m["roots"][size - 1]))
    for case in m["consistency"]:
        old, new = case["old_size"], case["new_size"]
        path = impl.consistency_proof(leaves[: 32 * new], old)
        assert [p.hex() for p in path] == case["path"]
        old_root, new_root = bytes.fromhex(m["roots"][old]), bytes.fromhex(m["roots"][new])
        assert impl.verify_consistency(old, new, old_root, new_root, path)
        if old < new:
            assert not impl.verify_consistency(old, new, new_root, new_root, path)


def test_replay_of_the_intact_chain():
    intact = next(c for c in VECTORS["verify"] if c["name"] == "intact")
    expected = {ledger: {a: tuple(c) for a, c in accounts.items()} for ledger, accounts in VECTORS["replay"].items()}
    assert oracle.replay(e13(line) for line in intact["lines"]) == expected
    assert core.EntryBatch([e16(line) for line in intact["lines"]]).replay() == expected


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", VECTORS["verify"], ids=lambda c: c["name"])
def test_verification_cases(impl, case):
    verifier = impl.ChainVerifier(verifier_keys())
    verifier.feed([e16(line) for line in case["lines"]])
    report = verifier.finish()
    assert report["ok"] is (case["error"] is None)
    if case["error"] is not None:
        assert {k: report["error"][k] for k in ("code", "ledger", "sequence")} == case["error"]


SECOND = json.dumps(next(c for c in VECTORS["verify"] if c["name"] == "intact")["lines"][1], ensure_ascii=False)
MALFORMED = ("malformed_line", "brossard", 1)  # named by the last entry before the line
LINE_CASES = {
    "repeated member": (SECOND[:-1] + ', "v": 1}', MALFORMED),
    "lone surrogate": (SECOND.replace('"kind": "earn_civic"', '"kind": "\\ud800"'), MALFORMED),
    "integer beyond 64 bits": (SECOND.replace('"amount": 250', '"amount": 99999999999999999999'), MALFORMED),
    "minus zero": (SECOND.replace('"amount": 250', '"amount": -0'), MALFORMED),
    "fraction": (SECOND.replace('"amount": 250', '"amount": 250.0'), MALFORMED),
    "exponent": (SECOND.replace('"amount": 250', '"amount": 25e1'), MALFORMED),
    "boolean": (SECOND.replace('"amount": 250', '"amount": true'), MALFORMED),
    "null amount": (SECOND.replace('"amount": 250', '"amount": null'), MALFORMED),
    "string sequence": (SECOND.replace('"sequence": 2', '"sequence": "2"'), MALFORMED),
    "NaN": (SECOND.replace('"amount": 250', '"amount": NaN'), MALFORMED),
    "v 2": (SECOND.replace('"v": 1', '"v": 2'), MALFORMED),
    "v 1.0": (SECOND.replace('"v": 1', '"v": 1.0'), MALFORMED),
    "byte order mark": ("\ufeff" + SECOND, MALFORMED),
    "array": ("[" + SECOND + "]", MALFORMED),
    "trailing text": (SECOND + " x", MALFORMED),
    "raw control character": (SECOND.replace('"kind": "earn_civic"', '"kind": "a\tb"'), MALFORMED),
    "vertical tab only": ("\x0b", MALFORMED),
    "form feed only is blank": ("\x0c", ("gap", "brossard", 2)),
    "surrounding whitespace": ("\t" + SECOND + "  \r", None),
    "escaped astral character": (
        SECOND.replace('"kind": "earn_civic"', '"kind": "\\ud83d\\ude00"'),
        ("hash_mismatch", "brossard", 2),
    ),
}


@pytest.mark.parametrize("case", LINE_CASES, ids=str)
def test_export_lines_get_one_verdict_from_both_implementations(case, tmp_path):
    """The second of three lines is replaced: both parsers agree on what a line may be."""
    text, expected = LINE_CASES[case]
    lines = next(c for c in VECTORS["verify"] if c["name"] == "intact")["lines"]
    path = tmp_path / "export.jsonl"
    path.write_bytes(
        (json.dumps(lines[0]) + "\n" + text + "\n" + json.dumps(lines[2]) + "\n").encode("utf-8", "surrogatepass")
    )
    for report in (core.verify_export(str(path), verifier_keys()), oracle.verify_export(str(path), verifier_keys())):
        error = report["error"]
        assert (None if error is None else (error["code"], error["ledger"], error["sequence"])) == expected
        if expected == MALFORMED:
            assert error["detail"].startswith("line 2: ")
