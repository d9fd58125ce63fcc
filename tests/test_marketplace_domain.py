"""The marketplace's pure rules: item validation per kind, prices on integers, availability, documents, distance."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from marketplace.domain.catalog import (
    FOREVER_US,
    MAX_UNITS_PER_REDEMPTION,
    InvalidItem,
    Item,
    ItemSpec,
    check_redeemable,
    distance_m,
    price_for,
    search_document,
)
from marketplace.domain.errors import ItemUnavailable, SoldOut
from marketplace.domain.search import MAX_QUERY_WORDS, query_words

ITEM = Item(id="i1", city="brossard", kind="offer", merchant_id="m1", category="food", title={"fr": "Pain"}, description={},
            price_points=150, cash_cents=250, quantity=5, remaining=2, per_resident_limit=None, valid_from_us=100,
            valid_until_us=FOREVER_US, status="published", suspended=False, lat_e6=None, lng_e6=None, address="",
            starts_at_us=None, seats_total=None, version=3)  # fmt: skip


def test_prices_are_integer_multiples_and_bounded():
    assert price_for(ITEM, 3) == type(price_for(ITEM, 1))(450, 750)
    for units in (0, MAX_UNITS_PER_REDEMPTION + 1, 1.0, True):
        with pytest.raises(InvalidItem):
            price_for(ITEM, units)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "fields"), [
    ("offer", {"starts_at_us": 5}), ("offer", {"location": {"lat": 1, "lng": 1}}), ("event", {}),
    ("event", {"starts_at_us": 5}), ("event", {"starts_at_us": 5, "quantity": 10, "seats_total": 9}),
    ("service", {"seats_total": 9}), ("offer", {"quantity": 2, "per_resident_limit": 3}),
    ("offer", {"valid_from_us": 9, "valid_until_us": 9}), ("gift", {}),
])  # fmt: skip
def test_items_are_checked_per_kind(kind, fields):
    spec = msgspec.convert({"title": {"fr": "x"}, "category": "food", "price_points": 1} | fields, ItemSpec)
    with pytest.raises(InvalidItem):
        spec.check(kind)


def test_availability():
    check_redeemable(ITEM, 100, shop_open=True, merchant_approved=True)
    for item, now, shop_open, approved, error in [
        (ITEM, 99, True, True, ItemUnavailable), (ITEM, 100, False, True, ItemUnavailable),
        (ITEM, 100, True, False, ItemUnavailable), (dataclasses.replace(ITEM, suspended=True), 100, True, True, ItemUnavailable),
        (dataclasses.replace(ITEM, status="draft"), 100, True, True, ItemUnavailable),
        (dataclasses.replace(ITEM, kind="event", starts_at_us=200), 200, True, True, ItemUnavailable),
        (dataclasses.replace(ITEM, remaining=0), 100, True, True, SoldOut),
    ]:  # fmt: skip
        with pytest.raises(error):
            check_redeemable(item, now, shop_open, approved)


def test_search_documents_follow_the_shop_and_close_events_at_their_start():
    shop = {"lat_e6": 45_500_000, "lng_e6": -73_600_000, "address": "1 rue Principale", "is_open": False}
    document = search_document(ITEM, shop)
    assert document["_geo"] == {"lat": 45.5, "lng": -73.6} and document["is_open"] is False and document["version"] == 3
    assert document["title_fr"] == "Pain" and document["title_en"] == "" and document["in_stock"]
    event = dataclasses.replace(ITEM, kind="event", merchant_id=None, starts_at_us=500, lat_e6=1, lng_e6=2)
    assert search_document(event, None)["valid_until_us"] == 500 and search_document(event, None)["is_open"]


def test_distance_and_query_limits():
    assert 230_000 < distance_m(45.5017, -73.5673, 46.8139, -71.2080) < 236_000  # Montréal – Québec
    assert len(query_words(" ".join(f"mot{n}" for n in range(50)))) == MAX_QUERY_WORDS
