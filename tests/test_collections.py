"""Money that flows back, on SQLite and PostgreSQL: a merchant whose January nets negative is collected by
a pain.008 direct debit (validated, naming it) or by an invoice, per city setting; the inter-city file
says the same thing from both ends. Through the HTTP API and the CLI, which call the same service."""

from __future__ import annotations

import csv
import io
import json
from xml.etree import ElementTree as ET

import msgspec
import pytest

from community.domain.program import InvalidProgram, Program
from finance.adapters.collections import PAIN008, PAIN008_NAMESPACE
from finance.adapters.exports import PAIN_NAMESPACE, iso20022_schema
from finance.schemas import CollectionList, IntercitySettlement, InvoiceList, PeriodClose
from ledger.service_layer import audit_trail
from tests.test_api import assert_problem
from tests.test_cli import run as run_cli
from tests.test_finance import JAN, TREASURY, end_of_january, payout_account, world
from tests.world import World

__all__ = ["world"]  # the fixture, shared with test_finance
BROSSARD = dict(city="brossard", daily_cap_points=300, monthly_cap_points=1_000, treasury=TREASURY)


def actions(world: World, city: str) -> list[str]:
    entries = audit_trail.page(world.ctx.engine, city, 0, 1_000).entries
    return [e["action"] for e in msgspec.to_builtins(entries)]


def test_a_negative_net_is_collected_by_a_validated_pain008_naming_the_merchant(world: World, clock, db_url,
                                                                               tmp_path) -> None:  # fmt: skip
    with pytest.raises(InvalidProgram, match="collection_method"):
        world.ctx.programs.configure(Program(**BROSSARD, collection_method="cheque"), "t")  # type: ignore[arg-type]
    world.ctx.programs.configure(Program(**BROSSARD, collection_method="direct_debit"), "t")
    payout_account(world, "brossard", "boulangerie")
    payout_account(world, "brossard", "librairie")
    path = f"/v1/finance/brossard/periods/{JAN}"
    assert_problem(world.bearer("finance-brossard", "POST", f"{path}/collections/pain008"), 404, "not_found")
    end_of_january(clock)
    closed = msgspec.json.decode(world.bearer("finance-brossard", "POST", f"{path}/close").content, type=PeriodClose)
    settled = {line.merchant_id: (line.net_cents, line.settled_by) for line in closed.statement.merchants}
    assert settled == {"boulangerie": (-62, "direct_debit"), "librairie": (100, "credit_transfer")}

    listed = msgspec.json.decode(world.bearer("finance-brossard", "GET", f"{path}/collections").content,
                                 type=CollectionList)  # fmt: skip
    ((collection),) = listed.collections
    assert (collection.merchant_id, collection.amount_cents, collection.method, collection.status) == (
        "boulangerie", 62, "direct_debit", "due")  # fmt: skip
    assert listed.total_cents == 62
    # pain.001 pays the positive net only: the bakery is collected instead, never left out silently.
    credit = ET.fromstring(world.ctx.exports.render("brossard", JAN, "pain001")[0])
    assert [e.text for e in credit.iter(f"{{{PAIN_NAMESPACE}}}EndToEndId")] == [f"{JAN}-librairie"]

    assert_problem(world.bearer("staff-brossard", "POST", f"{path}/collections/pain008"), 403, "forbidden")
    response = world.bearer("finance-brossard", "POST", f"{path}/collections/pain008")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    assert 'filename="entraide-brossard-2026-01.pain008.xml"' in response.headers["content-disposition"]
    schema = iso20022_schema(PAIN008)
    assert schema.is_valid(response.text)
    ns = {"p": PAIN008_NAMESPACE}
    root = ET.fromstring(response.content)
    header = root.find("p:CstmrDrctDbtInitn/p:GrpHdr", ns)
    assert (header.findtext("p:NbOfTxs", namespaces=ns), header.findtext("p:CtrlSum", namespaces=ns)) == ("1", "0.62")
    info = root.find("p:CstmrDrctDbtInitn/p:PmtInf", ns)
    assert info.findtext("p:Cdtr/p:Nm", namespaces=ns) == TREASURY.name
    assert info.findtext("p:CdtrAcct/p:Id/p:Othr/p:Id", namespaces=ns) == TREASURY.account_number
    (debit,) = info.findall("p:DrctDbtTxInf", ns)
    mandate = world.ctx.payouts.account_changes("brossard", "confirmed").changes
    mandate_id = next(c.id for c in mandate if c.merchant_id == "boulangerie")
    assert debit.findtext("p:PmtId/p:EndToEndId", namespaces=ns) == f"{JAN}-boulangerie"
    assert debit.find("p:InstdAmt", ns).get("Ccy") == "CAD" and debit.findtext("p:InstdAmt", namespaces=ns) == "0.62"
    assert debit.findtext("p:DrctDbtTx/p:MndtRltdInf/p:MndtId", namespaces=ns) == mandate_id
    assert debit.findtext("p:Dbtr/p:Nm", namespaces=ns) == "Boulangerie"
    assert debit.findtext("p:DbtrAcct/p:Id/p:Othr/p:Id", namespaces=ns) == "7654321"
    assert not schema.is_valid(response.text.replace("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>one</NbOfTxs>", 1))
    assert actions(world, "brossard").count("collections.direct_debit") == 1

    # Asking again (here through the CLI) writes the same debits and records nothing more.
    common = ["--city", "brossard", "--period", JAN, "--db", db_url, "--data-dir", str(tmp_path)]
    run_cli("settlement", "pain008", *common, "--out", str(tmp_path / "dd.xml"))
    again = ET.fromstring((tmp_path / "dd.xml").read_bytes())
    assert [e.text for e in again.iter(f"{{{PAIN008_NAMESPACE}}}EndToEndId")] == [f"{JAN}-boulangerie"]
    assert actions(world, "brossard").count("collections.direct_debit") == 1
    assert "requested" in run_cli("settlement", "collections", *common)
    assert actions(world, "brossard").count("collections.open") == 1


