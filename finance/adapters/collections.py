"""Money that flows back: the collections table, ISO 20022 pain.008 direct debits, invoice documents,
and the inter-city settlement file.

The pain.008.001.08 file (the same ISO 20022 generation as our pain.001.001.09, shipped by `sepaxml`)
is validated against the official schema before it is returned: the city's treasury is the creditor,
each merchant's confirmed payout account the debtor account, and the mandate (the merchant's
pre-authorized debit agreement) is the confirmation of that account by a second principal: its change
id is the mandate reference and the day it was confirmed the date of signature, so a new account
means a new mandate. Amounts are integer cents until `cents_text` formats them at this edge.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from sqlalchemy import Connection, select, update

from finance.adapters.exports import (
    ExportError,
    end_to_end_id,
    iso20022_schema,
    validated_xml,
    xml_agent,
    xml_child,
    xml_party_account,
    xml_path,
    xml_payment_information,
)
from finance.adapters.tables import CollectionRow, PayoutAccountChangeRow
from finance.domain.settlement import cents_text
from finance.schemas import IntercitySettlement, Invoice
from ledger.adapters.database import insert_once
from ledger.adapters.tables import Base

CO = Base.metadata.tables[CollectionRow.__tablename__]
PC = Base.metadata.tables[PayoutAccountChangeRow.__tablename__]
PAIN008 = "pain.008.001.08"
PAIN008_NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{PAIN008}"
INTERCITY_COLUMNS = ("city", "period", "payer", "payee", "points", "cents")

# --- the collections table ----------------------------------------------------------------------


def add_collection(conn: Connection, **values) -> bool:
    """Record a collection; False if it exists (its id names one merchant's period)."""
    return insert_once(conn, CO, **values)


def collections(conn: Connection, city: str, period: str, method: str | None = None) -> list[dict]:
    query = select(CO).where(CO.c.city == city, CO.c.period == period)
    if method is not None:
        query = query.where(CO.c.method == method)
    return [r._asdict() for r in conn.execute(query.order_by(CO.c.merchant_id))]


def mark_requested(conn: Connection, ids: list[str], actor: str, now_us: int) -> int:
    """Due → requested, for those still due; how many changed."""
    if not ids:
        return 0
    query = update(CO).where(CO.c.id.in_(ids), CO.c.status == "due")
    return conn.execute(query.values(status="requested", requested_at_us=now_us, requested_by=actor)).rowcount


def mandates(conn: Connection, merchant_ids: list[str]) -> dict[str, dict]:
    """Merchant → its latest confirmed payout account change (the mandate): id and decided_at_us."""
    if not merchant_ids:
        return {}
    query = select(PC.c.merchant_id, PC.c.id, PC.c.decided_at_us).where(
        PC.c.merchant_id.in_(merchant_ids), PC.c.status == "confirmed"
    )
    found: dict[str, dict] = {}
    for row in conn.execute(query.order_by(PC.c.decided_at_us)):
        found[row.merchant_id] = row._asdict()  # the latest confirmation wins: it replaced the account
    return found


# --- ISO 20022 pain.008 -------------------------------------------------------------------------


def pain008_message_id(city: str, period: str) -> str:
    """The MsgId (and PmtInfId) of a city's direct debits for a period; a bank statement names it back."""
    return f"ENTRAIDE-DD-{city}-{period}"[:35]


def pain008(city: str, period: str, currency: str, due: list[dict], creditor: dict, accounts: dict[str, dict],
            mandates_by_merchant: dict[str, dict], created: dt.datetime, collection_date: dt.date,
            timezone: dt.tzinfo) -> bytes:  # fmt: skip
    """One direct debit per collection, from the merchant's confirmed account to the city's treasury."""
    if not due:
        raise ExportError("no collection by direct debit in this period")
    missing = sorted(c["merchant_id"] for c in due if c["merchant_id"] not in accounts)
    missing += sorted(c["merchant_id"] for c in due if c["merchant_id"] not in mandates_by_merchant)
    if missing:
        raise ExportError(
            f"no confirmed payout account (the debit mandate) on file for {', '.join(sorted(set(missing)))}"
        )
    count, total = str(len(due)), cents_text(sum(c["amount_cents"] for c in due))
    document, info = xml_payment_information(PAIN008_NAMESPACE, "CstmrDrctDbtInitn", "DD", pain008_message_id(city, period),
                                          created, count, total, creditor["name"])  # fmt: skip
    xml_path(info, "PmtTpInf/SeqTp", "RCUR")  # the agreement covers every period's debit
    xml_child(info, "ReqdColltnDt", collection_date.isoformat())
    xml_party_account(info, "Cdtr", creditor["name"], creditor)
    xml_agent(info, "CdtrAgt", creditor["institution"], creditor["transit"])
    for collection in due:
        merchant = collection["merchant_id"]
        account, mandate = accounts[merchant], mandates_by_merchant[merchant]
        transaction = xml_child(info, "DrctDbtTxInf")
        xml_path(transaction, "PmtId/EndToEndId", end_to_end_id(period, merchant))
        xml_child(transaction, "InstdAmt", cents_text(collection["amount_cents"]), Ccy=currency)
        signed = dt.datetime.fromtimestamp(mandate["decided_at_us"] / 1_000_000, timezone).date()
        mandate_info = xml_child(xml_child(transaction, "DrctDbtTx"), "MndtRltdInf")
        xml_child(mandate_info, "MndtId", mandate["id"][:35])
        xml_child(mandate_info, "DtOfSgntr", signed.isoformat())
        xml_agent(transaction, "DbtrAgt", account["institution"], account["transit"])
        xml_party_account(transaction, "Dbtr", account["holder_name"] or merchant, account)
        xml_path(transaction, "RmtInf/Ustrd", f"Entraide {city} {period} {merchant}"[:140])
    return validated_xml(document, iso20022_schema(PAIN008), "pain.008")


# --- invoices -----------------------------------------------------------------------------------


def invoice_csv(invoice: Invoice) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("number", "city", "period", "merchant_id", "item", "points", "amount_cents", "currency"))
    for line in invoice.lines:
        writer.writerow((invoice.number, invoice.city, invoice.period, invoice.merchant_id, line.item,
                         "" if line.points is None else line.points, line.amount_cents, invoice.currency))  # fmt: skip
    writer.writerow((invoice.number, invoice.city, invoice.period, invoice.merchant_id, "total", "",
                     invoice.total_cents, invoice.currency))  # fmt: skip
    return out.getvalue()


