"""The wallet's "Find": search the catalog (a GET form that works without JavaScript; the same
results as a list and on a map), an item's page, redeeming it with points, and the voucher.

Each page calls the services the API's routes call: `CatalogSearch.search` and `.item`
(`GET /v1/catalog/search`, `/v1/catalog/items/{id}`), `Redemptions.redeem`, `.get` and `.cancel`
(`POST /v1/wallet/redemptions`, `GET /v1/wallet/redemptions/{id}`, `POST …/cancel`), `Wallet.balance`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
import segno
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.auth import Principal
from api.http.params import Ctx, Flag, Id, SearchOffset, SearchText
from api.problems import error_params, problem_document
from community.domain.program import CATEGORIES
from ledger.domain.errors import InvalidRequest, LedgerError
from marketplace.domain.catalog import MAX_UNITS_PER_REDEMPTION, Lang, title_in
from marketplace.domain.errors import PaymentProviderUnavailable
from marketplace.schemas import Item
from marketplace.service_layer.redemptions import redemption_id_for
from marketplace.service_layer.search import SearchRequest
from web import pages
from web.auth import Resident
from web.i18n import DEFAULT_TIME_ZONE, N_, gettext, points

PAGE_SIZE = 10
MAX_POINTS_FILTER = 10_000_000  # a filter above any price: refused as a typing slip rather than searched
# Refusals a resident can meet when redeeming: the item page again, the reason next to the form.
REDEEM_REFUSALS = ("insufficient_funds", "sold_out", "resident_limit_reached", "item_unavailable", "payments_disabled",
                   "overloaded", "resident_expired", "not_opted_in", "invalid_item", "conflict")  # fmt: skip


Text = SearchText  # a form's field, as typed


class RedeemForm(msgspec.Struct, frozen=True):
    idempotency_key: str = ""
    units: str = "1"


def _points_filter(lang: str, raw: str) -> tuple[int | None, str | None]:
    """A points bound as typed: empty (no bound), a whole number, or the reason it is not one."""
    text = raw.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    if not text:
        return None, None
    if not text.isdigit() or int(text) > MAX_POINTS_FILTER:
        return None, gettext(lang, N_("Enter a whole number of points, such as 500."))
    return int(text), None


def _mine(ctx: Ctx, resident_id: str) -> list[tuple[str, str, str]]:
    """The resident's cities (home first): id, name, time zone."""
    known = {c.city: c for c in ctx.programs.communities()}
    return [(city, known[city].name if city in known else city, known[city].timezone if city in known else DEFAULT_TIME_ZONE)
            for city in ctx.catalog_search.cities_of(resident_id)]  # fmt: skip


def _titles(lang: str) -> Callable[[dict[Lang, str]], tuple[Lang, str]]:
    return lambda titles: title_in(titles, lang)


