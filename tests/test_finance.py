"""Finance end to end on SQLite and PostgreSQL: close, statements equal the ledger, exports, payouts,
reconciliation, expiry, reporting and open data."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from xml.etree import ElementTree as ET

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from api.bootstrap import Settings, open_context
from api.http.app import create_app
from community.domain.program import Program, Treasury
from finance.adapters import store as finance_store
from finance.adapters.exports import MAX_BANK_FILE_BYTES, PAIN_NAMESPACE, pain001_schema
from finance.adapters.stripe_connect import StripeConnect
from finance.domain.settlement import SETTLEMENT_KINDS, PeriodOpen, period_bounds_us
from finance.schemas import (
    Adjustment,
    BudgetReport,
    CityPosition,
    OpenData,
    PayoutAccountChange,
    PayoutAccountChanges,
    PayoutList,
    PayoutsQueued,
    PeriodClose,
    Reconciliation,
    RedemptionsReport,
    Statement,
    StatementLine,
)
from ledger.adapters import journal
from ledger.domain.transfers import TransferRequest
from ledger.schemas import Checkpoints, PublicKeys
from ledger.service_layer import audit, audit_trail
from ledger.service_layer.audit import verify_database
from operations.schemas import Health
from tests.local_server import LocalServer
from tests.stripe_server import API_KEY, WEBHOOK_SECRET, StripeServer, signed_event
from tests.test_api import assert_problem, entry_count
from tests.test_cli import run as run_cli
from tests.world import World, standard_world

DAY = 86_400
JAN, FEB = "2026-01", "2026-02"
TREASURY = Treasury(name="Ville de Brossard", institution="001", transit="12345", account_number="1234567")


@pytest.fixture
def world(ctx, clock) -> World:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        world = standard_world(ctx, client)
        clock.advance(DAY)  # into January in Montréal time (the fixture clock starts at midnight UTC)
        january_activity(world)
        yield world


def january_activity(world: World) -> None:
    alice = world.residents["alice"].card
    award = world.pos(
        "boulangerie", "POST", "/v1/pos/awards", {"card": alice, "purchase_cents": 4_250}, key="a1"
    ).json()
    assert award["points"] == 212
    hold = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": alice, "points": 300}, key="h1").json()
    capture = world.pos(
        "boulangerie", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {"points": 200}, key="c1"
    ).json()
    world.pos("boulangerie", "POST", "/v1/pos/refunds", {"transfer_id": capture["transfer_id"], "points": 50}, key="r1")
    hold = world.pos("librairie", "POST", "/v1/pos/holds", {"card": alice, "points": 100}, key="h2").json()
    world.pos("librairie", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {}, key="c2")
    world.bearer("alice", "POST", "/v1/wallet/opt-ins", {"city": "delson"})
    hold = world.pos("cafe-delson", "POST", "/v1/pos/holds", {"card": alice, "points": 80}, key="h3").json()
    assert world.pos("cafe-delson", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {}, key="c3").status_code == 200


def end_of_january(clock) -> None:
    clock.now_us = 1_769_922_000_000_000 + 3_600 * 1_000_000  # 2026-02-01 06:00 UTC: January is over in Montréal


def lines(statement: Statement) -> dict[str, StatementLine]:
    return {line.merchant_id: line for line in statement.merchants}


def test_close_writes_statements_that_equal_the_ledger_once(world: World, clock) -> None:
    settlement = world.ctx.settlement
    with pytest.raises(PeriodOpen):
        settlement.close("brossard", JAN, "finance:test")
    end_of_january(clock)
    closed = settlement.close("brossard", JAN, "finance:test")
    by_merchant = lines(closed.statement)
    assert (by_merchant["boulangerie"].redeemed_points, by_merchant["boulangerie"].issued_points) == (150, 212)
    assert by_merchant["boulangerie"].net_cents == 150 - 212
    assert (by_merchant["librairie"].redeemed_points, by_merchant["librairie"].net_cents) == (100, 100)
    assert closed.statement.interop == (CityPosition(payer="brossard", payee="delson", points=80, cents=80),)

    # The settlement transfers in the ledger carry exactly the statement's points.
    with world.ctx.engine.connect() as conn:
        rows = journal.period_rows(conn, "brossard", 0, 2**62, ("kind", "debit_account", "credit_account", "amount"))
    settled = defaultdict(int)
    for kind, debit, credit, amount in rows:
        if kind in SETTLEMENT_KINDS:
            settled[debit] += amount
            settled[credit] -= amount
    assert settled["merchant:boulangerie:redeemed"] == 150 and settled["merchant:boulangerie:issued"] == -212
    assert settled["merchant:librairie:redeemed"] == 100 and settled["interop:delson"] == 80
    assert world.ctx.ledger.balance("brossard", "merchant:librairie:redeemed").posted == 0

    before = entry_count(world)
    again = settlement.close("brossard", JAN, "finance:other")
    assert again.replayed and again.statement == closed.statement and entry_count(world) == before
    assert verify_database(world.ctx.engine)["ok"]


def test_late_transfers_and_corrections_belong_to_the_next_period(world: World, clock) -> None:
    end_of_january(clock)
    january = world.ctx.settlement.close("brossard", JAN, "finance:test")
    alice = world.residents["alice"].card
    world.pos("librairie", "POST", "/v1/pos/awards", {"card": alice, "purchase_cents": 2_000}, key="late")
    world.ctx.settlement.adjust("brossard", "librairie", -25, "damaged goods refunded by the city", JAN, "finance:test",
                                key="adj-1")  # fmt: skip
    with pytest.raises(Exception, match="not closed"):
        world.ctx.settlement.adjust("brossard", "librairie", 10, "x", FEB, "finance:test", key="adj-2")
    clock.now_us += 30 * DAY * 1_000_000
    february = world.ctx.settlement.close("brossard", FEB, "finance:test")
    line = lines(february.statement)["librairie"]
    assert (line.issued_points, line.adjustments_cents, line.net_cents) == (100, -25, -125)
    assert world.ctx.settlement.closed("brossard", JAN).statement == january.statement


def test_netting_across_cities_sums_to_zero(world: World, clock) -> None:
    carole = world.residents["carole"]
    world.ctx.residents.opt_in(carole.id, "brossard", "resident:test")
    hold = world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": carole.card, "points": 30}, key="x").json()
    world.pos("boulangerie", "POST", f"/v1/pos/holds/{hold['hold_id']}/capture", {}, key="y")
    end_of_january(clock)
    brossard = world.ctx.settlement.close("brossard", JAN, "finance:test").statement
    delson = world.ctx.settlement.close("delson", JAN, "finance:test").statement
    assert brossard.interop == delson.interop == (CityPosition(payer="brossard", payee="delson", points=50, cents=50),)
    with world.ctx.engine.connect() as conn:
        for city in ("brossard", "delson"):
            assert sum(b.posted for b in journal.all_balances(conn, city).values()) == 0


def test_exports_validate_and_balance(world: World, clock) -> None:
    end_of_january(clock)
    world.ctx.programs.configure(
        Program(city="brossard", daily_cap_points=300, monthly_cap_points=1_000, treasury=TREASURY), "t"
    )
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    for merchant in ("boulangerie", "librairie"):
        world.payout_account("brossard", merchant, {"holder_name": merchant.title(), "institution": "003", "transit": "00011",
                                                    "account_number": "7654321"})  # fmt: skip
    exports = world.ctx.exports
    rows = list(csv.DictReader(io.StringIO(exports.render("brossard", JAN, "csv")[0].decode())))
    assert {r["merchant_id"]: int(r["net_cents"]) for r in rows} == {"boulangerie": -62, "librairie": 100}
    document = json.loads(exports.render("brossard", JAN, "json")[0])
    assert document["totals"]["payable_cents"] == 100 and document["totals"]["receivable_cents"] == 62

    xml = exports.render("brossard", JAN, "pain001")[0]
    assert pain001_schema().is_valid(xml.decode())
    ns = {"p": PAIN_NAMESPACE}
    root = ET.fromstring(xml)
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns) == "1"  # only positive nets are paid
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=ns) == "1.00"
    amount = root.find(".//p:CdtTrfTxInf/p:Amt/p:InstdAmt", ns)
    assert amount.get("Ccy") == "CAD" and amount.text == "1.00"
    broken = xml.replace(b"<NbOfTxs>1</NbOfTxs>", b"<NbOfTxs>one</NbOfTxs>", 1)
    assert not pain001_schema().is_valid(broken.decode())

    erp = list(csv.DictReader(io.StringIO(exports.render("brossard", JAN, "erp")[0].decode())))
    cents = lambda text: int(text.replace(".", "")) if text else 0  # noqa: E731
    assert sum(cents(r["debit"]) for r in erp) == sum(cents(r["credit"]) for r in erp) > 0
    for reference in {r["reference"] for r in erp}:
        pair = [r for r in erp if r["reference"] == reference]
        assert sum(cents(r["debit"]) for r in pair) == sum(cents(r["credit"]) for r in pair)


def test_pain001_needs_a_treasury_and_bank_accounts(world: World, clock) -> None:
    end_of_january(clock)
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    token = world.tokens["finance-brossard"]
    response = world.client.get(
        f"/v1/finance/brossard/periods/{JAN}/export?format=pain001", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 422, "export_unavailable")


# --- payouts ------------------------------------------------------------------------------------


def payout_world(world: World, server: StripeServer) -> None:
    world.ctx.settings = world.ctx.settings.__class__(**{**vars(world.ctx.settings), "stripe_api_key": API_KEY,
                                                         "stripe_api_base": server.url,
                                                         "stripe_connect_webhook_secret": WEBHOOK_SECRET})  # fmt: skip
    world.ctx.__dict__.pop("payouts", None)
    for merchant, acct in (("boulangerie", "acct_boulangerie"), ("librairie", "acct_librairie")):
        world.payout_account("brossard", merchant, {"holder_name": merchant, "institution": "003", "transit": "00011",
                                                    "account_number": "7654321", "stripe_account_id": acct})  # fmt: skip


def test_payouts_are_made_once_and_finished_by_webhooks(world: World, clock) -> None:
    end_of_january(clock)
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    with StripeServer() as server:
        payout_world(world, server)
        assert world.ctx.payouts.queue("brossard", JAN, "finance:test") == PayoutsQueued(queued=1, without_account=[])
        assert world.ctx.payouts.queue("brossard", JAN, "finance:test").queued == 0
        assert world.ctx.payouts.run("brossard") == {"advanced": 2, "retry_later": 0, "failed": 0}
        assert world.ctx.payouts.run("brossard") == {"advanced": 0, "retry_later": 0, "failed": 0}
        (transfer,) = server.made("transfer")
        (payout,) = server.made("payout")
        assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (100, "cad", "acct_librairie")
        assert (
            payout["stripe_account"] == "acct_librairie"
            and payout["metadata"]["entraide_payout_id"] == f"brossard:{JAN}:librairie"
        )
        assert all(r["headers"].get("Idempotency-Key", "").startswith("entraide-payout-") for r in server.requests)

    event = {"id": "evt_1", "object": "event", "type": "payout.paid", "data": {"object": payout | {"status": "paid"}}}
    payload, signature = signed_event(event)

    def webhook(body: bytes, sig: str) -> httpx.Response:
        return world.client.post("/v1/finance/stripe/webhook", content=body, headers={"Stripe-Signature": sig})

    assert_problem(webhook(payload, signature.replace("v1=", "v1=0")), 400, "invalid_webhook")
    assert webhook(payload, signature).json()["status"] == "paid"
    assert webhook(payload, signature).json() == {"event": "evt_1", "applied": False, "duplicate": True}
    (row,) = world.ctx.payouts.list("brossard", JAN).payouts
    assert row.status == "paid" and row.stripe_transfer_id == transfer["id"]
    report = world.ctx.payouts.reconcile("brossard", JAN)
    assert report.differences == [] and report.paid_cents == report.statement_cents == 100


def test_a_stripe_timeout_is_retried_under_the_same_key(world: World, clock) -> None:
    end_of_january(clock)
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    with StripeServer() as server:
        payout_world(world, server)
        world.ctx.payouts.gateway = StripeConnect(API_KEY, server.url, timeout_seconds=0.3)
        world.ctx.payouts.queue("brossard", JAN, "finance:test")
        server.delay_seconds = 1.0  # Stripe makes the transfer but answers too late
        assert world.ctx.payouts.run("brossard") == {"advanced": 0, "retry_later": 1, "failed": 0}
        assert world.ctx.payouts.run("brossard")["advanced"] == 0  # backing off: not due yet
        server.delay_seconds = 0
        clock.advance(60)
        assert world.ctx.payouts.run("brossard") == {"advanced": 2, "retry_later": 0, "failed": 0}
        assert (
            len(server.made("transfer")) == 1 and len([r for r in server.requests if r["path"] == "/v1/transfers"]) == 2
        )


def test_a_worker_killed_mid_call_never_pays_twice(world: World, clock, db_url, tmp_path) -> None:
    end_of_january(clock)
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    with StripeServer() as server:
        payout_world(world, server)
        world.ctx.payouts.queue("brossard", JAN, "finance:test")
        server.delay_seconds = 30
        env = os.environ | {"ENTRAIDE_STRIPE_API_KEY": API_KEY, "ENTRAIDE_STRIPE_API_BASE": server.url}
        command = [sys.executable, "-m", "api.cli", "settlement", "payouts", "--city", "brossard", "--period", JAN, "--pay",
                   "--db", db_url, "--data-dir", str(tmp_path)]  # fmt: skip
        worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not server.made("transfer") and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)  # Stripe made the transfer; the worker never learns it
        worker.wait()
        server.delay_seconds = 0
        (row,) = world.ctx.payouts.list("brossard", JAN).payouts
        assert row.status == "queued" and row.attempts == 1
        world.ctx.payouts.run("brossard")
        assert world.ctx.payouts.list("brossard", JAN).payouts[0].status == "queued"  # its lease has not run out
        clock.now_us = time.time_ns() // 1_000 + 10 * 60 * 1_000_000  # the worker's lease (real time) ran out
        assert world.ctx.payouts.run("brossard") == {"advanced": 2, "retry_later": 0, "failed": 0}
        assert len(server.made("transfer")) == 1 and len(server.made("payout")) == 1
        assert world.ctx.payouts.list("brossard", JAN).payouts[0].status == "in_transit"


def test_reconciliation_lists_differences(world: World, clock) -> None:
    end_of_january(clock)
    world.ctx.programs.configure(
        Program(city="brossard", daily_cap_points=300, monthly_cap_points=1_000, treasury=TREASURY), "t"
    )
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    with StripeServer() as server:
        payout_world(world, server)
        bank = world.ctx.exports.render("brossard", JAN, "pain001")[0]
        assert world.ctx.payouts.reconcile("brossard", JAN, bank).differences == []
        altered = bank.replace(b">1.00<", b">1.01<")
        issues = {d.issue for d in world.ctx.payouts.reconcile("brossard", JAN, altered).differences}
        assert issues == {"bank_file_amount"}
        assert {d.issue for d in world.ctx.payouts.reconcile("brossard", JAN).differences} == {"not_paid"}


def payout_account(world: World, city: str, merchant: str, stripe_account_id: str | None = None) -> None:
    """Where the merchant is paid, proposed and confirmed by two people (`World.payout_account`)."""
    world.payout_account(city, merchant, {"holder_name": merchant.title(), "institution": "003", "transit": "00011",
                                          "account_number": "7654321", "stripe_account_id": stripe_account_id})  # fmt: skip


def two_cities_owed(world: World, clock) -> None:
    """January closed in both cities: brossard owes librairie 1.00, delson owes cafe-delson 0.80."""
    end_of_january(clock)
    for city in ("brossard", "delson"):
        world.ctx.settlement.close(city, JAN, "finance:test")
    payout_account(world, "delson", "cafe-delson", stripe_account_id="acct_cafe")
    world.grant("finance-delson", "finance", "delson", "f2")


def test_paying_one_city_pays_that_city_alone(world: World, clock, db_url, tmp_path, monkeypatch) -> None:
    two_cities_owed(world, clock)
    with StripeServer() as server:
        payout_world(world, server)
        queued = world.bearer("finance-brossard", "POST", f"/v1/finance/brossard/periods/{JAN}/payouts")
        assert queued.status_code == 202 and queued.json() == {"queued": 1, "without_account": []}
        assert_problem(
            world.bearer("finance-brossard", "POST", f"/v1/finance/delson/periods/{JAN}/payouts"), 403, "wrong_tenant"
        )
        assert world.bearer("finance-delson", "GET", f"/v1/finance/delson/periods/{JAN}/payouts").json() == {
            "payouts": []
        }
        assert world.ctx.payouts.queue("delson", JAN, "finance:test").queued == 1  # both cities have a payout due

        monkeypatch.setenv("ENTRAIDE_STRIPE_API_KEY", API_KEY)
        monkeypatch.setenv("ENTRAIDE_STRIPE_API_BASE", server.url)
        common = ["--period", JAN, "--db", db_url, "--data-dir", str(tmp_path)]
        output = run_cli("settlement", "payouts", "--city", "brossard", "--pay", *common)
        assert "brossard: 2 payout steps made" in output
        assert [t["destination"] for t in server.made("transfer")] == ["acct_librairie"]
        (delson,) = world.bearer("finance-delson", "GET", f"/v1/finance/delson/periods/{JAN}/payouts").json()["payouts"]
        assert (delson["status"], delson["attempts"], delson["stripe_transfer_id"]) == ("queued", 0, None)

        assert "delson: 2 payout steps made" in run_cli("settlement", "payouts", "--city", "delson", "--pay", *common)
        assert sorted(t["destination"] for t in server.made("transfer")) == ["acct_cafe", "acct_librairie"]
        assert len(server.made("payout")) == 2
    statuses = {city: [p.status for p in world.ctx.payouts.list(city, JAN).payouts] for city in ("brossard", "delson")}
    assert statuses == {"brossard": ["in_transit"], "delson": ["in_transit"]}


def test_expiring_one_city_expires_that_city_alone(ctx, clock, db_url, tmp_path) -> None:
    clock.now_us = time.time_ns() // 1_000 - 40 * DAY * 1_000_000  # the command runs on the real clock, 40 days later
    world = World(ctx, client=None)  # type: ignore[arg-type]
    for city in ("magog", "sherbrooke"):
        world.city(city, expiry_days=30)
        world.resident(f"r-{city}", city, points=250)
    common = ["--db", db_url, "--data-dir", str(tmp_path)]
    assert "magog: 250 points expired from 1 wallets" in run_cli("expiry", "run", "--city", "magog", *common)
    assert (
        ctx.ledger.balance("magog", "breakage").posted == 250
        and ctx.ledger.balance("sherbrooke", "breakage").posted == 0
    )
    output = run_cli("expiry", "run", "--city", "sherbrooke", *common)
    assert "sherbrooke: 250 points" in output and "magog" not in output
    assert (
        ctx.ledger.balance("sherbrooke", "breakage").posted == 250
        and ctx.ledger.balance("magog", "breakage").posted == 250
    )


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa">'
                  + b"".join(b'<!ENTITY %s "%s">' % (chr(98 + n).encode(), b"&%s;" % chr(97 + n).encode() * 10) for n in range(9))
                  + b']><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">&j;</Document>')  # fmt: skip
CAMT_053 = (
    b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt/></Document>'
)


def test_a_bad_bank_file_is_refused_and_a_good_one_reconciles(world: World, clock, db_url, tmp_path) -> None:
    end_of_january(clock)
    world.ctx.programs.configure(
        Program(city="brossard", daily_cap_points=300, monthly_cap_points=1_000, treasury=TREASURY), "t"
    )
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    payout_account(world, "brossard", "librairie")
    good = world.ctx.exports.render("brossard", JAN, "pain001")[0]
    fetched: list[str] = []

    class Secrets(BaseHTTPRequestHandler):  # what an external entity or DTD would make the parser fetch
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<!ENTITY leak 'secret'>")

        def log_message(self, *args) -> None:
            pass

    server = LocalServer(Secrets).start()
    secret = server.url
    bad = {
        "malformed": good[: len(good) // 2],
        "not XML": b"%PDF-1.7 this is not a bank file",
        "empty": b"",
        "billion laughs": BILLION_LAUGHS,
        "external entity": (
            f'<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY x SYSTEM "{secret}/etc/passwd">]>'
            f'<Document xmlns="{PAIN_NAMESPACE}">&x;</Document>'
        ).encode(),
        "external DTD": f'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "{secret}/pain.dtd"><Document xmlns="{PAIN_NAMESPACE}"/>'.encode(),
        "another document type": CAMT_053,
        "another city's file": good.replace(b"ENTRAIDE-brossard-2026-01", b"ENTRAIDE-delson-2026-01"),
        "a fraction of a cent": good.replace(b">1.00<", b">1.005<"),
        "too large": good + b" " * MAX_BANK_FILE_BYTES,  # trailing blanks are still well-formed XML
    }
    url = f"/v1/finance/brossard/periods/{JAN}/reconciliation"
    headers = {"Authorization": f"Bearer {world.tokens['finance-brossard']}", "Content-Type": "application/xml"}
    common = ["--city", "brossard", "--period", JAN, "--db", db_url, "--data-dir", str(tmp_path)]
    before = entry_count(world)
    try:
        for name, document in bad.items():
            if name == "too large":
                assert_problem(world.client.post(url, content=document, headers=headers), 413, "body_too_large")
            elif name != "empty":  # an empty body means "no bank file"
                refused = world.client.post(url, content=document, headers=headers)
                assert_problem(refused, 422, "invalid_bank_file")
                assert refused.json()["reason"] in {"unreadable_bank_file", "wrong_bank_file", "foreign_transfer"}, name
            path = tmp_path / "bank.xml"
            path.write_bytes(document)
            output = run_cli("settlement", "reconcile", *common, "--bank-file", str(path), code=2)
            assert (
                output.startswith("error:") and len(output.strip().splitlines()) == 1 and "Traceback" not in output
            ), (name, output)
    finally:
        server.shutdown()
    assert fetched == [] and entry_count(world) == before

    reconciled = world.client.post(url, content=good, headers=headers)
    assert reconciled.status_code == 200, reconciled.text
    assert reconciled.json()["differences"] == [] and reconciled.json()["bank_file_cents"] == 100
    (tmp_path / "bank.xml").write_bytes(good)
    assert (
        json.loads(run_cli("settlement", "reconcile", *common, "--bank-file", str(tmp_path / "bank.xml")))[
            "bank_file_cents"
        ]
        == 100
    )


# --- expiry -------------------------------------------------------------------------------------


def test_expiry_takes_only_what_is_left_of_old_lots(ctx, clock) -> None:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("magog", expiry_days=30)
    alice = world.resident("alice", "magog", points=500)  # lot 1: 500, on day 0
    clock.advance(10 * DAY)
    world.ctx.ledger.transfer(*[_t("magog", "lot2", "program:budget", alice.wallet, 300)])  # lot 2: 300, on day 10
    world.ctx.ledger.transfer(*[_t("magog", "spend", alice.wallet, "services:revenue", 350)])  # takes 350 of lot 1
    clock.advance(25 * DAY)  # day 35: lot 1 is past 30 days, lot 2 is not
    report = world.ctx.expiry.run(["magog"])
    assert report["magog"]["points"] == 150
    assert world.ctx.ledger.balance("magog", "breakage").posted == 150
    assert world.ctx.expiry.run(["magog"])["magog"]["points"] == 0
    clock.advance(DAY)
    assert world.ctx.expiry.run(["magog"])["magog"]["points"] == 0  # a new day: still nothing new to expire
    clock.advance(10 * DAY)  # day 46: lot 2 expires, minus what a hold reserves
    hold = world.ctx.ledger.transfer(
        _t("magog", "hold", alice.wallet, "services:revenue", 100, phase="pending", timeout_seconds=3_600)
    )
    assert world.ctx.expiry.run(["magog"])["magog"]["points"] == 200
    assert world.ctx.ledger.balance("magog", alice.wallet).available == 0
    assert hold[0].amount == 100 and verify_database(world.ctx.engine)["ok"]


def _t(city: str, key: str, debit: str, credit: str, points: int, phase: str = "single",
       timeout_seconds: int | None = None) -> TransferRequest:  # fmt: skip
    return TransferRequest(city, key, "test_move", phase, debit, credit, points, None, timeout_seconds)


# --- reporting and open data --------------------------------------------------------------------


def test_budget_report_and_redemptions(world: World) -> None:
    report = world.ctx.reports.budget("brossard")
    assert report.funded_points == 1_000_000 and report.consumed_points == 1_000 + 50
    assert report.remaining_points == 1_000_000 - 1_050
    with world.ctx.engine.connect() as conn:
        balances = journal.all_balances(conn, "brossard")
    assert report.outstanding_points == sum(b.posted for n, b in balances.items() if n.startswith("citizen:"))
    redemptions = world.ctx.reports.redemptions("brossard", JAN)
    assert redemptions.by_merchant == {"boulangerie": 150, "librairie": 100}
    assert redemptions.by_category == {"food": 150, "retail": 100}


def test_open_data_suppresses_cells_under_ten_residents(world: World, clock) -> None:
    for n in range(12):
        world.resident(f"r{n}", "brossard", points=100)
        hold_id = world.pos(
            "boulangerie", "POST", "/v1/pos/holds", {"card": world.residents[f"r{n}"].card, "points": 10}, key=f"o{n}"
        ).json()["hold_id"]
        world.pos("boulangerie", "POST", f"/v1/pos/holds/{hold_id}/capture", {}, key=f"p{n}")
    end_of_january(clock)
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    cells = {
        (c["metric"], c["dimension"]): c
        for c in msgspec.to_builtins(world.ctx.reports.open_data("brossard", JAN).cells)
    }
    food = cells[("redeemed_points_by_category", "food")]
    assert not food["suppressed"] and food["residents"] == 13 and food["points"] == 150 + 120
    retail = cells[("redeemed_points_by_category", "retail")]  # alice alone
    assert retail["suppressed"] and retail["points"] is None and retail["residents"] is None
    public = world.client.get(f"/v1/transparency/open-data/brossard/{JAN}?format=csv")
    assert public.status_code == 200 and "redeemed_points_by_category,food,270,13,False" in public.text
    assert world.residents["alice"].id not in public.text


def test_open_data_counts_municipal_services_expiry_and_the_budget_used(world: World, clock) -> None:
    for n in range(11):
        wallet = world.resident(f"s{n}", "brossard", points=500).wallet  # from the budget: 11 × 500
        world.ctx.ledger.transfer(TransferRequest("brossard", f"pool-{n}", "service_pool", "single", wallet,
                                                  "services:revenue", 30))  # fmt: skip
    for n in range(3):  # three residents' expiry alone: withheld
        world.ctx.ledger.transfer(TransferRequest("brossard", f"exp-{n}", "expiry", "single",
                                                  world.residents[f"s{n}"].wallet, "breakage", 7))  # fmt: skip
    end_of_january(clock)
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    cells = {(c.metric, c.dimension): c for c in world.ctx.reports.open_data("brossard", JAN).cells}
    services = cells[("spent_points_on_services", "all")]
    assert (services.points, services.residents, services.suppressed) == (11 * 30, 11, False)
    budget = cells[("budget_used_points", "all")]  # the eleven's; alice's and bob's came on December 31 in Montréal
    assert (budget.points, budget.residents) == (11 * 500, 11)
    assert world.ctx.reports.budget("brossard").consumed_points == 11 * 500 + 1_000 + 50
    expired = cells[("expired_points", "all")]
    assert expired.suppressed and expired.points is None
    assert world.ctx.reports.published_periods("brossard").periods == [JAN]


def civic(world: World, who: str, points: int, key: str) -> None:
    resident = world.residents[who]
    world.ctx.ledger.transfer(
        TransferRequest(resident.city, key, "earn_civic", "single", "program:budget", resident.wallet, points)
    )


def test_open_data_of_a_month_in_progress_reveals_nothing(world: World, clock, db_url, tmp_path) -> None:
    for n in range(12):
        world.resident(f"v{n}", "brossard")
        civic(world, f"v{n}", 100, f"jan-{n}")
    url = f"/v1/transparency/open-data/brossard/{JAN}"
    first = world.client.get(url)
    civic(world, "v0", 370, "jan-award")  # what two reads a minute apart used to show
    clock.advance(60)
    second = world.client.get(url)
    for response in (
        first,
        second,
        world.client.get(url + "?format=csv"),
        world.client.get("/v1/transparency/open-data/brossard/2026-03"),
    ):
        assert_problem(response, 404, "period_not_published")
    assert first.json() == second.json()
    assert_problem(world.client.get("/v1/transparency/open-data/brossard/2026-13"), 400, "validation_error")
    common = ["--city", "brossard", "--period", JAN, "--db", db_url, "--data-dir", str(tmp_path)]
    refused = run_cli("opendata", "export", *common, code=2)
    assert refused.startswith("error:") and "not closed" in refused and len(refused.strip().splitlines()) == 1

    end_of_january(clock)
    civic(world, "v1", 500, "feb-before-close")  # February's, whenever the close comes
    assert world.bearer("finance-brossard", "POST", f"/v1/finance/brossard/periods/{JAN}/close").status_code == 200
    published = world.client.get(url)
    assert published.status_code == 200, published.text
    cells = {(c["metric"], c["dimension"]): c for c in published.json()["cells"]}
    earned = cells[("earned_points_by_kind", "earn_civic")]
    assert (earned["points"], earned["residents"], earned["suppressed"]) == (12 * 100 + 370, 12, False)
    assert cells[("active_residents", "all")]["residents"] == 13  # the twelve and alice
    assert cells[("earned_points_by_kind", "earn_purchase")]["suppressed"]  # alice's award alone

    capture = world.pos(
        "boulangerie", "POST", "/v1/pos/holds", {"card": world.residents["v2"].card, "points": 20}, key="feb-h"
    ).json()
    world.pos("boulangerie", "POST", f"/v1/pos/holds/{capture['hold_id']}/capture", {}, key="feb-c")
    civic(world, "v3", 42, "feb-after-close")
    assert world.client.get(url).json() == published.json()  # frozen: later activity never reaches a closed month
    exported = json.loads(run_cli("opendata", "export", *common, "--format", "json"))
    assert exported["cells"] == published.json()["cells"]
    assert_problem(world.client.get(f"/v1/transparency/open-data/brossard/{FEB}"), 404, "period_not_published")


OPEN_DATA_OP = st.tuples(
    st.sampled_from((True, True, True, False)),  # in the month (mostly, so that cells reach 10 residents), or the next
    st.integers(0, 27),  # day
    st.integers(0, 11),  # resident
    st.integers(1, 500),  # points
    st.sampled_from(("earn_civic", "redeem")),
)
months = itertools.count()


def _expected_cells(city: str, period: str, ops: list) -> dict[tuple[str, str], dict]:
    """The month's cells, computed from the operations themselves (not from the journal)."""
    earned: dict[str, tuple[int, set]] = {}
    active: set[int] = set()
    for in_month, _, r, points, kind in ops:
        if in_month:
            metric = (
                ("earned_points_by_kind", "earn_civic")
                if kind == "earn_civic"
                else ("redeemed_points_by_category", "food")
            )
            total, who = earned.get(metric, (0, set()))
            earned[metric] = (total + points, who | {r})
            active.add(r)
    cells = {}
    for (metric, dimension), (points, who) in earned.items():
        hidden = len(who) < 10
        cells[(metric, dimension)] = {"city": city, "period": period, "metric": metric, "dimension": dimension,
                                      "points": None if hidden else points, "residents": None if hidden else len(who),
                                      "merchants": None, "suppressed": hidden}  # fmt: skip
    hidden = len(active) < 10
    cells[("active_residents", "all")] = {"city": city, "period": period, "metric": "active_residents", "dimension": "all",
                                          "points": None, "residents": None if hidden else len(active), "merchants": None,
                                          "suppressed": hidden}  # fmt: skip
    civic = [(r, points) for in_month, _, r, points, kind in ops if in_month and kind == "earn_civic"]
    if civic:  # earned from the city's budget: the budget used, counted again as a whole
        who = {r for r, _ in civic}
        hidden = len(who) < 10
        cells[("budget_used_points", "all")] = {"city": city, "period": period, "metric": "budget_used_points",
                                                "dimension": "all", "points": None if hidden else sum(p for _, p in civic),
                                                "residents": None if hidden else len(who), "merchants": None,
                                                "suppressed": hidden}  # fmt: skip
    redeemed = any(in_month and kind == "redeem" for in_month, *_, kind in ops)
    cells[("active_merchants", "all")] = {"city": city, "period": period, "metric": "active_merchants", "dimension": "all",
                                          "points": None, "residents": None, "merchants": int(redeemed), "suppressed": False}  # fmt: skip
    return cells


