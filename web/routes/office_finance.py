"""The back office's finance pages (`/office/budget`, `/office/periods`, `/office/reconciliation`,
`/office/open-data`): finance officers act, auditors read, program staff see and fund the budget.
Each handler calls the service its API route calls (api/http/routes/finance.py, collections.py,
admin.py's budget funding) and refuses with `web.auth.require` what the role may not use, as the
API does; the files are the API's files, as downloads.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

import msgspec
from anyio import to_thread
from litestar import Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.params import (
    Ctx,
    DocumentFormat,
    DoneNotice,
    ExportFormat,
    Id,
    InvoiceFormat,
    OpenDataFormat,
    Period,
    idempotency_key,
)
from community.domain.errors import NotFound
from finance.adapters.bank_statements import MAX_STATEMENT_BYTES
from web import pages
from web.auth import Staff, office_city
from web.routes.office import render_office
from web.routes.public import Bar

FORM_OVERHEAD_BYTES = 16 * 1024  # the multipart envelope around the statement: boundaries, CSRF token
PERIODS_PATH = "/office/periods"


# --- the budget -----------------------------------------------------------------------------------


class FundingForm(msgspec.Struct, frozen=True):
    points: int = 0
    idempotency_key: str = ""  # one per form shown: sending the same form twice funds once


@get("/office/budget", sync_to_thread=True)
def budget(request: Request, ctx: Ctx, officer: Staff, done: DoneNotice = None) -> Template:
    """Funded, used and left, as a chart and a table (finance, auditors, staff); staff fund it."""
    report = ctx.reports.budget(office_city(officer, "budget"))
    funded = max(report.funded_points, 1)
    bars = [Bar(dimension=label, points=points, residents=None, length_permille=max(0, points) * 1000 // funded)
            for label, points in (("funded", report.funded_points), ("used", report.consumed_points),
                                  ("left", report.remaining_points))]  # fmt: skip
    return render_office(request, ctx, officer, "office/budget.html", report=report, bars=bars, done=done,
                   funding_key=secrets.token_urlsafe(16))  # fmt: skip


@post("/office/budget", sync_to_thread=True)
def fund_budget(
    ctx: Ctx, officer: Staff, data: Annotated[FundingForm, Body(media_type=RequestEncodingType.URL_ENCODED)]
) -> Redirect:
    """Allocate city funds to the program budget (staff, as `POST /v1/admin/programs/{city}/budget`), audited."""
    city = office_city(officer, "fund_budget")
    ctx.programs.fund_budget(city, data.points, idempotency_key(data.idempotency_key), officer.actor)
    return pages.see_other("/office/budget?done=funded")


# --- periods: preview, close, statement, files, collections, payouts ------------------------------


@get(PERIODS_PATH, sync_to_thread=True)
def periods(request: Request, ctx: Ctx, officer: Staff) -> Template:
    """The city's recent months: in progress, ended (to close) or closed (finance, auditors)."""
    listing = ctx.settlement.periods(office_city(officer, "periods"))
    return render_office(request, ctx, officer, "office/periods.html", listing=listing)


@get("/office/statement", sync_to_thread=True)
def this_month(ctx: Ctx, officer: Staff) -> Redirect:
    """The old address of this month's statement: now the month's page among the periods."""
    current = ctx.settlement.periods(office_city(officer, "periods"), 1).periods[0].period
    return pages.see_other(f"{PERIODS_PATH}/{current}")


@get(f"{PERIODS_PATH}/{{period:str}}", sync_to_thread=True)
def period_page(request: Request, ctx: Ctx, officer: Staff, period: Period, done: DoneNotice = None) -> Template:
    """A closed month: its stored statement, files, collections and payouts. An open one: the preview
    of its close (and, once it is over, the way to close it)."""
    city = office_city(officer, "periods")
    try:
        closed = ctx.settlement.closed(city, period)
    except NotFound:
        current = ctx.settlement.periods(city, 1).periods[0].period
        return render_office(request, ctx, officer, "office/periods_open.html", statement=ctx.settlement.preview(city, period),
                       ended=period < current, done=done)  # fmt: skip
    return render_office(request, ctx, officer, "office/periods_closed.html", closed=closed, statement=closed.statement,
                   collections=ctx.collections.owed(city, period), payouts=ctx.payouts.list(city, period).payouts,
                   timezone=ctx.programs.get(city).timezone, done=done)  # fmt: skip


@get(f"{PERIODS_PATH}/{{period:str}}/close", sync_to_thread=True)
def confirm_close(request: Request, ctx: Ctx, officer: Staff, period: Period) -> Template:
    """The confirmation step: what closing will settle, and the button that does it (finance)."""
    statement = ctx.settlement.preview(office_city(officer, "close_period"), period)
    return render_office(request, ctx, officer, "office/periods_close.html", statement=statement)


@post(f"{PERIODS_PATH}/{{period:str}}/close", sync_to_thread=True)
def close(ctx: Ctx, officer: Staff, period: Period) -> Redirect:
    """Close the month (finance, as `POST /v1/finance/{city}/periods/{period}/close`), audited."""
    ctx.settlement.close(office_city(officer, "close_period"), period, officer.actor)
    return pages.see_other(f"{PERIODS_PATH}/{period}?done=closed")


