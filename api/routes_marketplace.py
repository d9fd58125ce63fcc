"""The marketplace's endpoints: merchants' catalogs (signed), residents' search and redemptions (bearer),
the city's services, events and suspensions (staff), and Stripe's payment webhook (signed by Stripe).

Handlers stay thin, as in api/routes.py: role and tenant from the Principal, one service call.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from anyio import to_thread
from litestar import Request, Router, get, patch, post, put
from litestar.di import Provide
from litestar.params import JSONBody

from api.auth import Principal, bearer_principal, terminal_principal
from api.params import (
    City,
    Ctx,
    Cursor,
    Flag,
    Id,
    IdempotencyKey,
    Latitude,
    ListParam,
    Longitude,
    OptionalTimeUs,
    PageLimit,
    PointsFilter,
    RadiusM,
    RedemptionPageLimit,
    SearchOffset,
    SearchPageLimit,
    SearchText,
    Sort,
    Who,
    idempotency_key,
)
from api.schemas import Struct
from ledger.domain.errors import InvalidRequest
from marketplace.domain.catalog import MAX_UNITS_PER_REDEMPTION, ItemPatch, ItemSpec, Location
from marketplace.service_layer.catalog import Owner
from marketplace.service_layer.search import SearchRequest

ItemId = Annotated[str, msgspec.Meta(pattern=r"^i[0-9a-f]{24}$")]


class ShopBody(Struct):
    is_open: bool
    location: Location | None = None


class RedeemBody(Struct):
    item_id: ItemId
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_UNITS_PER_REDEMPTION)] = 1


class SuspensionBody(Struct):
    suspended: bool
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v)


# --- /v1/merchants: signed requests from a merchant's terminals ----------------------------------


def _merchant(principal: Principal) -> Owner:
    assert principal.terminal is not None
    return Owner(principal.terminal.city, principal.terminal.merchant_id, f"merchant:{principal.terminal.merchant_id}")


@post("/offers", sync_to_thread=True, status_code=201)
def create_offer(data: JSONBody[ItemSpec], principal: Who, ctx: Ctx) -> dict:
    """Publish an offer (or save it as a draft): titles and descriptions in fr/en/es, price in points (+ cash at the till)."""
    return ctx.catalog.create(_merchant(principal), "offer", data)


@get("/offers", sync_to_thread=True)
def list_offers(principal: Who, ctx: Ctx, after_id: Cursor = "", limit: PageLimit = 50) -> dict:
    return ctx.catalog.list(_merchant(principal), (), after_id, limit)


@get("/offers/{item_id:str}", sync_to_thread=True)
def get_offer(item_id: Id, principal: Who, ctx: Ctx) -> dict:
    return ctx.catalog.get(_merchant(principal), item_id)


@patch("/offers/{item_id:str}", sync_to_thread=True)
def update_offer(item_id: Id, data: JSONBody[ItemPatch], principal: Who, ctx: Ctx) -> dict:
    """Change some fields; `status: archived` withdraws the offer. A city's suspension stays until the city lifts it."""
    return ctx.catalog.update(_merchant(principal), item_id, data)


@put("/shop", sync_to_thread=True)
def put_shop(data: JSONBody[ShopBody], principal: Who, ctx: Ctx) -> dict:
    """Where the shop is and whether it is open now: every offer follows."""
    return ctx.catalog.set_shop(_merchant(principal), data.location, data.is_open)


@get("/shop", sync_to_thread=True)
def get_shop(principal: Who, ctx: Ctx) -> dict:
    return ctx.catalog.shop(_merchant(principal))


merchants = Router("/v1/merchants", route_handlers=[create_offer, list_offers, get_offer, update_offer, put_shop, get_shop],
                   dependencies={"principal": Provide(terminal_principal)}, tags=["merchants"])  # fmt: skip


# --- /v1/catalog: residents search what they can do with their points ----------------------------


def _resident(principal: Principal) -> str:
    return principal.require("resident").subject


@get("/search", sync_to_thread=True)
def search(
    principal: Who, ctx: Ctx,
    q: SearchText = "",
    city: ListParam = "", category: ListParam = "", kind: ListParam = "", merchant: ListParam = "",
    min_points: PointsFilter = None, max_points: PointsFilter = None,
    available_now: Flag = False,
    sort: Sort = "relevance",
    lat: Latitude = None, lng: Longitude = None, radius_m: RadiusM = None,
    offset: SearchOffset = 0, limit: SearchPageLimit = 20,
    facets: Flag = True,
) -> dict:  # fmt: skip
    """Offers, services and events of the resident's cities: full text (typos, prefixes, accents), filters, facets, sorts."""
    request = SearchRequest(q, _split(city), _split(category), _split(kind), _split(merchant), min_points, max_points,
                            available_now, sort, lat, lng, radius_m, offset, limit, facets)  # fmt: skip
    return ctx.catalog_search.search(_resident(principal), request)


