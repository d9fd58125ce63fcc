"""`/portal/offers` and `/portal/shop`: a merchant owner's offers (create, edit, publish, archive) and
the shop (its place on a map, open or closed), for the signed-in owner (web.auth `Merchant`).

Each handler calls the service the terminal API calls (`api/http/routes/merchants.py`):
`Catalog.create`, `.update`, `.get`, `.list` (`POST/PATCH/GET /v1/merchants/offers`), `Catalog.shop`
and `.set_shop` (`GET/PUT /v1/merchants/shop`). The forms read prices as the page's language writes
them ("1 200" points and "2,50" dollars in French, "1,200" and "2.50" in English) into integers; a
field the page or the service refuses is said next to it (400) and nothing changes. Audited as the
owner's principal (its subject and session), where the API names the merchant's terminal.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.auth import Principal
from api.http.params import Ctx, Cursor, DoneNotice, Id
from api.problems import error_params, problem_document
from community.domain.program import CATEGORIES
from marketplace.domain.catalog import (
    LANGUAGES,
    MAX_CASH_CENTS,
    MAX_PRICE_POINTS,
    MAX_QUANTITY,
    ItemPatch,
    ItemSpec,
    Location,
    title_in,
)
from marketplace.domain.errors import InvalidItem
from marketplace.schemas import Item
from marketplace.service_layer.catalog import Owner
from web import pages
from web.auth import Merchant, owner_merchant
from web.i18n import N_, cents_input, dollars, gettext, parse_cents, parse_points, points

OFFERS_PATH = "/portal/offers"
SHOP_PATH = "/portal/shop"
OFFERS_PAGE = 50  # offers per page of the list
DAY = dt.timedelta(days=1)
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 2), dt.date(9999, 1, 1)  # [first, last): µs since the epoch stay positive
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
Line = Annotated[str, msgspec.Meta(max_length=300)]  # a one-line field, as typed (inputs say maxlength too)
# The catalog's own bounds (marketplace.domain.catalog `Title`, `Description`): what the form passes
# on is then all checked here or by `_read_offer`, since a struct made in code is not validated.
TitleLine = Annotated[str, msgspec.Meta(max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=4_000)]
# The service's fields, as the form names them (the others are said above the form).
FORM_FIELDS = {"title": "title_fr", "category": "category", "price_points": "price_points", "cash_cents": "cash",
               "quantity": "quantity", "per_resident_limit": "quantity", "valid_from_us": "valid_from",
               "valid_until_us": "valid_until"}  # fmt: skip


class OfferForm(msgspec.Struct, frozen=True):
    idempotency_key: Line = ""
    title_fr: TitleLine = ""
    title_en: TitleLine = ""
    title_es: TitleLine = ""
    description_fr: Text = ""
    description_en: Text = ""
    description_es: Text = ""
    category: Line = ""
    price_points: Line = ""
    cash: Line = ""
    quantity: Line = ""
    valid_from: Line = ""
    valid_until: Line = ""


class StatusForm(msgspec.Struct, frozen=True):
    status: Line = ""


class ShopForm(msgspec.Struct, frozen=True):
    lat: Line = ""
    lng: Line = ""
    address: Line = ""
    is_open: Line = ""


def _owner(principal: Principal) -> Owner:
    city, merchant_id = owner_merchant(principal)
    return Owner(city, merchant_id, principal.actor)


def _zone(ctx: Ctx, principal: Principal) -> ZoneInfo:
    assert principal.city is not None
    return ZoneInfo(ctx.programs.get(principal.city).timezone)


# --- the offer form: typed text in, the service's fields out ----------------------------------


def _day_us(text: str, zone: ZoneInfo, end: bool) -> int:
    """A day (the date field's yyyy-mm-dd) as µs: its first moment in the city, or the first after it.
    ValueError unless it is a day from 1970 to 9998 (what the catalog's times can hold)."""
    day = dt.date.fromisoformat(text)
    if not FIRST_DAY <= day < LAST_DAY:
        raise ValueError(f"{day} is out of range")
    return int(dt.datetime.combine(day + (DAY if end else dt.timedelta()), dt.time(), zone).timestamp()) * 1_000_000


def _date_of(time_us: int, zone: ZoneInfo) -> dt.date:
    """The city's day a moment falls on (an end is exclusive: pass the last moment, end - 1)."""
    return dt.datetime.fromtimestamp(time_us / 1_000_000, zone).date()


def _read_offer(lang: str, form: OfferForm, zone: ZoneInfo) -> tuple[dict[str, Any], dict[str, str]]:
    """The service's fields from the form, and a message per field that is not what it must be."""
    errors: dict[str, str] = {}
    title = {lang_: text.strip() for lang_ in LANGUAGES if (text := getattr(form, f"title_{lang_}").strip())}
    if not title:
        errors["title_fr"] = gettext(lang, N_("Give the offer a title in at least one language."))
    price = parse_points(lang, form.price_points)
    if price is None or not 1 <= price <= MAX_PRICE_POINTS:
        errors["price_points"] = gettext(lang, N_("Enter a whole number of points from 1 to %(most)s, such as %(example)s.")) % {
            "most": points(lang, MAX_PRICE_POINTS), "example": points(lang, 250)}  # fmt: skip
    cash = parse_cents(lang, form.cash) if form.cash.strip() else 0
    if cash is None or cash > MAX_CASH_CENTS:
        errors["cash"] = gettext(lang, N_("Enter an amount in dollars up to %(most)s, such as %(example)s, or leave it empty.")) % {
            "most": dollars(lang, MAX_CASH_CENTS), "example": cents_input(lang, 250)}  # fmt: skip
    quantity = parse_points(lang, form.quantity) if form.quantity.strip() else None
    if form.quantity.strip() and (quantity is None or not 1 <= quantity <= MAX_QUANTITY):
        errors["quantity"] = gettext(lang, N_("Enter a whole number of units from 1 to %(most)s, or leave it empty for no limit.")) % {
            "most": points(lang, MAX_QUANTITY)}  # fmt: skip
    if form.category not in CATEGORIES:
        errors["category"] = gettext(lang, N_("Choose a category from the list."))
    days: dict[str, int | None] = {}
    for name in ("valid_from", "valid_until"):
        text = getattr(form, name).strip()
        try:
            days[name] = _day_us(text, zone, end=name == "valid_until") if text else None
        except ValueError:
            errors[name] = gettext(lang, N_("Enter a date, such as %(example)s.")) % {"example": "2026-12-24"}
    start, end = days.get("valid_from"), days.get("valid_until")
    if start is not None and end is not None and end <= start:
        errors["valid_until"] = gettext(lang, N_("The last day cannot be before the first."))
    fields = {"title": title, "description": {lang_: text for lang_ in LANGUAGES
                                              if (text := getattr(form, f"description_{lang_}").strip())},
              "category": form.category, "price_points": price, "cash_cents": cash, "quantity": quantity,
              "valid_from_us": start, "valid_until_us": end}  # fmt: skip
    return fields, errors


def _form_of(lang: str, item: Item, zone: ZoneInfo) -> dict[str, str]:
    """An offer's fields as the form shows them, to be edited."""
    texts = {f"title_{lang_}": item.title.get(lang_, "") for lang_ in LANGUAGES}
    texts |= {f"description_{lang_}": item.description.get(lang_, "") for lang_ in LANGUAGES}
    return texts | {
        "category": item.category, "price_points": points(lang, item.price_points),
        "cash": cents_input(lang, item.cash_cents) if item.cash_cents else "",
        "quantity": "" if item.quantity is None else points(lang, item.quantity),
        "valid_from": _date_of(item.valid_from_us, zone).isoformat() if item.valid_from_us else "",
        "valid_until": _date_of(item.valid_until_us - 1, zone).isoformat() if item.valid_until_us is not None else "",
    }  # fmt: skip


def _refused(lang: str, exc: InvalidItem) -> dict[str, str]:
    """The service's refusal, next to its field (above the form when no field of the form is it)."""
    detail = str(problem_document(exc.code, lang, error_params(exc))["detail"])
    return {FORM_FIELDS.get(str(exc.context.get("field")), "form"): detail}


def _offer_page(request: Request, item: Item | None, form: dict[str, str], errors: dict[str, str] | None = None) -> Template:  # fmt: skip
    """The new-offer form (with a fresh Idempotency-Key: a double submit makes one offer), or an offer's."""
    return pages.render(request, "portal/offers_form.html", status_code=400 if errors else 200, item=item,
                        form=form, errors=errors or {}, categories=CATEGORIES, languages=LANGUAGES,
                        idempotency_key=secrets.token_urlsafe(18))  # fmt: skip


# --- offers -----------------------------------------------------------------------------------


@get(OFFERS_PATH, sync_to_thread=True)
def offers(request: Request, ctx: Ctx, owner: Merchant, after: Cursor = "", done: DoneNotice = None) -> Template:
    """The merchant's offers in every status, 50 a page; after a form, `done` says what changed."""
    page = ctx.catalog.list(_owner(owner), ("offer",), after, OFFERS_PAGE)
    lang, zone = pages.locale(request), _zone(ctx, owner)
    return pages.render(request, "portal/offers.html", page=page, done=done, title_in=lambda t: title_in(t, lang),
                        date_of=lambda time_us: _date_of(time_us, zone))  # fmt: skip


@get(f"{OFFERS_PATH}/new", sync_to_thread=True)
def new_offer(request: Request, owner: Merchant) -> Template:
    return _offer_page(request, None, {})


@post(OFFERS_PATH, sync_to_thread=True, status_code=303)
def create_offer(request: Request, ctx: Ctx, owner: Merchant, data: Annotated[OfferForm, Form]) -> Redirect | Template:
    """Save a new offer as a draft (published from the list); a bad field: the form again, nothing saved."""
    lang = pages.locale(request)
    fields, errors = _read_offer(lang, data, _zone(ctx, owner))
    if not errors:
        key = data.idempotency_key if re.fullmatch(r"[\w-]{1,64}", data.idempotency_key) else secrets.token_urlsafe(18)
        try:
            ctx.catalog.create(_owner(owner), "offer", ItemSpec(**fields, status="draft"), f"web:{key}")
        except InvalidItem as exc:
            errors = _refused(lang, exc)
        else:
            return pages.see_other(f"{OFFERS_PATH}?done=created")
    return _offer_page(request, None, msgspec.structs.asdict(data), errors)


@get(f"{OFFERS_PATH}/{{item_id:str}}", sync_to_thread=True)
def edit_offer(request: Request, ctx: Ctx, owner: Merchant, item_id: Id) -> Template:
    """One of the merchant's offers, in its form (another merchant's is the refusal page)."""
    item = ctx.catalog.get(_owner(owner), item_id)
    return _offer_page(request, item, _form_of(pages.locale(request), item, _zone(ctx, owner)))


@post(f"{OFFERS_PATH}/{{item_id:str}}", sync_to_thread=True, status_code=303)
def update_offer(request: Request, ctx: Ctx, owner: Merchant, item_id: Id,
                 data: Annotated[OfferForm, Form]) -> Redirect | Template:  # fmt: skip
    """Change the offer's fields (its status stays); stock already taken stays taken."""
    lang = pages.locale(request)
    fields, errors = _read_offer(lang, data, _zone(ctx, owner))
    if not errors:
        try:
            ctx.catalog.update(_owner(owner), item_id, ItemPatch(**fields))
        except InvalidItem as exc:
            errors = _refused(lang, exc)
        else:
            return pages.see_other(f"{OFFERS_PATH}?done=saved")
    return _offer_page(request, ctx.catalog.get(_owner(owner), item_id), msgspec.structs.asdict(data), errors)


@post(f"{OFFERS_PATH}/{{item_id:str}}/status", sync_to_thread=True, status_code=303)
def set_status(ctx: Ctx, owner: Merchant, item_id: Id, data: Annotated[StatusForm, Form]) -> Redirect:
    """Publish (again) or archive the offer: the button's value names which."""
    if data.status not in ("published", "archived"):
        raise InvalidItem("status is published or archived", field="status", reason="not_one_of",
                          allowed="published, archived")  # fmt: skip
    ctx.catalog.update(_owner(owner), item_id, ItemPatch(status=data.status))  # type: ignore[arg-type]  # checked above
    return pages.see_other(f"{OFFERS_PATH}?done={data.status}")


# --- the shop ---------------------------------------------------------------------------------


def _degrees(text: str, most: int) -> float | None:
    """A coordinate as typed: a decimal point or comma, a minus sign of either kind; None if it is not one."""
    cleaned = text.strip().replace(",", ".").replace("\u2212", "-")
    if not re.fullmatch(r"-?[0-9]{1,3}(\.[0-9]{1,7})?", cleaned) or abs(float(cleaned)) > most:
        return None
    return float(cleaned)


def _shop_page(request: Request, ctx: Ctx, form: dict[str, str], errors: dict[str, str] | None = None,
               done: str | None = None) -> Template:  # fmt: skip
    tiles_url, img_origins = pages.map_tiles(ctx)
    return pages.render(request, "portal/shop.html", status_code=400 if errors else 200, img_origins=img_origins,
                        form=form, errors=errors or {}, done=done, tiles_url=tiles_url,
                        tiles_attribution=ctx.settings.map_tiles_attribution if tiles_url else None)  # fmt: skip


@get(SHOP_PATH, sync_to_thread=True)
def shop(request: Request, ctx: Ctx, owner: Merchant, done: DoneNotice = None) -> Template:
    """The shop's place (fields first, the map beside them) and whether it is open now."""
    found = ctx.catalog.shop(_owner(owner))
    place = found.location
    form = {"lat": "" if place is None else f"{place.lat:.6f}", "lng": "" if place is None else f"{place.lng:.6f}",
            "address": "" if place is None else place.address, "is_open": "1" if found.is_open else ""}  # fmt: skip
    return _shop_page(request, ctx, form, done=done)


@post(SHOP_PATH, sync_to_thread=True, status_code=303)
def save_shop(request: Request, ctx: Ctx, owner: Merchant, data: Annotated[ShopForm, Form]) -> Redirect | Template:
    """Set the place (both coordinates, or neither for no place) and open or closed; every offer follows."""
    lang = pages.locale(request)
    lat, lng = _degrees(data.lat, 90), _degrees(data.lng, 180)
    given = bool(data.lat.strip() or data.lng.strip() or data.address.strip())  # an address needs its place
    errors = {name: gettext(lang, message) for name, value, message in (
        ("lat", lat, N_("Enter a latitude in degrees from -90 to 90, such as 45.4501.")),
        ("lng", lng, N_("Enter a longitude in degrees from -180 to 180, such as -73.4601."))) if given and value is None}  # fmt: skip
    if data.is_open not in ("1", "0"):
        errors["is_open"] = gettext(lang, N_("Say whether the shop is open or closed."))
    if errors:
        return _shop_page(request, ctx, msgspec.structs.asdict(data), errors)
    location = Location(lat, lng, data.address.strip()) if lat is not None and lng is not None else None
    ctx.catalog.set_shop(_owner(owner), location, data.is_open == "1")
    return pages.see_other(f"{SHOP_PATH}?done=saved")


ROUTER = Router(
    "/", route_handlers=[offers, new_offer, create_offer, edit_offer, update_offer, set_status, shop, save_shop]
)
