"""`/office/merchants` and `/office/organizations`: the city's members, enrolled pending, then
approved, suspended or reinstated by its staff; auditors read them (`web.auth.OFFICE_ACTIONS`).

Each handler calls the service its API route calls (`api/http/routes/admin.py`): `Terminals.merchants`
(`GET /v1/admin/merchants/{city}`), `Members.add` (`POST /v1/admin/merchants/{city}`, `…/organizations/{city}`,
the form checked as the API checks its body: `schemas.MerchantBody`, `MemberBody`), `Members.set_status`
(`POST …/{id}/status`), `Members.listing`; a merchant's page adds this month's entries and totals,
`PointOfSale.statement`, what its own terminals read (`GET /v1/pos/statement`).
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated

import msgspec
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http import schemas
from api.http.params import Ctx, DoneNotice, Id
from api.problems import error_params, problem_document
from community.domain.program import CATEGORIES
from community.schemas import Member
from community.service_layer.organizations import Members
from finance.domain.settlement import period_bounds_us
from ledger.domain.errors import InvalidRequest, LedgerError
from web import pages
from web.auth import Staff, may, require
from web.routes.office import _render as render_office  # the office's one renderer (navigation, city)

MERCHANTS_PATH = "/office/merchants"
ORGANIZATIONS_PATH = "/office/organizations"
RECENT_ENTRIES = 20  # a merchant's page shows this month's latest entries
# A member's next status, by the button that sets it.
NEXT_STATUS = {"pending": ("approved",), "approved": ("suspended",), "suspended": ("approved",)}
ENROL_REFUSALS = ("conflict", "invalid_request", "validation_error")  # said next to the form; others are a page
_FIELD = re.compile(r"`\$\.([a-z_]+)`")

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class EnrolForm(msgspec.Struct, frozen=True):
    """The enrol form as typed; `idempotency_key` makes a double submit enrol once."""

    id: str = ""
    name: str = ""
    category: str = ""
    idempotency_key: str = ""


class StatusForm(msgspec.Struct, frozen=True):
    status: str = ""


def _city(officer: Staff, action: str) -> str:
    city = require(officer, action).city
    assert city is not None
    return city


def _enrol_error(request: Request, exc: LedgerError | msgspec.ValidationError) -> dict[str, str]:
    """What was wrong with the enrol form, by field (`id`, `name`, `category`)."""
    lang = pages.locale(request)
    if isinstance(exc, msgspec.ValidationError):
        found = _FIELD.search(str(exc))
        field = found[1] if found else "id"
        exc = InvalidRequest(str(exc), field=field, reason="invalid_value")
    field = str(exc.context.get("field", "id"))
    return {field if field in ("id", "name", "category") else "id": str(
        problem_document(exc.code, lang, error_params(exc))["detail"])}  # fmt: skip


def _enrol(ctx: Ctx, officer: Staff, members: Members, data: EnrolForm, body: type[msgspec.Struct]) -> Member:
    """The form checked as the API checks its body, then the API's own service call."""
    city = _city(officer, f"{members.kind}s.edit")
    fields = {"id": data.id.strip(), "name": data.name.strip(), "category": data.category}
    checked = msgspec.convert({k: v for k, v in fields.items() if k in body.__struct_fields__}, body)
    extra = {"category": checked.category} if isinstance(checked, schemas.MerchantBody) else {}
    key = data.idempotency_key or secrets.token_urlsafe(16)
    return members.add(city, checked.id, checked.name, officer.actor, key=key[:128], **extra)  # type: ignore[attr-defined]


# --- merchants ------------------------------------------------------------------------------------


def _merchants_page(request: Request, ctx: Ctx, officer: Staff, *, status_code: int = 200, form: EnrolForm | None = None,
                    errors: dict[str, str] | None = None, done: str | None = None) -> Template:  # fmt: skip
    city = _city(officer, "merchants")
    return render_office(request, ctx, officer, "office/merchants.html", status_code=status_code,
                         merchants=ctx.terminals.merchants(city).merchants, categories=CATEGORIES, done=done,
                         form=form or EnrolForm(idempotency_key=secrets.token_urlsafe(16)), errors=errors or {},
                         editable=may(officer, "merchants.edit"), next_status=NEXT_STATUS)  # fmt: skip


@get(MERCHANTS_PATH, sync_to_thread=True)
def merchants_page(request: Request, ctx: Ctx, officer: Staff, done: DoneNotice = None) -> Template:
    """The city's merchants (status, category, terminals), and the form that enrols one."""
    return _merchants_page(request, ctx, officer, done=done)


