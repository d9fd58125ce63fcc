"""`/office/services`: the city's own municipal services and events. The list shows every one in
every status with its stock; a form publishes a new one (or saves it as a draft), an item's page
changes its titles, price, stock and status, and each can be suspended (it leaves search and cannot
be redeemed) or have its suspension lifted, with a reason.

The handlers call `Catalog.list`, `create`, `get`, `update` and `suspend` with the city as owner, as
`/v1/admin/catalog/{city}/…` does; the forms become the same `ItemSpec` and `ItemPatch` the API decodes.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.params import Ctx, Cursor, DoneNotice, Id
from community.domain.program import CATEGORIES
from marketplace.domain.catalog import CITY_KINDS, LANGUAGES, Category, ItemPatch, ItemSpec
from marketplace.service_layer.catalog import MAX_REASON_CHARS, Owner
from web import pages
from web.auth import Staff, require
from web.routes.office import _render

BASE = "/office/services"
PAGE = 50  # items per page of the list
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
Text = Annotated[str, msgspec.Meta(max_length=200)]
Count = Annotated[str, msgspec.Meta(pattern=r"^\d{0,9}$")]  # a number field, empty when not given
Minute = Annotated[str, msgspec.Meta(pattern=r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})?$")]  # <input type=datetime-local>


class ItemForm(msgspec.Struct, frozen=True):
    """The form of a new item, or (without `key` and `kind`) of a change; empty numbers mean none."""

    title_fr: Text = ""
    title_en: Text = ""
    title_es: Text = ""
    category: Category = "services"
    price_points: Annotated[int, msgspec.Meta(ge=1)] = 1
    cash_cents: Count = ""
    quantity: Count = ""
    status: Literal["draft", "published", "archived"] = "published"
    kind: Literal["service", "event"] = "service"
    key: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")] = ""
    starts_at: Minute = ""
    seats_total: Count = ""

    def titles(self) -> dict:
        given = {"fr": self.title_fr, "en": self.title_en, "es": self.title_es}
        return {lang: text.strip() for lang, text in given.items() if text.strip()}


class SuspensionForm(msgspec.Struct, frozen=True):
    suspended: Literal["yes", "no"]
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON_CHARS)] = ""


def _owner(officer: Staff) -> Owner:
    city = require(officer, "services").city
    assert city is not None
    return Owner(city, None, officer.actor)


def _timezone(ctx: Ctx, owner: Owner) -> str:
    return ctx.programs.get(owner.city).timezone


def _count(field: str) -> int | None:
    return int(field) if field else None


def _us(minute: str, timezone: str) -> int | None:
    """A datetime-local value, in the city's time zone, as µs since the epoch (empty: none)."""
    if not minute:
        return None
    moment = dt.datetime.fromisoformat(minute).replace(tzinfo=ZoneInfo(timezone))
    return int(moment.timestamp()) * 1_000_000


@get(BASE, sync_to_thread=True)
def services(request: Request, ctx: Ctx, officer: Staff, after_id: Cursor = "", done: DoneNotice = None) -> Template:
    owner = _owner(officer)
    page = ctx.catalog.list(owner, CITY_KINDS, after_id, PAGE)
    return _render(request, ctx, officer, "office/services.html", page=page, done=done, key=secrets.token_urlsafe(16),
                   categories=CATEGORIES, languages=LANGUAGES, timezone=_timezone(ctx, owner))  # fmt: skip


@post(BASE, sync_to_thread=True)
def create(ctx: Ctx, officer: Staff, data: Annotated[ItemForm, Form]) -> Redirect:
    owner = _owner(officer)
    event = data.kind == "event"
    status: Literal["draft", "published"] = "draft" if data.status == "draft" else "published"
    spec = ItemSpec(title=data.titles(), category=data.category, price_points=data.price_points,
                    cash_cents=_count(data.cash_cents) or 0, quantity=_count(data.quantity), status=status,
                    starts_at_us=_us(data.starts_at, _timezone(ctx, owner)) if event else None,
                    seats_total=_count(data.seats_total) if event else None)  # fmt: skip
    item = ctx.catalog.create(owner, data.kind, spec, data.key or None)
    return pages.see_other(f"{BASE}/{item.id}?done=created")


@get(f"{BASE}/{{item_id:str}}", sync_to_thread=True)
def item(request: Request, ctx: Ctx, officer: Staff, item_id: Id, done: DoneNotice = None) -> Template:
    owner = _owner(officer)
    return _render(request, ctx, officer, "office/services_item.html", item=ctx.catalog.get(owner, item_id), done=done,
                   languages=LANGUAGES, timezone=_timezone(ctx, owner))  # fmt: skip


@post(f"{BASE}/{{item_id:str}}", sync_to_thread=True)
def update(ctx: Ctx, officer: Staff, item_id: Id, data: Annotated[ItemForm, Form]) -> Redirect:
    patch = ItemPatch(title=data.titles(), price_points=data.price_points, cash_cents=_count(data.cash_cents) or 0,
                      quantity=_count(data.quantity), status=data.status)  # fmt: skip
    ctx.catalog.update(_owner(officer), item_id, patch)
    return pages.see_other(f"{BASE}/{item_id}?done=saved")


@post(f"{BASE}/{{item_id:str}}/suspension", sync_to_thread=True)
def suspend(ctx: Ctx, officer: Staff, item_id: Id, data: Annotated[SuspensionForm, Form]) -> Redirect:
    owner = _owner(officer)
    suspended = data.suspended == "yes"
    ctx.catalog.suspend(owner.city, item_id, suspended, data.reason.strip() or None, owner.actor)
    return pages.see_other(f"{BASE}/{item_id}?done={'suspended' if suspended else 'lifted'}")


ROUTER = Router("/", route_handlers=[services, create, item, update, suspend])
