"""The back office's money safeguards (`/office/payout-accounts`, `/office/adjustments`,
`/office/disputes`): where merchants are paid, changed only by two principals; corrections of a
closed month, applied by the next close; card disputes as Stripe reports them. Each handler calls
the service its API route calls (api/http/routes/finance.py) and refuses with `web.auth.require`
what the role may not use, as the API does.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import msgspec
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.params import PERIOD_PATTERN, ChangeStatus, Ctx, Decision, DoneNotice, Id, idempotency_key
from ledger.domain.errors import InvalidRequest
from web import i18n, pages
from web.auth import Staff, office_city
from web.routes.office import render_office

ACCOUNTS_PATH = "/office/payout-accounts"
ADJUSTMENTS_PATH = "/office/adjustments"
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


# --- payout accounts: proposed by one, confirmed by another -------------------------------------------


class AccountForm(msgspec.Struct, frozen=True):
    merchant_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    holder_name: Annotated[str, msgspec.Meta(min_length=1, max_length=140)]
    institution: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
    transit: Annotated[str, msgspec.Meta(pattern=r"^\d{5}$")]
    account_number: Annotated[str, msgspec.Meta(pattern=r"^\d{7,12}$")]
    idempotency_key: str = ""  # one per form shown: sending it twice proposes once


@get(ACCOUNTS_PATH, sync_to_thread=True)
def accounts(request: Request, ctx: Ctx, officer: Staff, status: ChangeStatus = "pending",
             done: DoneNotice = None) -> Template:  # fmt: skip
    """The city's payout account changes in a status, account numbers masked (finance, admins,
    auditors); finance proposes one, and another finance officer or an admin confirms it."""
    city = office_city(officer, "payout_accounts")
    merchants = ctx.merchants.list(city) if status == "pending" else []
    return render_office(request, ctx, officer, "office/payout_accounts.html", status=status, done=done,
                         changes=ctx.payouts.account_changes(city, status).changes, merchants=merchants,
                         timezone=ctx.programs.get(city).timezone, form_key=secrets.token_urlsafe(16))  # fmt: skip


@post(ACCOUNTS_PATH, sync_to_thread=True)
def propose_account(ctx: Ctx, officer: Staff, data: Annotated[AccountForm, Form]) -> Redirect:
    """Propose where a merchant is paid (finance, as `PUT /v1/finance/{city}/merchants/{id}/payout-account`)."""
    account = {"holder_name": data.holder_name, "institution": data.institution, "transit": data.transit,
               "account_number": data.account_number}  # fmt: skip
    ctx.payouts.propose_account(office_city(officer, "propose_payout_account"), data.merchant_id, account, officer.actor,
                                key=idempotency_key(data.idempotency_key))  # fmt: skip
    return pages.see_other(f"{ACCOUNTS_PATH}?done=proposed")


@post(f"{ACCOUNTS_PATH}/{{change_id:str}}/{{decision:str}}", sync_to_thread=True)
def decide_account(ctx: Ctx, officer: Staff, change_id: Id, decision: Decision) -> Redirect:
    """Confirm (not the proposer) or reject a proposed account (finance, admins); audited."""
    ctx.payouts.decide_account(office_city(officer, "decide_payout_account"), change_id, decision, officer.actor)
    return pages.see_other(f"{ACCOUNTS_PATH}?done={'confirmed' if decision == 'confirm' else 'rejected'}")


# --- adjustments of a closed month ----------------------------------------------------------------


class AdjustmentForm(msgspec.Struct, frozen=True):
    merchant_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    amount: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]  # dollars as the page's language writes them
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    ref_period: Annotated[str, msgspec.Meta(pattern=PERIOD_PATTERN)]
    direction: Annotated[str, msgspec.Meta(pattern=r"^(credit|debit)$")] = "credit"
    idempotency_key: str = ""


@get(ADJUSTMENTS_PATH, sync_to_thread=True)
def adjustments(request: Request, ctx: Ctx, officer: Staff, done: DoneNotice = None) -> Template:
    """The form that corrects a merchant's closed month (finance): the next close applies it."""
    city = office_city(officer, "adjust")
    closed = [p.period for p in ctx.settlement.periods(city).periods if p.status == "closed"]
    return render_office(request, ctx, officer, "office/adjustments.html", merchants=ctx.merchants.list(city),
                         closed=closed, done=done, form_key=secrets.token_urlsafe(16))  # fmt: skip


@post(ADJUSTMENTS_PATH, sync_to_thread=True)
def adjust(request: Request, ctx: Ctx, officer: Staff, data: Annotated[AdjustmentForm, Form]) -> Redirect:
    """Record the correction (finance, as `POST /v1/finance/{city}/adjustments`), audited."""
    cents = i18n.parse_cents(pages.locale(request), data.amount)
    if not cents:
        raise InvalidRequest("amount: dollars and cents, more than zero", field="amount", reason="invalid_value")
    signed = cents if data.direction == "credit" else -cents
    ctx.settlement.adjust(office_city(officer, "adjust"), data.merchant_id, signed, data.reason, data.ref_period,
                          officer.actor, key=idempotency_key(data.idempotency_key))  # fmt: skip
    return pages.see_other(f"{ADJUSTMENTS_PATH}?done=adjusted")


# --- card disputes --------------------------------------------------------------------------------


@get("/office/disputes", sync_to_thread=True)
def disputes(request: Request, ctx: Ctx, officer: Staff) -> Template:
    """Card payment disputes, newest first, with their redemption and merchant (finance, auditors)."""
    city = office_city(officer, "disputes")
    return render_office(request, ctx, officer, "office/disputes.html", disputes=ctx.payment_events.disputes(city, 100),
                         timezone=ctx.programs.get(city).timezone)  # fmt: skip


ROUTER = Router("/", route_handlers=[accounts, propose_account, decide_account, adjustments, adjust, disputes])