ITEM_LABELS = {
    "funding": "Financement des points émis / Funding of points issued",
    "fees": "Frais de règlement / Settlement fee",
    "reimbursement": "Remboursement des points échangés / Reimbursement of points redeemed",
    "adjustments": "Ajustements / Adjustments",
}


def invoice_text(invoice: Invoice) -> str:
    """The printable invoice (a fixed-width page; the portal renders the PDF from the same struct)."""
    width = 78
    rows = [
        f"FACTURE / INVOICE {invoice.number}",
        f"{invoice.merchant_name} ({invoice.merchant_id})",
        f"Programme / Program: {invoice.city}   Période / Period: {invoice.period}",
        f"Émise le / Issued: {invoice.issued_on}   Échéance / Due: {invoice.due_on}",
        "-" * width,
    ]
    for line in invoice.lines:
        label = ITEM_LABELS[line.item] + (f" ({line.points:,} points)" if line.points is not None else "")
        amount = f"{cents_text(line.amount_cents)} {invoice.currency}"
        rows.append(f"{label[: width - len(amount) - 1]:<{width - len(amount)}}{amount}")
    total = f"{cents_text(invoice.total_cents)} {invoice.currency}"
    rows += ["-" * width, f"{'Total à payer / Total due':<{width - len(total)}}{total}"]
    if invoice.pay_to:
        rows.append(f"Payable à / Pay to: {invoice.pay_to}")
    return "\n".join(rows) + "\n"


# --- positions between cities -------------------------------------------------------------------


def intercity_csv(settlement: IntercitySettlement) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(INTERCITY_COLUMNS)
    for position in settlement.positions:
        writer.writerow((settlement.city, settlement.period, position.payer, position.payee, position.points,
                         position.cents))  # fmt: skip
    return out.getvalue()
