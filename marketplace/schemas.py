"""What the marketplace's services answer: catalog items, shops, search results, redemptions, webhook
acknowledgements. The API encodes these as they are and documents them field by field.

Prices are integers: `price_points` plus a cash part in `cash_cents`. Times are µs since the epoch.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ledger.schemas import Cents, Points, Receipt, Result, TimeUs
from marketplace.domain.catalog import Category, ItemStatus, Kind, Lang, Location

RedemptionStatus = Literal["reserved", "awaiting_payment", "completed", "failed", "cancelled", "refunded"]
PaymentState = Literal["pending", "succeeded", "cancelled", "refunded"]
WebhookOutcome = Literal["duplicate", "ignored", "unchanged", "completed", "cancelled", "refunded", "dispute_recorded"]

ItemId = Annotated[str, msgspec.Meta(description="the catalog item's id")]
City = Annotated[str, msgspec.Meta(description="the city (program ledger) the item belongs to")]
MerchantId = Annotated[
    str | None, msgspec.Meta(description="the merchant of an offer; null for a city's service or event")
]
Titles = Annotated[dict[Lang, str], msgspec.Meta(description="the title in each language the owner gave (fr, en, es)")]
Count = Annotated[int, msgspec.Meta(ge=0, description="a number of units")]


class Coordinates(Result, frozen=True):
    """A point on the map, in degrees (WGS 84)."""

    lat: Annotated[float, msgspec.Meta(description="latitude in degrees")]
    lng: Annotated[float, msgspec.Meta(description="longitude in degrees")]


class Item(Result, frozen=True):
    """A catalog item: a merchant's offer, or a city's municipal service or event, with its stock and status."""

    id: ItemId
    kind: Annotated[Kind, msgspec.Meta(description="offer (a merchant's), service or event (the city's)")]
    city: City
    merchant_id: MerchantId
    category: Annotated[Category, msgspec.Meta(description="the program's category of the item")]
    title: Titles
    description: Annotated[dict[Lang, str], msgspec.Meta(description="the description in each language given")]
    price_points: Annotated[int, msgspec.Meta(ge=1, description="points per unit")]
    cash_cents: Annotated[
        int,
        msgspec.Meta(
            ge=0, description="cash part per unit, in cents: at the till for an offer, by card for a city's item"
        ),
    ]
    quantity: Annotated[
        int | None, msgspec.Meta(description="units on sale in all (for an event, seats for points); null: unlimited")
    ]
    remaining: Annotated[int | None, msgspec.Meta(description="units not yet taken; null: unlimited")]
    per_resident_limit: Annotated[
        int | None, msgspec.Meta(description="most units one resident may take; null: no limit")
    ]
    valid_from_us: Annotated[int, msgspec.Meta(ge=0, description="redeemable from, µs since the epoch (0: always)")]
    valid_until_us: Annotated[
        int | None, msgspec.Meta(description="redeemable until, µs since the epoch; null: no end")
    ]
    status: Annotated[ItemStatus, msgspec.Meta(description="the owner's status: draft, published or archived")]
    suspended: Annotated[bool, msgspec.Meta(description="suspended by the city's staff; only they can lift it")]
    location: Annotated[Location | None, msgspec.Meta(description="where it is: the venue, or for an offer its shop")]
    starts_at_us: Annotated[
        int | None, msgspec.Meta(description="an event's start, µs since the epoch; null otherwise")
    ]
    seats_total: Annotated[int | None, msgspec.Meta(description="an event's venue capacity; null otherwise")]
    version: Annotated[int, msgspec.Meta(ge=0, description="raised by every change")]
    updated_at_us: Annotated[TimeUs, msgspec.Meta(description="last change, µs since the epoch")]
    suspended_reason: Annotated[str | None, msgspec.Meta(description="why the staff suspended it, if they said")] = None
    available_now: Annotated[
        bool | None,
        msgspec.Meta(
            description="a resident's view: whether they can redeem it now (in stock, shop open); null in an owner's view"
        ),
    ] = None
    is_open: Annotated[
        bool | None,
        msgspec.Meta(description="a resident's view of an offer: whether its shop is open now; null otherwise"),
    ] = None
    seller_name: Annotated[
        str | None,
        msgspec.Meta(description="a resident's view: the merchant's name, or the city for its own services and events"),
    ] = None


class ItemPage(Result, frozen=True):
    """A page of catalog items, by id."""

    items: Annotated[list[Item], msgspec.Meta(description="the items, in id order")]
    next_after_id: Annotated[
        str | None, msgspec.Meta(description="pass as `after_id` for the next page; null on the last")
    ]


class Shop(Result, frozen=True):
    """A merchant's shop: where its offers are and whether it is open now."""

    location: Annotated[Location | None, msgspec.Meta(description="the shop's place; null when not given")]
    is_open: Annotated[bool, msgspec.Meta(description="open now: its offers can be redeemed")]
    updated_at_us: Annotated[
        int | None, msgspec.Meta(description="last change, µs since the epoch; null if never set")
    ] = None