@get("/find", sync_to_thread=True)
def find(
    request: Request, principal: Resident, ctx: Ctx,
    q: Text = "", category: Text = "", city: Text = "", min_points: Text = "", max_points: Text = "", open_now: Text = "",
    offset: SearchOffset = 0,
) -> Template:  # fmt: skip
    """Search what the resident can redeem: the form keeps what was asked; a bad field is said next to it (400)."""
    lang = pages.locale(request)
    resident = principal.subject
    cities = _mine(ctx, resident)
    (low, low_error), (high, high_error) = _points_filter(lang, min_points), _points_filter(lang, max_points)
    checks = {
        "min_points": low_error,
        "max_points": high_error or (gettext(lang, N_("The maximum cannot be below the minimum."))
                                     if low is not None and high is not None and low > high else None),
        "category": gettext(lang, N_("Choose a category from the list.")) if category and category not in CATEGORIES else None,
        "city": gettext(lang, N_("Choose one of your cities.")) if city and city not in {c for c, _, _ in cities} else None,
    }  # fmt: skip
    errors = {name: message for name, message in checks.items() if message}
    results = None
    if not errors:
        asked = SearchRequest(q=q.strip(), cities=(city,) if city else (), categories=(category,) if category else (),
                              min_points=low, max_points=high, available_now=bool(open_now), offset=offset,
                              limit=PAGE_SIZE, facets=False)  # fmt: skip
        try:
            results = ctx.catalog_search.search(resident, asked)
        except InvalidRequest as exc:  # what the service refuses beyond the form's own checks
            field = str(exc.context.get("field", "q"))
            errors[field if field in ("q", "min_points", "max_points", "category", "city") else "q"] = str(
                problem_document(exc.code, lang, error_params(exc))["detail"]
            )
    form = {"q": q, "category": category, "city": city, "min_points": min_points, "max_points": max_points,
            "open_now": bool(open_now)}  # fmt: skip
    tiles_url, img_origins = pages.map_tiles(ctx)

    def page_link(at: int) -> str:
        return "/wallet/find?" + urlencode(
            {k: v for k, v in (form | {"open_now": "1" if open_now else "", "offset": at}).items() if v}
        )

    title = _titles(lang)
    markers = [] if results is None else [
        {"title": title(hit.title)[1], "url": f"/wallet/find/items/{hit.id}", "lat": hit.location.lat, "lng": hit.location.lng,
         "price": gettext(lang, N_("%(n)s points")) % {"n": points(lang, hit.price_points)}}
        for hit in results.hits if hit.location is not None
    ]  # fmt: skip
    return pages.render(
        request, "find/search.html", status_code=400 if errors else 200, img_origins=img_origins,
        results=results, form=form, errors=errors, categories=CATEGORIES, cities=cities,
        city_names={c: name for c, name, _ in cities}, title_in=title, markers=markers, tiles_url=tiles_url,
        tiles_attribution=ctx.settings.map_tiles_attribution if tiles_url else None,
        previous_link=page_link(max(0, offset - PAGE_SIZE)) if results is not None and offset > 0 else None,
        next_link=page_link(results.next_offset) if results is not None and results.next_offset is not None else None,
        first_shown=offset + 1, last_shown=offset + (len(results.hits) if results else 0),
    )  # fmt: skip


def _item_page(request: Request, ctx: Ctx, resident_id: str, home_city: str, item: Item, status_code: int = 200,
               units: str = "1", refusal: dict[str, Any] | None = None, unit_error: str | None = None) -> Template:  # fmt: skip
    """The item, the resident's balance and the redeem form, with a fresh Idempotency-Key (a double
    submit of this form redeems once; after a refusal, the form asks again under a new key)."""
    lang = pages.locale(request)
    cities = _mine(ctx, resident_id)
    most = min([MAX_UNITS_PER_REDEMPTION, *(n for n in (item.remaining, item.per_resident_limit) if n is not None)])
    return pages.render(
        request, "find/item.html", status_code=status_code, item=item, title_in=_titles(lang),
        balance=ctx.wallet.balance(resident_id, home_city), city_names={c: name for c, name, _ in cities},
        time_zone=next((tz for c, _, tz in cities if c == item.city), DEFAULT_TIME_ZONE),
        idempotency_key=secrets.token_urlsafe(18), units=units, most_units=max(1, most), refusal=refusal,
        unit_error=unit_error,
    )  # fmt: skip


def _home(principal: Principal) -> str:
    assert principal.city is not None  # a resident's principal always names the home city (web.auth)
    return str(principal.city)


@get("/find/items/{item_id:str}", sync_to_thread=True)
def item_page(request: Request, item_id: Id, principal: Resident, ctx: Ctx) -> Template:
    """One item offered to the resident (another city's or a withdrawn one is the 404 page)."""
    resident = principal.subject
    return _item_page(request, ctx, resident, _home(principal), ctx.catalog_search.item(resident, item_id))