@post(MERCHANTS_PATH, sync_to_thread=True)
def merchant_enrol(request: Request, ctx: Ctx, officer: Staff,
                   data: Annotated[EnrolForm, Form]) -> Template | Redirect:  # fmt: skip
    """Enrol a merchant, pending until approved; a refusal is said next to its field (the list again)."""
    try:
        member = _enrol(ctx, officer, ctx.merchants, data, schemas.MerchantBody)
    except (LedgerError, msgspec.ValidationError) as exc:
        if isinstance(exc, LedgerError) and exc.code not in ENROL_REFUSALS:
            raise
        return _merchants_page(request, ctx, officer, status_code=422, form=data, errors=_enrol_error(request, exc))
    return pages.see_other(f"{MERCHANTS_PATH}/{member.id}?done=added")


@get(f"{MERCHANTS_PATH}/{{merchant_id:str}}", sync_to_thread=True)
def merchant_page(request: Request, ctx: Ctx, officer: Staff, merchant_id: Id, done: DoneNotice = None) -> Template:
    """One merchant: its status and what changes it, its terminals, this month's entries and totals."""
    city = _city(officer, "merchants")
    merchant = Member(**ctx.merchants.get(merchant_id, city))
    program = ctx.programs.get(city)
    since_us, until_us = period_bounds_us(program.local_day(ctx.clock()).strftime("%Y-%m"), program.timezone)
    activity = ctx.pos.statement(merchant.id, city, since_us, until_us, None, RECENT_ENTRIES)
    return render_office(request, ctx, officer, "office/merchant.html", merchant=merchant, activity=activity,
                         terminals=ctx.terminals.list(merchant.id), timezone=program.timezone, done=done,
                         editable=may(officer, "merchants.edit"), next_status=NEXT_STATUS)  # fmt: skip


@post(f"{MERCHANTS_PATH}/{{merchant_id:str}}/status", sync_to_thread=True)
def merchant_status(ctx: Ctx, officer: Staff, merchant_id: Id, data: Annotated[StatusForm, Form]) -> Redirect:
    """Approve, suspend or reinstate the merchant (audited `merchant.set_status`)."""
    ctx.merchants.set_status(merchant_id, data.status, officer.actor, _city(officer, "merchants.edit"))
    return pages.see_other(f"{MERCHANTS_PATH}/{merchant_id}?done={data.status}")


# --- organizations --------------------------------------------------------------------------------


def _organizations_page(request: Request, ctx: Ctx, officer: Staff, *, status_code: int = 200,
                        form: EnrolForm | None = None, errors: dict[str, str] | None = None,
                        done: str | None = None) -> Template:  # fmt: skip
    city = _city(officer, "organizations")
    return render_office(request, ctx, officer, "office/organizations.html", status_code=status_code,
                         organizations=ctx.organizations.listing(city).organizations, done=done,
                         form=form or EnrolForm(idempotency_key=secrets.token_urlsafe(16)), errors=errors or {},
                         editable=may(officer, "organizations.edit"), next_status=NEXT_STATUS)  # fmt: skip


@get(ORGANIZATIONS_PATH, sync_to_thread=True)
def organizations_page(request: Request, ctx: Ctx, officer: Staff, done: DoneNotice = None) -> Template:
    """The city's community organizations, what changes their status, and the form that enrols one."""
    return _organizations_page(request, ctx, officer, done=done)


@post(ORGANIZATIONS_PATH, sync_to_thread=True)
def organization_enrol(request: Request, ctx: Ctx, officer: Staff,
                       data: Annotated[EnrolForm, Form]) -> Template | Redirect:  # fmt: skip
    try:
        _enrol(ctx, officer, ctx.organizations, data, schemas.MemberBody)
    except (LedgerError, msgspec.ValidationError) as exc:
        if isinstance(exc, LedgerError) and exc.code not in ENROL_REFUSALS:
            raise
        return _organizations_page(request, ctx, officer, status_code=422, form=data, errors=_enrol_error(request, exc))
    return pages.see_other(f"{ORGANIZATIONS_PATH}?done=added")


@post(f"{ORGANIZATIONS_PATH}/{{member_id:str}}/status", sync_to_thread=True)
def organization_status(ctx: Ctx, officer: Staff, member_id: Id, data: Annotated[StatusForm, Form]) -> Redirect:
    """Approve, suspend or reinstate the organization (audited `organization.set_status`)."""
    ctx.organizations.set_status(member_id, data.status, officer.actor, _city(officer, "organizations.edit"))
    return pages.see_other(f"{ORGANIZATIONS_PATH}?done={data.status}#org-{member_id}")


ROUTER = Router("/", route_handlers=[merchants_page, merchant_enrol, merchant_page, merchant_status, organizations_page,
                                     organization_enrol, organization_status])  # fmt: skip
