"""/v1/finance: a city's finance staff (closes, statements, exports, payouts), and Stripe Connect's webhook."""

from __future__ import annotations

from typing import Annotated

import msgspec
from anyio import to_thread
from litestar import Request, Response, Router, get, post, put
from litestar.di import Provide
from litestar.params import JSONBody

from api.http.auth import Principal, bearer_principal
from api.http.params import ChangeStatus, City, Ctx, Decision, Format, Id, Who
from api.http.schemas import MemberId, Struct
from finance.adapters.exports import MAX_BANK_FILE_BYTES


class AdjustmentBody(Struct):
    merchant_id: MemberId
    amount_cents: Annotated[int, msgspec.Meta(ge=-(10**11), le=10**11)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    ref_period: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class PayoutAccountBody(Struct):
    holder_name: Annotated[str, msgspec.Meta(min_length=1, max_length=140)]
    institution: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
    transit: Annotated[str, msgspec.Meta(pattern=r"^\d{5}$")]
    account_number: Annotated[str, msgspec.Meta(pattern=r"^\d{7,12}$")]
    stripe_account_id: Annotated[str, msgspec.Meta(pattern=r"^acct_[A-Za-z0-9]{1,60}$")] | None = None


def _finance(principal: Principal, city: str, *roles: str) -> Principal:
    principal.require(*(roles or ("finance",))).require_city(city)
    return principal


@post("/{city:str}/periods/{period:str}/close", sync_to_thread=True, status_code=200)
def close(city: City, period: Id, principal: Who, ctx: Ctx) -> dict:
    """Close a month: statements and settlement transfers written once; closing again returns them."""
    return ctx.settlement.close(city, period, _finance(principal, city).actor)


@get("/{city:str}/periods/{period:str}/statement", sync_to_thread=True)
def statement(city: City, period: Id, principal: Who, ctx: Ctx) -> dict:
    _finance(principal, city, "finance", "auditor")
    return ctx.settlement.closed(city, period)


@get("/{city:str}/periods/{period:str}/preview", sync_to_thread=True)
def preview(city: City, period: Id, principal: Who, ctx: Ctx) -> dict:
    """The statement as the ledger stands now, without closing anything."""
    _finance(principal, city)
    with ctx.engine.connect() as conn:
        return msgspec.to_builtins(ctx.settlement.compute(conn, city, period))


@get("/{city:str}/periods/{period:str}/export", sync_to_thread=True)
def export(city: City, period: Id, principal: Who, ctx: Ctx,
           format: Format = "csv") -> Response[bytes]:  # noqa: A002  (the query parameter's name)  # fmt: skip
    _finance(principal, city, "finance", "auditor")
    content, media_type, name = ctx.exports.render(city, period, format)
    return Response(content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@post("/{city:str}/adjustments", sync_to_thread=True, status_code=201)
def adjust(city: City, data: JSONBody[AdjustmentBody], principal: Who, ctx: Ctx) -> dict:
    """Correct a closed period: applied by the next close, referencing the original."""
    actor = _finance(principal, city).actor
    return {"id": ctx.settlement.adjust(city, data.merchant_id, data.amount_cents, data.reason, data.ref_period, actor)}


@put("/{city:str}/merchants/{merchant_id:str}/payout-account", sync_to_thread=True, status_code=202)
def payout_account(city: City, merchant_id: Id, data: JSONBody[PayoutAccountBody], principal: Who,
                   ctx: Ctx) -> dict:  # fmt: skip
    """Propose a merchant's payout account; it pays nothing until a second principal confirms it."""
    return ctx.payouts.propose_account(city, merchant_id, msgspec.structs.asdict(data), _finance(principal, city).actor)


@get("/{city:str}/payout-account-changes", sync_to_thread=True)
def payout_account_changes(city: City, principal: Who, ctx: Ctx, status: ChangeStatus = "pending") -> dict:
    _finance(principal, city, "finance", "admin", "auditor")
    return {"changes": ctx.payouts.account_changes(city, status)}


@post("/{city:str}/payout-account-changes/{change_id:str}/{decision:str}", sync_to_thread=True, status_code=200)
def decide_payout_account(city: City, change_id: Id, decision: Decision, principal: Who,
                          ctx: Ctx) -> dict:  # fmt: skip
    """Confirm (another finance officer, or a city administrator) or reject a proposed payout account."""
    return ctx.payouts.decide_account(city, change_id, decision, _finance(principal, city, "finance", "admin").actor)


@post("/{city:str}/periods/{period:str}/payouts", sync_to_thread=True, status_code=202)
def queue_payouts(city: City, period: Id, principal: Who, ctx: Ctx) -> dict:
    """Queue the closed period's payouts; the payout worker pays each exactly once."""
    return ctx.payouts.queue(city, period, _finance(principal, city).actor)


@get("/{city:str}/periods/{period:str}/payouts", sync_to_thread=True)
def list_payouts(city: City, period: Id, principal: Who, ctx: Ctx) -> dict:
    _finance(principal, city, "finance", "auditor")
    return {"payouts": ctx.payouts.list(city, period)}


@post("/{city:str}/periods/{period:str}/reconciliation", status_code=200, request_max_body_size=MAX_BANK_FILE_BYTES)
async def reconcile(city: City, period: Id, principal: Who, ctx: Ctx, request: Request) -> dict:
    """Statement vs payouts vs the bank file posted as the body (pain.001 XML; empty body: no bank file)."""
    _finance(principal, city, "finance", "auditor")
    body = await request.body()
    return await to_thread.run_sync(ctx.payouts.reconcile, city, period, body or None)


@get("/{city:str}/budget", sync_to_thread=True)
def budget(city: City, principal: Who, ctx: Ctx) -> dict:
    _finance(principal, city, "finance", "auditor", "staff")
    return ctx.reports.budget(city)


@get("/{city:str}/periods/{period:str}/redemptions", sync_to_thread=True)
def redemptions(city: City, period: Id, principal: Who, ctx: Ctx) -> dict:
    _finance(principal, city, "finance", "auditor", "staff")
    return ctx.reports.redemptions(city, period)


finance = Router("/v1/finance", route_handlers=[close, statement, preview, export, adjust, payout_account, payout_account_changes,
                                                decide_payout_account, queue_payouts,
                                                list_payouts, reconcile, budget, redemptions],
                 dependencies={"principal": Provide(bearer_principal)}, tags=["finance"])  # fmt: skip


@post("/v1/finance/stripe/webhook", status_code=200, tags=["finance"])
async def connect_webhook(request: Request, ctx: Ctx) -> dict:
    """Stripe Connect events (payout paid or failed), verified with Stripe's signature on the raw body."""
    payload = await request.body()
    return await to_thread.run_sync(ctx.payouts.webhook, payload, request.headers.get("stripe-signature"))


ROUTERS = [finance, connect_webhook]
