"""Write tests/vectors/ledger-v1.json from the Python oracle.

The file pins the format for the Rust core and the oracle alike. Regenerate it only on purpose
(a format change is a new version): `python -m tests.vectors.make_vectors` from the checkout (as a
module, so that the checkout's oracle writes it, not an installed copy).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ledger import oracle

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
MINUTE = 60_000_000
SEEDS = [hashlib.sha256(f"entraide test key {i}".encode()).digest() for i in range(2)]
ATTACKER = hashlib.sha256(b"not a program key").digest()
ROTATION_US = T0 + 30 * MINUTE


def tid(n: int) -> str:
    return f"{n:032x}"


def key_for(time_us: int) -> int:
    return 0 if time_us < ROTATION_US else 1


def keys() -> list[dict]:
    out = []
    for i, seed in enumerate(SEEDS):
        pub = oracle.public_key(seed)
        out.append({
            "seed": seed.hex(), "public_key": pub.hex(), "key_id": oracle.key_id(pub),
            "valid_from_us": T0 if i == 0 else ROTATION_US,
            "valid_until_us": ROTATION_US if i == 0 else None,
        })  # fmt: skip
    return out


def verifier_keys() -> list[tuple]:
    return [(k["key_id"], bytes.fromhex(k["public_key"]), k["valid_from_us"], k["valid_until_us"]) for k in keys()]


def seal_chain(ledger: str, specs: list[tuple], seed_for=None) -> list[dict]:
    """specs: (n, kind, phase, debit, credit, amount, ref, group, expires_at_us, time_us)."""
    lines, prev = [], oracle.GENESIS_HASH
    for seq, (n, kind, phase, debit, credit, amount, ref, group, expires, time_us) in enumerate(specs, start=1):
        e12 = (ledger, seq, tid(n), kind, phase, debit, credit, amount, ref, group, expires, time_us)
        seed = (seed_for or (lambda t: SEEDS[key_for(t)]))(time_us)
        ((prev_hash, digest, signature),) = oracle.seal([e12], {ledger: prev}, seed)
        line = dict(zip(oracle.ENTRY_FIELDS, (*e12, prev_hash), strict=True))
        line.update(v=1, hash=digest, key_id=oracle.key_id(oracle.public_key(seed)), signature=signature)
        lines.append(line)
        prev = digest
    return lines


W1 = "citizen:r1:wallet"
BROSSARD = [
    (1, "fund", "single", "program:funding", "program:budget", 1_000_000, None, None, None, T0),
    (2, "earn_civic", "single", "program:budget", W1, 250, None, None, None, T0 + 1 * MINUTE),
    (3, "earn_purchase", "single", "merchant:m1:issued", W1, 120, None, None, None, T0 + 2 * MINUTE),
    (4, "redeem", "pending", W1, "merchant:m1:redeemed", 200, None, None, T0 + 18 * MINUTE, T0 + 3 * MINUTE),
    (5, "redeem", "post", W1, "merchant:m1:redeemed", 150, tid(4), None, None, T0 + 4 * MINUTE),
    (6, "redeem", "pending", W1, "merchant:m1:redeemed", 50, None, None, T0 + 20 * MINUTE, T0 + 5 * MINUTE),
    (7, "redeem", "void", W1, "merchant:m1:redeemed", 50, tid(6), None, None, T0 + 6 * MINUTE),
    (8, "redeem", "pending", W1, "merchant:m1:redeemed", 30, None, None, T0 + 22 * MINUTE, T0 + 7 * MINUTE),
    (9, "redeem", "expire", W1, "merchant:m1:redeemed", 30, tid(8), None, None, T0 + 40 * MINUTE),
    (10, "refund", "single", "merchant:m1:redeemed", W1, 20, tid(5), None, None, T0 + 41 * MINUTE),
    (11, "interop_redeem", "single", W1, "interop:wendake", 40, None, tid(99), None, T0 + 42 * MINUTE),
    (12, "earn_volunteer", "single", "program:budget", "citizen:r2:wallet", 75, None, None, None, T0 + 43 * MINUTE),
]
WENDAKE = [
    (50, "fund", "single", "program:funding", "program:budget", 500_000, None, None, None, T0),
    (
        51,
        "interop_redeem",
        "single",
        "interop:brossard",
        "merchant:w1:redeemed",
        40,
        None,
        tid(99),
        None,
        T0 + 42 * MINUTE,
    ),
    (52, "earn_civic", "single", "program:budget", "citizen:w9:wallet", 10, None, None, None, T0 + 44 * MINUTE),
]


def resealed(line: dict, seed: bytes, prev: str | None = None) -> dict:
    """The same entry re-hashed (with another prev_hash if given) and signed with another key."""
    out = dict(line)
    if prev is not None:
        out["prev_hash"] = prev
    e13 = tuple(out[f] for f in oracle.ENTRY_FIELDS)
    out["hash"] = oracle.entry_hash(e13)
    out["key_id"] = oracle.key_id(oracle.public_key(seed))
    out["signature"] = oracle.sign_hashes([out["hash"]], seed)[0]
    return out


def tamper_cases(intact: list[dict]) -> list[tuple[str, list[dict]]]:
    b = [dict(x) for x in intact if x["ledger"] == "brossard"]
    w = [dict(x) for x in intact if x["ledger"] == "wendake"]
    cases = []
    changed = [dict(x) for x in b]
    changed[2]["amount"] = 1200
    cases.append(("changed_amount", changed))
    cases.append(("removed_entry", b[:3] + b[4:]))
    cases.append(("swapped_entries", b[:4] + [b[5], b[4]] + b[6:]))
    forged = resealed({**b[2], "transfer_id": tid(777), "amount": 5000}, ATTACKER, prev=b[1]["hash"])
    cases.append(("inserted_entry", b[:2] + [forged] + b[2:]))
    cases.append(("resigned_unknown_key", b[:5] + [resealed(b[5], ATTACKER)] + b[6:]))
    impostor = resealed(b[5], ATTACKER)
    impostor["key_id"] = b[5]["key_id"]
    cases.append(("signature_by_other_key", b[:5] + [impostor] + b[6:]))
    cases.append(("duplicate_entry", b[:3] + [b[2]] + b[3:]))
    stale = resealed(b[11], SEEDS[0])  # key 0 retired before entry 12 was written
    cases.append(("retired_key", b[:11] + [stale]))
    cases.append(("chain_break", b[:6] + [resealed(b[6], SEEDS[0], prev="ab" * 32)] + b[7:]))
    cases.append(("missing_tail_of_other_ledger_is_fine", b + w[:2]))
    over = BROSSARD[:3] + [(60, "redeem", "single", W1, "merchant:m1:redeemed", 371, None, None, None, T0 + 3 * MINUTE)]
    cases.append(("overdraft", seal_chain("brossard", over)))
    bad_ref = BROSSARD[:3] + [
        (61, "redeem", "void", W1, "merchant:m1:redeemed", 10, tid(42), None, None, T0 + 3 * MINUTE)
    ]
    cases.append(("void_of_unknown_hold", seal_chain("brossard", bad_ref)))
    late = BROSSARD[:4] + [(62, "redeem", "post", W1, "merchant:m1:redeemed", 10, tid(4), None, None, T0 + 19 * MINUTE)]
    cases.append(("post_after_expiry", seal_chain("brossard", late)))
    early = BROSSARD[:4] + [
        (63, "redeem", "expire", W1, "merchant:m1:redeemed", 200, tid(4), None, None, T0 + 5 * MINUTE)
    ]
    cases.append(("expire_before_expiry", seal_chain("brossard", early)))
    same = BROSSARD[:1] + [
        (64, "earn_civic", "single", "program:budget", "program:budget", 5, None, None, None, T0 + MINUTE)
    ]
    cases.append(("same_accounts", seal_chain("brossard", same)))
    return cases + refund_cases() + writer_rule_cases(intact)


def refund_cases() -> list[tuple[str, list[dict]]]:
    """A refund names an earlier sale (redeem, earn_purchase) of its ledger, reverses its accounts and
    takes no more than earlier refunds left of it."""
    at = T0 + 45 * MINUTE
    civic = BROSSARD[:9] + [(65, "refund", "single", W1, "program:budget", 20, tid(2), None, None, at)]
    settled = BROSSARD[:5] + [(66, "settlement", "single", "merchant:m1:redeemed", "settlement:clearing", 150, None, None, None, at),
                              (67, "refund", "single", "settlement:clearing", "merchant:m1:redeemed", 150, tid(66), None, None, at)]  # fmt: skip
    beyond = BROSSARD[:10] + [(68, "refund", "single", "merchant:m1:redeemed", W1, 131, tid(5), None, None, at)]
    unreversed = BROSSARD[:5] + [(69, "refund", "single", W1, "merchant:m1:redeemed", 10, tid(5), None, None, at)]
    award = BROSSARD + [(70, "refund", "single", W1, "merchant:m1:issued", 120, tid(3), None, None, at)]
    cases = [(name, seal_chain("brossard", specs)) for name, specs in (
        ("refund_of_a_civic_earning", civic), ("refund_of_a_settlement", settled), ("refund_beyond_the_original", beyond),
        ("refund_not_reversing_the_original", unreversed))]  # fmt: skip
    return cases + [("refund_of_an_award_is_fine", seal_chain("brossard", award) + seal_chain("wendake", WENDAKE))]


def writer_rule_cases(intact: list[dict]) -> list[tuple[str, list[dict]]]:
    """Entries signed with a valid key that the writer never writes: formats, reused ids, time going
    back, holds resolved against their rules, linked groups without their other half."""
    b = [dict(x) for x in intact if x["ledger"] == "brossard"]
    w = [dict(x) for x in intact if x["ledger"] == "wendake"]
    at = T0 + 3 * MINUTE
    cases = [
        ("transfer_id_not_hex", b[:3] + [resealed({**b[3], "transfer_id": "NOT-HEX"}, SEEDS[0])]),
        ("kind_outside_its_pattern", b[:1] + [resealed({**b[1], "kind": "Earn Civic!"}, SEEDS[0])]),
        ("account_outside_the_vocabulary", b[:1] + [resealed({**b[1], "credit_account": "memo"}, SEEDS[0])]),
        ("ref_not_hex", b[:4] + [resealed({**b[4], "ref": "4"}, SEEDS[0])]),
        ("group_not_hex", b[:1] + [resealed({**b[1], "group": "g1"}, SEEDS[0])]),
        ("incomplete_group", b),
        ("group_halves_disagree", b + [w[0], resealed({**w[1], "amount": 39}, SEEDS[1])]),
    ]
    specs = {
        "reused_transfer_id": BROSSARD[:3] + [(3, "earn_civic", "single", "program:budget", W1, 5, None, None, None, at)],
        "time_reversed": BROSSARD[:3] + [(71, "earn_civic", "single", "program:budget", W1, 5, None, None, None, T0 + MINUTE)],
        "hold_longer_than_30_days": BROSSARD[:3] + [(72, "redeem", "pending", W1, "merchant:m1:redeemed", 5, None, None,
                                                     at + 31 * 24 * 60 * MINUTE, at)],
        "hold_not_whole_seconds": BROSSARD[:3] + [(73, "redeem", "pending", W1, "merchant:m1:redeemed", 5, None, None,
                                                   at + MINUTE + 1, at)],
        "capture_of_another_kind": BROSSARD[:4] + [(74, "earn_purchase", "post", W1, "merchant:m1:redeemed", 150, tid(4),
                                                    None, None, T0 + 4 * MINUTE)],
        "void_after_expiry": BROSSARD[:4] + [(75, "redeem", "void", W1, "merchant:m1:redeemed", 200, tid(4), None, None,
                                              T0 + 18 * MINUTE)],
    }  # fmt: skip
    return cases + [(name, seal_chain("brossard", entries)) for name, entries in specs.items()]


def stream_rows(lines: list[dict]) -> list[tuple]:
    return [tuple(x[f] for f in oracle.ENTRY_FIELDS + oracle.SEAL_FIELDS) for x in lines]


def verify_case(name: str, lines: list[dict]) -> dict:
    verifier = oracle.ChainVerifier(verifier_keys())
    verifier.feed(stream_rows(lines))
    report = verifier.finish()
    error = report["error"]
    return {"name": name, "lines": lines,
            "error": None if error is None else {k: error[k] for k in ("code", "ledger", "sequence")}}  # fmt: skip


ODD_STRINGS = ['quote " and backslash \\', "tab\tnew\nline\rcr\x08bs\x0cff", "ctl \x00\x01\x1f del \x7f",
               "accents éàçÉ œ — “ ” €", "astral 😀 \U0010ffff", "sep \u2028 \u2029", ""]  # fmt: skip


def encoding_cases() -> list[dict]:
    out = []
    for i, text in enumerate(ODD_STRINGS):
        e13 = (
            "x",
            i + 1,
            text,
            "k",
            "single",
            "a",
            text + "b",
            2**53 - 1 - i,
            None if i % 2 else text,
            None,
            None,
            i,
            "0" * 64,
        )
        out.append({"fields": oracle.entry_object(e13), "canonical": oracle.canonical_bytes(e13).decode(),
                    "hash": oracle.entry_hash(e13)})  # fmt: skip
    return out


def merkle_section(leaf_hex: list[str]) -> dict:
    leaves = b"".join(bytes.fromhex(h) for h in leaf_hex)
    n = len(leaf_hex)
    roots = [oracle.merkle_root(leaves[: 32 * size]).hex() for size in range(n + 1)]
    inclusion = [
        {"size": size, "index": index, "path": [p.hex() for p in oracle.inclusion_proof(leaves[: 32 * size], index)]}
        for size in range(1, n + 1) for index in range(size)
    ]  # fmt: skip
    consistency = [
        {"old_size": old, "new_size": new, "path": [p.hex() for p in oracle.consistency_proof(leaves[: 32 * new], old)]}
        for new in range(1, n + 1) for old in range(1, new + 1)
    ]  # fmt: skip
    return {"leaves": leaf_hex, "roots": roots, "inclusion": inclusion, "consistency": consistency}


def build() -> dict:
    intact = seal_chain("brossard", BROSSARD) + seal_chain("wendake", WENDAKE)
    key_index = {k["key_id"]: i for i, k in enumerate(keys())}
    entries = [
        {"fields": {f: x[f] for f in (*oracle.ENTRY_FIELDS, "v")},
         "canonical": oracle.canonical_bytes(tuple(x[f] for f in oracle.ENTRY_FIELDS)).decode(),
         "hash": x["hash"], "key_index": key_index[x["key_id"]], "signature": x["signature"]}
        for x in intact
    ]  # fmt: skip
    replayed = oracle.replay(tuple(x[f] for f in oracle.ENTRY_FIELDS) for x in intact)
    return {
        "format": "entraide.vectors/1",
        "keys": keys(),
        "entries": entries,
        "encoding": encoding_cases(),
        "merkle": merkle_section([x["hash"] for x in intact if x["ledger"] == "brossard"]),
        "replay": {ledger: {acct: list(c) for acct, c in sorted(accts.items())} for ledger, accts in replayed.items()},
        "verify": [verify_case("intact", intact)] + [verify_case(n, lines) for n, lines in tamper_cases(intact)],
    }


PATH = Path(__file__).with_name("ledger-v1.json")

if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")
