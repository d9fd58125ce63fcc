"""/v1/finance: a city's finance staff (closes, statements, exports, payouts), and Stripe Connect's webhook."""

from __future__ import annotations

from typing import Annotated

import msgspec
from anyio import to_thread
from litestar import Request, Response, Router, get, post, put
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

from api.http.auth import Principal, bearer_principal
from api.http.downloads import attachment
from api.http.params import (
    ChangeStatus,
    City,
    Ctx,
    Decision,
    ExportFormat,
    Id,
    IdempotencyKey,
    OpenDataFormat,
    PageLimit,
    Period,
    Who,
    idempotency_key,
)
from api.http.schemas import MemberId, Struct
from finance.adapters.bank_statements import MAX_STATEMENT_BYTES
from finance.adapters.exports import MAX_BANK_FILE_BYTES
from finance.schemas import (
    PERIOD_PATTERN,
    Adjustment,
    BankStatementImport,
    BankStatementImports,
    BankStatementResults,
    BudgetReport,
    PayoutAccountChange,
    PayoutAccountChanges,
    PayoutList,
    PayoutsQueued,
    PayoutWebhookAck,
    PeriodClose,
    Reconciliation,
    RedemptionsReport,
    Statement,
)
from finance.service_layer.exports import MEDIA_TYPES
from marketplace.schemas import DisputeList


