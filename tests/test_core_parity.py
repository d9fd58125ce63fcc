"""Property tests: the Rust core agrees with the Python oracle on every function (invariant 6)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import core, oracle
from ledger.domain.transfers import REFUNDABLE_KINDS
from ledger.service_layer import entry_lines

SEEDS = [hashlib.sha256(f"parity key {i}".encode()).digest() for i in range(2)]
T0 = 1_767_225_600_000_000
PARITY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
entry13 = st.tuples(
    text, st.integers(1, 2**53 - 1), text, text, st.sampled_from(oracle.PHASES), text, text,
    st.integers(-(2**53), 2**53 - 1), st.none() | text, st.none() | text, st.none() | st.integers(0, 2**62),
    st.integers(0, 2**62), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)  # fmt: skip


@PARITY
@given(entry13)
def test_canonical_encoding_and_hash_agree(entry):
    assert core.canonical_bytes(entry) == oracle.canonical_bytes(entry)
    assert core.entry_hash(entry) == oracle.entry_hash(entry)


# --- random valid journals ----------------------------------------------------------------------

op = st.one_of(
    st.tuples(st.just("earn"), st.integers(0, 3), st.integers(1, 500)),
    st.tuples(st.just("spend"), st.integers(0, 3), st.integers(1, 300)),
    st.tuples(st.just("hold"), st.integers(0, 3), st.integers(1, 300), st.integers(1, 100)),
    st.tuples(st.just("post"), st.integers(0, 50), st.integers(1, 300)),
    st.tuples(st.just("void"), st.integers(0, 50)),
    st.tuples(st.just("expire"), st.integers(0, 50)),
)
ledger_ops = st.lists(op, min_size=1, max_size=60)


def build_journal(per_ledger: list[list[tuple]]) -> list[tuple]:
    """Sealed Entry16 rows of valid chains, one per ledger, from random operations."""
    rows = []
    for number, ops in enumerate(per_ledger):
        ledger = f"city-{number}"
        state = oracle.LedgerState()
        e12s, time_us = [], T0
        for n, operation in enumerate(ops):
            time_us += 1_000_000
            entry = _entry(ledger, len(e12s) + 1, n, operation, state, time_us)
            if entry is not None:
                state.check(entry + ("",))
                state.apply(entry + ("",))
                e12s.append(entry)
                time_us = entry[11]  # an expiry waits for its hold's expiry: time never goes back
        rows += sealed_rows(e12s, ledger, SEEDS[number % 2])
    return rows


def sealed_rows(e12s: list[tuple], ledger: str, seed: bytes = SEEDS[0]) -> list[tuple]:
    """Entry16 rows of one chain sealed by the oracle."""
    kid = oracle.key_id(oracle.public_key(seed))
    sealed = oracle.seal(e12s, {ledger: oracle.GENESIS_HASH}, seed)
    return [e12 + s[:2] + (kid, s[2]) for e12, s in zip(e12s, sealed, strict=True)]


def _entry(ledger, seq, n, operation, state, time_us):
    tid = f"{seq:032x}"
    kind = operation[0]
    wallet = lambda r: f"citizen:r{r}:wallet"  # noqa: E731
    if kind == "earn":
        return (
            ledger,
            seq,
            tid,
            "earn_civic",
            "single",
            "program:funding",
            wallet(operation[1]),
            operation[2],
            None,
            None,
            None,
            time_us,
        )
    if kind in ("spend", "hold"):
        account = wallet(operation[1])
        dp, cp, dpend, _ = state.counters.get(account, [0, 0, 0, 0])
        if cp - dp - dpend < operation[2]:
            return None
        if kind == "spend":
            return (
                ledger,
                seq,
                tid,
                "service",
                "single",
                account,
                "services:revenue",
                operation[2],
                None,
                None,
                None,
                time_us,
            )
        expires = time_us + operation[3] * 1_000_000
        return (
            ledger,
            seq,
            tid,
            "redeem",
            "pending",
            account,
            "merchant:m1:redeemed",
            operation[2],
            None,
            None,
            expires,
            time_us,
        )
    holds = sorted(state.holds.items())
    if not holds:
        return None
    ref, hold = holds[operation[1] % len(holds)]
    if kind in ("post", "void") and time_us >= hold.expires_at_us:
        return None  # an expired hold can only expire
    if kind == "post":
        amount = min(operation[2], hold.amount)
    elif kind == "expire":
        time_us = max(time_us, hold.expires_at_us)
        amount = hold.amount
    else:
        amount = hold.amount
    return (ledger, seq, tid, "redeem", kind, hold.debit_account, hold.credit_account, amount, ref, None, None, time_us)


def verifier_keys():
    return [(oracle.key_id(oracle.public_key(s)), oracle.public_key(s), 0, None) for s in SEEDS]


def reports_agree(rows: list[tuple]) -> dict:
    reports = []
    for impl in (core, oracle):
        verifier = impl.ChainVerifier(verifier_keys())
        half = len(rows) // 2
        verifier.feed(rows[:half])  # streaming: two chunks
        verifier.feed(rows[half:])
        reports.append(verifier.finish())
    rust, py = reports
    assert rust["ok"] == py["ok"]
    if not py["ok"]:
        assert {k: rust["error"][k] for k in ("code", "ledger", "sequence")} == {
            k: py["error"][k] for k in ("code", "ledger", "sequence")
        }
    else:
        for ledger, chain in py["ledgers"].items():
            r = rust["ledgers"][ledger]
            assert (r["head_sequence"], r["head_hash"], r["open_holds"]) == (
                chain["head_sequence"],
                chain["head_hash"],
                chain["open_holds"],
            )
            assert {a: tuple(c) for a, c in r["balances"].items()} == chain["balances"]
    return py


@PARITY
@given(st.lists(ledger_ops, min_size=1, max_size=3))
def test_seal_replay_and_verify_agree(per_ledger):
    rows = build_journal(per_ledger)
    for number in range(len(per_ledger)):
        ledger_rows = [r for r in rows if r[0] == f"city-{number}"]
        e12s = [r[:12] for r in ledger_rows]
        seed = SEEDS[number % 2]
        assert core.seal(e12s, {f"city-{number}": oracle.GENESIS_HASH}, seed) == [
            (r[12], r[13], r[15]) for r in ledger_rows
        ]
    # One call for every chain, entries of the ledgers interleaved as a batch has them: each chain
    # as if sealed alone (with one key here), and the same from both implementations.
    mixed = sorted((r[:12] for r in rows), key=lambda e: (e[1], e[0]))
    heads = {f"city-{n}": oracle.GENESIS_HASH for n in range(len(per_ledger))}
    together = core.seal(mixed, heads, SEEDS[0])
    assert together == oracle.seal(mixed, heads, SEEDS[0])
    for name in heads:
        alone = [e for e in mixed if e[0] == name]
        assert core.seal(alone, {name: oracle.GENESIS_HASH}, SEEDS[0]) == [
            s for e, s in zip(mixed, together, strict=True) if e[0] == name
        ]
    assert core.EntryBatch(rows).replay() == oracle.replay(r[:13] for r in rows)
    assert reports_agree(rows)["ok"]


@pytest.mark.parametrize("impl", [core, oracle], ids=["rust", "oracle"])
def test_seal_refuses_an_entry_of_a_ledger_without_a_starting_hash(impl):
    entry = (
        "city-0",
        1,
        "0" * 32,
        "earn_civic",
        "single",
        "program:funding",
        "citizen:r1:wallet",
        5,
        None,
        None,
        None,
        T0,
    )
    with pytest.raises(ValueError, match='entry 1: no prev_hash for ledger "city-1"'):
        impl.seal([entry, ("city-1",) + entry[1:]], {"city-0": oracle.GENESIS_HASH}, SEEDS[0])


TAMPERS = ("amount", "drop", "swap", "duplicate", "prev_hash", "resign", "key_id", "phase", "accounts")


@PARITY
@given(st.lists(ledger_ops, min_size=1, max_size=2), st.sampled_from(TAMPERS), st.integers(0, 10_000))
def test_tampered_journals_get_the_same_verdict(per_ledger, tamper, where):
    rows = build_journal(per_ledger)
    if len(rows) < 2:
        return
    i = where % (len(rows) - 1)
    # Dropping a chain's last entry is a truncation: only a checkpoint or the stored head reveals it.
    truncation = tamper == "drop" and rows[i + 1][0] != rows[i][0]
    row = list(rows[i])
    if tamper == "amount":
        row[7] += 1
    elif tamper == "prev_hash":
        row[12] = "f" * 64
    elif tamper == "phase":
        row[4] = "single" if row[4] != "single" else "pending"
    elif tamper == "accounts":
        row[5], row[6] = row[6], row[5]
    elif tamper == "key_id":
        row[14] = "0" * 16
    elif tamper == "resign":  # an insider with a valid key rewrites the entry and re-hashes it
        row[7] += 1
        row[13] = oracle.entry_hash(tuple(row[:13]))
        row[15] = oracle.sign_hashes(
            [row[13]], SEEDS[0] if row[14] == oracle.key_id(oracle.public_key(SEEDS[0])) else SEEDS[1]
        )[0]
    rows = list(rows)
    if tamper == "drop":
        del rows[i]
    elif tamper == "swap":
        rows[i], rows[i + 1] = rows[i + 1], rows[i]
    elif tamper == "duplicate":
        rows.insert(i + 1, rows[i])
    else:
        rows[i] = tuple(row)
    report = reports_agree(rows)
    if tamper not in ("resign", "swap") and not truncation:  # a swap across two ledgers' boundary is not a tamper
        assert not report["ok"]


@PARITY
@given(st.integers(0, 70), st.data())
def test_merkle_agrees(size, data):
    leaves = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size))
    root = oracle.merkle_root(leaves)
    assert core.merkle_root(leaves) == root
    if size:
        index = data.draw(st.integers(0, size - 1))
        path = oracle.inclusion_proof(leaves, index)
        assert core.inclusion_proof(leaves, index) == path
        assert core.verify_inclusion(leaves[32 * index : 32 * index + 32], index, size, path, root)
        old = data.draw(st.integers(1, size))
        proof = oracle.consistency_proof(leaves, old)
        assert core.consistency_proof(leaves, old) == proof
        old_root = oracle.merkle_root(leaves[: 32 * old])
        assert core.verify_consistency(old, size, old_root, root, proof) == oracle.verify_consistency(
            old, size, old_root, root, proof
        )
        assert oracle.verify_consistency(old, size, old_root, root, proof)


@PARITY
@given(st.integers(0, 70))
def test_leaf_hashes_agree_with_the_tree(size):
    hashes = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size))
    leaves = core.leaf_hashes(hashes)
    assert leaves == oracle.leaf_hashes(hashes) and len(leaves) == len(hashes)
    assert all(core.merkle_root(hashes[i : i + 32]) == leaves[i : i + 32] for i in range(0, len(hashes), 32))
    with pytest.raises(ValueError):
        core.leaf_hashes(hashes + b"x")


def _verdict(fn, data: bytes, width: int) -> bytes | None:
    try:
        result: bytes = fn(data, width)
    except ValueError:
        return None
    return result


@PARITY
@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(0, 9), st.integers(0, 400))
def test_entry_bundles_become_the_same_lines_or_are_refused_alike(entries, width, cut):
    """A bundle of `width` entries becomes their lines; one of another width, holding an entry that is
    blank or spans lines, is refused; and any cut of it gets the same verdict from both."""
    data = b"".join(len(e).to_bytes(2, "big") + e for e in entries)
    lines = _verdict(oracle.bundle_jsonl, data, width)
    assert _verdict(core.bundle_jsonl, data, width) == lines
    if width == len(entries) and all(b"\n" not in e and e.strip(b" \t\n\r\x0c") for e in entries):
        assert lines == b"".join(e + b"\n" for e in entries)
    else:
        assert lines is None
    assert _verdict(core.bundle_jsonl, data[:cut], width) == _verdict(oracle.bundle_jsonl, data[:cut], width)


def test_a_batch_reads_the_same_lines_from_memory_as_from_a_file(tmp_path):
    seed = SEEDS[0]
    kid = oracle.key_id(oracle.public_key(seed))
    rows = [("brossard", i, f"t{i}", "earn_purchase", "single", "a", "b", 10, None, None, None, T0 + i) for i in (1, 2)]
    sealed = oracle.seal(rows, {"brossard": "0" * 64}, seed)
    data = b"".join(entry_lines.entry_json((*row, prev, h, kid, sig)) + b"\n"
                    for row, (prev, h, sig) in zip(rows, sealed, strict=True))  # fmt: skip
    (tmp_path / "export.jsonl").write_bytes(data)
    from_file = core.EntryBatch.from_jsonl(str(tmp_path / "export.jsonl"))
    from_memory = core.EntryBatch.from_jsonl_bytes(data)
    assert len(from_memory) == len(from_file) == 2
    assert (
        from_memory.leaf_hashes("brossard")
        == from_file.leaf_hashes("brossard")
        == bytes.fromhex(sealed[0][1] + sealed[1][1])
    )
    with pytest.raises(ValueError, match="line 2"):
        core.EntryBatch.from_jsonl_bytes(data.replace(b"\n", b"\n{", 1))


@PARITY
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=20), st.integers(0, 19))
def test_signature_checks_agree(hashes, bad):
    seed = SEEDS[0]
    public = oracle.public_key(seed)
    items = [
        (h.hex(), s, public) for h, s in zip(hashes, oracle.sign_hashes([h.hex() for h in hashes], seed), strict=True)
    ]
    assert core.verify_signatures(items) is None and oracle.verify_signatures(items) is None
    if items:
        bad %= len(items)
        h, s, p = items[bad]
        items[bad] = (h, s[:-2] + ("00" if s[-2:] != "00" else "01"), p)
        assert core.verify_signatures(items) == oracle.verify_signatures(items) == bad


@PARITY
@given(st.binary(max_size=600), st.integers(0, 3), st.integers(0, 63))
def test_one_signature_check_agrees(message, tamper, at):
    """A POS request's signature base: signed, then left alone, altered, checked against another key,
    or cut short; the Rust check and the oracle's say the same."""
    seed, other = SEEDS[0], SEEDS[1]
    public = oracle.public_key(seed)
    signature = bytes.fromhex(oracle.sign_hashes([message.hex()], seed)[0]) if message else bytes(64)
    key, text = public, message
    if tamper == 1:
        signature = signature[:at] + bytes([signature[at] ^ 1]) + signature[at + 1 :]
    elif tamper == 2:
        key = oracle.public_key(other)
    elif tamper == 3:
        signature = signature[:at]
    assert core.verify_signature(key, text, signature) == oracle.verify_signature(key, text, signature)
    assert core.verify_signature(key, text, signature) == (tamper == 0 and bool(message))


