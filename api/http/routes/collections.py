"""/v1/finance/{city}/…: money that flows back — collections (pain.008 direct debits, invoices) and the
settlement file between cities. Finance staff act; auditors read."""

from __future__ import annotations

from litestar import Response, Router, get, post
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler

from api.http.auth import Principal, bearer_principal
from api.http.downloads import attachment
from api.http.params import City, Ctx, DocumentFormat, Id, InvoiceFormat, OptionalCity, Period, Who
from finance.schemas import CollectionList, InvoiceList
from finance.service_layer.collections import MEDIA_TYPES


def _finance(principal: Principal, city: str, *roles: str) -> Principal:
    principal.require(*(roles or ("finance",))).require_city(city)
    return principal


@get("/{city:str}/periods/{period:str}/collections", sync_to_thread=True, summary="List a period's collections",
     operation_id="finance_list_collections", problems=())  # fmt: skip
def list_collections(city: City, period: Period, principal: Who, ctx: Ctx) -> CollectionList:
    """What merchants whose closed period nets negative owe, how each is collected (the city's
    `collection_method` at the close) and whether it was requested (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    return ctx.collections.owed(city, period)


@post("/{city:str}/periods/{period:str}/collections/pain008", sync_to_thread=True, status_code=200,
      summary="Request a period's direct debits", operation_id="finance_collect_direct_debits",
      problems=("unknown_program", "export_unavailable"), media_types=("application/xml",))  # fmt: skip
def direct_debits(city: City, period: Period, principal: Who, ctx: Ctx) -> Response[bytes]:
    """The period's ISO 20022 pain.008 direct debits (XML, validated against its schema), from each
    merchant's confirmed payout account to the program's treasury; its collections become requested,
    audited. Again: the same debits, nothing more recorded (finance)."""
    return attachment(*ctx.collections.direct_debits(city, period, _finance(principal, city).actor))


@post("/{city:str}/periods/{period:str}/invoices", sync_to_thread=True, status_code=200,
      summary="Issue a period's invoices", operation_id="finance_issue_invoices", problems=("unknown_program",))  # fmt: skip
def issue_invoices(city: City, period: Period, principal: Who, ctx: Ctx) -> InvoiceList:
    """Issue the invoices of the period's collections by invoice, audited; again, the same invoices (finance)."""
    return ctx.collections.issue_invoices(city, period, _finance(principal, city).actor)


@get("/{city:str}/periods/{period:str}/invoices/{merchant_id:str}", sync_to_thread=True,
     summary="Download an invoice", operation_id="finance_get_invoice", problems=("unknown_program", "conflict"),
     media_types=MEDIA_TYPES)  # fmt: skip
def invoice(city: City, period: Period, merchant_id: Id, principal: Who, ctx: Ctx,
            format: InvoiceFormat = "text") -> Response[bytes]:  # fmt: skip
    """An issued invoice as an attachment: printable `text`, or its lines as `json` or `csv` (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    return attachment(*ctx.collections.invoice(city, period, merchant_id, format))


@get("/{city:str}/periods/{period:str}/intercity", sync_to_thread=True, summary="Get the settlement between cities",
     operation_id="finance_get_intercity_settlement", problems=(), media_types=("text/csv", "application/json"))  # fmt: skip
def intercity(city: City, period: Period, principal: Who, ctx: Ctx, format: DocumentFormat = "json",
              counterparty: OptionalCity = None) -> Response[bytes]:  # fmt: skip
    """The closed period's net position with each other city (or the one `counterparty`), one payment per
    pair, as `json` or `csv` (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    return attachment(*ctx.collections.intercity_file(city, period, format, counterparty))


collections = Router("/v1/finance", route_handlers=[list_collections, direct_debits, issue_invoices, invoice, intercity],
                     dependencies={"principal": Provide(bearer_principal)}, tags=["finance"])  # fmt: skip
ROUTERS: list[Router | HTTPRouteHandler] = [collections]
