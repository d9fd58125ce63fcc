"""Refunds reverse a merchant's own sales and nothing else (issue 12, finding 1), on SQLite and PostgreSQL.

The attack: after a close, a merchant's statement shows its settlement transfer
`merchant:<id>:redeemed → settlement:clearing`; refunding it put the points back where the next close
paid them again. Here every kind of transfer a merchant can name is tried through the POS API, a
property test plays random merchant calls and closes against a model of what residents actually
redeemed, and the verifier is shown a signed journal that holds such a refund.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from api.http.app import create_app
from community.domain.program import Program
from finance.domain.settlement import points_to_cents
from ledger import oracle
from ledger.adapters import journal
from ledger.domain.errors import NotRefundable
from ledger.domain.transfers import TransferRequest
from ledger.service_layer import audit, entry_lines
from tests.test_api import assert_problem, entry_count
from tests.world import World, standard_world

ZONE = ZoneInfo("America/Toronto")  # the programs' default time zone
examples = itertools.count()


@pytest.fixture
def client(ctx):
    with TestClient(create_app(ctx, terminal_rate_per_second=10_000, resident_rate_per_second=10_000)) as client:
        yield client


def _into_next_month(clock) -> str:
    """Move the clock to the 2nd of the next month and return the month that just ended."""
    now = dt.datetime.fromtimestamp(clock() / 1e6, ZONE)
    ended = now.strftime("%Y-%m")
    first = (now.replace(day=1) + dt.timedelta(days=32)).replace(day=2, hour=12, minute=0, second=0, microsecond=0)
    clock.now_us = int(first.timestamp()) * 1_000_000
    return ended


def _close(world: World, city: str, period: str) -> dict:
    """Close a month as a finance officer would. These tests move the clock by months, past a
    token's lifetime, so each close is made with a token granted for it."""
    world.grant(f"closer-{city}", "finance", city, f"closer-{city}")
    response = world.bearer(f"closer-{city}", "POST", f"/v1/finance/{city}/periods/{period}/close")
    assert response.status_code == 200, response.text
    return response.json()["statement"]


def _transfers(world: World, city: str, kind: str) -> list[dict]:
    """Every posted transfer of a kind in the city's journal (the public log holds them all)."""
    with world.ctx.engine.connect() as conn:
        rows = journal.period_rows(
            conn, city, 0, 2**62, ("transfer_id", "kind", "debit_account", "credit_account", "amount")
        )
    return [dict(zip(("transfer_id", "kind", "debit_account", "credit_account", "amount"), r, strict=True)) for r in rows
            if r[1] == kind]  # fmt: skip


def _refund(world: World, terminal: str, transfer_id: str, points: int | None = None, key: str | None = None):
    body = {"transfer_id": transfer_id} | ({"points": points} if points is not None else {})
    return world.pos(terminal, "POST", "/v1/pos/refunds", body, key=key or f"refund-{next(examples)}")


# --- every kind a merchant can name ---------------------------------------------------------------


@pytest.fixture
def closed_january(ctx, client, clock) -> World:
    """January in Brossard: boulangerie awards and redeems, librairie redeems, a Delson resident
    redeems at boulangerie; January closed (settlement transfers written), then expiry runs."""
    world = standard_world(ctx, client)
    ctx.programs.configure(
        Program(city="brossard", daily_cap_points=300, monthly_cap_points=1_000, expiry_days=20), "staff:test"
    )
    clock.advance(86_400)  # into January in Montréal
    alice, carole = world.residents["alice"].card, world.residents["carole"].card
    world.bearer("carole", "POST", "/v1/wallet/opt-ins", {"city": "brossard"})
    world.pos("boulangerie", "POST", "/v1/pos/awards", {"card": alice, "purchase_cents": 4_000}, key="award")
    for terminal, card, points, key in (
        ("boulangerie", alice, 300, "b"),
        ("librairie", alice, 100, "l"),
        ("boulangerie", carole, 70, "x"),
    ):
        hold = world.pos(terminal, "POST", "/v1/pos/holds", {"card": card, "points": points}, key=f"hold-{key}").json()
        assert (
            world.pos(
                terminal, "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {}, key=f"capture-{key}"
            ).status_code
            == 200
        )
    assert _close(world, "brossard", _into_next_month(clock))["merchants"]
    assert ctx.expiry.run(["brossard"])["brossard"]["points"] > 0  # what is left of January's points, 20 days on
    return world