# --- refunds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", [core, oracle], ids=["rust", "oracle"])
def test_the_verifiers_let_a_refund_reverse_exactly_the_domains_refundable_kinds(impl):
    kinds = sorted(REFUNDABLE_KINDS) + [
        "earn_civic",
        "service",
        "settlement",
        "settlement_interop",
        "expiry",
        "budget_funding",
    ]
    for kind in kinds:
        e12s = [
            ("city-k", 1, "1" * 32, kind, "single", "program:funding", "citizen:r1:wallet", 10, None, None, None, T0),
            (
                "city-k",
                2,
                "2" * 32,
                "refund",
                "single",
                "citizen:r1:wallet",
                "program:funding",
                10,
                "1" * 32,
                None,
                None,
                T0,
            ),
        ]
        verifier = impl.ChainVerifier(verifier_keys())
        verifier.feed(sealed_rows(e12s, "city-k"))
        assert verifier.finish()["ok"] is (kind in REFUNDABLE_KINDS), kind


refund_op = st.one_of(
    st.tuples(st.just("earn"), st.integers(1, 500)),
    st.tuples(st.just("sale"), st.integers(1, 300)),
    st.tuples(
        st.just("refund"), st.integers(0, 10_000), st.integers(1, 300), st.booleans()
    ),  # target, points, reversed
)


