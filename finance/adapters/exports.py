"""Settlement files: statements (CSV, JSON), ISO 20022 pain.001 credit transfers, ERP journal entries.

Amounts are integer cents until here; `cents_text` formats them exactly (no floats) at this edge.
The pain.001 file is validated against the official ISO 20022 schema (pain.001.001.09, shipped by
the `sepaxml` package) before it is returned; the ERP journal balances by construction and is checked.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from importlib import resources
from xml.etree import ElementTree as ET

import msgspec
import xmlschema

from finance.domain.settlement import Statement, cents_text

PAIN_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
CLEARING_SYSTEM = "CACPA"  # Payments Canada: member id 0 + institution (3) + transit (5)
STATEMENT_COLUMNS = ("merchant_id", "redeemed_points", "issued_points", "reimbursement_cents", "funding_cents",
                     "fees_cents", "adjustments_cents", "net_cents")  # fmt: skip
GL = {
    "reimbursements": "6100-remboursements-commercants",
    "merchant_funding": "4100-financement-commercants",
    "fees": "4200-frais-reglement",
    "interop_expense": "6200-interop-villes",
    "interop_revenue": "4300-interop-villes",
}


class ExportError(ValueError):
    """The file cannot be produced as asked (missing bank details, invalid against its schema)."""


def statement_csv(statement: Statement) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("city", "period", *STATEMENT_COLUMNS))
    for line in statement.merchants:
        writer.writerow((statement.city, statement.period, *(getattr(line, c) for c in STATEMENT_COLUMNS)))
    return out.getvalue()


def statement_json(statement: Statement) -> str:
    return json.dumps(msgspec.to_builtins(statement), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


# --- ISO 20022 pain.001 ------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{PAIN_NAMESPACE}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _path(parent: ET.Element, tags: str, text: str) -> None:
    for tag in tags.split("/")[:-1]:
        parent = _sub(parent, tag)
    _sub(parent, tags.split("/")[-1], text)


def _agent(parent: ET.Element, tag: str, institution: str, transit: str) -> None:
    member = _sub(_sub(_sub(parent, tag), "FinInstnId"), "ClrSysMmbId")
    _path(member, "ClrSysId/Cd", CLEARING_SYSTEM)
    _sub(member, "MmbId", f"0{institution}{transit}")


def pain001(statement: Statement, payer: dict, accounts: dict[str, dict], names: dict[str, str],
            created: dt.datetime, execution_date: dt.date) -> bytes:  # fmt: skip
    """One credit transfer per merchant with a positive net, from the city's account, in CAD."""
    payable = [line for line in statement.merchants if line.net_cents > 0]
    missing = sorted(line.merchant_id for line in payable if line.merchant_id not in accounts)
    if missing:
        raise ExportError(f"no bank account on file for {', '.join(missing)}")
    count, total = str(len(payable)), cents_text(sum(line.net_cents for line in payable))
    ET.register_namespace("", PAIN_NAMESPACE)
    document = ET.Element(f"{{{PAIN_NAMESPACE}}}Document")
    initiation = _sub(document, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    message_id = f"ENTRAIDE-{statement.city}-{statement.period}"[:35]
    for tag, text in (("MsgId", message_id), ("CreDtTm", created.strftime("%Y-%m-%dT%H:%M:%S")), ("NbOfTxs", count),
                      ("CtrlSum", total)):  # fmt: skip
        _sub(header, tag, text)
    _path(header, "InitgPty/Nm", payer["name"][:140])
    info = _sub(initiation, "PmtInf")
    for tag, text in (("PmtInfId", message_id), ("PmtMtd", "TRF"), ("NbOfTxs", count), ("CtrlSum", total)):
        _sub(info, tag, text)
    _path(info, "ReqdExctnDt/Dt", execution_date.isoformat())
    _path(info, "Dbtr/Nm", payer["name"][:140])
    _path(info, "DbtrAcct/Id/Othr/Id", payer["account_number"])
    _agent(info, "DbtrAgt", payer["institution"], payer["transit"])
    for line in payable:
        account = accounts[line.merchant_id]
        transaction = _sub(info, "CdtTrfTxInf")
        _path(transaction, "PmtId/EndToEndId", f"{statement.period}-{line.merchant_id}"[:35])
        _sub(_sub(transaction, "Amt"), "InstdAmt", cents_text(line.net_cents), Ccy=statement.currency)
        _agent(transaction, "CdtrAgt", account["institution"], account["transit"])
        _path(transaction, "Cdtr/Nm", (account["holder_name"] or names.get(line.merchant_id, line.merchant_id))[:140])
        _path(transaction, "CdtrAcct/Id/Othr/Id", account["account_number"])
        _path(transaction, "RmtInf/Ustrd", f"Entraide {statement.city} {statement.period} {line.merchant_id}"[:140])
    xml = ET.tostring(document, encoding="utf-8", xml_declaration=True)
    errors = list(pain001_schema().iter_errors(xml.decode()))
    if errors:
        raise ExportError(f"pain.001 does not validate: {errors[0].reason}")
    return xml


_SCHEMA: xmlschema.XMLSchema | None = None


def pain001_schema() -> xmlschema.XMLSchema:
    global _SCHEMA
    if _SCHEMA is None:
        path = resources.files("sepaxml") / "schemas" / "pain.001.001.09.xsd"
        _SCHEMA = xmlschema.XMLSchema(path.read_text(encoding="utf-8"))
    return _SCHEMA


# --- ERP journal entries -----------------------------------------------------------------------


def erp_journal(statement: Statement, date: dt.date) -> str:
    """Double-entry lines for the city's ERP: (account, debit, credit, date, reference); they balance."""
    entries: list[tuple[str, str, int]] = []  # (debit account, credit account, cents > 0)

    def post(debit: str, credit: str, cents: int) -> None:
        if cents > 0:
            entries.append((debit, credit, cents))
        elif cents < 0:
            entries.append((credit, debit, -cents))

    for line in statement.merchants:
        payable = f"2100-commercants-a-payer:{line.merchant_id}"
        receivable = f"1300-commercants-a-recevoir:{line.merchant_id}"
        post(GL["reimbursements"], payable, line.reimbursement_cents)
        post(receivable, GL["merchant_funding"], line.funding_cents)
        post(receivable, GL["fees"], line.fees_cents)
        post(GL["reimbursements"], payable, line.adjustments_cents)
    for position in statement.interop:
        if position.payer == statement.city:
            post(GL["interop_expense"], f"2200-villes-a-payer:{position.payee}", position.cents)
        else:
            post(f"1400-villes-a-recevoir:{position.payer}", GL["interop_revenue"], position.cents)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("account", "debit", "credit", "date", "reference"))
    for number, (debit, credit, cents) in enumerate(entries, start=1):
        reference = f"ENTRAIDE-{statement.city}-{statement.period}-{number:05d}"
        writer.writerow((debit, cents_text(cents), "", date.isoformat(), reference))
        writer.writerow((credit, "", cents_text(cents), date.isoformat(), reference))
    return out.getvalue()
