"""Property tests of the ledger invariants through the service, on SQLite and PostgreSQL.

Random sequences of earnings, spends, holds, posts, voids, refunds, cross-city groups, retries and
clock jumps go through `LedgerService.submit` in random batches. After each example:
1. double entry: every ledger sums to zero (posted and pending);
2. append-only chain: gapless sequences, hashes and signatures verify (Rust and oracle);
3. no non-negative account is ever below zero, after every batch;
4. idempotency: submitting every request again writes nothing and returns the originals;
6. the Rust verifier and the Python oracle agree, and the projection equals the replay.
Each example uses fresh ledger names in the same database, so examples are independent.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import core, oracle
from ledger.adapters import journal
from ledger.domain.transfers import TransferRequest as T
from ledger.service_layer import audit

_examples = itertools.count()
RESIDENTS = 4

op = st.one_of(
    st.tuples(st.just("earn"), st.integers(0, RESIDENTS - 1), st.integers(1, 400)),
    st.tuples(st.just("spend"), st.integers(0, RESIDENTS - 1), st.integers(1, 400)),
    st.tuples(st.just("hold"), st.integers(0, RESIDENTS - 1), st.integers(1, 400), st.integers(1, 120)),
    st.tuples(st.just("post"), st.integers(0, 30), st.none() | st.integers(1, 400)),
    st.tuples(st.just("void"), st.integers(0, 30)),
    st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 400)),
    st.tuples(st.just("cross"), st.integers(0, RESIDENTS - 1), st.integers(1, 300)),
    st.tuples(st.just("retry"), st.integers(0, 60)),
    st.tuples(st.just("advance"), st.integers(1, 90)),
    st.tuples(
        st.just("cut"),
    ),
)


def wallet(r: int) -> str:
    return f"citizen:r{r}:wallet"


def to_batches(ops, a: str, b: str):
    """Turn operations into batches of groups; 'cut' ends a batch, 'advance' moves the clock."""
    sent: list[list[T]] = []
    holds: list[str] = []
    refund_targets: list[tuple[str, str, str]] = []  # sales, and earnings that no refund may reverse
    batch: list[list[T]] = []
    for n, operation in enumerate(ops):
        key = f"op{n}"
        kind = operation[0]
        group = None
        if kind == "earn":
            group = [T(a, key, "earn_civic", "single", "program:budget", wallet(operation[1]), operation[2])]
            refund_targets.append((group[0].transfer_id, "program:budget", wallet(operation[1])))
        elif kind == "spend":
            group = [T(a, key, "redeem", "single", wallet(operation[1]), "merchant:m1:redeemed", operation[2])]
            refund_targets.append((group[0].transfer_id, wallet(operation[1]), "merchant:m1:redeemed"))
        elif kind == "hold":
            group = [
                T(
                    a,
                    key,
                    "redeem",
                    "pending",
                    wallet(operation[1]),
                    "merchant:m2:redeemed",
                    operation[2],
                    timeout_seconds=operation[3],
                )
            ]
            holds.append(group[0].transfer_id)
        elif kind in ("post", "void") and holds:
            ref = holds[operation[1] % len(holds)]
            group = [T(a, key, "redeem", kind, amount_points=operation[2] if kind == "post" else None, ref=ref)]
        elif kind == "refund" and refund_targets:
            ref, debit, credit = refund_targets[operation[1] % len(refund_targets)]
            group = [T(a, key, "refund", "single", credit, debit, operation[2], ref=ref)]
        elif kind == "cross":
            group = [T(a, key, "interop_redeem", "single", wallet(operation[1]), f"interop:{b}", operation[2]),
                     T(b, key, "interop_redeem", "single", f"interop:{a}", "merchant:m9:redeemed", operation[2])]  # fmt: skip
        elif kind == "retry" and sent:
            group = sent[operation[1] % len(sent)]
        elif kind == "advance":
            yield batch, operation[1]
            batch = []
        elif kind == "cut":
            yield batch, 0
            batch = []
        if group is not None:
            sent.append(group)
            batch.append(group)
    yield batch, 0


def _check_non_negative(ctx, ledgers):
    with ctx.engine.begin() as conn:
        for ledger in ledgers:
            for name, b in journal.all_balances(conn, ledger).items():
                if oracle.is_non_negative(name):
                    assert b.debits_posted + b.debits_pending <= b.credits_posted, (ledger, name)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(ops=st.lists(op, min_size=1, max_size=40))
def test_invariants_hold_for_random_activity(ctx, clock, ops):
    n = next(_examples)
    a, b = f"pa{n}", f"pb{n}"
    for ledger in (a, b):
        ctx.ledger.create_ledger(ledger)
        ctx.ledger.transfer(T(ledger, "fund", "budget_funding", "single", "program:funding", "program:budget", 2_000))
    committed: dict[tuple, tuple] = {}  # group's keys -> its first committed transfers
    for batch, seconds in to_batches(ops, a, b):
        for group, outcome in zip(batch, ctx.ledger.submit(batch) if batch else [], strict=True):
            if outcome.ok:
                committed.setdefault(tuple((r.ledger, r.idempotency_key) for r in group), (group, outcome.transfers))
        clock.advance(seconds)
        _check_non_negative(ctx, (a, b))

    ctx.ledger.expire_holds([a, b])
    before = audit.entry_count(ctx.engine)
    groups = [group for group, _ in committed.values()]
    for (_, first), outcome in zip(committed.values(), ctx.ledger.submit(groups), strict=True):
        assert outcome.ok and all(t.replayed for t in outcome.transfers)
        assert [t.hash for t in outcome.transfers] == [t.hash for t in first]
    assert audit.entry_count(ctx.engine) == before
    with ctx.engine.begin() as conn:
        open_holds = sum(len(journal.open_holds(conn, ledger)) for ledger in (a, b))

    with ctx.engine.begin() as conn:
        rows = [r for ledger in (a, b) for chunk in journal.stream_entries(conn, ledger) for r in chunk]
        for ledger in (a, b):
            sequences = [r[1] for r in rows if r[0] == ledger]
            assert sequences == list(range(1, len(sequences) + 1))
            stored = {name: bal.as_tuple() for name, bal in journal.all_balances(conn, ledger).items()}
            replayed = oracle.replay(r[:13] for r in rows if r[0] == ledger).get(ledger, {})
            assert stored == replayed
            assert sum(c[1] - c[0] for c in replayed.values()) == 0 and sum(c[3] - c[2] for c in replayed.values()) == 0
    keys = audit.verifier_keys(audit.keys_document(ctx.engine))
    for impl in (core, oracle):
        verifier = impl.ChainVerifier(keys)
        verifier.feed(rows)
        report = verifier.finish()
        assert report["ok"], report["error"]
    assert open_holds == sum(report["ledgers"][ledger]["open_holds"] for ledger in (a, b))
