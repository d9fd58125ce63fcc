"""The marketplace through HTTP: merchants' signed catalog, the city's items, residents' search and
redemptions, stock limits under concurrency; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from api.http.app import create_app
from community.domain.program import CATEGORIES
from ledger.adapters import journal
from ledger.domain.errors import LedgerError
from ledger.service_layer.audit import verify_database
from marketplace.adapters.tables import CatalogItemRow, SearchOutboxRow
from marketplace.domain.catalog import KINDS, ItemSpec
from marketplace.schemas import Item, ItemPage, Redemption, RedemptionPage, SearchResults, Shop
from marketplace.service_layer.catalog import Owner
from tests.test_api import assert_problem
from tests.world import World, standard_world

DAY_US = 86_400_000_000
CROISSANT = {"title": {"fr": "Croissant au beurre", "en": "Butter croissant"},
             "description": {"fr": "Cuit ce matin, pur beurre.", "en": "Baked this morning."},
             "category": "food", "price_points": 100, "quantity": 2, "per_resident_limit": 1}  # fmt: skip
POOL = {"title": {"fr": "Abonnement piscine (10 entrées)", "en": "Pool pass (10 visits)"}, "category": "sports",
        "price_points": 400, "location": {"lat": 45.44, "lng": -73.45, "address": "Centre aquatique"}}  # fmt: skip


@pytest.fixture
def world(ctx) -> World:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)


def decoded(response, type_: type[msgspec.Struct], status: int = 200):
    """The body as the API's result type: strictly, so a field the schema does not declare fails."""
    assert response.status_code == status, response.text
    return msgspec.json.decode(response.content, type=type_)


def offer(world: World, terminal: str = "boulangerie", body: dict | None = None) -> Item:
    return decoded(
        world.pos(terminal, "POST", "/v1/merchants/offers", body or CROISSANT, key=uuid.uuid4().hex), Item, 201
    )


def city_item(world: World, kind: str, body: dict, key: str | None = None) -> Item:
    created = world.bearer(
        "staff-brossard", "POST", f"/v1/admin/catalog/brossard/{kind}", body, key=key or uuid.uuid4().hex
    )
    return decoded(created, Item, 201)


def search(world: World, who: str, query: str = "", **params) -> SearchResults:
    response = world.client.get("/v1/catalog/search", params={"q": query, **params},
                                 headers={"Authorization": f"Bearer {world.residents[who].token}"})  # fmt: skip
    return decoded(response, SearchResults)


def hit_ids(world: World, who: str, query: str = "", **params) -> list[str]:
    return [hit.id for hit in search(world, who, query, **params).hits]


def redeem(world: World, who: str, item_id: str, key: str, quantity: int = 1):
    return world.bearer(who, "POST", "/v1/wallet/redemptions", {"item_id": item_id, "quantity": quantity}, key=key)


def counts(world: World) -> tuple[int, int, int]:
    with world.ctx.engine.connect() as conn:
        items = conn.scalar(select(func.count()).select_from(CatalogItemRow))
        outbox = conn.scalar(select(func.count()).select_from(SearchOutboxRow))
        entries = sum(h.sequence for h in journal.heads(conn).values())
    return items, outbox, entries


# --- the catalog ----------------------------------------------------------------------------------


def test_merchant_publishes_and_a_resident_finds_it_as_they_type(world: World) -> None:
    created = offer(world)
    assert created.status == "published" and created.remaining == 2 and created.merchant_id == "boulangerie"
    shop = world.pos(
        "boulangerie", "PUT", "/v1/merchants/shop", {"is_open": True, "location": {"lat": 45.45, "lng": -73.46}}
    )
    assert shop.status_code == 200, shop.text
    for query in ("croissant", "Croissant", "croisant", "crois", "beurre", "butter"):
        assert hit_ids(world, "alice", query) == [created.id], query
    found = search(world, "alice", "crois", lat=45.4501, lng=-73.4601, sort="distance")
    assert found.hits[0].distance_m < 50 and found.facets.category == {"food": 1}
    assert found.hits[0].title == CROISSANT["title"] and found.total == 1
    item = decoded(world.bearer("alice", "GET", f"/v1/catalog/items/{created.id}"), Item)
    assert item.available_now and item.location.lat == 45.45 and item.is_open
    assert item.seller_name == "Commerce boulangerie"  # the resident sees who sells it
    assert decoded(world.pos("boulangerie", "GET", "/v1/merchants/shop"), Shop).location.lat == 45.45
    listed = decoded(world.pos("boulangerie", "GET", "/v1/merchants/offers"), ItemPage).items
    assert [i.id for i in listed] == [created.id] and listed[0].available_now is None


