"""Reconciliation against the bank's camt.053 statement, on SQLite and PostgreSQL: a statement built from two
closed periods' payouts and a direct debit (one amount altered, one entry dropped, a bank fee added) lists every difference,
through the API and the CLI, exported as CSV and JSON; importing it again changes nothing; hostile or foreign
files are refused with problems that change nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from xml.etree import ElementTree as ET

import msgspec

from community.domain.program import Program
from finance.adapters.bank_statements import (
    CAMT_NAMESPACE,
    MAX_STATEMENT_BYTES,
    BankEntry,
    camt053_schema,
    read_camt053,
)
from finance.domain.settlement import cents_text
from finance.service_layer.reconciliation import Expected, match
from ledger.service_layer import audit_trail
from tests.test_api import assert_problem
from tests.test_cli import run as run_cli
from tests.test_finance import BILLION_LAUGHS, JAN, TREASURY, end_of_january, payout_account, world
from tests.world import World

__all__ = ["world"]  # the fixture, shared with tests/test_finance.py
FEB = "2026-02"
END_OF_FEBRUARY_US = int(dt.datetime(2026, 3, 1, 6, tzinfo=dt.UTC).timestamp()) * 1_000_000


def camt053(message_id: str, account: str, entries: list[tuple[str | None, int, str]],
            batch: tuple[tuple[str, int], ...] = ()) -> bytes:  # fmt: skip
    """A camt.053.001.08 statement of `account` with booked entries (end-to-end id or None, signed cents,
    remittance) and a batch entry of `batch`'s debits, written with ElementTree the way a bank's system would."""
    ET.register_namespace("", CAMT_NAMESPACE)

    def sub(parent: ET.Element, path: str, text: str | None = None, **attrs: str) -> ET.Element:
        for tag in path.split("/"):
            parent = ET.SubElement(parent, f"{{{CAMT_NAMESPACE}}}{tag}", attrs if tag == path.split("/")[-1] else {})
        parent.text = text
        return parent

    document = ET.Element(f"{{{CAMT_NAMESPACE}}}Document")
    root = sub(document, "BkToCstmrStmt")
    header = sub(root, "GrpHdr")
    sub(header, "MsgId", message_id)
    sub(header, "CreDtTm", "2026-03-02T08:00:00")
    statement = sub(root, "Stmt")
    sub(statement, "Id", f"{message_id}-1")
    period = sub(statement, "FrToDt")
    sub(period, "FrDtTm", "2026-02-01T00:00:00-05:00")
    sub(period, "ToDtTm", "2026-03-01T23:59:59-05:00")
    sub(statement, "Acct/Id/Othr/Id", account)
    balance = sub(statement, "Bal")
    sub(balance, "Tp/CdOrPrtry/Cd", "CLBD")
    sub(balance, "Amt", "1000.00", Ccy="CAD")
    sub(balance, "CdtDbtInd", "CRDT")
    sub(balance, "Dt/Dt", "2026-03-01")
    for n, (e2e, cents, remittance) in enumerate(entries, 1):
        entry = sub(statement, "Ntry")
        sub(entry, "Amt", cents_text(abs(cents)), Ccy="CAD")
        sub(entry, "CdtDbtInd", "DBIT" if cents < 0 else "CRDT")
        sub(entry, "Sts/Cd", "BOOK")
        sub(entry, "BookgDt/Dt", f"2026-03-0{n}")
        sub(entry, "AcctSvcrRef", f"BANK-{n}")
        sub(entry, "BkTxCd/Prtry/Cd", "TRF")
        transaction = sub(entry, "NtryDtls/TxDtls")
        sub(transaction, "Refs/EndToEndId", e2e or "NOTPROVIDED")
        sub(transaction, "RmtInf/Ustrd", remittance)
    if batch:
        entry = sub(statement, "Ntry")
        sub(entry, "Amt", cents_text(-sum(cents for _, cents in batch)), Ccy="CAD")
        sub(entry, "CdtDbtInd", "DBIT")
        sub(entry, "Sts/Cd", "BOOK")
        sub(entry, "BookgDt/Dt", "2026-03-09")
        sub(entry, "BkTxCd/Prtry/Cd", "TRF")
        details = sub(entry, "NtryDtls")
        for e2e, cents in batch:
            transaction = sub(details, "TxDtls")
            sub(transaction, "Refs/EndToEndId", e2e)
            sub(transaction, "Amt", cents_text(-cents), Ccy="CAD")
            sub(transaction, "CdtDbtInd", "DBIT")
    xml = ET.tostring(document, encoding="utf-8", xml_declaration=True)
    assert camt053_schema().is_valid(xml.decode()), list(camt053_schema().iter_errors(xml.decode()))[:1]
    return xml


def two_periods_paid(world: World, clock) -> None:
    """January owes librairie 1.00 and collects 0.62 from boulangerie by direct debit; an adjustment makes
    February owe boulangerie 51.00."""
    end_of_january(clock)
    world.ctx.programs.configure(Program(city="brossard", daily_cap_points=300, monthly_cap_points=1_000,
                                         treasury=TREASURY, collection_method="direct_debit"), "t")  # fmt: skip
    payout_account(world, "brossard", "boulangerie")  # the direct debit's mandate
    world.ctx.settlement.close("brossard", JAN, "finance:test")
    world.ctx.collections.direct_debits("brossard", JAN, "finance:test")  # the pain.008 file, requested
    world.ctx.settlement.adjust("brossard", "boulangerie", 5_100, "reimbursement owed", JAN, "finance:test", key="a")
    clock.now_us = END_OF_FEBRUARY_US
    world.ctx.settlement.close("brossard", FEB, "finance:test")


def audited(world: World) -> list[str]:
    entries = msgspec.to_builtins(audit_trail.page(world.ctx.engine, "brossard", 0, 1_000).entries)
    return [e["action"] for e in entries if e["action"].startswith("bank_statements.")]


def test_a_bank_statement_lists_every_difference_once(world: World, clock, db_url, tmp_path) -> None:
    two_periods_paid(world, clock)
    owed = {
        line.merchant_id: line.net_cents for line in world.ctx.settlement.closed_statement("brossard", FEB).merchants
    }
    assert owed["boulangerie"] > 0
    # the bank booked librairie's payout one cent off, boulangerie's direct debit, not its payout yet, and a fee
    march = camt053("STMT-2026-03", TREASURY.account_number,
                    [(f"{JAN}-librairie", -101, "Entraide brossard 2026-01 librairie"), (None, -250, "Frais mensuels"),
                     (f"{JAN}-boulangerie", 62, "Prélèvement Entraide")])  # fmt: skip
    url = "/v1/finance/brossard/bank-statements"
    headers = {"Authorization": f"Bearer {world.tokens['finance-brossard']}", "Content-Type": "application/xml"}
    imported = world.client.post(url, content=march, headers=headers)
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert (body["entries"], body["matched"], body["differences"], body["replayed"]) == (3, 1, 3, False)
    results = world.client.get(f"{url}/{body['id']}", headers=headers).json()["results"]
    assert [(r["status"], r.get("end_to_end_id"), r.get("expected_cents"), r.get("bank_cents")) for r in results] == [
        ("amount_differs", f"{JAN}-librairie", -100, -101),
        ("unknown_entry", None, None, -250),
        ("matched", f"{JAN}-boulangerie", 62, 62),
        ("missing_from_bank", f"{FEB}-boulangerie", -owed["boulangerie"], None),
    ]
    assert results[1]["remittance"] == "Frais mensuels" and results[0]["booking_date"] == "2026-03-01"
    exported = world.client.get(f"{url}/{body['id']}/export?format=csv", headers=headers)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["status"], r["merchant_id"], r["bank_cents"]) for r in rows] == [
        ("amount_differs", "librairie", "-101"), ("unknown_entry", "", "-250"), ("matched", "boulangerie", "62"),
        ("missing_from_bank", "boulangerie", "")]  # fmt: skip
    as_json = world.client.get(f"{url}/{body['id']}/export?format=json", headers=headers).json()
    assert as_json["results"] == results and as_json["statement"]["sha256"] == body["sha256"]

    # the same file again, by the API or the CLI: nothing written, the same answer
    again = world.client.post(url, content=march, headers=headers).json()
    assert again == body | {"replayed": True}
    (tmp_path / "march.xml").write_bytes(march)
    common = ["--city", "brossard", "--db", db_url, "--data-dir", str(tmp_path)]
    output = run_cli("--lang", "en", "settlement", "bank-import", str(tmp_path / "march.xml"), *common, code=1)
    assert "(already imported)" in output and "amount_differs" in output and "boulangerie" in output
    cli_csv = run_cli("settlement", "bank-results", body["id"], "--format", "csv", *common)
    assert cli_csv == exported.text
    changed = march.replace(b">1.01<", b">1.00<")
    assert assert_problem(world.client.post(url, content=changed, headers=headers), 409, "conflict")["reason"] == (
        "bank_statement_changed"
    )

    # refused, each with a problem, and nothing written
    pain = b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn/></Document>'
    bad = {
        "malformed": (march[: len(march) // 2], "unreadable_bank_statement"),
        "wrong namespace": (march.replace(b"camt.053.001.08", b"camt.053.001.02"), "unreadable_bank_statement"),
        "a pain.001": (pain, "unreadable_bank_statement"),
        "entity expansion": (
            BILLION_LAUGHS.replace(b"pain.001.001.09", b"camt.053.001.08"),
            "unreadable_bank_statement",
        ),
        "external entity": (
            b'<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&x;</Document>',
            "unreadable_bank_statement",
        ),
        "a fraction of a cent": (
            march.replace(b">1.01<", b">1.015<").replace(b"STMT-2026-03", b"STMT-X"),
            "unreadable_bank_statement",
        ),
        "another account": (camt053("STMT-OTHER", "7777777", [(f"{JAN}-librairie", -100, "x")]), "wrong_bank_account"),
    }
    for name, (document, reason) in bad.items():
        refused = world.client.post(url, content=document, headers={**headers, "Accept-Language": "fr"})
        problem = assert_problem(refused, 422, "invalid_bank_statement")
        assert problem["reason"] == reason and problem["title"] == "Relevé bancaire invalide", name
    too_large = march + b" " * MAX_STATEMENT_BYTES
    assert_problem(world.client.post(url, content=too_large, headers=headers), 413, "body_too_large")
    (tmp_path / "bad.xml").write_bytes(bad["entity expansion"][0])
    output = run_cli("settlement", "bank-import", str(tmp_path / "bad.xml"), *common, code=2)
    assert output.startswith("error:") and len(output.strip().splitlines()) == 1
    assert audited(world) == ["bank_statements.import"]

    # April's statement books boulangerie's payout: it matches, and nothing is expected any more
    april = camt053("STMT-2026-04", TREASURY.account_number, [(f"{FEB}-boulangerie", -owed["boulangerie"], "Entraide")])
    (tmp_path / "april.xml").write_bytes(april)
    output = run_cli("--lang", "en", "settlement", "bank-import", str(tmp_path / "april.xml"), *common)
    assert "1 entries, 1 matched, 0 differences" in " ".join(output.split())
    listed = world.client.get(url, headers=headers).json()["statements"]
    assert [(s["message_id"], s["matched"], s["differences"]) for s in listed] == [
        ("STMT-2026-04", 1, 0), ("STMT-2026-03", 1, 3)]  # fmt: skip
    auditor = world.grant("auditor-brossard", "auditor", "brossard", "au1")
    assert world.client.get(url, headers={"Authorization": f"Bearer {auditor}"}).status_code == 200
    forbidden = world.client.post(url, content=april, headers={**headers, "Authorization": f"Bearer {auditor}"})
    assert forbidden.status_code == 403
    assert audited(world) == ["bank_statements.import"] * 2
    assert (
        json.loads(run_cli("settlement", "bank-results", listed[0]["id"], "--format", "json", *common))["results"][0][
            "status"
        ]
        == "matched"
    )


def test_matching_sums_a_payment_booked_in_parts_and_compares_currencies() -> None:
    expected = {
        "2026-01-a": Expected("payout", JAN, "a", -500),
        "2026-01-b": Expected("payout", JAN, "b", -300),
        "2026-01-c": Expected("payout", JAN, "c", -100),
    }
    # a batch entry the bank split into its transactions, each with its amount: a's payout in two parts
    batch = read_camt053(camt053("BATCH", "1234567", [], batch=(("2026-01-a", -200), ("2026-01-a", -300)))).entries
    assert batch == (BankEntry(-200, "CAD", "2026-01-a", "2026-03-09", None, None),
                     BankEntry(-300, "CAD", "2026-01-a", "2026-03-09", None, None))  # fmt: skip
    entries = (
        *batch,
        BankEntry(-300, "USD", "2026-01-b", "2026-02-04", "R3", None),  # the right number, not the currency
        BankEntry(-300, "CAD", "2026-01-z", "2026-02-05", "R4", None),  # someone else's reference
    )
    assert [(r["status"], r["end_to_end_id"], r.get("bank_cents")) for r in match(expected, entries, "CAD")] == [
        ("matched", "2026-01-a", -500),
        ("amount_differs", "2026-01-b", None),
        ("unknown_entry", "2026-01-z", -300),
        ("missing_from_bank", "2026-01-c", None),
    ]
