"""`/office/program`: the city's program as a form (what `PUT /v1/admin/programs/{city}` accepts:
point value, earning rate, caps, budget, expiry, rates, campaigns) with a preview of what it gives for
an example purchase, computed by the awards' own rule (`community.domain.program.purchase_award`)
for the program in force and for the one on the form, before anything is saved.

Preview re-renders the form with the result; Save calls `Programs.configure`, the API route's service
(validated, audited `program.configure`). A value the program refuses is said next to its field
(422), with the problem's own detail. Staff change it; auditors read it (`web.auth.OFFICE_ACTIONS`).
Civic activities, the treasury and the currency are kept as they are: the API and the CLI set them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.params import Ctx, DoneNotice
from api.problems import error_params, problem_document
from community.domain.program import (
    CATEGORIES,
    COLLECTION_METHODS,
    MAX_CAMPAIGNS,
    Award,
    Campaign,
    InvalidProgram,
    Program,
    purchase_award,
)
from web import pages
from web.auth import Staff, may, require
from web.i18n import N_, gettext
from web.routes.office import render_office

PROGRAM_PATH = "/office/program"
# The program's whole numbers on the form, in the order shown (the names are the API's fields).
NUMBERS = ("point_value_cents_per_100_points", "merchant_points_per_dollar", "daily_cap_points", "monthly_cap_points",
           "yearly_budget_points", "expiry_days", "offline_floor_points", "hold_timeout_seconds",
           "redemption_rate_percent", "funding_rate_percent", "settlement_fee_cents", "correction_approval_points")  # fmt: skip
CAMPAIGN_NUMBERS = ("multiplier_percent", "bonus_points", "cap_points")
CAMPAIGN_FIELDS = ("id", "starts_on", "ends_on", *CAMPAIGN_NUMBERS, "category", "merchant_id")
MAX_FORM_FIELDS = 40 + (MAX_CAMPAIGNS + 1) * len(CAMPAIGN_FIELDS)  # what a form of the program can hold
MAX_FIELD_CHARS = 200
_WHOLE = re.compile(r"\d{1,13}")
_DOLLARS = re.compile(r"(\d{1,7})(?:[.,](\d{1,2}))?")

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class Preview(msgspec.Struct, frozen=True):
    """An example purchase and what the program in force and the one on the form give for it."""

    purchase_cents: int
    category: str
    merchant_id: str
    day: dt.date
    now: Award
    proposed: Award


def _form_of(program: Program) -> dict[str, str]:
    """The form's fields as the program has them (a campaign is the row `campaign-<i>-<field>`)."""
    form = {"name": program.name or "", "timezone": program.timezone, "collection_method": program.collection_method,
            **{name: str(getattr(program, name)) for name in NUMBERS}}  # fmt: skip
    for i, campaign in enumerate(program.campaigns):
        for name in CAMPAIGN_FIELDS:
            value = getattr(campaign, name)
            form[f"campaign-{i}-{name}"] = "" if value is None else str(value)
    form["campaign_rows"] = str(len(program.campaigns) + 1)  # one empty row adds a campaign
    return form


def _number(form: dict[str, str], name: str, errors: dict[str, str], lang: str, optional: bool = False) -> int | None:
    text = form.get(name, "").strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    if optional and not text:
        return None
    if not _WHOLE.fullmatch(text):
        errors[name] = gettext(lang, N_("Enter a whole number, such as 500."))
        return None
    return int(text)