NOT_REFUNDABLE = [
    ("settlement", "merchant:boulangerie:redeemed"),  # the finding: the redeemed side of its own settlement
    ("settlement", "merchant:boulangerie:issued"),  # and the issued side
    ("settlement_interop", "interop:delson"),
    ("expiry", "breakage"),
    ("budget_funding", "program:budget"),
    ("earn_civic", "program:budget"),
]


@pytest.mark.parametrize(("kind", "account"), NOT_REFUNDABLE, ids=[f"{k}:{a}" for k, a in NOT_REFUNDABLE])
def test_a_merchant_cannot_refund_a_transfer_that_is_no_sale(closed_january: World, kind: str, account: str) -> None:
    world = closed_january
    target = next(
        t for t in _transfers(world, "brossard", kind) if account in (t["debit_account"], t["credit_account"])
    )
    before = entry_count(world)
    for points in (None, 1, target["amount"]):
        body = assert_problem(_refund(world, "boulangerie", target["transfer_id"], points), 422, "not_refundable")
        assert body["kind"] == kind and body["transfer_id"] == target["transfer_id"]
    assert entry_count(world) == before


def test_a_merchant_cannot_refund_another_merchants_sale_or_a_refund(closed_january: World) -> None:
    world = closed_january
    (rival,) = [
        t for t in _transfers(world, "brossard", "redeem") if t["credit_account"] == "merchant:librairie:redeemed"
    ]
    own = next(
        t for t in _transfers(world, "brossard", "redeem") if t["credit_account"] == "merchant:boulangerie:redeemed"
    )
    assert _refund(world, "boulangerie", own["transfer_id"], 10).status_code == 201
    (refund,) = _transfers(world, "brossard", "refund")
    before = entry_count(world)
    assert_problem(_refund(world, "boulangerie", rival["transfer_id"]), 403, "wrong_tenant")
    assert_problem(_refund(world, "boulangerie", refund["transfer_id"]), 404, "unknown_transfer")
    assert entry_count(world) == before


def test_the_next_close_pays_only_what_was_redeemed_after_a_refused_settlement_refund(
    closed_january: World, clock
) -> None:
    world = closed_january
    for target in _transfers(world, "brossard", "settlement"):
        _refund(world, "boulangerie", target["transfer_id"])
    february = _close(world, "brossard", _into_next_month(clock))
    assert february["merchants"] == [] and february["totals"]["net_cents"] == 0
    assert audit.verify_database(world.ctx.engine)["ok"]


def test_the_ledger_refuses_such_a_refund_from_any_caller(closed_january: World) -> None:
    """The rule is the domain's, not only the POS's: the ledger service itself refuses it."""
    world = closed_january
    target = _transfers(world, "brossard", "settlement")[0]
    with pytest.raises(NotRefundable):
        world.ctx.ledger.transfer(TransferRequest("brossard", "forged", "refund", "single", target["credit_account"],
                                                  target["debit_account"], target["amount"], target["transfer_id"]))  # fmt: skip


# --- the property: closes pay for what residents redeemed, whatever the merchant calls ---------------

RESIDENTS = 3
# Every kind of transfer a city's journal holds: a refund names one the merchant was told about, or
# any transfer of the public journal (a statement shows the merchant's settlements there too).
JOURNAL_KINDS = ("redeem", "earn_purchase", "refund", "settlement", "settlement_interop", "expiry", "budget_funding",
                 "earn_civic")  # fmt: skip
refund_call = st.tuples(st.just("refund"), st.sampled_from(("response", *JOURNAL_KINDS)), st.integers(0, 10_000),
                        st.none() | st.integers(1, 400))  # fmt: skip
merchant_call = st.one_of(
    st.tuples(st.just("award"), st.integers(0, RESIDENTS - 1), st.integers(100, 20_000)),
    st.tuples(st.just("hold"), st.integers(0, RESIDENTS), st.integers(1, 300)),  # RESIDENTS: the visitor from away
    st.tuples(st.just("capture"), st.integers(0, 20), st.none() | st.integers(1, 300)),
    st.tuples(st.just("void"), st.integers(0, 20)),
    st.tuples(st.just("offline"), st.integers(0, RESIDENTS - 1), st.integers(1, 300)),
    st.tuples(st.just("rival"), st.integers(0, RESIDENTS - 1), st.integers(1, 300)),
    refund_call,
    st.tuples(
        st.just("close"),
    ),
    st.tuples(
        st.just("expiry"),
    ),
)


