"""Searching the catalog as a resident: the cities they belong to, the items offered now, one backend.

The service turns a resident's request into a `SearchQuery` scoped to their home city and the cities
they opted in to, filtered to items valid now and not from a merchant that is pending or suspended
(merchant status lives in the merchants table, so it is applied at query time, never stale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from sqlalchemy import Engine

from community.domain.errors import NotOptedIn
from community.domain.program import CATEGORIES
from community.service_layer.residents import Residents
from ledger.domain.errors import InvalidRequest, LedgerError
from marketplace import schemas
from marketplace.adapters import store
from marketplace.domain.catalog import KINDS, LANGUAGES, Category, Item, Kind, check_redeemable
from marketplace.domain.errors import SearchUnavailable, UnknownItem
from marketplace.domain.search import (
    MAX_EXCLUDED,
    MAX_FILTER_VALUES,
    MAX_OFFSET,
    MAX_QUERY_CHARS,
    MAX_RADIUS_M,
    MAX_SEARCH_PAGE,
    SORTS,
    GeoPoint,
    SearchBackend,
    SearchQuery,
)
from marketplace.service_layer.catalog import item_view, location_of


@dataclass(frozen=True)
class SearchRequest:
    """A resident's search, as the API received it (already typed; bounds are checked here)."""

    q: str = ""
    cities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    merchant_ids: tuple[str, ...] = ()
    min_points: int | None = None
    max_points: int | None = None
    available_now: bool = False
    sort: str = "relevance"
    lat: float | None = None
    lng: float | None = None
    radius_m: int | None = None
    offset: int = 0
    limit: int = 20
    facets: bool = True


def _check(request: SearchRequest) -> None:
    if len(request.q) > MAX_QUERY_CHARS:
        raise InvalidRequest(
            f"q: at most {MAX_QUERY_CHARS} characters", field="q", reason="too_long", max_chars=MAX_QUERY_CHARS
        )
    if any(
        len(v) > MAX_FILTER_VALUES for v in (request.cities, request.categories, request.kinds, request.merchant_ids)
    ):
        raise InvalidRequest(
            f"at most {MAX_FILTER_VALUES} values per filter",
            field="filters",
            reason="too_many",
            max_items=MAX_FILTER_VALUES,
        )
    if set(request.categories) - set(CATEGORIES):
        raise InvalidRequest(
            f"categories are {CATEGORIES}", field="category", reason="not_one_of", allowed=", ".join(CATEGORIES)
        )
    if set(request.kinds) - set(KINDS):
        raise InvalidRequest(f"kinds are {KINDS}", field="kind", reason="not_one_of", allowed=", ".join(KINDS))
    if request.sort not in SORTS:
        raise InvalidRequest(f"sort: one of {SORTS}", field="sort", reason="not_one_of", allowed=", ".join(SORTS))
    if (request.lat is None) != (request.lng is None) or (
        request.lat is not None
        and request.lng is not None
        and not (-90 <= request.lat <= 90 and -180 <= request.lng <= 180)
    ):
        raise InvalidRequest("lat and lng go together, in degrees", field="lat", reason="lat_lng_together")
    if (request.sort == "distance" or request.radius_m is not None) and request.lat is None:
        raise InvalidRequest("sorting by distance or a radius needs lat and lng", field="lat", reason="needs_location")
    if request.radius_m is not None and not 1 <= request.radius_m <= MAX_RADIUS_M:
        raise InvalidRequest(
            f"radius_m: 1 to {MAX_RADIUS_M} meters",
            field="radius_m",
            reason="out_of_range",
            min_value=1,
            max_value=MAX_RADIUS_M,
        )
    if not 1 <= request.limit <= MAX_SEARCH_PAGE:
        raise InvalidRequest(
            f"limit is 1 to {MAX_SEARCH_PAGE}",
            field="limit",
            reason="out_of_range",
            min_value=1,
            max_value=MAX_SEARCH_PAGE,
        )
    if not 0 <= request.offset <= MAX_OFFSET:
        raise InvalidRequest(
            f"offset is 0 to {MAX_OFFSET}", field="offset", reason="out_of_range", min_value=0, max_value=MAX_OFFSET
        )
    if request.min_points is not None and request.max_points is not None and request.min_points > request.max_points:
        raise InvalidRequest(
            "min_points is above max_points", field="min_points", reason="must_not_exceed", other_field="max_points"
        )


