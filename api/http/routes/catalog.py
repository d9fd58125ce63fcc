"""/v1/catalog: residents search what they can do with their points."""

from __future__ import annotations

from litestar import Router, get
from litestar.di import Provide

from api.http.auth import Principal, bearer_principal
from api.http.params import (
    Ctx,
    Flag,
    Id,
    Latitude,
    ListParam,
    Longitude,
    PointsFilter,
    RadiusM,
    SearchOffset,
    SearchPageLimit,
    SearchText,
    Sort,
    Who,
    split_list,
)
from marketplace.service_layer.search import SearchRequest


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
    request = SearchRequest(q, split_list(city), split_list(category), split_list(kind), split_list(merchant), min_points, max_points,
                            available_now, sort, lat, lng, radius_m, offset, limit, facets)  # fmt: skip
    return ctx.catalog_search.search(_resident(principal), request)


@get("/items/{item_id:str}", sync_to_thread=True)
def catalog_item(item_id: Id, principal: Who, ctx: Ctx) -> dict:
    return ctx.catalog_search.item(_resident(principal), item_id)


catalog = Router("/v1/catalog", route_handlers=[search, catalog_item], dependencies={"principal": Provide(bearer_principal)},
                 tags=["catalog"])  # fmt: skip


ROUTERS = [catalog]