class Model:
    """What residents actually did at each merchant, from the answers the API gave."""

    def __init__(self) -> None:
        self.redeemed = {"shop": 0, "rival": 0}
        self.issued = {"shop": 0, "rival": 0}
        self.sales: dict[str, tuple[str, str]] = {}  # transfer id -> (merchant, "redeemed" | "issued")
        self.seen: list[str] = []  # transfer ids the merchant was told about, or read on its statement
        self.holds: list[str] = []

    def sold(self, merchant: str, side: str, answer: dict) -> None:
        getattr(self, side)[merchant] += answer["points"]
        self.sales[answer["transfer_id"]] = (merchant, side)
        self.seen.append(answer["transfer_id"])


def _play(world: World, city: str, call: tuple, model: Model) -> None:
    shop, rival = f"{city}-shop", f"{city}-rival"
    cards = [world.residents[f"{city}-{n}"].card for n in range(RESIDENTS)] + [world.residents[f"{city}-visitor"].card]
    kind, key = call[0], f"k{next(examples)}"
    if kind == "award":
        answer = world.pos(shop, "POST", "/v1/pos/awards", {"card": cards[call[1]], "purchase_cents": call[2]}, key=key)
        if answer.status_code == 201 and answer.json()["points"]:
            model.sold("shop", "issued", answer.json())
    elif kind == "hold":
        answer = world.pos(shop, "POST", "/v1/pos/holds", {"card": cards[call[1]], "points": call[2]}, key=key)
        if answer.status_code == 201:
            model.holds.append(answer.json()["hold_id"])
    elif kind in ("capture", "void") and model.holds:
        hold = model.holds[call[1] % len(model.holds)]
        body = {"points": call[2]} if kind == "capture" and call[2] is not None else {}
        answer = world.pos(shop, "POST", f"/v1/pos/holds/{hold}/{kind}", body if kind == "capture" else None, key=key)
        if answer.status_code == 200 and kind == "capture":
            model.sold("shop", "redeemed", answer.json())
    elif kind == "offline":
        (result,) = world.pos(shop, "POST", "/v1/pos/offline", {"items": [{"idempotency_key": key, "card": cards[call[1]],
                                                                          "points": call[2]}]}).json()["results"]  # fmt: skip
        if result["status"] == "accepted":
            model.sold("shop", "redeemed", result)
    elif kind == "rival":
        (result,) = world.pos(rival, "POST", "/v1/pos/offline", {"items": [{"idempotency_key": key, "card": cards[call[1]],
                                                                           "points": call[2]}]}).json()["results"]  # fmt: skip
        if result["status"] == "accepted":
            model.sold("rival", "redeemed", result)
    elif kind == "refund":
        _play_refund(world, city, call, model)
    elif kind == "expiry":
        world.ctx.expiry.run([city])


def _play_refund(world: World, city: str, call: tuple, model: Model) -> None:
    """The merchant refunds a transfer it was told about, or any transfer of a kind in its city's
    journal; refusals write nothing, and what is refunded of its sales leaves the model."""
    _, source, index, points = call
    candidates = model.seen if source == "response" else [t["transfer_id"] for t in _transfers(world, city, source)]
    if not candidates:
        return
    target = candidates[index % len(candidates)]
    before = entry_count(world)
    answer = _refund(world, f"{city}-shop", target, points)
    merchant, side = model.sales.get(target, (None, None))
    if merchant != "shop":
        assert answer.status_code in (403, 404, 422), (target, answer.text)
        assert entry_count(world) == before
    elif answer.status_code == 201:
        getattr(model, side)["shop"] -= answer.json()["points"]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(before=st.lists(merchant_call, min_size=3, max_size=15), refunds=st.lists(refund_call, min_size=1, max_size=6),
       after=st.lists(merchant_call, max_size=10))  # fmt: skip
