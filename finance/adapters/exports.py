"""Settlement files: statements (CSV, JSON), ISO 20022 pain.001 credit transfers, ERP journal entries.

Amounts are integer cents until here; `cents_text` formats them exactly (no floats) at this edge.
The pain.001 file is validated against the official ISO 20022 schema (pain.001.001.09, shipped by
the `sepaxml` package) before it is returned, and a bank file given back for reconciliation is read
only once it validates, with a parser that refuses DTD entities and external resources; the ERP
journal balances by construction and is checked.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import re
from dataclasses import dataclass
from importlib import resources
from xml.etree import ElementTree as ET

import msgspec
import xmlschema

from finance.domain.settlement import cents_text
from finance.schemas import MerchantPeriod, Statement

PAIN_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
CLEARING_SYSTEM = "CACPA"  # Payments Canada: member id 0 + institution (3) + transit (5)
STATEMENT_COLUMNS = ("merchant_id", "redeemed_points", "issued_points", "reimbursement_cents", "funding_cents",
                     "fees_cents", "adjustments_cents", "net_cents", "settled_by")  # fmt: skip
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
    return document_json(statement)


def document_json(document: msgspec.Struct) -> str:
    """A result as a downloadable JSON file: indented, keys sorted, UTF-8 as is."""
    return json.dumps(msgspec.to_builtins(document), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


# --- ISO 20022 pain.001 ------------------------------------------------------------------------


def xml_child(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """A child in the parent's namespace (pain.001 here, pain.008 in `collections`)."""
    element = ET.SubElement(parent, f"{parent.tag.partition('}')[0]}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def xml_path(parent: ET.Element, tags: str, text: str) -> None:
    for tag in tags.split("/")[:-1]:
        parent = xml_child(parent, tag)
    xml_child(parent, tags.split("/")[-1], text)


def xml_agent(parent: ET.Element, tag: str, institution: str, transit: str) -> None:
    member = xml_child(xml_child(xml_child(parent, tag), "FinInstnId"), "ClrSysMmbId")
    xml_path(member, "ClrSysId/Cd", CLEARING_SYSTEM)
    xml_child(member, "MmbId", f"0{institution}{transit}")


def xml_party_account(parent: ET.Element, role: str, name: str, account: dict) -> None:
    """`<role>/Nm` and `<role>Acct/Id/Othr/Id`: a party and its Canadian account number."""
    xml_path(parent, f"{role}/Nm", name[:140])
    xml_path(parent, f"{role}Acct/Id/Othr/Id", account["account_number"])


def pain001_message_id(statement: Statement) -> str:
    """The MsgId (and PmtInfId) of a city's file for a period: how a bank file given back is recognised."""
    return f"ENTRAIDE-{statement.city}-{statement.period}"[:35]


def end_to_end_id(period: str, merchant_id: str) -> str:
    """A credit transfer's EndToEndId: how the bank's statement (camt.053) names the payment again."""
    return f"{period}-{merchant_id}"[:35]


def pain001(statement: Statement, payer: dict, accounts: dict[str, dict], names: dict[str, str],
            created: dt.datetime, execution_date: dt.date) -> bytes:  # fmt: skip
    """One credit transfer per merchant with a positive net, from the city's account, in CAD."""
    payable = [line for line in statement.merchants if line.net_cents > 0]
    missing = sorted(line.merchant_id for line in payable if line.merchant_id not in accounts)
    if missing:
        raise ExportError(f"no bank account on file for {', '.join(missing)}")
    count, total = str(len(payable)), cents_text(sum(line.net_cents for line in payable))
    document, info = xml_payment_information(PAIN_NAMESPACE, "CstmrCdtTrfInitn", "TRF", pain001_message_id(statement),
                                          created, count, total, payer["name"])  # fmt: skip
    xml_path(info, "ReqdExctnDt/Dt", execution_date.isoformat())
    xml_party_account(info, "Dbtr", payer["name"], payer)
    xml_agent(info, "DbtrAgt", payer["institution"], payer["transit"])
    for line in payable:
        account = accounts[line.merchant_id]
        transaction = xml_child(info, "CdtTrfTxInf")
        xml_path(transaction, "PmtId/EndToEndId", end_to_end_id(statement.period, line.merchant_id))
        xml_child(xml_child(transaction, "Amt"), "InstdAmt", cents_text(line.net_cents), Ccy=statement.currency)
        xml_agent(transaction, "CdtrAgt", account["institution"], account["transit"])
        xml_party_account(transaction, "Cdtr", account["holder_name"] or names.get(line.merchant_id, line.merchant_id),
                       account)  # fmt: skip
        xml_path(transaction, "RmtInf/Ustrd", f"Entraide {statement.city} {statement.period} {line.merchant_id}"[:140])
    return validated_xml(document, pain001_schema(), "pain.001")


def xml_payment_information(namespace: str, initiation_tag: str, method: str, message_id: str, created: dt.datetime,
                         count: str, total: str, initiator: str) -> tuple[ET.Element, ET.Element]:  # fmt: skip
    """A payment initiation document (pain.001 or pain.008), its group header, and its one payment
    information block (`PmtInf`, with the file's message id) for the caller to fill."""
    ET.register_namespace("", namespace)
    document = ET.Element(f"{{{namespace}}}Document")
    initiation = xml_child(document, initiation_tag)
    header = xml_child(initiation, "GrpHdr")
    for tag, text in (("MsgId", message_id), ("CreDtTm", created.strftime("%Y-%m-%dT%H:%M:%S")), ("NbOfTxs", count),
                      ("CtrlSum", total)):  # fmt: skip
        xml_child(header, tag, text)
    xml_path(header, "InitgPty/Nm", initiator[:140])
    info = xml_child(initiation, "PmtInf")
    for tag, text in (("PmtInfId", message_id), ("PmtMtd", method), ("NbOfTxs", count), ("CtrlSum", total)):
        xml_child(info, tag, text)
    return document, info


def validated_xml(document: ET.Element, schema: xmlschema.XMLSchema, name: str) -> bytes:
    """The document's bytes, once it validates against its official schema."""
    xml = ET.tostring(document, encoding="utf-8", xml_declaration=True)
    error = next(schema.iter_errors(xml.decode()), None)
    if error is not None:
        raise ExportError(f"{name} does not validate: {error.reason}")
    return xml


MAX_BANK_FILE_BYTES = 5_000_000  # a pain.001 file of a few thousand merchants
_AMOUNT = re.compile(r"\+?(\d*)(?:\.(\d*))?")  # xs:decimal, which InstdAmt is (no sign: it is at least 0)


class BankFileError(ValueError):
    """A bank file that is not a pain.001.001.09 document one can read safely; says what is wrong."""


@dataclass(frozen=True)
class CreditTransfer:
    end_to_end_id: str
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class CreditTransfers:
    """What a pain.001 file asks the bank to pay."""

    message_id: str
    transfers: tuple[CreditTransfer, ...]


def validated(document: bytes, schema: xmlschema.XMLSchema, max_bytes: int, kind: str) -> xmlschema.XMLResource:
    """A bank file parsed from memory by xmlschema's defused parser with no resource access, once it is at
    most `max_bytes` and valid against `schema`; a BankFileError saying what is wrong otherwise."""
    if len(document) > max_bytes:
        raise BankFileError(f"the file is larger than {max_bytes:,} bytes")
    try:
        resource = xmlschema.XMLResource(io.BytesIO(document), defuse="always", allow="none")
        error = next(schema.iter_errors(resource), None)
    except xmlschema.XMLSchemaException as exc:
        raise BankFileError(_one_line(f"not readable as XML: {exc}")) from None
    if error is not None:
        raise BankFileError(_one_line(f"not a {kind} document: {error.reason}"))
    return resource


def read_pain001(document: bytes) -> CreditTransfers:
    """The credit transfers of a pain.001.001.09 file, once it validates against the official schema.

    The parser is xmlschema's defused one with no resource access: a DTD's entities (billion laughs),
    external entities and external DTDs are refused before anything is expanded or fetched, and the
    file is read from memory, never taken for a path or a URL. Any other document type fails the schema.
    """
    resource = validated(document, pain001_schema(), MAX_BANK_FILE_BYTES, "pain.001.001.09")
    ns = {"p": PAIN_NAMESPACE}
    root = resource.root
    transfers = tuple(
        CreditTransfer(transaction.findtext("p:PmtId/p:EndToEndId", "", ns).strip(),
                       decimal_cents(transaction.findtext("p:Amt/p:InstdAmt", "", ns)),
                       transaction.find("p:Amt/p:InstdAmt", ns).get("Ccy", ""))  # type: ignore[union-attr]
        for transaction in root.iterfind(".//p:CdtTrfTxInf", ns)
    )  # fmt: skip
    return CreditTransfers(root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", "", ns).strip(), transfers)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def decimal_cents(text: str) -> int:
    """An amount as integer cents, exactly; a fraction of a cent is an error, not a rounding."""
    match = _AMOUNT.fullmatch(text.strip())
    if match is None or not (match[1] or match[2]):
        raise BankFileError(f"an amount is not a decimal number: {text[:40]!r}")
    fraction = (match[2] or "").ljust(2, "0")
    if fraction[2:].strip("0"):
        raise BankFileError(f"an amount has a fraction of a cent: {text[:40]!r}")
    return int(match[1] or "0") * 100 + int(fraction[:2])


@functools.cache
def schema(package: str, *path: str) -> xmlschema.XMLSchema:
    """An XSD shipped in a package's files, compiled once per process."""
    file = resources.files(package)
    for part in path:
        file = file / part
    return xmlschema.XMLSchema(file.read_text(encoding="utf-8"))


def iso20022_schema(name: str) -> xmlschema.XMLSchema:
    """An official ISO 20022 schema shipped by `sepaxml` (`pain.001.001.09`, `pain.008.001.08`, …), loaded once."""
    return schema("sepaxml", "schemas", f"{name}.xsd")


def pain001_schema() -> xmlschema.XMLSchema:
    return iso20022_schema("pain.001.001.09")


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


MERCHANT_PERIOD_COLUMNS = ("city", "period", "merchant_id", "item", "points", "amount_cents")


def merchant_period_csv(view: MerchantPeriod) -> str:
    """A merchant's closed period: its lines (signed: positive, the program owes it), then its net,
    what the city pays and what it collects, in integer cents."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MERCHANT_PERIOD_COLUMNS)
    head = (view.city, view.period, view.merchant_id)
    for line in view.lines:
        writer.writerow((*head, line.item, "" if line.points is None else line.points, line.amount_cents))
    for item, amount_cents in (("net", view.net_cents), ("payable", view.payable_cents),
                               ("collectable", view.collectable_cents)):  # fmt: skip
        writer.writerow((*head, item, "", amount_cents))
    return out.getvalue()
