"""Transfers through the service on a real database: rules, two-phase, idempotency, linked groups."""

from __future__ import annotations

import itertools

import pytest

from ledger.domain.errors import (
    BudgetExceeded,
    ExceedsOriginal,
    HoldExpired,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAccount,
    InvalidRequest,
    UnknownLedger,
    UnknownTransfer,
)
from ledger.domain.transfers import TransferRequest as T
from ledger.service_layer import audit
from tests.conftest import BACKENDS

WALLET = "citizen:r1:wallet"
SHOP = "merchant:m1:redeemed"
_keys = itertools.count()


def key() -> str:
    return f"k{next(_keys)}"


def funded(ctx, ledger: str = "brossard", budget: int = 10_000, wallet: int = 1_000) -> None:
    ctx.ledger.create_ledger(ledger)
    ctx.ledger.transfer(T(ledger, key(), "budget_funding", "single", "program:funding", "program:budget", budget))
    if wallet:
        ctx.ledger.transfer(T(ledger, key(), "earn_civic", "single", "program:budget", WALLET, wallet))


def hold(ctx, points: int, timeout_seconds: int = 60, ledger: str = "brossard"):
    (result,) = ctx.ledger.transfer(
        T(ledger, key(), "redeem", "pending", WALLET, SHOP, points, timeout_seconds=timeout_seconds)
    )
    return result


def assert_verifies(ctx) -> None:
    report = audit.verify_database(ctx.engine)
    assert report["ok"], report["error"]


def test_single_transfer_moves_points_and_chains(ctx):
    funded(ctx)
    (result,) = ctx.ledger.transfer(T("brossard", key(), "service", "single", WALLET, "services:revenue", 300))
    assert result.sequence == 3 and result.amount == 300 and not result.replayed
    wallet = ctx.ledger.balance("brossard", WALLET)
    assert (wallet.posted, wallet.available) == (700, 700)
    assert ctx.ledger.balance("brossard", "services:revenue").posted == 300
    assert_verifies(ctx)


def test_wallet_never_goes_negative_and_refusal_writes_nothing(ctx):
    funded(ctx, wallet=100)
    with pytest.raises(InsufficientFunds) as refused:
        ctx.ledger.transfer(T("brossard", key(), "service", "single", WALLET, "services:revenue", 101))
    assert refused.value.context["available_points"] == 100
    assert audit.entry_count(ctx.engine) == 2
    assert ctx.ledger.balance("brossard", WALLET).available == 100


def test_budget_cannot_be_exceeded(ctx):
    funded(ctx, budget=500, wallet=400)
    with pytest.raises(BudgetExceeded):
        ctx.ledger.transfer(
            T("brossard", key(), "earn_volunteer", "single", "program:budget", "citizen:r2:wallet", 101)
        )
    ctx.ledger.transfer(T("brossard", key(), "earn_volunteer", "single", "program:budget", "citizen:r2:wallet", 100))
    assert ctx.ledger.balance("brossard", "program:budget").available == 0


def test_hold_reserves_funds_then_partial_capture_releases_the_rest(ctx):
    funded(ctx, wallet=1000)
    h = hold(ctx, 800)
    wallet = ctx.ledger.balance("brossard", WALLET)
    assert (wallet.posted, wallet.available, wallet.debits_pending) == (1000, 200, 800)
    with pytest.raises(InsufficientFunds):  # the hold's reservation counts
        ctx.ledger.transfer(T("brossard", key(), "service", "single", WALLET, "services:revenue", 201))
    (post,) = ctx.ledger.transfer(T("brossard", key(), "redeem", "post", amount_points=500, ref=h.transfer_id))
    assert (post.phase, post.amount, post.ref, post.debit_account, post.credit_account) == (
        "post",
        500,
        h.transfer_id,
        WALLET,
        SHOP,
    )
    wallet = ctx.ledger.balance("brossard", WALLET)
    assert (wallet.posted, wallet.available, wallet.debits_pending) == (500, 500, 0)
    assert ctx.ledger.balance("brossard", SHOP).posted == 500
    assert_verifies(ctx)