@pytest.fixture
def public(ctx) -> Iterator[TestClient]:
    with TestClient(create_app(ctx)) as client:
        yield client


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(ops=st.lists(OPEN_DATA_OP, max_size=30))
def test_open_data_is_published_for_closed_months_only_and_then_frozen(ctx, clock, public, ops) -> None:
    """Any activity in a month and after it: nothing is published while the month is open; once
    closed, its cells are what the month's own operations give, and stay so whatever comes after."""
    n = 2 * next(
        months
    )  # every other month: an example's next-month activity never falls in the following example's month
    period, city = f"{2030 + n // 12}-{n % 12 + 1:02d}", f"open{n}"
    start_us, end_us = period_bounds_us(period, "America/Toronto")
    clock.now_us = max(clock.now_us, start_us - DAY * 1_000_000)
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city(city)
    ctx.merchants.add(city, f"{city}-m", "Marché", "test", key=f"{city}-m", category="food")
    for r in range(12):
        world.resident(f"{city}-{r}", city, points=20_000)  # before the month
    timed = sorted(((start_us if in_month else end_us) + day * DAY * 1_000_000 + i, in_month, day, r, points, kind)
                   for i, (in_month, day, r, points, kind) in enumerate(ops))  # fmt: skip
    url = f"/v1/transparency/open-data/{city}/{period}"
    closed = None
    for at_us, in_month, day, r, points, kind in timed:
        clock.now_us = max(clock.now_us, at_us)
        if not in_month and day >= 14 and closed is None:
            closed = ctx.settlement.close(city, period, "finance:test")  # half the next month comes after the close
        if closed is None:
            assert_problem(public.get(url), 404, "period_not_published")
        wallet = world.residents[f"{city}-{r}"].wallet
        debit, credit = ("program:budget", wallet) if kind == "earn_civic" else (wallet, f"merchant:{city}-m:redeemed")
        ctx.ledger.transfer(TransferRequest(city, f"op{at_us}", kind, "single", debit, credit, points))
    clock.now_us = max(clock.now_us, end_us)
    if closed is None:
        assert_problem(public.get(url), 404, "period_not_published")
        ctx.settlement.close(city, period, "finance:test")
    published = public.get(url)
    assert published.status_code == 200, published.text
    assert {(c["metric"], c["dimension"]): c for c in published.json()["cells"]} == _expected_cells(city, period, ops)
    later = world.residents[f"{city}-0"].wallet
    ctx.ledger.transfer(TransferRequest(city, "after", "earn_civic", "single", "program:budget", later, 1))
    assert public.get(url).json() == published.json()


