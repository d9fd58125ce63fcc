"""Settlement movements, inter-city netting and oldest-first expiry: the Rust core agrees with the
oracle (invariant 6), and both satisfy the money model's properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import core, oracle

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BAD_PHASES = (*oracle.PHASES, "posted", "")

# Few names, so that accounts and cities collide; a little Unicode checks both sort the same way.
name = st.sampled_from(["a", "b", "wallet", "Zed", "é", "interop:b", "merchant:m1:redeemed"]) | st.text(max_size=4)
time_us = st.integers(0, 100)


def outcome(fn, *args):
    """The result, or the ValueError's message: both implementations must give the same."""
    try:
        return fn(*args)
    except ValueError as exc:
        return ("ValueError", str(exc))


# --- movements ----------------------------------------------------------------------------------

posting = st.tuples(
    st.sampled_from(["city-a", "city-b", "city-c"]),
    name,
    name,
    st.integers(1, 10**6),
    st.sampled_from(oracle.PHASES),
    time_us,
)
bad_posting = st.tuples(name, name, name, st.integers(-3, 2**53 + 3), st.sampled_from(BAD_PHASES), time_us)


@PROPERTY
@given(st.lists(posting, max_size=60), time_us, time_us)
def test_movements_agree(entries, t1, t2):
    since_us, until_us = min(t1, t2), max(t1, t2)
    assert core.movements(entries, since_us, until_us) == oracle.movements(entries, since_us, until_us)


@PROPERTY
@given(st.lists(bad_posting, max_size=8), time_us, time_us)
def test_movements_errors_agree(entries, since_us, until_us):
    assert outcome(core.movements, entries, since_us, until_us) == outcome(
        oracle.movements, entries, since_us, until_us
    )


@PROPERTY
@given(st.lists(posting.filter(lambda e: e[1] != e[2]), max_size=60), time_us, time_us)
def test_movements_of_a_double_entry_set_sum_to_zero_per_ledger(entries, t1, t2):
    since_us, until_us = min(t1, t2), max(t1, t2)
    moves = core.movements(entries, since_us, until_us)
    for ledger in {m[0] for m in moves}:
        assert sum(credits - debits for lg, _, debits, credits in moves if lg == ledger) == 0
    posted = [e for e in entries if e[4] in ("single", "post") and since_us <= e[5] < until_us]
    assert sum(m[2] for m in moves) == sum(m[3] for m in moves) == sum(e[3] for e in posted)
    assert [(m[0], m[1]) for m in moves] == sorted({(e[0], a) for e in posted for a in e[1:3]})


def test_movements_ignore_phases_that_do_not_post_and_respect_bounds():
    entries = [
        ("b", "w", "m", 10, "single", 100),
        ("b", "w", "m", 20, "pending", 101),
        ("b", "w", "m", 15, "post", 102),
        ("b", "w", "m", 30, "void", 103),
        ("b", "w", "m", 40, "expire", 104),
        ("b", "w", "m", 1, "single", 99),  # before the period
        ("b", "w", "m", 2, "single", 200),  # until is exclusive
    ]
    expected = [("b", "m", 0, 25), ("b", "w", 25, 0)]
    assert core.movements(entries, 100, 200) == oracle.movements(entries, 100, 200) == expected


def test_binding_rejects_malformed_rows_with_value_error():
    for bad in ([("a", "x", "y", 1, "single")], [["a", "x", "y", 1, "single", 0]], [("a", "x", "y", "1", "single", 0)],
                [("a", "x", 3, 1, "single", 0)], [("a", "x", "y", True, "single", 0)], [("a", "x", "y", 2**64, "single", 0)], [("a", "x", "y", 1.0, "single", 0)]):  # fmt: skip
        with pytest.raises(ValueError, match="entry 0"):
            core.movements(bad, 0, 1)
    with pytest.raises(ValueError, match="obligation 0: amount must be int"):
        core.net_positions([("a", "b", 1.5)])
    with pytest.raises(ValueError, match="event 0: account must be str"):
        core.expire_lots([(None, 0, 1)], 0)


# --- net positions ------------------------------------------------------------------------------

city = st.sampled_from(["levis", "quebec", "wendake", "saguenay", "Rimouski", "é"])
obligation = st.tuples(city, city, st.integers(0, 10**9)).filter(lambda o: o[0] != o[1])


@PROPERTY
@given(st.lists(obligation, max_size=40))
def test_net_positions_agree_and_settle(obligations):
    positions, transfers = core.net_positions(obligations)
    assert (positions, transfers) == oracle.net_positions(obligations)
    assert sum(net for _, net in positions) == 0
    assert [c for c, _ in positions] == sorted({c for o in obligations for c in o[:2]})
    assert transfers == sorted(transfers)
    assert len({frozenset(t[:2]) for t in transfers}) == len(transfers)  # one transfer per pair at most
    for payer, payee, amount in transfers:
        assert amount > 0 and payer != payee
    for c, net in positions:  # paying the transfers leaves every city at its net position
        assert sum(t[2] for t in transfers if t[1] == c) - sum(t[2] for t in transfers if t[0] == c) == net