def test_hold_resolves_at_most_once(ctx):
    funded(ctx)
    h = hold(ctx, 100)
    ctx.ledger.transfer(T("brossard", key(), "redeem", "void", ref=h.transfer_id))
    assert ctx.ledger.balance("brossard", WALLET).available == 1000
    with pytest.raises(HoldNotOpen):
        ctx.ledger.transfer(T("brossard", key(), "redeem", "post", ref=h.transfer_id))
    with pytest.raises(HoldNotOpen):
        ctx.ledger.transfer(T("brossard", key(), "redeem", "void", ref=h.transfer_id))


def test_post_cannot_exceed_hold(ctx):
    funded(ctx)
    h = hold(ctx, 100)
    with pytest.raises(ExceedsOriginal):
        ctx.ledger.transfer(T("brossard", key(), "redeem", "post", amount_points=101, ref=h.transfer_id))


def test_a_hold_is_posted_or_voided_under_its_own_kind(ctx):
    """What a refund may later reverse depends on the posted kind: a municipal service's hold cannot be
    captured as a merchant redemption (and so become refundable by the merchant)."""
    funded(ctx)
    (service,) = ctx.ledger.transfer(
        T("brossard", key(), "service", "pending", WALLET, "services:revenue", 100, timeout_seconds=60)
    )
    before = audit.entry_count(ctx.engine)
    for phase in ("post", "void"):
        with pytest.raises(InvalidRequest, match="kind"):
            ctx.ledger.transfer(T("brossard", key(), "redeem", phase, ref=service.transfer_id))
    assert audit.entry_count(ctx.engine) == before
    (posted,) = ctx.ledger.transfer(T("brossard", key(), "service", "post", ref=service.transfer_id))
    assert posted.kind == "service" and posted.amount == 100
    assert_verifies(ctx)


def test_expired_hold_cannot_be_posted_and_is_released(ctx, clock):
    funded(ctx)
    h = hold(ctx, 400, timeout_seconds=30)
    clock.advance(31)
    with pytest.raises(HoldExpired):
        ctx.ledger.transfer(T("brossard", key(), "redeem", "post", ref=h.transfer_id))
    # The append that refused the post swept the due hold first: its expiry entry is written.
    assert ctx.ledger.expire_holds() == 0
    assert audit.entry_count(ctx.engine) == 4
    wallet = ctx.ledger.balance("brossard", WALLET)
    assert (wallet.available, wallet.debits_pending) == (1000, 0)
    with pytest.raises(HoldExpired):
        ctx.ledger.transfer(T("brossard", key(), "redeem", "post", ref=h.transfer_id))
    assert_verifies(ctx)


def test_expire_holds_sweeps_due_holds(ctx, clock):
    funded(ctx)
    for _ in range(3):
        hold(ctx, 100, timeout_seconds=10)
    hold(ctx, 100, timeout_seconds=100)
    clock.advance(11)
    assert ctx.ledger.expire_holds() == 3
    assert ctx.ledger.balance("brossard", WALLET).debits_pending == 100
    assert_verifies(ctx)


def test_expiry_happens_in_the_next_append_too(ctx, clock):
    funded(ctx)
    hold(ctx, 1000, timeout_seconds=5)
    clock.advance(6)
    # The wallet is fully reserved until the expiry entry is written; the next append writes it first.
    (spent,) = ctx.ledger.transfer(T("brossard", key(), "service", "single", WALLET, "services:revenue", 1000))
    assert spent.sequence == 5  # 3 = hold, 4 = its expiry, 5 = this transfer
    assert_verifies(ctx)


def test_unknown_hold_and_unknown_ledger(ctx):
    funded(ctx)
    with pytest.raises(UnknownTransfer):
        ctx.ledger.transfer(T("brossard", key(), "redeem", "post", ref="0" * 32))
    with pytest.raises(UnknownLedger):
        ctx.ledger.transfer(T("nowhere", key(), "earn_civic", "single", "program:budget", WALLET, 1))