def test_invoice_method_invoices_and_the_intercity_file_balances_from_both_ends(world: World, clock, db_url,
                                                                               tmp_path) -> None:  # fmt: skip
    end_of_january(clock)
    for city in ("brossard", "delson"):
        world.ctx.settlement.close(city, JAN, "finance:test")
    world.grant("finance-delson", "finance", "delson", "f2")
    path = f"/v1/finance/brossard/periods/{JAN}"
    (collection,) = world.ctx.collections.owed("brossard", JAN).collections
    assert (collection.merchant_id, collection.method, collection.status) == ("boulangerie", "invoice", "due")
    statement = world.ctx.exports.render("brossard", JAN, "csv")[0].decode()
    assert {r["merchant_id"]: r["settled_by"] for r in csv.DictReader(io.StringIO(statement))} == {
        "boulangerie": "invoice", "librairie": "credit_transfer"}  # fmt: skip
    assert_problem(world.bearer("finance-brossard", "GET", f"{path}/invoices/boulangerie"), 409, "conflict")

    issued = msgspec.json.decode(world.bearer("finance-brossard", "POST", f"{path}/invoices").content, type=InvoiceList)
    (invoice,) = issued.invoices
    assert (invoice.number, invoice.total_cents, invoice.issued_on, invoice.due_on) == (
        "INV-brossard-2026-01-boulangerie", 62, "2026-02-01", "2026-03-03")  # fmt: skip
    assert [(line.item, line.points, line.amount_cents) for line in invoice.lines] == [
        ("funding", 212, 212), ("reimbursement", 150, -150)]  # fmt: skip
    assert world.bearer("finance-brossard", "POST", f"{path}/invoices").json() == msgspec.to_builtins(issued)
    assert actions(world, "brossard").count("collections.invoice") == 1
    text = world.bearer("finance-brossard", "GET", f"{path}/invoices/boulangerie?format=text")
    assert text.headers["content-type"].startswith("text/plain") and "INV-brossard-2026-01-boulangerie" in text.text
    assert "0.62 CAD" in text.text and "Commerce boulangerie" in text.text
    rows = list(csv.DictReader(io.StringIO(run_cli("settlement", "invoices", "--city", "brossard", "--period", JAN,
                                                   "--merchant", "boulangerie", "--format", "csv", "--db", db_url,
                                                   "--data-dir", str(tmp_path)))))  # fmt: skip
    assert sum(int(r["amount_cents"]) for r in rows if r["item"] != "total") == 62 == int(rows[-1]["amount_cents"])
    assert_problem(world.bearer("finance-brossard", "GET", f"{path}/invoices/librairie"), 404, "not_found")
    assert_problem(world.bearer("finance-brossard", "GET", f"{path}/invoices/boulangerie?format=pdf"), 400,
                   "validation_error")  # fmt: skip

    # A owes B = B is owed by A: the two cities' files carry the same pair, with opposite balances.
    files = {}
    for city, who in (("brossard", "finance-brossard"), ("delson", "finance-delson")):
        response = world.bearer(who, "GET", f"/v1/finance/{city}/periods/{JAN}/intercity?format=json")
        files[city] = msgspec.json.decode(response.content, type=IntercitySettlement)
    assert files["brossard"].positions == files["delson"].positions and len(files["brossard"].positions) == 1
    (position,) = files["brossard"].positions
    assert (position.payer, position.payee, position.cents) == ("brossard", "delson", 80)
    assert (files["brossard"].balance_cents, files["delson"].balance_cents) == (-80, 80)
    output = run_cli("settlement", "intercity", "--city", "delson", "--period", JAN, "--format", "csv", "--with",
                     "brossard", "--db", db_url, "--data-dir", str(tmp_path))  # fmt: skip
    assert list(csv.reader(io.StringIO(output))) == [
        ["city", "period", "payer", "payee", "points", "cents"], ["delson", JAN, "brossard", "delson", "80", "80"]]  # fmt: skip
    alone = world.bearer("finance-delson", "GET", f"/v1/finance/delson/periods/{JAN}/intercity?counterparty=laprairie")
    assert json.loads(alone.content)["positions"] == []
    assert_problem(world.bearer("finance-brossard", "GET", f"/v1/finance/delson/periods/{JAN}/intercity"), 403,
                   "wrong_tenant")  # fmt: skip
