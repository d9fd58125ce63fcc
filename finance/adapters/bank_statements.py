"""The bank's ISO 20022 camt.053.001.08 statements: read safely, validated against the official schema, and
their imports and match results stored.

A statement is read only once it validates against `finance/schemas/camt.053.001.08.xsd` (the official
schema, see `finance/schemas/README.md`), with xmlschema's defused parser and no resource access: a DTD's
entities, external entities and external DTDs are refused before anything is expanded or fetched, and
the file is read from memory. Amounts become integer cents exactly (a fraction of a cent is an error).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from xml.etree import ElementTree as ET

import xmlschema
from sqlalchemy import Connection, insert, select

from finance.adapters.exports import BankFileError, decimal_cents, schema, validated
from finance.adapters.tables import BankStatementResultRow, BankStatementRow, CloseRow, CollectionRow
from ledger.adapters.database import first_row
from ledger.adapters.tables import Base

CAMT_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
MAX_STATEMENT_BYTES = 10_000_000  # a month of a city's treasury account, tens of thousands of entries
MAX_ENTRIES = 50_000
MAX_IMPORTS_LISTED = 200
MAX_DEBITS_EXPECTED = 100_000  # direct debits a statement may still settle
NOT_PROVIDED = "NOTPROVIDED"  # what banks write where the payer gave no end-to-end id
_NS = {"c": CAMT_NAMESPACE}

BS = Base.metadata.tables[BankStatementRow.__tablename__]
BR = Base.metadata.tables[BankStatementResultRow.__tablename__]
CL = Base.metadata.tables[CloseRow.__tablename__]
CO = Base.metadata.tables[CollectionRow.__tablename__]


@dataclass(frozen=True)
class BankEntry:
    """One booked movement (or one transaction of a batch entry) on the account, in signed cents."""

    cents: int  # credit > 0, debit < 0 (a reversal flips the sign)
    currency: str
    end_to_end_id: str | None
    booking_date: str | None
    entry_ref: str | None
    remittance: str | None


@dataclass(frozen=True)
class BankStatement:
    message_id: str
    accounts: tuple[str, ...]  # each Stmt's account (IBAN or Othr/Id)
    from_text: str | None  # the earliest Stmt/FrToDt/FrDtTm, as written
    to_text: str  # the latest Stmt/FrToDt/ToDtTm, or the message's creation time
    entries: tuple[BankEntry, ...]


def read_camt053(document: bytes) -> BankStatement:
    """The booked entries of a camt.053.001.08 statement, once it validates against the official schema."""
    resource = validated(document, camt053_schema(), MAX_STATEMENT_BYTES, "camt.053.001.08")
    root = resource.root
    header = root.find("c:BkToCstmrStmt/c:GrpHdr", _NS)
    assert header is not None  # the schema requires it
    statements = root.findall("c:BkToCstmrStmt/c:Stmt", _NS)
    entries: list[BankEntry] = []
    for statement in statements:
        for entry in statement.iterfind("c:Ntry", _NS):
            if entry.findtext("c:Sts/c:Cd", "", _NS) == "BOOK":
                entries += _entry(entry)
            if len(entries) > MAX_ENTRIES:
                raise BankFileError(f"more than {MAX_ENTRIES:,} entries")
    starts = sorted(t for s in statements if (t := s.findtext("c:FrToDt/c:FrDtTm", None, _NS)))
    ends = sorted(t for s in statements if (t := s.findtext("c:FrToDt/c:ToDtTm", None, _NS)))
    accounts = tuple(s.findtext("c:Acct/c:Id/c:IBAN", "", _NS) or s.findtext("c:Acct/c:Id/c:Othr/c:Id", "", _NS)
                     for s in statements)  # fmt: skip
    return BankStatement(header.findtext("c:MsgId", "", _NS).strip(), accounts, starts[0] if starts else None,
                         ends[-1] if ends else header.findtext("c:CreDtTm", "", _NS), tuple(entries))  # fmt: skip


def _entry(entry: ET.Element) -> list[BankEntry]:
    """One entry, or one per transaction of a batch whose transactions each carry their amount."""
    sign = -1 if entry.findtext("c:CdtDbtInd", "", _NS) == "DBIT" else 1
    if entry.findtext("c:RvslInd", "false", _NS) == "true":
        sign = -sign
    amount = entry.find("c:Amt", _NS)
    assert amount is not None  # the schema requires it
    booking = entry.findtext("c:BookgDt/c:Dt", None, _NS) or (entry.findtext("c:BookgDt/c:DtTm", "", _NS)[:10] or None)
    ref = entry.findtext("c:AcctSvcrRef", None, _NS) or entry.findtext("c:NtryRef", None, _NS)
    transactions = entry.findall("c:NtryDtls/c:TxDtls", _NS)
    whole = BankEntry(sign * decimal_cents(amount.text or ""), amount.get("Ccy", ""), None, booking, ref,
                      _text(entry.findtext("c:AddtlNtryInf", None, _NS)))  # fmt: skip
    if len(transactions) > 1 and any(t.find("c:Amt", _NS) is None for t in transactions):
        return [whole]  # a batch without the transactions' amounts cannot be split: it stays one entry
    found = []
    for transaction in transactions:
        own = transaction.find("c:Amt", _NS)
        own_sign = {"DBIT": -1, "CRDT": 1}.get(transaction.findtext("c:CdtDbtInd", "", _NS), sign)
        if entry.findtext("c:RvslInd", "false", _NS) == "true" and transaction.find("c:CdtDbtInd", _NS) is not None:
            own_sign = -own_sign
        e2e = transaction.findtext("c:Refs/c:EndToEndId", "", _NS).strip()
        found.append(BankEntry(
            whole.cents if own is None else own_sign * decimal_cents(own.text or ""),
            whole.currency if own is None else own.get("Ccy", ""),
            None if e2e in ("", NOT_PROVIDED) else e2e, booking, ref,
            _text(" ".join(u.text or "" for u in transaction.iterfind("c:RmtInf/c:Ustrd", _NS))) or whole.remittance,
        ))  # fmt: skip
    return found or [whole]


def _text(value: str | None) -> str | None:
    return " ".join(value.split())[:140] or None if value else None


def camt053_schema() -> xmlschema.XMLSchema:
    return schema("finance", "schemas", "camt.053.001.08.xsd")


def parse_time_us(text: str, default_tz: dt.tzinfo) -> int:
    """An ISODateTime (with or without its offset: then in the city's time zone) in µs since the epoch."""
    moment = dt.datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_tz)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