class SearchHit(Result, frozen=True):
    """What a phone needs to draw a result card; the full item is `GET /v1/catalog/items/{item_id}`."""

    id: ItemId
    kind: Kind
    city: City
    merchant_id: MerchantId
    category: Category
    title: Titles
    price_points: Annotated[int, msgspec.Meta(ge=1, description="points per unit")]
    cash_cents: Annotated[int, msgspec.Meta(ge=0, description="cash part per unit, in cents")]
    in_stock: Annotated[bool, msgspec.Meta(description="units are left")]
    is_open: Annotated[bool, msgspec.Meta(description="its shop is open (a city's items always are)")]
    starts_at_us: Annotated[int | None, msgspec.Meta(description="an event's start, µs since the epoch")]
    address: Annotated[str, msgspec.Meta(description="the shop's or venue's address, as given")]
    location: Annotated[Coordinates | None, msgspec.Meta(description="the shop's or venue's place")]
    distance_m: Annotated[
        float | None, msgspec.Meta(description="meters from the given lat/lng; null without them")
    ] = None


class Facets(Result, frozen=True):
    """How many hits have each value, over all hits (not only this page); empty when facets were not asked for."""

    category: dict[Category, Count] = msgspec.field(default_factory=dict)
    city: dict[str, Count] = msgspec.field(default_factory=dict)
    kind: dict[Kind, Count] = msgspec.field(default_factory=dict)


class SearchResults(Result, frozen=True):
    """A page of search hits among the items offered to the resident now."""

    hits: list[SearchHit]
    total: Annotated[int, msgspec.Meta(ge=0, description="hits in all")]
    offset: Annotated[int, msgspec.Meta(ge=0, description="the offset of this page")]
    limit: Annotated[int, msgspec.Meta(ge=1, description="the page size asked for")]
    next_offset: Annotated[int | None, msgspec.Meta(description="pass as `offset` for the next page; null on the last")]
    facets: Facets
    backend: Annotated[str, msgspec.Meta(description="the search backend that answered (embedded, meilisearch)")]


class CardPayment(Result, frozen=True):
    """The card payment of a city item's cash part (Stripe). An API client confirms the PaymentIntent
    with `client_secret` (Stripe.js or a Stripe SDK); the wallet's pages send the resident to
    `checkout_url`, Stripe's hosted page for the Checkout Session."""

    provider: Literal["stripe"]
    payment_intent_id: Annotated[str | None, msgspec.Meta(description="Stripe's PaymentIntent id (API clients)")]
    client_secret: Annotated[str | None, msgspec.Meta(description="for Stripe.js to confirm the payment")]
    checkout_session_id: Annotated[str | None, msgspec.Meta(description="Stripe's Checkout Session id (the wallet's pages)")]  # fmt: skip
    checkout_url: Annotated[str | None, msgspec.Meta(description="Stripe's hosted page to pay on, while the payment is pending")]  # fmt: skip
    amount_cents: Cents
    state: Annotated[PaymentState, msgspec.Meta(description="pending (to be paid), succeeded, cancelled, or refunded")]