# --- the HTTP API -------------------------------------------------------------------------------


def test_finance_endpoints_are_for_the_citys_finance_staff(world: World, clock) -> None:
    end_of_january(clock)
    closed = world.bearer("finance-brossard", "POST", f"/v1/finance/brossard/periods/{JAN}/close")
    assert closed.status_code == 200 and not closed.json()["replayed"]
    statement = world.bearer("finance-brossard", "GET", f"/v1/finance/brossard/periods/{JAN}/statement").json()
    assert statement["statement"] == closed.json()["statement"]
    exported = world.bearer("finance-brossard", "GET", f"/v1/finance/brossard/periods/{JAN}/export?format=csv")
    assert exported.headers["content-type"].startswith("text/csv") and "librairie" in exported.text
    assert_problem(
        world.bearer("staff-brossard", "POST", f"/v1/finance/brossard/periods/{JAN}/close"), 403, "forbidden"
    )
    assert_problem(
        world.bearer("finance-brossard", "POST", f"/v1/finance/delson/periods/{JAN}/close"), 403, "wrong_tenant"
    )
    assert_problem(
        world.bearer("finance-brossard", "POST", "/v1/finance/brossard/periods/2026-13/close"), 400, "validation_error"
    )
    assert_problem(
        world.bearer("finance-brossard", "POST", f"/v1/finance/brossard/periods/{FEB}/close"), 409, "period_open"
    )
    budget = world.bearer("finance-brossard", "GET", "/v1/finance/brossard/budget").json()
    assert budget["funded_points"] == 1_000_000
    actions = [
        e["action"] for e in msgspec.to_builtins(audit_trail.page(world.ctx.engine, "brossard", 0, 1_000).entries)
    ]
    assert "settlement.close" in actions


