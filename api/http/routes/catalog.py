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
from marketplace.schemas import Item, SearchResults
from marketplace.service_layer.search import SearchRequest


def _resident(principal: Principal) -> str:
    return principal.require("resident").subject


@get("/search", sync_to_thread=True, summary="Search the catalog", operation_id="catalog_search",
     problems=("not_opted_in", "invalid_request", "overloaded", "unknown_resident", "resident_erased"))  # fmt: skip
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
) -> SearchResults:  # fmt: skip
    """Search the offers, services and events the resident can redeem now, in their home city and the
    cities they opted in to (`city` narrows to some of them): full text over titles and descriptions
    (typos, prefixes, accents), filters by category, kind, merchant, points and availability, a radius
    around `lat`/`lng`, facet counts, sorts by relevance, price or distance, offset paging. Residents
    only. Changes nothing; when the search backend is down it answers 503 `overloaded`."""
    request = SearchRequest(q, split_list(city), split_list(category), split_list(kind), split_list(merchant), min_points, max_points,
                            available_now, sort, lat, lng, radius_m, offset, limit, facets)  # fmt: skip
    return ctx.catalog_search.search(_resident(principal), request)


@get("/items/{item_id:str}", sync_to_thread=True, summary="Read an item offered to the resident",
     operation_id="catalog_get_item", problems=("unknown_item", "unknown_resident", "resident_erased"))  # fmt: skip
def catalog_item(item_id: Id, principal: Who, ctx: Ctx) -> Item:
    """One published item of the resident's cities within its dates, with `available_now` (in stock,
    shop open); an offer shows its shop's place. Anything else is 404 `unknown_item`. Changes nothing."""
    return ctx.catalog_search.item(_resident(principal), item_id)


catalog = Router("/v1/catalog", route_handlers=[search, catalog_item], dependencies={"principal": Provide(bearer_principal)},
                 tags=["catalog"])  # fmt: skip


ROUTERS = [catalog]