@PARITY
@given(st.lists(refund_op, min_size=1, max_size=40))
def test_refunds_of_anything_get_the_verdict_of_the_refund_rule(ops):
    """Refunds naming any earlier transfer (a sale, a civic earning, another refund), with its
    accounts reversed or not, for any amount: both verifiers flag exactly the first one that does
    not reverse what is left of a sale."""
    ledger, wallet, shop = "city-r", "citizen:r0:wallet", "merchant:m1:redeemed"
    e12s: list[tuple] = []
    left: dict[str, int] = {}  # sale -> points not yet refunded
    available, first_bad = 0, None
    for operation in ops:
        sequence = len(e12s) + 1
        tid, time_us = f"{sequence:032x}", T0 + sequence * 1_000_000
        if operation[0] == "earn":
            e12s.append(
                (
                    ledger,
                    sequence,
                    tid,
                    "earn_civic",
                    "single",
                    "program:funding",
                    wallet,
                    operation[1],
                    None,
                    None,
                    None,
                    time_us,
                )
            )
            available += operation[1]
        elif operation[0] == "sale" and available >= operation[1]:
            e12s.append(
                (ledger, sequence, tid, "redeem", "single", wallet, shop, operation[1], None, None, None, time_us)
            )
            available -= operation[1]
            left[tid] = operation[1]
        elif operation[0] == "refund" and e12s:
            _, target, points, reversed_ = operation
            original = e12s[target % len(e12s)]
            debit, credit = (original[6], original[5]) if reversed_ else (original[5], original[6])
            e12s.append(
                (ledger, sequence, tid, "refund", "single", debit, credit, points, original[2], None, None, time_us)
            )
            if reversed_ and points <= left.get(original[2], 0):
                left[original[2]] -= points
                available += points
            elif first_bad is None:
                first_bad = sequence
    report = reports_agree(sealed_rows(e12s, ledger))
    if first_bad is None:
        assert report["ok"], report["error"]
    else:
        assert (report["error"]["code"], report["error"]["sequence"]) == ("bad_reference", first_bad)