def test_drafts_archived_and_future_offers_are_not_found(world: World, clock) -> None:
    draft = offer(world, body=CROISSANT | {"status": "draft"})
    later = offer(world, body=CROISSANT | {"valid_from_us": clock() + DAY_US})
    live = offer(world)
    assert hit_ids(world, "alice", "croissant") == [live.id]
    archived = world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{live.id}", {"status": "archived"})
    assert decoded(archived, Item).status == "archived"
    assert hit_ids(world, "alice", "croissant") == []
    published = world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{draft.id}", {"status": "published"})
    assert published.status_code == 200
    assert hit_ids(world, "alice", "croissant") == [draft.id]
    clock.advance(DAY_US // 1_000_000 + 1)
    assert set(hit_ids(world, "alice", "croissant")) == {draft.id, later.id}
    assert_problem(world.bearer("alice", "GET", f"/v1/catalog/items/{live.id}"), 404, "unknown_item")


BAD_OFFERS = [
    (CROISSANT | {"price_points": 0}, 400, "validation_error"),
    (CROISSANT | {"price_points": "100"}, 400, "validation_error"),  # strings are not numbers
    (CROISSANT | {"price_points": 1.5}, 400, "validation_error"),
    (CROISSANT | {"colour": "red"}, 400, "validation_error"),  # unknown field
    (CROISSANT | {"title": {}}, 400, "validation_error"),
    (CROISSANT | {"title": {"de": "Hörnchen"}}, 400, "validation_error"),
    (CROISSANT | {"title": {"fr": "x" * 201}}, 400, "validation_error"),
    (CROISSANT | {"category": "weapons"}, 400, "validation_error"),
    (CROISSANT | {"cash_cents": -1}, 400, "validation_error"),
    (CROISSANT | {"quantity": 0}, 400, "validation_error"),
    (CROISSANT | {"valid_from_us": 10, "valid_until_us": 5}, 422, "invalid_item"),
    (CROISSANT | {"per_resident_limit": 3}, 422, "invalid_item"),  # above the quantity
    (CROISSANT | {"starts_at_us": 10}, 422, "invalid_item"),  # offers are not events
    (CROISSANT | {"location": {"lat": 45.0, "lng": -73.0}}, 422, "invalid_item"),  # offers are at the shop
    (CROISSANT | {"location": {"lat": 95.0, "lng": -73.0}}, 400, "validation_error"),
]  # fmt: skip


def test_bad_offers_are_problems_and_change_nothing(world: World) -> None:
    before = counts(world)
    for body, status, code in BAD_OFFERS:  # one world for all: each refusal must leave it as it was
        assert_problem(
            world.pos("boulangerie", "POST", "/v1/merchants/offers", body, key=uuid.uuid4().hex), status, code
        )
        assert counts(world) == before, body


def test_bad_patches_and_foreign_offers_change_nothing(world: World) -> None:
    mine = offer(world)
    before = counts(world)
    assert_problem(
        world.pos("librairie", "PATCH", f"/v1/merchants/offers/{mine.id}", {"price_points": 1}), 403, "wrong_tenant"
    )
    assert_problem(world.pos("cafe-delson", "GET", f"/v1/merchants/offers/{mine.id}"), 403, "wrong_tenant")
    assert_problem(
        world.pos("boulangerie", "PATCH", "/v1/merchants/offers/i000", {"price_points": 1}), 404, "unknown_item"
    )
    assert_problem(world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{mine.id}", {"price_points": -5}), 400,
                   "validation_error")  # fmt: skip
    assert_problem(world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{mine.id}", {"per_resident_limit": 5}), 422,
                   "invalid_item")  # fmt: skip
    unsigned = world.client.post("/v1/merchants/offers", json=CROISSANT)
    assert_problem(unsigned, 401, "invalid_signature")
    staff = world.bearer("staff-brossard", "POST", "/v1/admin/catalog/delson/services", POOL, key="s")
    assert_problem(staff, 403, "wrong_tenant")
    resident = world.bearer("alice", "POST", "/v1/admin/catalog/brossard/services", POOL, key="s")
    assert_problem(resident, 403, "forbidden")
    assert counts(world) == before
    assert decoded(world.pos("boulangerie", "GET", f"/v1/merchants/offers/{mine.id}"), Item).price_points == 100


def test_city_services_events_and_suspension_by_staff(world: World, clock) -> None:
    pool = city_item(world, "services", POOL)
    concert = {"title": {"fr": "Concert au parc", "en": "Concert in the park"}, "category": "culture", "price_points": 250,
               "quantity": 20, "seats_total": 500, "starts_at_us": clock() + 7 * DAY_US}  # fmt: skip
    event = city_item(world, "events", concert)
    assert event.kind == "event" and event.seats_total == 500 and event.remaining == 20
    bad_event = world.bearer(
        "staff-brossard", "POST", "/v1/admin/catalog/brossard/events", concert | {"seats_total": 10}, key="e1"
    )
    assert_problem(bad_event, 422, "invalid_item")
    assert_problem(world.bearer("staff-brossard", "POST", "/v1/admin/catalog/brossard/events", concert | {"quantity": None},
                                key="e2"), 422, "invalid_item")  # fmt: skip
    croissant = offer(world)
    assert set(hit_ids(world, "alice", "")) == {pool.id, event.id, croissant.id}
    assert hit_ids(world, "alice", "piscine", kind="service") == [pool.id]

    suspended = world.bearer("staff-brossard", "POST", f"/v1/admin/catalog/brossard/items/{croissant.id}/suspension",
                             {"suspended": True, "reason": "plainte"})  # fmt: skip
    assert decoded(suspended, Item).suspended and decoded(suspended, Item).suspended_reason == "plainte"
    assert hit_ids(world, "alice", "croissant") == []
    assert_problem(redeem(world, "alice", croissant.id, "r1"), 409, "item_unavailable")
    # The merchant cannot lift it by republishing.
    world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{croissant.id}", {"status": "published"})
    assert hit_ids(world, "alice", "croissant") == []
    world.bearer(
        "staff-brossard", "POST", f"/v1/admin/catalog/brossard/items/{croissant.id}/suspension", {"suspended": False}
    )
    assert hit_ids(world, "alice", "croissant") == [croissant.id]
    listed = decoded(
        world.bearer("staff-brossard", "GET", "/v1/admin/catalog/brossard/items?kind=offer"), ItemPage
    ).items
    assert [i.id for i in listed] == [croissant.id]
    audit = world.bearer("staff-brossard", "GET", "/v1/admin/audit/brossard").json()["entries"]
    assert {"catalog.suspend", "catalog.reinstate", "catalog.service.create"} <= {e["action"] for e in audit}


def test_creating_an_item_is_idempotent(world: World, clock) -> None:
    """A retry with the same key returns the item first made and adds nothing; another body is a conflict."""
    first = decoded(world.pos("boulangerie", "POST", "/v1/merchants/offers", CROISSANT, key="o1"), Item, 201)
    before = counts(world)
    again = world.pos(
        "boulangerie#1", "POST", "/v1/merchants/offers", CROISSANT, key="o1"
    )  # the merchant's other terminal
    assert decoded(again, Item, 201) == first and counts(world) == before
    assert_problem(world.pos("boulangerie", "POST", "/v1/merchants/offers", CROISSANT | {"price_points": 5}, key="o1"), 409,
                   "idempotency_conflict")  # fmt: skip
    assert_problem(world.pos("boulangerie", "POST", "/v1/merchants/offers", CROISSANT), 400, "idempotency_key_required")
    assert counts(world) == before
    assert (
        decoded(world.pos("librairie", "POST", "/v1/merchants/offers", CROISSANT, key="o1"), Item, 201).id != first.id
    )

    concert = {"title": {"fr": "Concert"}, "category": "culture", "price_points": 250, "quantity": 20,
               "starts_at_us": clock() + DAY_US}  # fmt: skip
    for kind, body in (("services", POOL), ("events", concert)):  # one key, two kinds: two creations
        made = city_item(world, kind, body, key="c1")
        before = counts(world)
        assert city_item(world, kind, body, key="c1") == made and counts(world) == before
        changed = world.bearer(
            "staff-brossard", "POST", f"/v1/admin/catalog/brossard/{kind}", body | {"price_points": 1}, key="c1"
        )
        assert_problem(changed, 409, "idempotency_conflict")
        assert_problem(world.bearer("staff-brossard", "POST", f"/v1/admin/catalog/brossard/{kind}", body), 400,
                       "idempotency_key_required")  # fmt: skip
        assert counts(world) == before
    listed = decoded(
        world.bearer("staff-brossard", "GET", "/v1/admin/catalog/brossard/items?kind=service,event"), ItemPage
    )
    assert sorted(i.kind for i in listed.items) == ["event", "service"]


def test_search_sees_only_the_residents_cities_and_approved_merchants(world: World) -> None:
    brossard = offer(world)
    delson = offer(world, "cafe-delson", CROISSANT | {"title": {"fr": "Croissant de Delson"}})
    assert hit_ids(world, "carole", "croissant") == [delson.id]
    assert hit_ids(world, "alice", "croissant") == [brossard.id]
    assert_problem(world.bearer("carole", "GET", "/v1/catalog/search?city=brossard"), 403, "not_opted_in")
    assert_problem(world.bearer("carole", "GET", f"/v1/catalog/items/{brossard.id}"), 404, "unknown_item")
    world.bearer("carole", "POST", "/v1/wallet/opt-ins", {"city": "brossard"})
    assert set(hit_ids(world, "carole", "croissant")) == {brossard.id, delson.id}
    assert hit_ids(world, "carole", "croissant", city="brossard") == [brossard.id]
    world.ctx.merchants.set_status("boulangerie", "suspended", "staff:test", "brossard")
    assert hit_ids(world, "carole", "croissant") == [delson.id]
    assert_problem(redeem(world, "carole", brossard.id, "k"), 409, "item_unavailable")
    staff = world.client.get(
        "/v1/catalog/search", headers={"Authorization": f"Bearer {world.tokens['staff-brossard']}"}
    )
    assert_problem(staff, 403, "forbidden")


def test_bad_searches_are_problems(world: World) -> None:
    for query in ["q=" + "x" * 201, "sort=cheapest", "sort=distance", "radius_m=1000", "lat=45", "lat=91&lng=0", "limit=51",
                  "offset=1001", "min_points=10&max_points=5", "category=weapons", "kind=Offer", "available_now=maybe"]:  # fmt: skip
        response = world.bearer("alice", "GET", f"/v1/catalog/search?{query}")
        assert response.status_code == 400 and response.json()["code"] in ("validation_error", "invalid_request"), query


# --- redemption ---------------------------------------------------------------------------------


def test_redeem_an_offer_with_limits(world: World) -> None:
    item = offer(world)
    body = decoded(redeem(world, "alice", item.id, "r1"), Redemption, 201)
    assert body.status == "completed" and body.points == 100 and len(body.voucher) == 10 and not body.replayed
    # In business terms: what, from whom, how many, in the caller's language (French by default).
    assert (body.kind, body.title, body.title_lang, body.seller_name, body.merchant_id, body.quantity, body.cash_cents) == (
        "offer", "Croissant au beurre", "fr", "Commerce boulangerie", "boulangerie", 1, 0)  # fmt: skip
    english = world.bearer("alice", "GET", f"/v1/wallet/redemptions/{body.id}", lang="en-CA")
    assert (decoded(english, Redemption).title, decoded(english, Redemption).title_lang) == ("Butter croissant", "en")
    assert world.available("alice") == 900
    assert world.ctx.ledger.balance("brossard", "merchant:boulangerie:redeemed").posted == 100
    again = redeem(world, "alice", item.id, "r1")
    assert (
        decoded(again, Redemption, 201) == msgspec.structs.replace(body, replayed=True)
        and world.available("alice") == 900
    )
    assert_problem(redeem(world, "alice", item.id, "r1", quantity=2), 409, "idempotency_conflict")
    assert_problem(redeem(world, "alice", item.id, "r2"), 409, "resident_limit_reached")

    before = counts(world)
    refused = redeem(world, "bob", item.id, "b1", quantity=1)  # bob has 50 points
    assert_problem(refused, 422, "insufficient_funds")
    assert counts(world)[2] == before[2]  # no entry; the reservation was undone
    assert decoded(world.pos("boulangerie", "GET", f"/v1/merchants/offers/{item.id}"), Item).remaining == 1
    (failed,) = decoded(world.bearer("bob", "GET", "/v1/wallet/redemptions"), RedemptionPage).redemptions
    assert (failed.status, failed.error, failed.hold_ids) == ("failed", "insufficient_funds", [])

    carole_optin = world.bearer("carole", "POST", "/v1/wallet/opt-ins", {"city": "brossard"})
    assert carole_optin.status_code == 200
    last = redeem(world, "carole", item.id, "c1")  # cross-city: through the interop accounts
    assert decoded(last, Redemption, 201).status == "completed" and decoded(last, Redemption, 201).city == "brossard"
    assert world.ctx.ledger.balance("delson", "interop:brossard").posted == 100
    assert world.available("carole") == 400
    assert_problem(redeem(world, "bob", item.id, "b2"), 409, "sold_out")
    assert hit_ids(world, "alice", "croissant", available_now="true") == []
    assert hit_ids(world, "alice", "croissant") == [item.id]
    mine = decoded(world.bearer("alice", "GET", "/v1/wallet/redemptions"), RedemptionPage)
    assert [r.id for r in mine.redemptions] == [body.id] and mine.next_before_us is None
    assert_problem(world.bearer("bob", "GET", f"/v1/wallet/redemptions/{body.id}"), 404, "unknown_redemption")
    assert verify_database(world.ctx.engine)["ok"]


def test_bad_redemptions_change_nothing(world: World) -> None:
    item = offer(world)
    before = counts(world), world.available("alice")
    assert_problem(redeem(world, "alice", item.id, "k", quantity=11), 400, "validation_error")
    assert_problem(redeem(world, "alice", item.id, None), 400, "idempotency_key_required")
    assert_problem(redeem(world, "alice", "i" + "0" * 24, "k"), 404, "unknown_item")
    assert_problem(world.bearer("alice", "POST", "/v1/wallet/redemptions", {"item_id": item.id, "units": 1}, key="k"), 400,
                   "validation_error")  # fmt: skip
    assert_problem(redeem(world, "alice", item.id, "k", quantity=3), 409, "sold_out")
    assert (counts(world), world.available("alice")) == before


def test_city_service_with_a_cash_part_needs_card_payments(world: World) -> None:
    pool = city_item(world, "services", POOL | {"cash_cents": 1_500})
    before = counts(world), world.available("alice")
    assert_problem(redeem(world, "alice", pool.id, "p1"), 503, "payments_disabled")
    assert (counts(world), world.available("alice")) == before
    points_only = city_item(world, "services", POOL)
    paid = decoded(redeem(world, "alice", points_only.id, "p2"), Redemption, 201)
    assert (paid.status, paid.kind, paid.seller_name, paid.merchant_id, paid.payment) == (
        "completed",
        "service",
        "brossard",
        None,
        None,
    )
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 400


def test_closed_shop_and_quantity_changes(world: World) -> None:
    item = offer(world, body=CROISSANT | {"per_resident_limit": None})
    world.pos("boulangerie", "PUT", "/v1/merchants/shop", {"is_open": False})
    assert_problem(redeem(world, "alice", item.id, "k1"), 409, "item_unavailable")
    assert hit_ids(world, "alice", "croissant", available_now="true") == []
    world.pos("boulangerie", "PUT", "/v1/merchants/shop", {"is_open": True})
    assert decoded(redeem(world, "alice", item.id, "k2", quantity=2), Redemption, 201).quantity == 2
    lower = world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{item.id}", {"quantity": 1})
    assert_problem(lower, 422, "invalid_item")
    more = world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{item.id}", {"quantity": 5})
    assert decoded(more, Item).remaining == 3
    unlimited = decoded(world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{item.id}", {"quantity": None}), Item)
    assert unlimited.remaining is None
    assert decoded(redeem(world, "alice", item.id, "k3", quantity=4), Redemption, 201).status == "completed"
    limited = decoded(world.pos("boulangerie", "PATCH", f"/v1/merchants/offers/{item.id}", {"quantity": 7}), Item)
    assert limited.remaining == 1  # 6 taken while it was unlimited are counted


# --- stock under concurrency ---------------------------------------------------------------------


@pytest.mark.parametrize(("quantity", "buyers"), [(1, 12), (3, 10)])
def test_the_last_units_are_sold_once_under_concurrency(ctx, quantity, buyers) -> None:
    world = standard_world(ctx, client=None)
    residents = [world.resident(f"r{n}", "brossard", points=500).id for n in range(buyers)]
    owner = Owner("brossard", None, "staff:test")
    seats = ctx.catalog.create(
        owner,
        "event",
        ItemSpec(
            title={"fr": "Spectacle"},
            category="culture",
            price_points=200,
            quantity=quantity,
            starts_at_us=ctx.clock() + DAY_US,
        ),
    )
    start = threading.Barrier(buyers)

    def buy(resident_id: str) -> str:
        start.wait()
        try:
            return ctx.redemptions.redeem(resident_id, "seat", seats.id, 1).status
        except LedgerError as exc:
            return exc.code

    with ThreadPoolExecutor(buyers) as pool:
        outcomes = list(pool.map(buy, residents))
    assert outcomes.count("completed") == quantity and outcomes.count("sold_out") == buyers - quantity, outcomes
    assert ctx.ledger.balance("brossard", "services:revenue").posted == 200 * quantity
    assert (
        sum(ctx.ledger.balance("brossard", f"citizen:{r}:wallet").available for r in residents)
        == 500 * buyers - 200 * quantity
    )
    with ctx.engine.connect() as conn:
        assert conn.scalar(select(CatalogItemRow.remaining).where(CatalogItemRow.id == seats.id)) == 0
    assert verify_database(ctx.engine)["ok"]


def test_webhooks_are_refused_when_card_payments_are_off(world: World) -> None:
    response = world.client.post(
        "/v1/payments/stripe/webhook", content=b'{"id": "evt_1"}', headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert_problem(response, 503, "payments_disabled")


MARKET_OPERATIONS = {
    "merchants_create_offer", "merchants_list_offers", "merchants_get_offer", "merchants_update_offer", "merchants_put_shop",
    "merchants_get_shop", "catalog_search", "catalog_get_item", "wallet_redeem_item", "wallet_list_redemptions",
    "wallet_get_redemption", "wallet_cancel_redemption", "admin_create_service", "admin_create_event", "admin_list_city_items",
    "admin_update_city_item", "admin_suspend_item", "payments_stripe_webhook",
}  # fmt: skip


def test_the_openapi_document_describes_the_marketplace(world: World) -> None:
    paths = world.client.get("/schema/openapi.json").json()["paths"]
    for path in ("/v1/merchants/offers", "/v1/catalog/search", "/v1/wallet/redemptions", "/v1/admin/catalog/{city}/events",
                 "/v1/payments/stripe/webhook"):  # fmt: skip
        assert path in paths, path
    assert {"get", "post"} <= set(paths["/v1/merchants/offers"]) and "patch" in paths["/v1/merchants/offers/{item_id}"]
    operations = {
        op.get("operationId") for methods in paths.values() for op in methods.values() if isinstance(op, dict)
    }
    assert operations >= MARKET_OPERATIONS, MARKET_OPERATIONS - operations
    schemas = world.client.get("/schema/openapi.json").json()["components"]["schemas"]
    for schema, field, values in (("Item", "category", CATEGORIES), ("Item", "kind", KINDS), ("ItemSpec", "category", CATEGORIES),
                                  ("ItemPatch", "status", ("draft", "published", "archived")), ("Redemption", "kind", KINDS),
                                  ("Redemption", "status", ("reserved", "awaiting_payment", "completed", "failed", "cancelled",
                                                            "refunded"))):  # fmt: skip
        assert {json.dumps(schemas[schema]["properties"][field]).count(f'"{v}"') for v in values} == {1}, (
            schema,
            field,
        )
    assert schemas["Redemption"]["properties"]["title_lang"]["description"]
