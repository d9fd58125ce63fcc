"""Catalog items: what a merchant offers, what a city charges for, the events it runs; their rules.

Three kinds share one shape. An **offer** belongs to a merchant; its location and opening status are
the shop's. A **service** (a pool pass, a library fee, a sports registration) and an **event** (a
concert, a guided tour) belong to the city, which gives their venue; an event's `quantity` is the
seats reserved (VIP) for points, out of the venue's `seats_total`.

Prices are integers: `price_points` plus an optional cash part in cents. At a merchant the cash part
is paid at the till; for the city's services and events it is a card payment (Stripe). No I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from community.domain.program import CATEGORIES
from ledger.domain import accounts
from marketplace.domain.errors import InvalidItem, ItemUnavailable, SoldOut

Kind = Literal["offer", "service", "event"]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]
CITY_KINDS = ("service", "event")
LANGUAGES: tuple[Lang, ...] = ("fr", "en", "es")
MAX_PRICE_POINTS = 10**9
MAX_CASH_CENTS = 1_000_000  # ten thousand dollars for one unit: above is a typo
MAX_QUANTITY = 1_000_000
MAX_PER_RESIDENT = 1_000
MAX_UNITS_PER_REDEMPTION = 10
MAX_ITEMS_PER_OWNER = 2_000  # offers per merchant, services and events per city
FOREVER_US = 2**62
MICRODEGREES = 1_000_000

Lang = Literal["fr", "en", "es"]
assert Lang.__args__ == LANGUAGES  # type: ignore[attr-defined]
ItemStatus = Literal["draft", "published", "archived"]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=4_000)]
TimeUs = Annotated[int, msgspec.Meta(ge=0, le=FOREVER_US)]
Category = Literal["food", "retail", "services", "culture", "sports", "tourism"]
assert set(Category.__args__) == set(CATEGORIES)  # type: ignore[attr-defined]


class Location(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A place on the map; coordinates in degrees (WGS 84). Stored as integer microdegrees."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lng: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    address: Annotated[str, msgspec.Meta(max_length=300)] = ""


class ItemSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an owner says about an item; the body of `POST /v1/merchants/offers` and the city's item endpoints."""

    title: Annotated[dict[Lang, Title], msgspec.Meta(min_length=1, description="the title by language: fr, en, es")]
    category: Category
    price_points: Annotated[int, msgspec.Meta(ge=1, le=MAX_PRICE_POINTS)]
    description: dict[Lang, Description] = msgspec.field(default_factory=dict)
    cash_cents: Annotated[int, msgspec.Meta(ge=0, le=MAX_CASH_CENTS)] = 0
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] | None = None  # None: unlimited
    per_resident_limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PER_RESIDENT)] | None = None
    valid_from_us: TimeUs | None = None
    valid_until_us: TimeUs | None = None
    status: Literal["draft", "published"] = "published"
    location: Location | None = None  # services and events: the venue (offers are at the shop)
    starts_at_us: TimeUs | None = None  # events only
    seats_total: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] | None = None  # events: the venue's capacity

    def check(self, kind: str) -> None:
        """Rules across fields, per kind. Raises InvalidItem."""
        if kind not in KINDS:
            raise InvalidItem(
                f"kind must be one of {KINDS}", field="kind", reason="not_one_of", allowed=", ".join(KINDS)
            )
        if (
            self.valid_from_us is not None
            and self.valid_until_us is not None
            and self.valid_until_us <= self.valid_from_us
        ):
            raise InvalidItem(
                "valid_until_us must be after valid_from_us",
                field="valid_until_us",
                reason="must_be_after",
                other_field="valid_from_us",
            )
        if kind == "offer" and (
            self.location is not None or self.starts_at_us is not None or self.seats_total is not None
        ):
            raise InvalidItem(
                "an offer is at its shop (PUT /v1/merchants/shop); it has no venue, start or seats",
                field="location",
                reason="offer_at_shop",
            )
        if kind == "event":
            if self.starts_at_us is None or self.quantity is None:
                raise InvalidItem(
                    "an event needs starts_at_us and a quantity of seats for points",
                    field="starts_at_us",
                    reason="event_needs_seats",
                )
            if self.seats_total is not None and self.seats_total < self.quantity:
                raise InvalidItem(
                    "seats reserved for points cannot exceed the venue's seats",
                    field="quantity",
                    reason="must_not_exceed",
                    other_field="seats_total",
                )
        elif self.starts_at_us is not None or self.seats_total is not None:
            raise InvalidItem(
                "only events have starts_at_us and seats_total", field="starts_at_us", reason="events_only"
            )
        if (
            self.per_resident_limit is not None
            and self.quantity is not None
            and self.per_resident_limit > self.quantity
        ):
            raise InvalidItem(
                "per_resident_limit cannot exceed quantity",
                field="per_resident_limit",
                reason="must_not_exceed",
                other_field="quantity",
            )


class ItemPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A partial change; absent fields keep their value, `null` clears an optional one."""

    title: Annotated[dict[Lang, Title], msgspec.Meta(min_length=1)] | msgspec.UnsetType = msgspec.UNSET
    category: Category | msgspec.UnsetType = msgspec.UNSET
    price_points: Annotated[int, msgspec.Meta(ge=1, le=MAX_PRICE_POINTS)] | msgspec.UnsetType = msgspec.UNSET
    description: dict[Lang, Description] | msgspec.UnsetType = msgspec.UNSET
    cash_cents: Annotated[int, msgspec.Meta(ge=0, le=MAX_CASH_CENTS)] | msgspec.UnsetType = msgspec.UNSET
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] | msgspec.UnsetType | None = msgspec.UNSET
    per_resident_limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PER_RESIDENT)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    valid_from_us: TimeUs | msgspec.UnsetType | None = msgspec.UNSET
    valid_until_us: TimeUs | msgspec.UnsetType | None = msgspec.UNSET
    status: ItemStatus | msgspec.UnsetType = msgspec.UNSET
    location: Location | msgspec.UnsetType | None = msgspec.UNSET
    starts_at_us: TimeUs | msgspec.UnsetType | None = msgspec.UNSET
    seats_total: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not msgspec.UNSET}


@dataclass(frozen=True)
class Item:
    """A stored catalog item, as the rules see it."""

    id: str
    city: str
    kind: str
    merchant_id: str | None
    category: str
    title: dict[Lang, str]
    description: dict[Lang, str]
    price_points: int
    cash_cents: int
    quantity: int | None
    remaining: int | None
    per_resident_limit: int | None
    valid_from_us: int
    valid_until_us: int
    status: str
    suspended: bool
    lat_e6: int | None
    lng_e6: int | None
    address: str
    starts_at_us: int | None
    seats_total: int | None
    version: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Item:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def sold(self) -> int:
        return 0 if self.quantity is None else self.quantity - (self.remaining or 0)

    @property
    def closes_at_us(self) -> int:
        """Redeemable until: the end of its dates, or for an event its start, whichever is first."""
        return min(self.valid_until_us, self.starts_at_us if self.starts_at_us is not None else FOREVER_US)

    @property
    def in_stock(self) -> bool:
        return self.remaining is None or self.remaining > 0

    @property
    def indexable(self) -> bool:
        """Search holds published items that no city staff suspended; dates and merchants are filtered at query time."""
        return self.status == "published" and not self.suspended

    @property
    def card_payment(self) -> bool:
        """The cash part of a city's service or event is paid by card; a merchant's at its till."""
        return self.kind in CITY_KINDS and self.cash_cents > 0

    def credit_account(self) -> str:
        if self.kind != "offer":
            return accounts.SERVICES_REVENUE
        assert self.merchant_id is not None, "an offer is a merchant's"
        return accounts.merchant_redeemed(self.merchant_id)

    def transfer_kind(self) -> str:
        return "redeem" if self.kind == "offer" else "service"


def title_in(titles: dict[Lang, str], lang: str) -> tuple[Lang, str]:
    """The title in `lang`, else in French (the program's language), else in any language given; and its language."""
    candidates: tuple[Lang, ...] = (*(known for known in LANGUAGES if known == lang), "fr", *LANGUAGES)
    for candidate in candidates:
        if titles.get(candidate):
            return candidate, titles[candidate]
    raise AssertionError("an item has a title in at least one language")


def validity(spec: ItemSpec) -> tuple[int, int]:
    """The dates an owner gave, with open ends made explicit."""
    return spec.valid_from_us or 0, spec.valid_until_us if spec.valid_until_us is not None else FOREVER_US


def microdegrees(degrees: float) -> int:
    """Coordinates are kept as integers; a microdegree is about 11 cm, finer than any shop door."""
    return round(degrees * MICRODEGREES)


def check_redeemable(item: Item, now_us: int, shop_open: bool, merchant_approved: bool) -> None:
    """Raise unless a resident can take this item now (stock is checked again, atomically, when reserving)."""
    if not item.indexable or not merchant_approved:
        raise ItemUnavailable("this item is not offered", item_id=item.id)
    if not item.valid_from_us <= now_us < item.closes_at_us:
        raise ItemUnavailable("this item is outside its dates", item_id=item.id)
    if not shop_open:
        raise ItemUnavailable("the shop is closed", item_id=item.id)
    if not item.in_stock:
        raise SoldOut("sold out", item_id=item.id)


@dataclass(frozen=True)
class Price:
    points: int
    cash_cents: int


def price_for(item: Item, units: int) -> Price:
    """The price of `units` units; integers only, so no rounding happens."""
    if type(units) is not int or not 1 <= units <= MAX_UNITS_PER_REDEMPTION:
        raise InvalidItem(
            f"quantity is 1 to {MAX_UNITS_PER_REDEMPTION} units",
            field="quantity",
            reason="out_of_range",
            min_value=1,
            max_value=MAX_UNITS_PER_REDEMPTION,
        )
    price = Price(item.price_points * units, item.cash_cents * units)
    assert price.points > 0 and price.cash_cents >= 0
    return price


def search_document(item: Item, shop: dict[str, Any] | None) -> dict[str, Any]:
    """The document both search backends index. Flat, so every backend filters on the same names.

    Offers take their place and opening status from the shop; a city's items are at their venue
    and always open. `version` lets a backend refuse an older update than the one it holds.
    """
    lat_e6, lng_e6 = (shop["lat_e6"], shop["lng_e6"]) if item.kind == "offer" and shop else (item.lat_e6, item.lng_e6)
    document = {
        "id": item.id, "version": item.version, "kind": item.kind, "city": item.city,
        "merchant_id": item.merchant_id or "", "category": item.category,
        "price_points": item.price_points, "cash_cents": item.cash_cents,
        "valid_from_us": item.valid_from_us, "valid_until_us": item.closes_at_us,
        "in_stock": item.in_stock, "is_open": bool(shop["is_open"]) if item.kind == "offer" and shop else item.kind != "offer",
        "starts_at_us": item.starts_at_us,
        "address": (shop or {}).get("address", "") if item.kind == "offer" else item.address,
    }  # fmt: skip
    for lang in LANGUAGES:
        document[f"title_{lang}"] = item.title.get(lang, "")
        document[f"description_{lang}"] = item.description.get(lang, "")
    if lat_e6 is not None and lng_e6 is not None:
        document["_geo"] = {"lat": lat_e6 / MICRODEGREES, "lng": lng_e6 / MICRODEGREES}
    return document


EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine), as Meilisearch computes `_geoDistance`."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))
