"""Money that flows back: collecting merchants whose closed period nets negative, and the positions
between cities.

The close records one collection per merchant with a negative net (`record_at_close`, in the close's
transaction), collected the way the city's `collection_method` said then: a pain.008 direct debit on
the merchant's confirmed payout account, or an invoice. Requesting them (the pain.008 file, issuing
the invoices) moves them `due → requested` once, audited; asking again returns the same documents and
writes nothing. The inter-city file is the closed statement's netted positions, one payment per pair.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, get_args
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import Connection, Engine

from community.adapters import store as community_store
from community.domain.errors import Conflict, NotFound
from community.domain.program import Program
from community.service_layer.programs import Programs
from finance.adapters import collections as adapter
from finance.adapters import store
from finance.adapters.exports import ExportError, document_json
from finance.domain.collections import COLLECTION_NOTICE_DAYS, INVOICE_TERMS_DAYS, collections_due, invoice_lines
from finance.schemas import (
    Collection,
    CollectionList,
    IntercitySettlement,
    Invoice,
    InvoiceList,
    Statement,
    StatementLine,
)
from finance.service_layer.exports import ExportUnavailable
from ledger.domain.errors import InvalidRequest
from ledger.service_layer.audit_trail import AuditTrail
from merchants.adapters.tables import MERCHANTS

if TYPE_CHECKING:  # the close calls `record_at_close`; the service reads closed statements back
    from finance.service_layer.settlement import Settlement

InvoiceFormat = Literal["json", "csv", "text"]
IntercityFormat = Literal["json", "csv"]
MEDIA = {"json": "application/json", "csv": "text/csv", "text": "text/plain", "pain008": "application/xml"}
EXTENSIONS = {"json": "json", "csv": "csv", "text": "txt", "pain008": "xml"}
MEDIA_TYPES = tuple(dict.fromkeys(MEDIA.values()))  # for the OpenAPI document
File = tuple[bytes, str, str]  # (content, media type, file name)


def record_at_close(conn: Connection, audit: AuditTrail, statement: Statement, actor: str, now_us: int) -> None:
    """In the close's transaction: one collection per merchant whose net is negative, audited."""
    owed = collections_due(statement)
    for line in owed:
        assert line.settled_by in ("invoice", "direct_debit")
        adapter.add_collection(conn, id=f"{statement.city}:{statement.period}:{line.merchant_id}", city=statement.city,
                               period=statement.period, merchant_id=line.merchant_id, amount_cents=-line.net_cents,
                               method=line.settled_by, status="due", created_at_us=now_us)  # fmt: skip
    if owed:
        audit.record(conn, actor=actor, action="collections.open", city=statement.city, target=statement.period,
                     before=None, after={"merchants": [line.merchant_id for line in owed],
                                         "total_cents": -sum(line.net_cents for line in owed)}, now_us=now_us)  # fmt: skip