def test_idempotent_retry_returns_the_original_and_writes_nothing(ctx):
    funded(ctx)
    request = T("brossard", "till-7-sale-42", "service", "single", WALLET, "services:revenue", 250)
    (first,) = ctx.ledger.transfer(request)
    (again,) = ctx.ledger.transfer(
        T("brossard", "till-7-sale-42", "service", "single", WALLET, "services:revenue", 250)
    )
    assert again.replayed and not first.replayed
    assert (again.sequence, again.hash, again.transfer_id, again.time_us) == (
        first.sequence,
        first.hash,
        first.transfer_id,
        first.time_us,
    )
    assert audit.entry_count(ctx.engine) == 3
    assert ctx.ledger.balance("brossard", WALLET).posted == 750
    with pytest.raises(IdempotencyConflict):
        ctx.ledger.transfer(T("brossard", "till-7-sale-42", "service", "single", WALLET, "services:revenue", 251))


def test_duplicate_in_one_batch_is_written_once(ctx):
    funded(ctx)
    request = T("brossard", "dup", "service", "single", WALLET, "services:revenue", 10)
    outcomes = ctx.ledger.submit(
        [[request], [request], [T("brossard", "dup", "service", "single", WALLET, "services:revenue", 11)]]
    )
    assert outcomes[0].ok and outcomes[1].ok and not outcomes[0].transfers[0].replayed
    assert outcomes[1].transfers[0].replayed and outcomes[1].transfers[0].hash == outcomes[0].transfers[0].hash
    assert isinstance(outcomes[2].error, IdempotencyConflict)
    assert audit.entry_count(ctx.engine) == 3


def test_linked_group_across_two_city_ledgers_is_all_or_nothing(ctx):
    funded(ctx, "brossard", wallet=300)
    funded(ctx, "wendake", wallet=0)
    group = [
        T("brossard", key(), "interop_redeem", "single", WALLET, "interop:wendake", 200),
        T("wendake", key(), "interop_redeem", "single", "interop:brossard", "merchant:w1:redeemed", 200),
    ]
    a, b = ctx.ledger.transfer(*group)
    assert a.group == b.group is not None and (a.ledger, b.ledger) == ("brossard", "wendake")
    failing = [
        T("brossard", key(), "interop_redeem", "single", WALLET, "interop:wendake", 50),
        T("wendake", key(), "interop_redeem", "single", "interop:brossard", "merchant:w1:redeemed", 60),
        T("wendake", key(), "redeem", "post", ref="f" * 32),
    ]
    with pytest.raises(UnknownTransfer) as refused:
        ctx.ledger.transfer(*failing)
    assert refused.value.context["failed_index"] == 2
    assert ctx.ledger.balance("brossard", WALLET).posted == 100
    assert ctx.ledger.balance("wendake", "merchant:w1:redeemed").posted == 200
    assert audit.entry_count(ctx.engine) == 2 + 1 + 2
    assert_verifies(ctx)


def test_a_failed_group_does_not_stop_the_rest_of_the_batch(ctx):
    funded(ctx, wallet=100)
    outcomes = ctx.ledger.submit([
        [T("brossard", key(), "service", "single", WALLET, "services:revenue", 60)],
        [T("brossard", key(), "service", "single", WALLET, "services:revenue", 60)],
        [T("brossard", key(), "service", "single", WALLET, "services:revenue", 40)],
    ])  # fmt: skip
    assert [o.ok for o in outcomes] == [True, False, True]
    assert isinstance(outcomes[1].error, InsufficientFunds)
    assert [o.transfers[0].sequence for o in outcomes if o.ok] == [3, 4]


