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
from finance.domain.settlement import period_bounds_us
from ledger.domain.errors import InvalidRequest, LedgerError
from web import pages
from web.auth import Staff, may, office_city
from web.routes.office import render_office

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


def _members_page(request: Request, ctx: Ctx, officer: Staff, kind: str, *, status_code: int = 200,
                  form: EnrolForm | None = None, errors: dict[str, str] | None = None, done: str | None = None) -> Template:  # fmt: skip
    """The list of the city's `kind` (merchants, organizations), its buttons and its enrol form."""
    city = office_city(officer, kind)
    listing = ({"merchants": ctx.terminals.merchants(city).merchants, "categories": CATEGORIES} if kind == "merchants"
               else {"organizations": ctx.organizations.listing(city).organizations})  # fmt: skip
    return render_office(request, ctx, officer, f"office/{kind}.html", status_code=status_code, done=done,
                         form=form or EnrolForm(idempotency_key=secrets.token_urlsafe(16)), errors=errors or {},
                         editable=may(officer, f"{kind}.edit"), next_status=NEXT_STATUS, **listing)  # fmt: skip


def _enrolled(request: Request, ctx: Ctx, officer: Staff, kind: str, data: EnrolForm) -> Member | Template:
    """Enrol the form's member, checked as the API checks its body, by the API's own service call;
    or the list again with what was wrong said by its field (422)."""
    members, body = (
        (ctx.merchants, schemas.MerchantBody) if kind == "merchants" else (ctx.organizations, schemas.MemberBody)
    )
    city = office_city(officer, f"{kind}.edit")
    fields = {"id": data.id.strip(), "name": data.name.strip(), "category": data.category}
    try:
        checked = msgspec.convert({k: v for k, v in fields.items() if k in body.__struct_fields__}, body)
        extra = {"category": checked.category} if isinstance(checked, schemas.MerchantBody) else {}
        key = (data.idempotency_key or secrets.token_urlsafe(16))[:128]
        return members.add(city, checked.id, checked.name, officer.actor, key=key, **extra)  # type: ignore[attr-defined]
    except (LedgerError, msgspec.ValidationError) as exc:
        if isinstance(exc, LedgerError) and exc.code not in ENROL_REFUSALS:
            raise
        return _members_page(request, ctx, officer, kind, status_code=422, form=data, errors=_enrol_error(request, exc))


# --- merchants ------------------------------------------------------------------------------------


@get(MERCHANTS_PATH, sync_to_thread=True)
def merchants_page(request: Request, ctx: Ctx, officer: Staff, done: DoneNotice = None) -> Template:
    """The city's merchants (status, category, terminals), and the form that enrols one."""
    return _members_page(request, ctx, officer, "merchants", done=done)


@post(MERCHANTS_PATH, sync_to_thread=True)
def merchant_enrol(request: Request, ctx: Ctx, officer: Staff,
                   data: Annotated[EnrolForm, Form]) -> Template | Redirect:  # fmt: skip
    """Enrol a merchant, pending until approved, then its page."""
    member = _enrolled(request, ctx, officer, "merchants", data)
    return member if isinstance(member, Template) else pages.see_other(f"{MERCHANTS_PATH}/{member.id}?done=added")


@get(f"{MERCHANTS_PATH}/{{merchant_id:str}}", sync_to_thread=True)
def merchant_page(request: Request, ctx: Ctx, officer: Staff, merchant_id: Id, done: DoneNotice = None) -> Template:
    """One merchant: its status and what changes it, its terminals, this month's entries and totals."""
    city = office_city(officer, "merchants")
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
    ctx.merchants.set_status(merchant_id, data.status, officer.actor, office_city(officer, "merchants.edit"))
    return pages.see_other(f"{MERCHANTS_PATH}/{merchant_id}?done={data.status}")


# --- organizations --------------------------------------------------------------------------------


@get(ORGANIZATIONS_PATH, sync_to_thread=True)
def organizations_page(request: Request, ctx: Ctx, officer: Staff, done: DoneNotice = None) -> Template:
    """The city's community organizations, what changes their status, and the form that enrols one."""
    return _members_page(request, ctx, officer, "organizations", done=done)


@post(ORGANIZATIONS_PATH, sync_to_thread=True)
def organization_enrol(request: Request, ctx: Ctx, officer: Staff,
                       data: Annotated[EnrolForm, Form]) -> Template | Redirect:  # fmt: skip
    """Enrol an organization, pending until approved, then the list."""
    member = _enrolled(request, ctx, officer, "organizations", data)
    return (
        member if isinstance(member, Template) else pages.see_other(f"{ORGANIZATIONS_PATH}?done=added#org-{member.id}")
    )


@post(f"{ORGANIZATIONS_PATH}/{{member_id:str}}/status", sync_to_thread=True)
def organization_status(ctx: Ctx, officer: Staff, member_id: Id, data: Annotated[StatusForm, Form]) -> Redirect:
    """Approve, suspend or reinstate the organization (audited `organization.set_status`)."""
    ctx.organizations.set_status(member_id, data.status, officer.actor, office_city(officer, "organizations.edit"))
    return pages.see_other(f"{ORGANIZATIONS_PATH}?done={data.status}#org-{member_id}")


ROUTER = Router("/", route_handlers=[merchants_page, merchant_enrol, merchant_page, merchant_status, organizations_page,
                                     organization_enrol, organization_status])  # fmt: skip