class Collections:
    def __init__(self, engine: Engine, settlement: Settlement, programs: Programs, audit: AuditTrail,
                 clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.settlement, self.programs, self.audit, self.clock = engine, settlement, programs, audit, clock

    def owed(self, city: str, period: str) -> CollectionList:
        """A closed period's collections, by merchant (NotFound while the period is open)."""
        self.settlement.closed(city, period)
        with self.engine.connect() as conn:
            rows = [msgspec.convert(row, Collection) for row in adapter.collections(conn, city, period)]
        return CollectionList(city=city, period=period, total_cents=sum(c.amount_cents for c in rows), collections=rows)

    def direct_debits(self, city: str, period: str, actor: str) -> File:
        """The period's pain.008 file (validated); its collections become requested, once, audited."""
        self.settlement.closed(city, period)
        program = self.programs.get(city)
        if program.treasury is None:
            raise ExportUnavailable("the program has no treasury account to collect to", reason="no_treasury")
        creditor = msgspec.structs.asdict(program.treasury)
        now, zone = self.clock(), ZoneInfo(program.timezone)
        local = dt.datetime.fromtimestamp(now / 1_000_000, zone)
        with self.engine.begin() as conn:
            due = adapter.collections(conn, city, period, "direct_debit")
            merchants = [c["merchant_id"] for c in due]
            try:
                xml = adapter.pain008(city, period, program.currency, due, creditor, store.payout_accounts(conn, merchants),
                                      adapter.mandates(conn, merchants), local.replace(tzinfo=None),
                                      local.date() + dt.timedelta(days=COLLECTION_NOTICE_DAYS), zone)  # fmt: skip
            except ExportError as exc:
                raise ExportUnavailable(str(exc), reason="export_failed") from None
            self._requested(conn, city, period, due, "collections.direct_debit", actor, now)
        return xml, MEDIA["pain008"], f"entraide-{city}-{period}.pain008.xml"

    def issue_invoices(self, city: str, period: str, actor: str) -> InvoiceList:
        """Issue the period's invoices (collections by invoice): requested once, audited; again, the same."""
        self.settlement.closed(city, period)
        now = self.clock()
        with self.engine.begin() as conn:
            self._requested(conn, city, period, adapter.collections(conn, city, period, "invoice"), "collections.invoice",
                            actor, now)  # fmt: skip
        return self._invoices(city, period, None)

    def invoice(self, city: str, period: str, merchant_id: str, fmt: InvoiceFormat) -> File:
        """One issued invoice as a file: its lines as `json` or `csv`, or the printable `text`."""
        _check_format(fmt, get_args(InvoiceFormat))
        invoices = self._invoices(city, period, merchant_id).invoices
        if not invoices:
            raise NotFound(f"no invoice for {merchant_id!r} in {city} {period}")
        (invoice,) = invoices
        render = {"json": document_json, "csv": adapter.invoice_csv, "text": adapter.invoice_text}[fmt]
        return render(invoice).encode(), MEDIA[fmt], f"{invoice.number}.{EXTENSIONS[fmt]}"

    def intercity(self, city: str, period: str, counterparty: str | None = None) -> IntercitySettlement:
        """The closed period's positions between the city and the others (or one other): who pays whom, net."""
        closed = self.settlement.closed(city, period)
        positions = [p for p in closed.statement.interop if counterparty in (None, p.payer, p.payee)]
        receivable = sum(p.cents for p in positions if p.payee == city)
        payable = sum(p.cents for p in positions if p.payer == city)
        return IntercitySettlement(city=city, period=period, statement_sha256=closed.statement_sha256,
                                   positions=positions, receivable_cents=receivable, payable_cents=payable,
                                   balance_cents=receivable - payable)  # fmt: skip

    def intercity_file(self, city: str, period: str, fmt: IntercityFormat, counterparty: str | None = None) -> File:
        _check_format(fmt, get_args(IntercityFormat))
        settlement = self.intercity(city, period, counterparty)
        content = adapter.intercity_csv(settlement) if fmt == "csv" else document_json(settlement)
        pair = f"-{counterparty}" if counterparty else ""
        return content.encode(), MEDIA[fmt], f"entraide-{city}{pair}-{period}.intercity.{EXTENSIONS[fmt]}"

    # --- inside -------------------------------------------------------------------------------

    def _requested(self, conn: Connection, city: str, period: str, rows: list[dict[str, Any]], action: str, actor: str,
                   now: int) -> None:  # fmt: skip
        due = [row["id"] for row in rows if row["status"] == "due"]
        if adapter.mark_requested(conn, due, actor, now):
            self.audit.record(conn, actor=actor, action=action, city=city, target=period, before={"status": "due"},
                              after={"status": "requested", "collections": due}, now_us=now)  # fmt: skip

    def _invoices(self, city: str, period: str, merchant_id: str | None) -> InvoiceList:
        statement = self.settlement.closed_statement(city, period)
        program = self.programs.get(city)
        with self.engine.connect() as conn:
            rows = [r for r in adapter.collections(conn, city, period, "invoice")
                    if merchant_id in (None, r["merchant_id"])]  # fmt: skip
            names = {m["id"]: m["name"] for m in community_store.members(conn, MERCHANTS, city)}
        if any(row["status"] == "due" for row in rows):
            raise Conflict(f"the invoices of {period} are not issued yet", reason="not_issued", period=period)
        lines = {line.merchant_id: line for line in statement.merchants}
        return InvoiceList(invoices=[_invoice(program, row, lines[row["merchant_id"]], names) for row in rows])


def _invoice(program: Program, row: dict[str, Any], line: StatementLine, names: dict[str, str]) -> Invoice:
    issued = dt.datetime.fromtimestamp(row["requested_at_us"] / 1_000_000, ZoneInfo(program.timezone)).date()
    invoice = Invoice(number=f"INV-{row['city']}-{row['period']}-{row['merchant_id']}", city=row["city"],
                      period=row["period"], merchant_id=row["merchant_id"],
                      merchant_name=names.get(row["merchant_id"], row["merchant_id"]), currency=program.currency,
                      issued_on=issued.isoformat(),
                      due_on=(issued + dt.timedelta(days=INVOICE_TERMS_DAYS)).isoformat(),
                      pay_to=program.treasury.name if program.treasury else None, lines=invoice_lines(line),
                      total_cents=row["amount_cents"])  # fmt: skip
    assert sum(item.amount_cents for item in invoice.lines) == invoice.total_cents
    return invoice


def _check_format(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise InvalidRequest(f"format is one of {', '.join(allowed)}", field="format", reason="not_one_of",
                             allowed=", ".join(allowed))  # fmt: skip