class CatalogSearch:
    def __init__(self, engine: Engine, backend: SearchBackend, residents: Residents, clock: Callable[[], int]) -> None:
        self.engine, self.backend, self.residents, self.clock = engine, backend, residents, clock

    def cities_of(self, resident_id: str) -> tuple[str, ...]:
        return (self.residents.get(resident_id)["city"], *self.residents.opt_ins(resident_id))

    def search(self, resident_id: str, request: SearchRequest) -> schemas.SearchResults:
        _check(request)
        mine = self.cities_of(resident_id)
        outside = [c for c in request.cities if c not in mine]
        if outside:
            raise NotOptedIn(f"the resident has not opted in to {outside[0]}", city=outside[0])
        cities = tuple(request.cities) or mine
        with self.engine.connect() as conn:
            excluded = store.unapproved_merchants(conn, cities, MAX_EXCLUDED)
        origin = GeoPoint(request.lat, request.lng) if request.lat is not None and request.lng is not None else None
        query = SearchQuery(
            cities=cities, now_us=self.clock(), text=request.q, categories=request.categories, kinds=request.kinds,
            merchant_ids=request.merchant_ids, exclude_merchants=tuple(excluded), min_points=request.min_points,
            max_points=request.max_points, available_now=request.available_now, sort=request.sort, origin=origin,
            radius_m=request.radius_m, offset=request.offset, limit=request.limit, facets=request.facets,
        )  # fmt: skip
        try:
            result = self.backend.search(query)
        except LedgerError:
            raise
        except Exception as exc:  # the backend is down or broken: search degrades, nothing else does
            raise SearchUnavailable(f"search is unavailable: {type(exc).__name__}", retry_after_seconds=5) from exc
        hits = [_hit(document) for document in result.hits]
        following = request.offset + len(hits)
        more = following < result.total and following <= MAX_OFFSET and hits
        return schemas.SearchResults(hits=hits, total=result.total, offset=request.offset, limit=request.limit,
                                     next_offset=following if more else None, facets=_facets(result.facets),
                                     backend=self.backend.name)  # fmt: skip

    def item(self, resident_id: str, item_id: str) -> schemas.Item:
        """One item as a resident sees it, only if it is offered to them now."""
        mine = self.cities_of(resident_id)
        with self.engine.connect() as conn:
            row = store.item(conn, item_id) if isinstance(item_id, str) else None
            if row is None or row["city"] not in mine:
                raise UnknownItem("no such item", item_id=item_id)
            shop = store.shop(conn, row["merchant_id"])
            approved = row["merchant_id"] is None or store.merchant_status(conn, row["merchant_id"]) == "approved"
            seller = store.redeemed_items(conn, {item_id})[item_id]["merchant_name"] or row["city"]
        item = Item.from_row(row)
        if not item.indexable or not approved or not item.valid_from_us <= self.clock() < item.closes_at_us:
            raise UnknownItem("no such item", item_id=item_id)
        view = msgspec.structs.replace(item_view(row), available_now=_available(item, self.clock(), shop),
                                       seller_name=seller)  # fmt: skip
        if item.kind == "offer":  # an offer is at its shop
            view = msgspec.structs.replace(view, location=location_of(shop) if shop else None,
                                           is_open=shop is None or bool(shop["is_open"]))  # fmt: skip
        return view


def _available(item: Item, now_us: int, shop: dict[str, Any] | None) -> bool:
    try:
        check_redeemable(item, now_us, shop is None or bool(shop["is_open"]), True)
    except LedgerError:
        return False
    return True


def _hit(document: dict[str, Any]) -> schemas.SearchHit:
    """What a phone needs to draw a result card; the full item is one GET away."""
    geo = document.get("_geo")
    return schemas.SearchHit(
        id=document["id"], kind=document["kind"], city=document["city"], merchant_id=document.get("merchant_id") or None,
        category=document["category"], title={lang: document[f"title_{lang}"] for lang in LANGUAGES if document.get(f"title_{lang}")},
        price_points=document["price_points"], cash_cents=document["cash_cents"], in_stock=document["in_stock"],
        is_open=document["is_open"], starts_at_us=document.get("starts_at_us"), address=document.get("address") or "",
        location=None if geo is None else schemas.Coordinates(lat=geo["lat"], lng=geo["lng"]),
        distance_m=document.get("distance_m"),
    )  # fmt: skip


def _facets(counts: dict[str, dict[str, int]]) -> schemas.Facets:
    """The backend's counts per facet; a facet not asked for stays empty."""
    # The backends count the values of indexed documents, whose category and kind the catalog
    # validated before indexing them: the keys are a Category and a Kind.
    return schemas.Facets(
        category=cast("dict[Category, int]", counts.get("category", {})),
        city=counts.get("city", {}),
        kind=cast("dict[Kind, int]", counts.get("kind", {})),
    )