class AdjustmentBody(Struct, frozen=True):
    merchant_id: MemberId
    amount_cents: Annotated[int, msgspec.Meta(ge=-(10**11), le=10**11)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    ref_period: Annotated[str, msgspec.Meta(pattern=PERIOD_PATTERN)]


class PayoutAccountBody(Struct, frozen=True):
    holder_name: Annotated[str, msgspec.Meta(min_length=1, max_length=140)]
    institution: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
    transit: Annotated[str, msgspec.Meta(pattern=r"^\d{5}$")]
    account_number: Annotated[str, msgspec.Meta(pattern=r"^\d{7,12}$")]
    stripe_account_id: Annotated[str, msgspec.Meta(pattern=r"^acct_[A-Za-z0-9]{1,60}$")] | None = None


def _finance(principal: Principal, city: str, *roles: str) -> Principal:
    principal.require(*(roles or ("finance",))).require_city(city)
    return principal


@post("/{city:str}/periods/{period:str}/close", sync_to_thread=True, status_code=200, summary="Close a period",
      operation_id="finance_close_period", problems=("unknown_program", "period_open"))  # fmt: skip
def close(city: City, period: Period, principal: Who, ctx: Ctx) -> PeriodClose:
    """Close a month (finance): compute each merchant's statement and write the settlement transfers into
    the ledger, once, in one transaction. Closing again returns the stored statement and writes nothing.
    A month that is not over yet cannot be closed."""
    return ctx.settlement.close(city, period, _finance(principal, city).actor)


@get("/{city:str}/periods/{period:str}/statement", sync_to_thread=True, summary="Get a closed period's statement",
     operation_id="finance_get_statement", problems=())  # fmt: skip
def statement(city: City, period: Period, principal: Who, ctx: Ctx) -> PeriodClose:
    """The statement stored when the period closed, with its hash (finance, auditors); 404 while it is open."""
    _finance(principal, city, "finance", "auditor")
    return ctx.settlement.closed(city, period)


@get("/{city:str}/periods/{period:str}/preview", sync_to_thread=True, summary="Preview a period's statement",
     operation_id="finance_preview_statement", problems=("unknown_program",))  # fmt: skip
def preview(city: City, period: Period, principal: Who, ctx: Ctx) -> Statement:
    """The statement as the ledger stands now (finance), without closing or writing anything."""
    _finance(principal, city)
    return ctx.settlement.preview(city, period)


@get("/{city:str}/periods/{period:str}/export", sync_to_thread=True, summary="Export a closed period",
     operation_id="finance_export_period", problems=("unknown_program", "export_unavailable"),
     media_types=MEDIA_TYPES)  # fmt: skip
def export(city: City, period: Period, principal: Who, ctx: Ctx, format: ExportFormat = "csv") -> Response[bytes]:
    """A closed period's file, as an attachment (finance, auditors): the statement as `csv` or `json`,
    the ISO 20022 credit transfers as `pain001` (XML, validated against its schema; needs the program's
    treasury account and every payable merchant's bank account), or the ERP journal as `erp` (CSV)."""
    _finance(principal, city, "finance", "auditor")
    return attachment(*ctx.exports.render(city, period, format))


@post("/{city:str}/adjustments", sync_to_thread=True, status_code=201, summary="Adjust a closed period",
      operation_id="finance_create_adjustment", problems=("invalid_request", "conflict"))  # fmt: skip
def adjust(city: City, data: JSONBody[AdjustmentBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> Adjustment:
    """Record a correction of a merchant's closed period (finance); the next close applies it, referencing
    the original (a closed period never changes). A retry with the same Idempotency-Key records nothing."""
    actor = _finance(principal, city).actor
    return ctx.settlement.adjust(city, data.merchant_id, data.amount_cents, data.reason, data.ref_period, actor,
                                 key=idempotency_key(key))  # fmt: skip


@put("/{city:str}/merchants/{merchant_id:str}/payout-account", sync_to_thread=True, status_code=202,
     summary="Propose a payout account", operation_id="finance_propose_payout_account", problems=("invalid_request",))  # fmt: skip
def payout_account(city: City, merchant_id: Id, data: JSONBody[PayoutAccountBody], principal: Who, ctx: Ctx,
                   key: IdempotencyKey) -> PayoutAccountChange:  # fmt: skip
    """Propose a merchant's payout account (finance); it pays nothing until a second principal confirms it,
    and it supersedes the merchant's pending proposal. A retry with the same Idempotency-Key proposes nothing."""
    actor = _finance(principal, city).actor
    return ctx.payouts.propose_account(city, merchant_id, msgspec.structs.asdict(data), actor, key=idempotency_key(key))


@get("/{city:str}/payout-account-changes", sync_to_thread=True, summary="List payout account changes",
     operation_id="finance_list_payout_account_changes", problems=())  # fmt: skip
def payout_account_changes(
    city: City, principal: Who, ctx: Ctx, status: ChangeStatus = "pending"
) -> PayoutAccountChanges:
    """The city's payout account changes in a status, newest first, account numbers masked (finance,
    administrators, auditors)."""
    _finance(principal, city, "finance", "admin", "auditor")
    return ctx.payouts.account_changes(city, status)


@post("/{city:str}/payout-account-changes/{change_id:str}/{decision:str}", sync_to_thread=True, status_code=200,
      summary="Confirm or reject a payout account change", operation_id="finance_decide_payout_account",
      problems=("unknown_change", "change_not_pending", "second_principal_required"))  # fmt: skip
def decide_payout_account(city: City, change_id: Id, decision: Decision, principal: Who,
                          ctx: Ctx) -> PayoutAccountChange:  # fmt: skip
    """Confirm (a finance officer other than the proposer, or a city administrator) or reject a proposed
    payout account; a confirmed one replaces the merchant's account at once."""
    return ctx.payouts.decide_account(city, change_id, decision, _finance(principal, city, "finance", "admin").actor)


@post("/{city:str}/periods/{period:str}/payouts", sync_to_thread=True, status_code=202, summary="Queue a period's payouts",
      operation_id="finance_queue_payouts", problems=())  # fmt: skip
def queue_payouts(city: City, period: Period, principal: Who, ctx: Ctx) -> PayoutsQueued:
    """Queue a payout for every merchant the closed period owes (finance); the payout worker pays each
    exactly once, and queuing again adds nothing."""
    return ctx.payouts.queue(city, period, _finance(principal, city).actor)


@get("/{city:str}/periods/{period:str}/payouts", sync_to_thread=True, summary="List a period's payouts",
     operation_id="finance_list_payouts", problems=())  # fmt: skip
def list_payouts(city: City, period: Period, principal: Who, ctx: Ctx) -> PayoutList:
    """A period's payouts and their state, by merchant (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    return ctx.payouts.list(city, period)


@post("/{city:str}/periods/{period:str}/reconciliation", status_code=200, request_max_body_size=MAX_BANK_FILE_BYTES,
      summary="Reconcile a period", operation_id="finance_reconcile_period", problems=("invalid_bank_file",),
      request_media_types=("application/xml",))  # fmt: skip
async def reconcile(city: City, period: Period, principal: Who, ctx: Ctx, request: Request) -> Reconciliation:
    """Match a closed period's statement against its payouts and the bank file posted as the body (the
    period's pain.001 XML; an empty body: no bank file), merchant by merchant (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    body = await request.body()
    return await to_thread.run_sync(ctx.payouts.reconcile, city, period, body or None)


@post("/{city:str}/bank-statements", status_code=200, request_max_body_size=MAX_STATEMENT_BYTES,
      summary="Import a bank statement", operation_id="finance_import_bank_statement",
      problems=("invalid_bank_statement", "conflict", "unknown_program"), request_media_types=("application/xml",))  # fmt: skip
async def import_bank_statement(city: City, principal: Who, ctx: Ctx, request: Request) -> BankStatementImport:
    """Import the bank's ISO 20022 camt.053.001.08 statement of the city's treasury account, posted as the
    body (finance): validated against the official schema, each booked entry matched by end-to-end id to a
    payout or a collection, the results stored. The same statement again (same message id and content)
    changes nothing and answers `replayed`; the same message id with other content is a conflict."""
    actor = _finance(principal, city).actor
    body = await request.body()
    return await to_thread.run_sync(ctx.bank_reconciliation.import_statement, city, body, actor)


@get("/{city:str}/bank-statements", sync_to_thread=True, summary="List imported bank statements",
     operation_id="finance_list_bank_statements", problems=())  # fmt: skip
def bank_statements(city: City, principal: Who, ctx: Ctx) -> BankStatementImports:
    """The city's imported bank statements, latest first, with how many entries matched (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    return ctx.bank_reconciliation.list(city)


@get("/{city:str}/bank-statements/{statement_id:str}", sync_to_thread=True, summary="Get a bank statement's results",
     operation_id="finance_get_bank_statement_results", problems=())  # fmt: skip
def bank_statement_results(city: City, statement_id: Id, principal: Who, ctx: Ctx) -> BankStatementResults:
    """An imported statement and every reconciliation line: matched, amount_differs, unknown_entry,
    missing_from_bank (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    return ctx.bank_reconciliation.results(city, statement_id)


@get("/{city:str}/bank-statements/{statement_id:str}/export", sync_to_thread=True,
     summary="Export a bank statement's results", operation_id="finance_export_bank_statement_results", problems=(),
     media_types=("text/csv", "application/json"))  # fmt: skip
def export_bank_statement_results(city: City, statement_id: Id, principal: Who, ctx: Ctx,
                                  format: OpenDataFormat = "csv") -> Response[bytes]:  # fmt: skip
    """An imported statement's reconciliation lines as an attachment, `csv` (one row a line, signed cents)
    or `json` (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    return attachment(*ctx.bank_reconciliation.export(city, statement_id, format))


@get("/{city:str}/budget", sync_to_thread=True, summary="Get the program's budget", operation_id="finance_get_budget",
     problems=("unknown_program",))  # fmt: skip
def budget(city: City, principal: Who, ctx: Ctx) -> BudgetReport:
    """Budget funded, consumed and remaining, points outstanding in wallets, reserved and expired
    (finance, auditors, program staff)."""
    _finance(principal, city, "finance", "auditor", "staff")
    return ctx.reports.budget(city)


@get("/{city:str}/periods/{period:str}/redemptions", sync_to_thread=True, summary="Get a period's redemptions",
     operation_id="finance_get_redemptions_report", problems=("unknown_program",))  # fmt: skip
def redemptions(city: City, period: Period, principal: Who, ctx: Ctx) -> RedemptionsReport:
    """Points redeemed in the period, net of refunds, by merchant and by category (finance, auditors,
    program staff)."""
    _finance(principal, city, "finance", "auditor", "staff")
    return ctx.reports.redemptions(city, period)


@get("/{city:str}/disputes", sync_to_thread=True, summary="List card payment disputes",
     operation_id="finance_list_disputes", problems=())  # fmt: skip
def disputes(city: City, principal: Who, ctx: Ctx, limit: PageLimit = 100) -> DisputeList:
    """The city's card payment disputes (chargebacks) as Stripe last reported them, newest first, each
    with its redemption and merchant (finance, auditors)."""
    _finance(principal, city, "finance", "auditor")
    return ctx.payment_events.disputes(city, limit)


finance = Router("/v1/finance", route_handlers=[close, statement, preview, export, adjust, payout_account, payout_account_changes,
                                                decide_payout_account, queue_payouts, disputes,
                                                list_payouts, reconcile, import_bank_statement, bank_statements,
                                                bank_statement_results, export_bank_statement_results, budget, redemptions],
                 dependencies={"principal": Provide(bearer_principal)}, tags=["finance"])  # fmt: skip


@post("/v1/finance/stripe/webhook", status_code=200, tags=["finance"], summary="Receive a Stripe Connect event",
      operation_id="finance_stripe_connect_webhook", problems=("invalid_webhook", "payments_disabled"))  # fmt: skip
async def connect_webhook(request: Request, ctx: Ctx) -> PayoutWebhookAck:
    """Stripe Connect's events (payout paid or failed, a connected account updated), verified with
    Stripe's signature on the raw body; each applied once, anything else acknowledged. Called by Stripe only."""
    payload = await request.body()
    return await to_thread.run_sync(ctx.payouts.webhook, payload, request.headers.get("stripe-signature"))


ROUTERS: list[Router | HTTPRouteHandler] = [finance, connect_webhook]
