"""The ledger's vocabulary (ledger/domain/accounts.py), the one cross-city group builder, and the
invariants the append path asserts before it seals a batch."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from community.service_layer.residents import CardHolder
from ledger.domain import accounts
from ledger.domain.accounts import Account, check_account_name, is_non_negative, parse_account
from ledger.domain.errors import InvalidAccount, InvariantViolation
from ledger.domain.transfers import TransferRequest as T
from ledger.domain.transfers import check_numbered, linked_transfers
from ledger.service_layer import transfers as transfers_service
from marketplace.domain.catalog import Item
from marketplace.service_layer.redemptions import hold_transfers
from merchants.service_layer.pos import PointOfSale, Terminal

IDS = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
CITIES = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")
BUILT = st.one_of(
    IDS.map(lambda i: (accounts.wallet(i), Account("wallet", i))),
    IDS.map(lambda i: (accounts.merchant_issued(i), Account("merchant_issued", i))),
    IDS.map(lambda i: (accounts.merchant_redeemed(i), Account("merchant_redeemed", i))),
    IDS.map(lambda i: (accounts.org(i), Account("org", i))),
    CITIES.map(lambda c: (accounts.interop(c), Account("interop", c))),
    st.sampled_from([(accounts.PROGRAM_FUNDING, Account("program_funding")), (accounts.PROGRAM_BUDGET, Account("program_budget")),
                     (accounts.SERVICES_REVENUE, Account("services_revenue")), (accounts.BREAKAGE, Account("breakage")),
                     (accounts.SETTLEMENT_CLEARING, Account("settlement_clearing"))]),
)  # fmt: skip


@given(BUILT)
def test_every_constructor_parses_back_to_what_built_it_and_is_valid(built):
    name, account = built
    assert parse_account(name) == account
    assert check_account_name(name) == name
    # The predicates agree with the parser, and the format's non-negative rule with the kinds.
    assert accounts.is_wallet(name) == (account.kind == "wallet")
    assert accounts.is_interop(name) == (account.kind == "interop")
    assert accounts.is_redeemed(name) == (account.kind == "merchant_redeemed")
    assert accounts.is_issued(name) == (account.kind == "merchant_issued")
    assert accounts.merchant_of(name) == (account.owner if account.kind.startswith("merchant_") else None)
    assert is_non_negative(name) == (account.kind in ("wallet", "org", "program_budget"))
    if account.kind == "interop":
        assert accounts.interop_city(name) == account.owner


@pytest.mark.parametrize("name", ["", "citizen:r1", "citizen:R1:wallet", "merchant:m1", "merchant:m1:spent", "org:",
                                  "interop:Laval", "program:other", "breakage:x", "wallet:r1", "citizen:a:b:wallet", None])  # fmt: skip
def test_the_parser_refuses_what_the_format_does_not_name(name):
    with pytest.raises(InvalidAccount):
        parse_account(name)


# --- one builder for the cross-city redemption ----------------------------------------------------


def _item(city: str, merchant_id: str) -> Item:
    empty = {f.name: None for f in dataclasses.fields(Item)}
    return Item(**empty | {"id": "i1", "city": city, "kind": "offer", "merchant_id": merchant_id})


@pytest.mark.parametrize(("home", "away"), [("brossard", "brossard"), ("brossard", "laval")])
def test_pos_and_marketplace_build_the_same_redemption_group(home, away):
    holder = CardHolder(card_id="c1", resident_id="r1", city=home, level="standard", opt_ins=(away,))
    pos = PointOfSale.__new__(PointOfSale)  # _redemption reads nothing of the service's state
    at_till = pos._redemption(Terminal("t1", "m1", away), holder, "k1", "pending", 300, 900)
    online = hold_transfers(_item(away, "m1"), home, holder.wallet, "k1", 300, 900)
    assert at_till == online == linked_transfers("k1", "redeem", "pending", home, "citizen:r1:wallet", away,
                                                 "merchant:m1:redeemed", 300, 900)  # fmt: skip
    if home == away:
        assert [(t.ledger, t.debit_account, t.credit_account) for t in at_till] == [
            (home, "citizen:r1:wallet", "merchant:m1:redeemed")
        ]
    else:
        assert [(t.ledger, t.debit_account, t.credit_account) for t in at_till] == [
            (home, "citizen:r1:wallet", "interop:laval"), (away, "interop:brossard", "merchant:m1:redeemed")]  # fmt: skip


# --- invariants asserted in the append path -------------------------------------------------------

_keys = itertools.count()
WALLET, SHOP = "citizen:r1:wallet", "merchant:m1:redeemed"


def _funded(ctx) -> None:
    ctx.ledger.create_ledger("brossard")
    ctx.ledger.transfer(
        T("brossard", f"f{next(_keys)}", "budget_funding", "single", "program:funding", "program:budget", 1_000)
    )
    ctx.ledger.transfer(T("brossard", f"f{next(_keys)}", "earn_civic", "single", "program:budget", WALLET, 500))


def _corrupting(monkeypatch, corrupt) -> None:
    """The planner's output (its entries, or the view it updated) corrupted by `corrupt`."""
    plan_group = transfers_service.plan_group

    def planned(view, requests, now_us):
        return corrupt(view, plan_group(view, requests, now_us))

    monkeypatch.setattr(transfers_service, "plan_group", planned)


def _zero_amount(view, entries):
    return [entries[0]._replace(amount=0)]


def _same_accounts(view, entries):
    return [entries[0]._replace(credit_account=entries[0].debit_account)]


def _unbalanced(view, entries):
    key = (entries[0].ledger, entries[0].credit_account)
    view.balances[key] = dataclasses.replace(view.balances[key], credits_posted=view.balances[key].credits_posted + 1)
    return entries


@pytest.mark.parametrize("corrupt", [_zero_amount, _same_accounts, _unbalanced])
def test_a_corrupted_plan_trips_an_invariant_and_writes_nothing(ctx, monkeypatch, corrupt):
    _funded(ctx)
    before = ctx.ledger.balance("brossard", SHOP), ctx.ledger.balance("brossard", WALLET)
    _corrupting(monkeypatch, corrupt)
    with pytest.raises(InvariantViolation):
        ctx.ledger.transfer(T("brossard", f"r{next(_keys)}", "redeem", "single", WALLET, SHOP, 100))
    monkeypatch.undo()
    assert (ctx.ledger.balance("brossard", SHOP), ctx.ledger.balance("brossard", WALLET)) == before
    (result,) = ctx.ledger.transfer(T("brossard", f"r{next(_keys)}", "redeem", "single", WALLET, SHOP, 100))
    assert result.sequence == 3  # the refused batch left no gap


def _e12(ledger: str, sequence: int, amount: int = 5, debit: str = WALLET, credit: str = SHOP) -> tuple:
    return (ledger, sequence, f"{sequence:032x}", "redeem", "single", debit, credit, amount, None, None, None, 0)


def test_sequences_must_follow_each_chain_head_by_one():
    check_numbered([_e12("a", 8), _e12("b", 1), _e12("a", 9)], {"a": 7, "b": 0})
    for entries in ([_e12("a", 9)], [_e12("a", 8), _e12("a", 8)], [_e12("a", 7)]):
        with pytest.raises(InvariantViolation, match="sequence"):
            check_numbered(entries, {"a": 7})
    for bad in (_e12("a", 8, amount=0), _e12("a", 8, amount=-3), _e12("a", 8, amount=2**53), _e12("a", 8, amount=1.0)):
        with pytest.raises(InvariantViolation, match="points"):
            check_numbered([bad], {"a": 7})