def test_statement_matches_an_independent_sum_of_the_journal(world: World, clock) -> None:
    end_of_january(clock)
    statement = world.ctx.settlement.close("brossard", JAN, "finance:test").statement
    since, until = statement.since_us, statement.until_us
    with world.ctx.engine.connect() as conn:
        rows = journal.period_rows(
            conn, "brossard", since, until, ("kind", "debit_account", "credit_account", "amount")
        )
    expected = defaultdict(lambda: [0, 0])
    for kind, debit, credit, amount in rows:
        if kind in SETTLEMENT_KINDS:
            continue
        for account, sign in ((credit, 1), (debit, -1)):
            if account.startswith("merchant:"):
                _, merchant, side = account.split(":")
                expected[merchant][0 if side == "redeemed" else 1] += (
                    sign * amount if side == "redeemed" else -sign * amount
                )
    assert {m: [line.redeemed_points, line.issued_points] for m, line in lines(statement).items()} == dict(expected)
    assert statement.totals.net_cents == sum(line.net_cents for line in statement.merchants)


def test_open_context_reads_stripe_settings(settings, monkeypatch) -> None:
    monkeypatch.setenv("ENTRAIDE_STRIPE_API_KEY", API_KEY)
    loaded = Settings.load(settings.database_url, settings.data_dir)
    ctx = open_context(loaded, create=True)
    assert ctx.payouts.gateway is not None and ctx.payouts.gateway.api_key == API_KEY
    ctx.engine.dispose()