def _date(form: dict[str, str], name: str, errors: dict[str, str], lang: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(form.get(name, "").strip())
    except ValueError:
        errors[name] = gettext(lang, N_("Enter a date, such as 2026-06-01."))
        return None


def _rows(form: dict[str, str]) -> int:
    count = form.get("campaign_rows", "0")
    return min(int(count), MAX_CAMPAIGNS + 1) if count.isdigit() else 0


def _campaigns(form: dict[str, str], errors: dict[str, str], lang: str) -> list[Campaign]:
    """The campaign rows with an id (a row whose id is cleared is removed)."""
    campaigns = []
    for i in range(_rows(form)):
        row = f"campaign-{i}-"
        if not form.get(row + "id", "").strip():
            continue
        starts, ends = _date(form, row + "starts_on", errors, lang), _date(form, row + "ends_on", errors, lang)
        numbers = {name: _number(form, row + name, errors, lang, optional=name != "multiplier_percent")
                   for name in CAMPAIGN_NUMBERS}  # fmt: skip
        if starts is None or ends is None or numbers["multiplier_percent"] is None:
            continue
        campaigns.append(Campaign(
            id=form[row + "id"].strip(), starts_on=starts, ends_on=ends, multiplier_percent=numbers["multiplier_percent"],
            bonus_points=numbers["bonus_points"] or 0, cap_points=numbers["cap_points"],
            category=form.get(row + "category") or None, merchant_id=form.get(row + "merchant_id", "").strip() or None,
        ))  # fmt: skip
    return campaigns


def _domain_field(form: dict[str, str], field: str) -> str:
    """The form's field for the program's own name of it (`campaigns.<id>.ends_on`: that row's)."""
    parts = field.split(".")
    if parts[0] == "campaigns" and len(parts) == 3:
        row = next((i for i in range(_rows(form)) if form.get(f"campaign-{i}-id", "").strip() == parts[1]), None)
        return f"campaign-{row}-{parts[2]}" if row is not None else "campaigns"
    return parts[0] if parts[0] in (*NUMBERS, "name", "timezone", "collection_method") else "campaigns"


def _program(current: Program, form: dict[str, str], lang: str) -> tuple[Program | None, dict[str, str]]:
    """The program on the form, validated as saving would, or what is wrong with it, by field."""
    errors: dict[str, str] = {}
    numbers = {name: _number(form, name, errors, lang) for name in NUMBERS}
    campaigns = _campaigns(form, errors, lang)
    if errors:
        return None, errors
    changes: dict[str, Any] = {**numbers, "name": form.get("name", "").strip() or None,
                               "timezone": form.get("timezone", "").strip(), "campaigns": tuple(campaigns),
                               "collection_method": form.get("collection_method", "")}  # fmt: skip
    try:
        return msgspec.structs.replace(current, **changes).validate(), {}
    except InvalidProgram as exc:
        field = _domain_field(form, str(exc.context.get("field", "")))
        return None, {field: str(problem_document(exc.code, lang, error_params(exc))["detail"])}


def _preview(current: Program, proposed: Program, form: dict[str, str], errors: dict[str, str],
             lang: str) -> Preview | None:  # fmt: skip
    """What both programs give for the form's example purchase, at noon of its day, a resident's first of the month."""
    match = _DOLLARS.fullmatch(form.get("example_amount", "").strip())
    cents = int(match[1]) * 100 + int((match[2] or "0").ljust(2, "0")) if match else 0
    if cents <= 0:
        errors["example_amount"] = gettext(lang, N_("Enter an amount in dollars, such as 25.00."))
    category = form.get("example_category", "")
    if category not in CATEGORIES:
        errors["example_category"] = gettext(lang, N_("Choose a category from the list."))
    day = _date(form, "example_day", errors, lang)
    if errors or day is None:
        return None
    merchant_id = form.get("example_merchant", "").strip()
    noon = dt.datetime.combine(day, dt.time(12), ZoneInfo(proposed.timezone))
    time_us = int(noon.timestamp()) * 1_000_000
    award = {which: purchase_award(program, purchase_cents=cents, category=category, merchant_id=merchant_id,
                                   time_us=time_us, usage={}) for which, program in (("now", current), ("proposed", proposed))}  # fmt: skip
    return Preview(purchase_cents=cents, category=category, merchant_id=merchant_id, day=day, **award)


def _page(request: Request, ctx: Ctx, officer: Staff, form: dict[str, str], *, status_code: int = 200,
          errors: dict[str, str] | None = None, preview: Preview | None = None, done: str | None = None) -> Template:  # fmt: skip
    assert officer.city is not None
    today = dt.datetime.fromtimestamp(ctx.clock() / 1_000_000, ZoneInfo(ctx.programs.get(officer.city).timezone)).date()
    form = {"example_amount": "25.00", "example_category": CATEGORIES[0], "example_merchant": "",
            "example_day": today.isoformat(), **form}  # fmt: skip
    merchant_names = {m["id"]: m["name"] for m in ctx.merchants.list(officer.city)}
    return render_office(request, ctx, officer, "office/program.html", status_code=status_code, form=form,
                         errors=errors or {}, preview=preview, done=done, numbers=NUMBERS, rows=range(_rows(form)),
                         categories=CATEGORIES, collection_methods=COLLECTION_METHODS, merchant_names=merchant_names,
                         editable=may(officer, "program.edit"))  # fmt: skip


@get(PROGRAM_PATH, sync_to_thread=True)
def program_page(request: Request, ctx: Ctx, officer: Staff, done: DoneNotice = None) -> Template:
    """The program in force as a form (read only for an auditor)."""
    city = require(officer, "program").city
    assert city is not None
    return _page(request, ctx, officer, _form_of(ctx.programs.get(city)), done=done)


@post(PROGRAM_PATH, sync_to_thread=True)
def program_submit(request: Request, ctx: Ctx, officer: Staff,
                   data: Annotated[dict[str, str], Form]) -> Template | Redirect:  # fmt: skip
    """Preview (`intent=preview`): the form again with what the example purchase earns. Save: the
    program replaced and audited, then the page in force (POST-redirect-GET)."""
    city = require(officer, "program.edit").city
    assert city is not None
    form = {k: v[:MAX_FIELD_CHARS] for k, v in list(data.items())[:MAX_FORM_FIELDS] if isinstance(v, str)}
    lang = pages.locale(request)
    current = ctx.programs.get(city)
    proposed, errors = _program(current, form, lang)
    if proposed is None:
        return _page(request, ctx, officer, form, status_code=422, errors=errors)
    if form.get("intent") == "preview":
        preview = _preview(current, proposed, form, errors, lang)
        return _page(request, ctx, officer, form, status_code=422 if errors else 200, errors=errors, preview=preview)
    ctx.programs.configure(proposed, officer.actor)
    return pages.see_other(f"{PROGRAM_PATH}?done=saved")


ROUTER = Router("/", route_handlers=[program_page, program_submit])