@get(f"{PERIODS_PATH}/{{period:str}}/export", sync_to_thread=True)
def export(ctx: Ctx, officer: Staff, period: Period, format: ExportFormat = "csv") -> Response[bytes]:
    """A closed month's file: csv, json, pain001 or erp (finance, auditors), as the API's."""
    return pages.download(*ctx.exports.render(office_city(officer, "exports"), period, format))


@get(f"{PERIODS_PATH}/{{period:str}}/intercity", sync_to_thread=True)
def intercity(ctx: Ctx, officer: Staff, period: Period, format: DocumentFormat = "csv") -> Response[bytes]:
    """The month's settlement file between cities (finance, auditors)."""
    return pages.download(*ctx.collections.intercity_file(office_city(officer, "exports"), period, format))


@post(f"{PERIODS_PATH}/{{period:str}}/direct-debits", sync_to_thread=True, status_code=200)
def direct_debits(ctx: Ctx, officer: Staff, period: Period) -> Response[bytes]:
    """The month's pain.008 direct debits, as a download; its collections become requested, audited (finance)."""
    return pages.download(*ctx.collections.direct_debits(office_city(officer, "collect"), period, officer.actor))


@post(f"{PERIODS_PATH}/{{period:str}}/invoices", sync_to_thread=True)
def issue_invoices(ctx: Ctx, officer: Staff, period: Period) -> Redirect:
    """Issue the month's invoices (collections by invoice), audited (finance)."""
    ctx.collections.issue_invoices(office_city(officer, "collect"), period, officer.actor)
    return pages.see_other(f"{PERIODS_PATH}/{period}?done=invoiced#collections")


@get(f"{PERIODS_PATH}/{{period:str}}/invoices/{{merchant_id:str}}", sync_to_thread=True)
def invoice(
    ctx: Ctx, officer: Staff, period: Period, merchant_id: Id, format: InvoiceFormat = "text"
) -> Response[bytes]:
    """An issued invoice as a download (finance, auditors)."""
    return pages.download(*ctx.collections.invoice(office_city(officer, "exports"), period, merchant_id, format))


@post(f"{PERIODS_PATH}/{{period:str}}/payouts", sync_to_thread=True)
def queue_payouts(ctx: Ctx, officer: Staff, period: Period) -> Redirect:
    """Queue a payout for every merchant the month owes (finance); the payout worker pays each once."""
    ctx.payouts.queue(office_city(officer, "payouts"), period, officer.actor)
    return pages.see_other(f"{PERIODS_PATH}/{period}?done=queued#payouts")


# --- the bank's statements ------------------------------------------------------------------------


@dataclass
class StatementUpload:
    statement: UploadFile


@get("/office/reconciliation", sync_to_thread=True)
def reconciliation(request: Request, ctx: Ctx, officer: Staff) -> Template:
    """The imported camt.053 statements and how they matched (finance, auditors); finance uploads one."""
    city = office_city(officer, "reconciliation")
    imports = ctx.bank_reconciliation.list(city)
    return render_office(request, ctx, officer, "office/reconciliation.html", imports=imports.statements, results=None,
                   max_bytes=MAX_STATEMENT_BYTES, timezone=ctx.programs.get(city).timezone)  # fmt: skip


@post("/office/reconciliation", request_max_body_size=MAX_STATEMENT_BYTES + FORM_OVERHEAD_BYTES)
async def import_statement(
    ctx: Ctx, officer: Staff, data: Annotated[StatementUpload, Body(media_type=RequestEncodingType.MULTI_PART)]
) -> Redirect:
    """Import the bank's statement (finance, as `POST /v1/finance/{city}/bank-statements`), audited."""
    city = office_city(officer, "import_bank_statement")
    document = await data.statement.read()
    imported = await to_thread.run_sync(ctx.bank_reconciliation.import_statement, city, document, officer.actor)
    return pages.see_other(f"/office/reconciliation/{imported.id}")


@get("/office/reconciliation/{statement_id:str}", sync_to_thread=True)
def statement_results(request: Request, ctx: Ctx, officer: Staff, statement_id: Id) -> Template:
    """One imported statement, line by line: matched, or the difference (finance, auditors)."""
    results = ctx.bank_reconciliation.results(office_city(officer, "reconciliation"), statement_id)
    return render_office(request, ctx, officer, "office/reconciliation.html", imports=[], results=results,
                   max_bytes=MAX_STATEMENT_BYTES)  # fmt: skip


@get("/office/reconciliation/{statement_id:str}/export", sync_to_thread=True)
def statement_export(ctx: Ctx, officer: Staff, statement_id: Id, format: OpenDataFormat = "csv") -> Response[bytes]:
    """An imported statement's lines as a download, csv or json (finance, auditors)."""
    return pages.download(*ctx.bank_reconciliation.export(office_city(officer, "reconciliation"), statement_id, format))


# --- open data ------------------------------------------------------------------------------------


@get("/office/open-data", sync_to_thread=True)
def open_data(request: Request, ctx: Ctx, officer: Staff) -> Template:
    """The closed months whose open data is published, with the public files' links."""
    published = ctx.reports.published_periods(office_city(officer, "open_data"))
    return render_office(request, ctx, officer, "office/open_data.html", published=published)


ROUTER = Router("/", route_handlers=[budget, fund_budget, periods, this_month, period_page, confirm_close, close, export,
                                     intercity, direct_debits, issue_invoices, invoice, queue_payouts, reconciliation,
                                     import_statement, statement_results, statement_export, open_data])  # fmt: skip