@PROPERTY
@given(st.lists(st.tuples(city, city, st.integers(-5, 5)), max_size=6))
def test_net_positions_errors_agree(obligations):
    assert outcome(core.net_positions, obligations) == outcome(oracle.net_positions, obligations)


def test_bilateral_netting_example():
    obligations = [
        ("quebec", "levis", 100),
        ("levis", "quebec", 30),
        ("levis", "wendake", 50),
        ("wendake", "levis", 50),
    ]
    expected = ([("levis", 70), ("quebec", -70), ("wendake", 0)], [("quebec", "levis", 70)])
    assert core.net_positions(obligations) == oracle.net_positions(obligations) == expected


# --- expiry -------------------------------------------------------------------------------------

ACCOUNTS = ["citizen:r1:wallet", "citizen:r2:wallet", "org:o1"]
# (account, earn?, points, minutes later): spends are clipped to the balance when the events are built.
op = st.tuples(st.sampled_from(ACCOUNTS), st.booleans(), st.integers(1, 30), st.integers(0, 3))


def journal_events(ops: list[tuple]) -> list[tuple[str, int, int]]:
    """Valid (account, time_us, delta) events, accounts interleaved, in journal order."""
    events, balance, now_us = [], dict.fromkeys(ACCOUNTS, 0), 0
    for account, earn, points, minutes in ops:
        now_us += minutes * 60_000_000
        delta = points if earn else -min(points, balance[account])
        if delta:
            balance[account] += delta
            events.append((account, now_us, delta))
    return events


def brute_force_expiry(events: list[tuple[str, int, int]], cutoff_us: int) -> list[tuple[str, int]]:
    """One list item per point, its lot's date; a spend removes the oldest points one by one."""
    points: dict[str, list[int]] = {}
    for account, when_us, delta in events:
        dates = points.setdefault(account, [])
        if delta > 0:
            dates.extend([when_us] * delta)
        else:
            del dates[:-delta]
    counts = {account: sum(d < cutoff_us for d in dates) for account, dates in points.items()}
    return sorted((account, n) for account, n in counts.items() if n)


@PROPERTY
@given(st.lists(op, max_size=80), st.integers(0, 200))
def test_expiry_is_oldest_first_and_idempotent(ops, cutoff_minutes):
    events = journal_events(ops)
    cutoff_us = cutoff_minutes * 60_000_000
    expired = core.expire_lots(events, cutoff_us)
    assert expired == oracle.expire_lots(events, cutoff_us) == brute_force_expiry(events, cutoff_us)
    balances = {a: sum(e[2] for e in events if e[0] == a) for a in ACCOUNTS}
    for account, points in expired:
        assert 0 < points <= balances[account]
    # Per-account order is all that matters: grouping the accounts changes nothing.
    assert core.expire_lots(sorted(events, key=lambda e: e[0]), cutoff_us) == expired
    # The breakage transfers consume what expired: expiring again finds nothing.
    after_us = (events[-1][1] if events else 0) + 1
    breakage = [(account, after_us, -points) for account, points in expired]
    assert core.expire_lots(events + breakage, cutoff_us) == oracle.expire_lots(events + breakage, cutoff_us) == []


@PROPERTY
@given(
    st.lists(st.tuples(st.sampled_from(ACCOUNTS[:2]), st.integers(0, 5), st.integers(-20, 20)), max_size=10),
    st.integers(0, 6),
)
def test_expiry_errors_agree(events, cutoff_us):
    assert outcome(core.expire_lots, events, cutoff_us) == outcome(oracle.expire_lots, events, cutoff_us)


def test_overspend_names_the_account():
    events = [("citizen:r1:wallet", 1, 10), ("citizen:r1:wallet", 2, -11)]
    for impl in (core, oracle):
        with pytest.raises(ValueError, match="event 1: 'citizen:r1:wallet' consumes 11 points but only 10 remain"):
            impl.expire_lots(events, 5)


def test_expiry_example_partial_lot_refund_and_reservation():
    w = "citizen:r1:wallet"
    events = [(w, 10, 100), (w, 20, 50), (w, 30, -120), (w, 40, 25), (w, 45, -5)]  # spend, refund lot, open hold
    for impl in (core, oracle):
        assert impl.expire_lots(events, 21) == [(w, 25)]  # 30 left of the lot dated 20, minus the hold's 5
        assert impl.expire_lots(events, 41) == [(w, 50)]
        assert impl.expire_lots(events, 10) == []