# --- the contract: idempotency, enums, typed answers ----------------------------------------------


def test_adjustments_and_payout_account_proposals_take_an_idempotency_key(world: World, clock) -> None:
    end_of_january(clock)
    assert world.bearer("finance-brossard", "POST", f"/v1/finance/brossard/periods/{JAN}/close").status_code == 200
    path = "/v1/finance/brossard/adjustments"
    body = {"merchant_id": "librairie", "amount_cents": -25, "reason": "damaged goods", "ref_period": JAN}
    assert_problem(world.bearer("finance-brossard", "POST", path, body), 400, "idempotency_key_required")
    first = world.bearer("finance-brossard", "POST", path, body, key="adj-1")
    assert first.status_code == 201
    adjustment = msgspec.json.decode(first.content, type=Adjustment)
    assert (adjustment.merchant_id, adjustment.amount_cents, adjustment.ref_period) == ("librairie", -25, JAN)
    again = world.bearer("finance-brossard", "POST", path, body, key="adj-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert_problem(world.bearer("finance-brossard", "POST", path, body | {"amount_cents": -26}, key="adj-1"), 409,
                   "idempotency_conflict")  # fmt: skip
    with world.ctx.engine.connect() as conn:
        assert [a["id"] for a in finance_store.open_adjustments(conn, "brossard")] == [adjustment.id]

    path = "/v1/finance/brossard/merchants/librairie/payout-account"
    account = {"holder_name": "Librairie", "institution": "003", "transit": "00011", "account_number": "7654321"}
    assert_problem(world.bearer("finance-brossard", "PUT", path, account), 400, "idempotency_key_required")
    proposed = world.bearer("finance-brossard", "PUT", path, account, key="acct-1")
    assert proposed.status_code == 202
    change = msgspec.json.decode(proposed.content, type=PayoutAccountChange)
    assert change.status == "pending" and change.account_number == "…321"
    assert world.bearer("finance-brossard", "PUT", path, account, key="acct-1").json() == proposed.json()
    assert_problem(world.bearer("finance-brossard", "PUT", path, account | {"transit": "00012"}, key="acct-1"), 409,
                   "idempotency_conflict")  # fmt: skip
    listed = world.bearer("finance-brossard", "GET", "/v1/finance/brossard/payout-account-changes?status=pending")
    assert [c.id for c in msgspec.json.decode(listed.content, type=PayoutAccountChanges).changes] == [change.id]