class Redemption(Result, frozen=True):
    """A resident's redemption of an item: what it was, who sells it, what it cost, and where it stands.

    `completed` is done (show the voucher); `awaiting_payment` waits for the card payment of the cash
    part; `failed` gave everything back (`error` says why; a retry with the same Idempotency-Key tries
    again); `cancelled` and `refunded` gave the points back."""

    id: Annotated[str, msgspec.Meta(description="the redemption's id")]
    item_id: ItemId
    kind: Annotated[Kind, msgspec.Meta(description="what was redeemed: an offer, a service or an event")]
    title: Annotated[str, msgspec.Meta(description="the item's title in `title_lang`")]
    title_lang: Annotated[
        Lang, msgspec.Meta(description="the language of `title`: the caller's (Accept-Language) when the item has it")
    ]
    seller_name: Annotated[
        str, msgspec.Meta(description="the merchant's name, or the city for its own services and events")
    ]
    merchant_id: MerchantId
    city: City
    quantity: Annotated[int, msgspec.Meta(ge=1, description="units redeemed")]
    points: Points
    cash_cents: Annotated[
        int, msgspec.Meta(ge=0, description="the cash part in cents: at the till, or by card for a city's item")
    ]
    status: RedemptionStatus
    attempt: Annotated[int, msgspec.Meta(ge=0, description="the attempt of this Idempotency-Key, from 0")]
    error: Annotated[str | None, msgspec.Meta(description="the problem code of a failed attempt")]
    voucher: Annotated[str, msgspec.Meta(description="the code to show the merchant or at the venue")]
    hold_ids: Annotated[list[str], msgspec.Meta(description="the ledger transfer ids of the hold (two across cities)")]
    created_at_us: TimeUs
    updated_at_us: TimeUs
    payment: Annotated[
        CardPayment | None, msgspec.Meta(description="the card payment of the cash part; null without one")
    ] = None
    replayed: Annotated[bool, msgspec.Meta(description="this answers a retry with the same Idempotency-Key")] = False
    receipts: Annotated[list[Receipt], msgspec.Meta(description=(
        "in the answers that move points (redeem, cancel), the resident's receipts of what the ledger holds for "
        "this attempt: its hold, then its capture or release; empty in lists and reads"))] = msgspec.field(default_factory=list)  # fmt: skip


class RedemptionPage(Result, frozen=True):
    """A resident's redemptions, newest first."""

    redemptions: list[Redemption]
    next_before_us: Annotated[
        int | None, msgspec.Meta(description="pass as `before_us` for the next page; null on the last")
    ]


class WebhookAck(Result, frozen=True):
    """What a Stripe event did: Stripe stops resending once answered 2xx."""

    event: Annotated[str, msgspec.Meta(description="Stripe's event id")]
    outcome: Annotated[
        WebhookOutcome,
        msgspec.Meta(
            description="duplicate (seen before), ignored (not ours), unchanged, what it did to the redemption, "
            "or dispute_recorded (a charge.dispute.* event)"
        ),
    ]


class Dispute(Result, kw_only=True, frozen=True):
    """A card payment's dispute (chargeback) as Stripe last told it, with the redemption it paid for."""

    id: Annotated[str, msgspec.Meta(description="Stripe's dispute id (dp_…)")]
    charge_id: Annotated[str, msgspec.Meta(description="the disputed charge (ch_…)")]
    payment_intent_id: Annotated[str | None, msgspec.Meta(description="its payment intent (pi_…)")]
    redemption_id: Annotated[str | None, msgspec.Meta(description="the redemption the payment was for")]
    merchant_id: Annotated[
        str | None, msgspec.Meta(description="the merchant of the redeemed offer (null for a city's own service)")
    ]
    amount_cents: Annotated[Cents, msgspec.Meta(ge=0, description="the disputed amount")]
    currency: Annotated[str, msgspec.Meta(description="ISO 4217, lower case as Stripe writes it")]
    reason: Annotated[str, msgspec.Meta(description="the card holder's reason, as Stripe names it (fraudulent, …)")]
    status: Annotated[
        str, msgspec.Meta(description="Stripe's status: needs_response, under_review, won, lost, warning_…")
    ]
    funds_withdrawn: Annotated[
        bool, msgspec.Meta(description="the amount is withdrawn from the balance (not reinstated)")
    ]
    evidence_due_by_us: Annotated[TimeUs | None, msgspec.Meta(description="last moment to send Stripe evidence")]
    created_at_us: Annotated[TimeUs, msgspec.Meta(description="when the card holder opened it")]
    updated_at_us: Annotated[TimeUs, msgspec.Meta(description="when we last recorded an event of it")]
    closed_at_us: Annotated[TimeUs | None, msgspec.Meta(description="when it was closed (won or lost)")]


class DisputeList(Result, frozen=True):
    """A city's disputes, newest first."""

    city: Annotated[str, msgspec.Meta(description="the city whose card payments they dispute")]
    disputes: list[Dispute]