def test_no_merchant_calls_make_a_close_pay_more_than_residents_redeemed(
    ctx, client, clock, before, refunds, after
) -> None:
    """Calls, a close, refunds of what the merchant can name, more calls (closes among them), a last
    close: all the closes together pay each merchant for what residents redeemed there, net of the
    refunds it gave them, and no more."""
    n = next(examples)
    city, away = f"r{n}", f"r{n}-away"
    world = World(ctx, client)
    _into_next_month(clock)  # each example starts a month of its own
    for name in (city, away):
        world.city(name, daily_cap_points=10**6, monthly_cap_points=10**7, expiry_days=30)
    world.merchant(f"{city}-shop", city)
    world.merchant(f"{city}-rival", city)
    for r in range(RESIDENTS):
        world.resident(f"{city}-{r}", city, points=600)
    world.resident(f"{city}-visitor", away, points=600)
    world.bearer(f"{city}-visitor", "POST", "/v1/wallet/opt-ins", {"city": city})
    model, closes = Model(), []
    for call in [*before, ("close",), *refunds, *after]:
        if call[0] == "close":
            closes.append(_close(world, city, _into_next_month(clock)))
            # What the merchant sees next: its statement, settlement transfers included.
            page = world.pos(f"{city}-shop", "GET", "/v1/pos/statement?limit=200").json()
            model.seen += [entry["transfer_id"] for entry in page["entries"]]
        else:
            _play(world, city, call, model)
    closes.append(_close(world, city, _into_next_month(clock)))

    program = ctx.programs.get(city)
    for merchant in ("shop", "rival"):
        lines = [
            line
            for statement in closes
            for line in statement["merchants"]
            if line["merchant_id"] == f"{city}-{merchant}"
        ]
        assert sum(line["redeemed_points"] for line in lines) == model.redeemed[merchant]
        assert sum(line["issued_points"] for line in lines) == model.issued[merchant]
        owed_cents = points_to_cents(model.redeemed[merchant], program, program.redemption_rate_percent)
        assert sum(line["net_cents"] for line in lines) <= owed_cents
    assert audit.verify_database(ctx.engine)["ok"]


# --- the verifier --------------------------------------------------------------------------------


def _refund_of_a_settlement(world: World) -> tuple:
    """What the old code wrote: a refund of boulangerie's January settlement, chained to the head of
    Brossard's journal and signed with the ledger's own key (Entry16)."""
    settlement = next(
        t for t in _transfers(world, "brossard", "settlement") if t["debit_account"] == "merchant:boulangerie:redeemed"
    )
    with world.ctx.engine.connect() as conn:
        head = journal.heads(conn)["brossard"]
        key_id, seed, _ = world.ctx.signer.active(conn)
    e13 = ("brossard", head.sequence + 1, "f" * 32, "refund", "single", "settlement:clearing", "merchant:boulangerie:redeemed",
           settlement["amount"], settlement["transfer_id"], None, None, head.time_us, head.hash)  # fmt: skip
    digest = oracle.entry_hash(e13)
    return (*e13, digest, key_id, oracle.sign_hashes([digest], seed)[0])


def _verify(*args: str):
    return CliRunner().invoke(cli, ["ledger", "verify", *args])


def _assert_flagged(result, forged: tuple) -> None:
    assert result.exit_code == 1, result.output
    assert f"ledger brossard, sequence {forged[1]}: bad_reference" in result.output
    assert f"refund of {forged[8]}, which is not a refundable transfer" in " ".join(result.output.split())


def test_verify_flags_a_signed_refund_of_a_settlement_in_an_export(closed_january: World, tmp_path) -> None:
    world, export, keys = closed_january, tmp_path / "ledger.jsonl", tmp_path / "keys.json"
    audit.export(world.ctx.engine, export, keys)
    assert _verify("--export", str(export), "--keys", str(keys)).exit_code == 0
    forged = _refund_of_a_settlement(world)
    lines = export.read_text().splitlines()
    at = max(i for i, line in enumerate(lines) if json.loads(line)["ledger"] == "brossard") + 1
    lines.insert(at, json.dumps(entry_lines.entry_object(forged)))
    export.write_text("\n".join(lines) + "\n")
    _assert_flagged(_verify("--export", str(export), "--keys", str(keys)), forged)


def test_verify_flags_a_signed_refund_of_a_settlement_in_the_database(closed_january: World, settings) -> None:
    """The row goes in as an append did (journal, balances, head), so only the refund rule can tell."""
    world, forged = closed_january, _refund_of_a_settlement(closed_january)
    with world.ctx.engine.begin() as conn:
        journal.lock_ledgers(conn, ["brossard"])
        with journal.appending(conn) as write:
            write([(*forged, None)])
        changed = journal.balances(conn, [("brossard", forged[5]), ("brossard", forged[6])])
        changed[("brossard", forged[5])].debits_posted += forged[7]
        changed[("brossard", forged[6])].credits_posted += forged[7]
        journal.save_balances(conn, changed)
        journal.set_heads(conn, {"brossard": journal.Head(forged[1], forged[13], forged[11])})
    _assert_flagged(_verify("--db", settings.database_url, "--data-dir", str(settings.data_dir)), forged)