def test_formats_decisions_and_statuses_are_enums(world: World, clock) -> None:
    end_of_january(clock)
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    finance = "/v1/finance/brossard"
    assert_problem(
        world.bearer("finance-brossard", "GET", f"{finance}/periods/{JAN}/export?format=xls"), 400, "validation_error"
    )
    assert_problem(world.bearer("finance-brossard", "GET", f"{finance}/payout-account-changes?status=lost"), 400,
                   "validation_error")  # fmt: skip
    assert_problem(world.bearer("finance-brossard", "POST", f"{finance}/payout-account-changes/pc1/approve"), 400,
                   "validation_error")  # fmt: skip
    assert_problem(world.bearer("finance-brossard", "POST", f"{finance}/payout-account-changes/pc1/confirm"), 404,
                   "unknown_change")  # fmt: skip
    exported = world.bearer("finance-brossard", "GET", f"{finance}/periods/{JAN}/export?format=json")
    assert exported.headers["content-type"] == "application/json"
    assert msgspec.json.decode(exported.content, type=Statement).period == JAN
    url = f"/v1/transparency/open-data/brossard/{JAN}"
    assert_problem(world.client.get(f"{url}?format=xml"), 400, "validation_error")
    assert_problem(world.client.get("/v1/transparency/open-data/brossard/2026-1"), 400, "validation_error")
    as_csv = world.client.get(f"{url}?format=csv")
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.headers["content-disposition"] == f'attachment; filename="entraide-open-data-brossard-{JAN}.csv"'
    as_json = msgspec.json.decode(world.client.get(url).content, type=OpenData)
    assert len(list(csv.DictReader(io.StringIO(as_csv.text)))) == len(as_json.cells)