@post("/find/items/{item_id:str}/redeem", sync_to_thread=True, status_code=303)
def redeem(
    request: Request, item_id: Id, principal: Resident, ctx: Ctx,
    data: Annotated[RedeemForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Redirect | Template:  # fmt: skip
    """Redeem with points, then the voucher (303). A refusal (not enough points, sold out, the
    limit…) is the item page again with the reason next to the form, and nothing taken."""
    lang = pages.locale(request)
    resident = principal.subject
    item = ctx.catalog_search.item(resident, item_id)
    units = data.units.strip()
    if not units.isdigit() or not 1 <= int(units) <= MAX_UNITS_PER_REDEMPTION:
        message = gettext(lang, N_("Enter a number of units from 1 to %(most)s.")) % {"most": MAX_UNITS_PER_REDEMPTION}
        return _item_page(request, ctx, resident, _home(principal), item, 400, data.units[:4], unit_error=message)
    key = data.idempotency_key
    if not key or not key.isprintable() or " " in key or len(key) > 100:
        key = secrets.token_urlsafe(18)  # a form without the page's key (a stale page): this submit is its own
    key = f"web:{key}"
    # A card part is paid on the card processor's hosted page, which sends the resident back to the voucher
    # (unused when there is none).
    back = f"{pages.site_origin(request, ctx)}/wallet/redemptions/{redemption_id_for(resident, key)}"
    try:
        redemption = ctx.redemptions.redeem(resident, key, item.id, int(units), lang, back)
    except LedgerError as exc:
        if exc.code not in REDEEM_REFUSALS:
            raise
        # The ledger's detail for missing points names the wallet's account: the page says it in points instead.
        refusal = problem_document(exc.code, lang, {} if exc.code == "insufficient_funds" else error_params(exc))
        status = refusal["status"]
        assert isinstance(status, int)
        return _item_page(request, ctx, resident, _home(principal), ctx.catalog_search.item(resident, item_id), status,
                          units, refusal=refusal)  # fmt: skip
    return pages.see_other(f"/wallet/redemptions/{redemption.id}")


@get("/redemptions/{redemption_id:str}", sync_to_thread=True)
def redemption_page(request: Request, redemption_id: Id, principal: Resident, ctx: Ctx, paid: Flag = False) -> Template:
    """The voucher to show at the counter (code and QR), what was paid, where it stands. Back from
    the card processor's page (`paid`), it asks the processor at once rather than wait for its webhook."""
    lang = pages.locale(request)
    resident = principal.subject
    redemption = ctx.redemptions.get(resident, redemption_id, lang)
    if paid and redemption.status == "awaiting_payment":
        with contextlib.suppress(PaymentProviderUnavailable):  # not answering now: the webhook will tell
            redemption = ctx.redemptions.paid(resident, redemption_id, lang)
    cities = _mine(ctx, resident)
    qr = (
        segno.make(redemption.voucher, error="m").svg_data_uri(scale=6, border=2)
        if redemption.status == "completed"
        else None
    )
    return pages.render(
        request, "find/redemption.html", redemption=redemption, qr=qr, paid=paid, balance=ctx.wallet.balance(resident, _home(principal)),
        city_names={c: name for c, name, _ in cities},
        time_zone=next((tz for c, _, tz in cities if c == redemption.city), DEFAULT_TIME_ZONE),
    )  # fmt: skip


@post("/redemptions/{redemption_id:str}/cancel", sync_to_thread=True, status_code=303)
def cancel(request: Request, redemption_id: Id, principal: Resident, ctx: Ctx) -> Redirect:
    """Give up a card payment not yet made: the points come back (`redemption_not_pending` otherwise)."""
    ctx.redemptions.cancel(principal.subject, redemption_id, pages.locale(request))
    return pages.see_other(f"/wallet/redemptions/{redemption_id}")


ROUTER = Router("/wallet", route_handlers=[find, item_page, redeem, redemption_page, cancel])