def test_refunds_reference_the_original_and_never_exceed_it(ctx):
    funded(ctx)
    h = hold(ctx, 300)
    (post,) = ctx.ledger.transfer(T("brossard", key(), "redeem", "post", ref=h.transfer_id))
    (refund,) = ctx.ledger.transfer(T("brossard", key(), "refund", "single", SHOP, WALLET, 200, ref=post.transfer_id))
    assert refund.ref == post.transfer_id
    with pytest.raises(ExceedsOriginal):
        ctx.ledger.transfer(T("brossard", key(), "refund", "single", SHOP, WALLET, 101, ref=post.transfer_id))
    with pytest.raises(InvalidRequest):  # a refund reverses the original's accounts
        ctx.ledger.transfer(T("brossard", key(), "refund", "single", WALLET, SHOP, 10, ref=post.transfer_id))
    with pytest.raises(UnknownTransfer):
        ctx.ledger.transfer(T("brossard", key(), "refund", "single", SHOP, WALLET, 10, ref="e" * 32))
    ctx.ledger.transfer(T("brossard", key(), "refund", "single", SHOP, WALLET, 100, ref=post.transfer_id))
    assert ctx.ledger.balance("brossard", WALLET).posted == 1000
    assert_verifies(ctx)


@pytest.mark.parametrize(
    "request_, error",
    [
        (T("brossard", "x", "service", "single", WALLET, "services:revenue", 0), InvalidRequest),
        (T("brossard", "x", "service", "single", WALLET, "services:revenue", -5), InvalidRequest),
        (T("brossard", "x", "service", "single", WALLET, "services:revenue", 2**53), InvalidRequest),
        (T("brossard", "x", "service", "single", WALLET, "services:revenue", True), InvalidRequest),
        (T("brossard", "x", "service", "single", WALLET, WALLET, 5), InvalidRequest),
        (
            T("brossard", "x", "service", "single", "citizen:Jean Tremblay:wallet", "services:revenue", 5),
            InvalidAccount,
        ),
        (T("brossard", "x", "service", "single", WALLET, "bank:somewhere", 5), InvalidAccount),
        (T("brossard", "", "service", "single", WALLET, "services:revenue", 5), InvalidRequest),
        (T("brossard", "x", "Service!", "single", WALLET, "services:revenue", 5), InvalidRequest),
        (T("brossard", "x", "service", "expire", WALLET, "services:revenue", 5), InvalidRequest),
        (T("brossard", "x", "redeem", "pending", WALLET, SHOP, 5), InvalidRequest),
        (T("brossard", "x", "redeem", "pending", WALLET, SHOP, 5, timeout_seconds=0), InvalidRequest),
        (T("brossard", "x", "redeem", "single", WALLET, SHOP, 5, timeout_seconds=10), InvalidRequest),
        (T("brossard", "x", "redeem", "post"), InvalidRequest),
        (T("Brossard!", "x", "service", "single", WALLET, "services:revenue", 5), InvalidRequest),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(ctx, request_, error):
    funded(ctx)
    with pytest.raises(error):
        ctx.ledger.transfer(request_)
    assert audit.entry_count(ctx.engine) == 2


def slicing_batch() -> list[list[T]]:
    """Groups on two ledgers and across them, with refusals and a duplicate, for the sealing tests."""
    groups: list[list[T]] = []
    for i in range(60):
        ledger = ("brossard", "wendake")[i % 2]
        groups.append([T(ledger, f"s{i}", "service", "single", WALLET, "services:revenue", 7 + i % 5)])
        if i % 9 == 0:  # more than the wallet holds: refused, nothing planned
            groups.append([T(ledger, f"big{i}", "service", "single", WALLET, "services:revenue", 10_000)])
        if i % 13 == 0:
            groups.append([T("brossard", f"x{i}", "interop_redeem", "single", WALLET, "interop:wendake", 3),
                           T("wendake", f"y{i}", "interop_redeem", "single", "interop:brossard", SHOP, 3)])  # fmt: skip
    groups.append(list(groups[4]))  # a retry inside the batch
    return groups


@pytest.mark.parametrize("db_url", [b for b in BACKENDS if b == "postgresql"], indirect=True)
def test_a_batch_sealed_in_slices_is_the_batch_sealed_at_once(ctx, clock, tmp_path, monkeypatch):
    """PostgreSQL seals and copies a batch slice by slice while it is planned; the chains, hashes and
    outcomes are those of the same batch sealed at once (SQLite, which never slices)."""
    from api.bootstrap import Settings, open_context
    from ledger.service_layer import transfers

    whole = open_context(Settings(tmp_path / "whole", str(tmp_path / "whole.db"), tmp_path / "whole-keys"),
                         clock=clock, key_from_us=clock(), create=True)  # fmt: skip
    for context in (ctx, whole):
        for ledger in ("brossard", "wendake"):
            context.ledger.create_ledger(ledger)
            context.ledger.transfer(
                T(ledger, "fund", "budget_funding", "single", "program:funding", "program:budget", 10_000)
            )
            context.ledger.transfer(T(ledger, "earn", "earn_civic", "single", "program:budget", WALLET, 600))
    monkeypatch.setattr(transfers, "SEAL_SLICE", 5)
    sliced_outcomes = ctx.ledger.submit(slicing_batch())
    whole_outcomes = whole.ledger.submit(slicing_batch())

    def view(outcome):
        return (
            [(t.ledger, t.sequence, t.hash, t.replayed) for t in outcome.transfers]
            if outcome.ok
            else type(outcome.error)
        )

    assert [view(o) for o in sliced_outcomes] == [view(o) for o in whole_outcomes]
    assert sum(len(o.transfers) for o in sliced_outcomes) > 60 and not all(o.ok for o in sliced_outcomes)
    assert_verifies(ctx)
    for ledger in ("brossard", "wendake"):
        for account in (WALLET, SHOP, "services:revenue", "interop:wendake"):
            assert ctx.ledger.balance(ledger, account) == whole.ledger.balance(ledger, account)
    whole.engine.dispose()


def test_a_crash_while_planning_writes_nothing(ctx, monkeypatch):
    """An unexpected error in the middle of a batch, after slices were already copied into the
    journal on PostgreSQL: the transaction rolls back whole, and the next batch appends normally."""
    from ledger.service_layer import transfers

    funded(ctx, "brossard", wallet=600)
    funded(ctx, "wendake", wallet=600)
    before = audit.entry_count(ctx.engine)
    monkeypatch.setattr(transfers, "SEAL_SLICE", 5)
    planned = itertools.count()
    real_plan_group = transfers.plan_group

    def failing_plan_group(*args):
        if next(planned) == 40:
            raise RuntimeError("planner crashed")
        return real_plan_group(*args)

    monkeypatch.setattr(transfers, "plan_group", failing_plan_group)
    with pytest.raises(RuntimeError, match="planner crashed"):
        ctx.ledger.submit(slicing_batch())
    assert audit.entry_count(ctx.engine) == before
    assert ctx.ledger.balance("brossard", WALLET).posted == 600
    monkeypatch.setattr(transfers, "plan_group", real_plan_group)
    outcomes = ctx.ledger.submit(slicing_batch())
    assert outcomes[0].transfers[0].sequence == 3  # the chain goes on from where it was
    assert audit.entry_count(ctx.engine) == before + sum(len(o.transfers) for o in outcomes if o.ok) - 1  # the retry
    assert_verifies(ctx)


def test_the_database_refuses_an_overdraft_the_planner_let_through(ctx, monkeypatch):
    """Defence in depth: were the planner to let a wallet be overdrawn, the accounts table's check
    refuses the balance, and the batch rolls back whole (on PostgreSQL the refusal arrives with the
    projection writes sent together at the end of the batch)."""
    import psycopg
    from sqlalchemy.exc import IntegrityError

    from ledger.domain import transfers as domain

    funded(ctx, wallet=100)
    before = audit.entry_count(ctx.engine)
    monkeypatch.setattr(domain, "is_non_negative", lambda name: False)
    with pytest.raises((IntegrityError, psycopg.IntegrityError), match=r"ck_accounts_not_overdrawn|CHECK constraint"):
        ctx.ledger.submit([[T("brossard", key(), "service", "single", WALLET, "services:revenue", 30)],
                           [T("brossard", key(), "service", "single", WALLET, "services:revenue", 500)]])  # fmt: skip
    assert audit.entry_count(ctx.engine) == before
    assert ctx.ledger.balance("brossard", WALLET).posted == 100
    assert_verifies(ctx)