@get("/items/{item_id:str}", sync_to_thread=True)
def catalog_item(item_id: Id, principal: Who, ctx: Ctx) -> dict:
    return ctx.catalog_search.item(_resident(principal), item_id)


catalog = Router("/v1/catalog", route_handlers=[search, catalog_item], dependencies={"principal": Provide(bearer_principal)},
                 tags=["catalog"])  # fmt: skip


# --- /v1/wallet: redeeming, booking, paying -------------------------------------------------------


@post("/redemptions", sync_to_thread=True, status_code=201)
def redeem(data: JSONBody[RedeemBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Redeem an offer, book event seats or pay a municipal service; a cash part of a city's item is paid by card."""
    return ctx.redemptions.redeem(_resident(principal), idempotency_key(key), data.item_id, data.quantity)


@get("/redemptions", sync_to_thread=True)
def list_redemptions(principal: Who, ctx: Ctx, before_us: OptionalTimeUs = None, limit: RedemptionPageLimit = 20) -> dict:
    return ctx.redemptions.list(_resident(principal), before_us, limit)


@get("/redemptions/{redemption_id:str}", sync_to_thread=True)
def get_redemption(redemption_id: Id, principal: Who, ctx: Ctx) -> dict:
    return ctx.redemptions.get(_resident(principal), redemption_id)


@post("/redemptions/{redemption_id:str}/cancel", sync_to_thread=True, status_code=200)
def cancel_redemption(redemption_id: Id, principal: Who, ctx: Ctx) -> dict:
    """Give up a card payment not yet made: the points are released and the unit goes back on sale."""
    return ctx.redemptions.cancel(_resident(principal), redemption_id)


wallet = Router("/v1/wallet", route_handlers=[redeem, list_redemptions, get_redemption, cancel_redemption],
                dependencies={"principal": Provide(bearer_principal)}, tags=["wallet"])  # fmt: skip


# --- /v1/admin: the city's services, events and suspensions --------------------------------------


def _staff(principal: Principal, city: str) -> Owner:
    principal.require("staff").require_city(city)
    return Owner(city, None, principal.actor)


@post("/catalog/{city:str}/services", sync_to_thread=True, status_code=201)
def create_service(city: City, data: JSONBody[ItemSpec], principal: Who, ctx: Ctx) -> dict:
    """A municipal service (pool pass, library fee, registration): points, plus a cash part paid by card."""
    return ctx.catalog.create(_staff(principal, city), "service", data)


@post("/catalog/{city:str}/events", sync_to_thread=True, status_code=201)
def create_event(city: City, data: JSONBody[ItemSpec], principal: Who, ctx: Ctx) -> dict:
    """A cultural or tourist event; `quantity` seats are reserved (VIP) for points, out of `seats_total`."""
    return ctx.catalog.create(_staff(principal, city), "event", data)


@get("/catalog/{city:str}/items", sync_to_thread=True)
def list_city_items(city: City, principal: Who, ctx: Ctx, kind: ListParam = "", after_id: Cursor = "",
                    limit: PageLimit = 50) -> dict:  # fmt: skip
    """Every item of the city: its own services and events, and the offers of its merchants."""
    return ctx.catalog.list(_staff(principal, city), _split(kind), after_id, limit)


@patch("/catalog/{city:str}/items/{item_id:str}", sync_to_thread=True)
def update_city_item(city: City, item_id: Id, data: JSONBody[ItemPatch], principal: Who, ctx: Ctx) -> dict:
    return ctx.catalog.update(_staff(principal, city), item_id, data)


@post("/catalog/{city:str}/items/{item_id:str}/suspension", sync_to_thread=True, status_code=200)
def suspend_item(city: City, item_id: Id, data: JSONBody[SuspensionBody], principal: Who, ctx: Ctx) -> dict:
    """Suspend an item of the city (a merchant's offer too), or lift the suspension."""
    owner = _staff(principal, city)
    return ctx.catalog.suspend(city, item_id, data.suspended, data.reason, owner.actor)


admin = Router("/v1/admin", route_handlers=[create_service, create_event, list_city_items, update_city_item, suspend_item],
               dependencies={"principal": Provide(bearer_principal)}, tags=["admin"])  # fmt: skip


# --- Stripe --------------------------------------------------------------------------------------


@post("/v1/payments/stripe/webhook", status_code=200, tags=["payments"])
async def stripe_webhook(request: Request, ctx: Ctx) -> dict:
    """Payment outcomes from Stripe, checked with the library's signature verification on the raw body."""
    raw = await request.body()
    if not raw:
        raise InvalidRequest("an empty webhook", message="body")
    return await to_thread.run_sync(ctx.payment_events.handle, raw, request.headers.get("stripe-signature"))


MARKETPLACE_ROUTERS = [merchants, catalog, wallet, admin, stripe_webhook]