# --- stored imports and results ---------------------------------------------------------------------


def statement(conn: Connection, statement_id: str) -> dict | None:
    return first_row(conn, select(BS).where(BS.c.id == statement_id))


def statement_by_message(conn: Connection, city: str, message_id: str) -> dict | None:
    return first_row(conn, select(BS).where(BS.c.city == city, BS.c.message_id == message_id))


def statements(conn: Connection, city: str, limit: int = MAX_IMPORTS_LISTED) -> list[dict]:
    query = select(BS).where(BS.c.city == city).order_by(BS.c.imported_at_us.desc(), BS.c.id).limit(limit)
    return [r._asdict() for r in conn.execute(query)]


def add_statement(conn: Connection, results: list[dict], **values: object) -> None:
    conn.execute(insert(BS).values(**values))
    columns = [c.name for c in BR.columns if c.name not in ("statement_id", "line")]
    rows = [
        {c: r.get(c) for c in columns} | {"statement_id": values["id"], "line": n} for n, r in enumerate(results, 1)
    ]
    if rows:
        conn.execute(insert(BR), rows)


def results(conn: Connection, statement_id: str) -> list[dict]:
    query = select(BR).where(BR.c.statement_id == statement_id).order_by(BR.c.line)
    return [{k: v for k, v in r._asdict().items() if k not in ("statement_id", "line")} for r in conn.execute(query)]


def matched_references(conn: Connection, city: str) -> set[str]:
    """End-to-end ids an earlier import of the city already matched (they are no longer expected)."""
    query = (select(BR.c.end_to_end_id).join(BS, BS.c.id == BR.c.statement_id)
             .where(BS.c.city == city, BR.c.status.in_(("matched", "amount_differs")), BR.c.kind.is_not(None)))  # fmt: skip
    return set(conn.execute(query).scalars())


def direct_debits_requested(conn: Connection, city: str, until_us: int, limit: int) -> list[dict]:
    """The city's pain.008 direct debits requested before `until_us` (latest periods first, at most `limit`)."""
    query = (select(CO.c.period, CO.c.merchant_id, CO.c.amount_cents)
             .where(CO.c.city == city, CO.c.method == "direct_debit", CO.c.status == "requested",
                    CO.c.requested_at_us < until_us)
             .order_by(CO.c.period.desc(), CO.c.merchant_id).limit(limit))  # fmt: skip
    return [r._asdict() for r in conn.execute(query)]


def closes_before(conn: Connection, city: str, until_us: int, limit: int) -> list[dict]:
    """The city's periods closed before `until_us` (latest first, at most `limit`), with their stored statement."""
    query = (select(CL.c.period, CL.c.statement).where(CL.c.city == city, CL.c.closed_at_us < until_us)
             .order_by(CL.c.period.desc()).limit(limit))  # fmt: skip
    return [r._asdict() for r in conn.execute(query)]
