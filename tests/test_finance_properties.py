"""Property tests of settlement on random activity: statements equal the ledger, closing twice writes
nothing, cross-city netting sums to zero. Each example plays in two fresh cities of one database."""

from __future__ import annotations

import itertools
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finance.domain.settlement import SETTLEMENT_KINDS
from ledger.adapters import journal
from ledger.domain.transfers import TransferRequest
from tests.test_api import entry_count
from tests.world import World

DAY_US = 86_400_000_000
JAN_START_US = 1_767_243_600_000_000  # 2026-01-01 00:00 in Montréal (05:00 UTC)
MERCHANTS = ("m0", "m1", "m2")
RESIDENTS = 4
counter = itertools.count()

operation = st.tuples(
    st.sampled_from(("award", "redeem", "refund", "cross")),
    st.integers(0, len(MERCHANTS) - 1),
    st.integers(0, RESIDENTS - 1),
    st.integers(1, 400),
    st.integers(-5, 40),  # day of the operation relative to January 1st: some before, some after the period
)


def _play(world: World, home: str, away: str, ops) -> None:
    ledger, clock = world.ctx.ledger, world.ctx.clock
    wallets = [f"citizen:{world.residents[f'{home}-{n}'].id}:wallet" for n in range(RESIDENTS)]
    done: list[tuple[str, str, str, str, int]] = []  # (ledger, transfer id, debit, credit, points)
    for kind, m, r, points, day in sorted(ops, key=lambda op: op[4]):
        clock.now_us = max(clock.now_us, JAN_START_US + day * DAY_US)
        key = f"k{next(counter)}"
        merchant = f"{home}-{MERCHANTS[m]}"
        if kind == "award":
            group = [
                TransferRequest(home, key, "earn_purchase", "single", f"merchant:{merchant}:issued", wallets[r], points)
            ]
        elif kind == "redeem":
            group = [
                TransferRequest(home, key, "redeem", "single", wallets[r], f"merchant:{merchant}:redeemed", points)
            ]
        elif kind == "cross":
            group = [TransferRequest(home, key, "redeem", "single", wallets[r], f"interop:{away}", points),
                     TransferRequest(away, key, "redeem", "single", f"interop:{home}", f"merchant:{away}-m0:redeemed", points)]  # fmt: skip
        elif done:
            city, original, debit, credit, amount = done[points % len(done)]
            group = [TransferRequest(city, key, "refund", "single", credit, debit, max(1, amount // 2), original)]
        else:
            continue
        (outcome,) = ledger.submit([group])
        if outcome.ok and kind != "refund":
            done += [(t.ledger, t.transfer_id, t.debit_account, t.credit_account, t.amount) for t in outcome.transfers]


def _expected(world: World, city: str, since: int, until: int) -> dict[str, list[int]]:
    with world.ctx.engine.connect() as conn:
        rows = journal.period_rows(conn, city, since, until, ("kind", "debit_account", "credit_account", "amount"))
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for kind, debit, credit, amount in rows:
        if kind in SETTLEMENT_KINDS:
            continue
        for account, sign in ((credit, 1), (debit, -1)):
            parts = account.split(":")
            if parts[0] == "merchant":
                expected[parts[1]][0 if parts[2] == "redeemed" else 1] += (
                    sign * amount * (1 if parts[2] == "redeemed" else -1)
                )
    return {m: v for m, v in expected.items() if v != [0, 0]}


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.lists(operation, min_size=1, max_size=25))
def test_statements_equal_the_ledger_and_netting_sums_to_zero(ctx, clock, ops) -> None:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    n = next(counter)
    home, away = f"home{n}", f"away{n}"
    clock.now_us = max(clock.now_us, JAN_START_US - 10 * DAY_US)
    for city in (home, away):
        world.city(city, daily_cap_points=10**9, monthly_cap_points=10**9)
        for merchant in MERCHANTS:
            ctx.merchants.add(city, f"{city}-{merchant}", merchant, "test", key=f"{city}-{merchant}", category="food")
    for r in range(RESIDENTS):
        world.resident(f"{home}-{r}", home, points=2_000)
    _play(world, home, away, ops)
    clock.now_us = max(clock.now_us, JAN_START_US + 45 * DAY_US)

    closed = {city: ctx.settlement.close(city, "2026-01", "test").statement for city in (home, away)}
    for city, statement in closed.items():
        lines = {line.merchant_id: [line.redeemed_points, line.issued_points] for line in statement.merchants}
        assert lines == _expected(world, city, statement.since_us, statement.until_us)
        assert statement.totals.net_cents == sum(line.net_cents for line in statement.merchants)
    assert closed[home].interop == closed[away].interop
    for position in closed[home].interop:
        assert position.points > 0 and {position.payer, position.payee} == {home, away}

    before = entry_count(world)
    assert all(ctx.settlement.close(city, "2026-01", "again").replayed for city in (home, away))
    assert entry_count(world) == before
    with ctx.engine.connect() as conn:
        for city in (home, away):
            assert sum(b.posted for b in journal.all_balances(conn, city).values()) == 0