def test_every_answer_decodes_as_its_declared_struct(world: World, clock) -> None:
    end_of_january(clock)
    finance = "/v1/finance/brossard"
    answers = {
        f"{finance}/periods/{JAN}/preview": Statement,
        f"{finance}/budget": BudgetReport,
        f"{finance}/periods/{JAN}/redemptions": RedemptionsReport,
    }
    for path, struct in answers.items():
        msgspec.json.decode(world.bearer("finance-brossard", "GET", path).content, type=struct)
    closed = msgspec.json.decode(world.bearer("finance-brossard", "POST", f"{finance}/periods/{JAN}/close").content,
                                 type=PeriodClose)  # fmt: skip
    totals = closed.statement.totals
    assert (totals.redeemed_points, totals.issued_points) == (250, 212) and totals.net_cents == 100 - 62
    for path, struct in {
        f"{finance}/periods/{JAN}/statement": PeriodClose,
        f"{finance}/periods/{JAN}/payouts": PayoutList,
    }.items():
        msgspec.json.decode(world.bearer("finance-brossard", "GET", path).content, type=struct)
    reconciled = world.bearer("finance-brossard", "POST", f"{finance}/periods/{JAN}/reconciliation")
    assert {d.issue for d in msgspec.json.decode(reconciled.content, type=Reconciliation).differences} == {"not_paid"}
    audit.make_checkpoints(world.ctx.engine, world.ctx.signer)
    keys = msgspec.json.decode(world.client.get("/v1/transparency/keys").content, type=PublicKeys)
    assert keys.ledger.format == audit.KEYS_FORMAT and keys.ledger.keys and keys.cards.keys and keys.token_issuer.keys
    checkpoints = msgspec.json.decode(world.client.get("/v1/transparency/checkpoints").content, type=Checkpoints)
    assert {c.ledger for c in checkpoints.checkpoints} >= {"brossard", "delson"}
    assert msgspec.json.decode(world.client.get("/v1/health").content, type=Health) == Health(status="ok")
