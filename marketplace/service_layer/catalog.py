"""Catalog management: merchants' offers and shops, the city's services and events, suspension by staff.

Every change bumps the item's version and writes its search outbox row in the same transaction,
then tries to index it at once (`deliver_quietly`); if search is down, the outbox keeps it.
Every change is audited with the state before and after, like the program's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine

from community.domain.errors import Forbidden, WrongTenant
from ledger.adapters import idempotency, journal
from ledger.domain.errors import InvalidRequest, UnknownLedger
from ledger.service_layer.audit_trail import AuditTrail
from marketplace import schemas
from marketplace.adapters import store
from marketplace.domain.catalog import (
    CITY_KINDS,
    FOREVER_US,
    MAX_ITEMS_PER_OWNER,
    MICRODEGREES,
    Item,
    ItemPatch,
    ItemSpec,
    Location,
    microdegrees,
    search_document,
    validity,
)
from marketplace.domain.errors import InvalidItem, UnknownItem
from marketplace.service_layer.indexing import SearchIndexer
from merchants.errors import MerchantNotApproved

MAX_CATALOG_PAGE = 200
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Owner:
    """Who manages an item: a merchant (its offers) or a city's staff (its services and events)."""

    city: str
    merchant_id: str | None
    actor: str

    def owns(self, row: dict[str, Any]) -> bool:
        return bool(row["city"] == self.city and row["merchant_id"] == self.merchant_id)


def location_of(row: dict[str, Any]) -> Location | None:
    if row.get("lat_e6") is None:
        return None
    return Location(row["lat_e6"] / MICRODEGREES, row["lng_e6"] / MICRODEGREES, row["address"])


def item_view(row: dict[str, Any]) -> schemas.Item:
    item = Item.from_row(row)
    return schemas.Item(
        id=item.id, kind=item.kind, city=item.city, merchant_id=item.merchant_id, category=item.category,  # type: ignore[arg-type]
        title=item.title, description=item.description, price_points=item.price_points,
        cash_cents=item.cash_cents, quantity=item.quantity, remaining=item.remaining,
        per_resident_limit=item.per_resident_limit, valid_from_us=item.valid_from_us,
        valid_until_us=None if item.valid_until_us >= FOREVER_US else item.valid_until_us, status=item.status,  # type: ignore[arg-type]
        suspended=item.suspended, suspended_reason=row.get("suspended_reason"), location=location_of(row),
        starts_at_us=item.starts_at_us, seats_total=item.seats_total, version=item.version, updated_at_us=row["updated_at_us"],
    )  # fmt: skip


def _spec_of(row: dict[str, Any]) -> ItemSpec:
    return ItemSpec(
        title=row["title"], category=row["category"], price_points=row["price_points"], description=row["description"],
        cash_cents=row["cash_cents"], quantity=row["quantity"], per_resident_limit=row["per_resident_limit"],
        valid_from_us=row["valid_from_us"] or None,
        valid_until_us=None if row["valid_until_us"] >= FOREVER_US else row["valid_until_us"],
        location=location_of(row),
        starts_at_us=row["starts_at_us"], seats_total=row["seats_total"],
    )  # fmt: skip


def _columns(spec: ItemSpec) -> dict[str, Any]:
    valid_from, valid_until = validity(spec)
    location = spec.location
    return {
        "title": dict(spec.title), "description": dict(spec.description), "category": spec.category,
        "price_points": spec.price_points, "cash_cents": spec.cash_cents, "quantity": spec.quantity,
        "per_resident_limit": spec.per_resident_limit, "valid_from_us": valid_from, "valid_until_us": valid_until,
        "lat_e6": None if location is None else microdegrees(location.lat),
        "lng_e6": None if location is None else microdegrees(location.lng),
        "address": "" if location is None else location.address,
        "starts_at_us": spec.starts_at_us, "seats_total": spec.seats_total,
    }  # fmt: skip


def emit(conn: Connection, item_id: str, now_us: int) -> int:
    """Bump the item's version and queue its search document (or its removal), in the caller's transaction."""
    row = store.item(conn, item_id)
    assert row is not None
    version: int = row["version"] + 1
    store.update_item(conn, item_id, version=version, updated_at_us=now_us)
    item = Item.from_row(row | {"version": version})
    document = search_document(item, store.shop(conn, item.merchant_id)) if item.indexable else None
    store.add_outbox(conn, item_id, version, document, now_us)
    return version


class Catalog:
    def __init__(self, engine: Engine, indexer: SearchIndexer, audit: AuditTrail, clock: Callable[[], int]) -> None:
        self.engine, self.indexer, self.audit, self.clock = engine, indexer, audit, clock

    # --- items --------------------------------------------------------------------------------

    def create(
        self, owner: Owner, kind: str, spec: ItemSpec, key: str | None = None, deliver_now: bool = True
    ) -> schemas.Item:
        """Add an item. With an idempotency `key` (the API's), a retry of the same request returns the
        item first made and adds nothing; `None` only for loads that never retry (seeding, bulk).
        With `deliver_now` False (bulk loads) the outbox alone carries it to search."""
        spec.check(kind)
        if (kind in CITY_KINDS) != (owner.merchant_id is None):
            raise Forbidden("merchants publish offers; cities publish services and events")
        now = self.clock()
        with self.engine.begin() as conn:
            if key is None:
                item = self._add(conn, owner, kind, spec, now)
            else:
                scope = f"{owner.city}:{owner.actor}:catalog.{kind}.create"
                item = idempotency.once(
                    conn, scope, key, spec, schemas.Item, lambda: self._add(conn, owner, kind, spec, now), now
                )
        if deliver_now:
            self.indexer.deliver_quietly()
        return item

    def _add(self, conn: Connection, owner: Owner, kind: str, spec: ItemSpec, now: int) -> schemas.Item:
        self._check_owner(conn, owner)
        if store.count_items(conn, city=owner.city, merchant_id=owner.merchant_id) >= MAX_ITEMS_PER_OWNER:
            raise InvalidItem(f"at most {MAX_ITEMS_PER_OWNER} items per merchant or city", field="items", reason="too_many",
                              max_items=MAX_ITEMS_PER_OWNER)  # fmt: skip
        item_id = "i" + secrets.token_hex(12)
        store.add_item(conn, id=item_id, city=owner.city, kind=kind, merchant_id=owner.merchant_id, remaining=spec.quantity,
                       status=spec.status, suspended=False, version=0, created_at_us=now, updated_at_us=now,
                       **_columns(spec))  # fmt: skip
        emit(conn, item_id, now)
        item = item_view(store.item(conn, item_id))  # type: ignore[arg-type]
        self.audit.record(conn, actor=owner.actor, action=f"catalog.{kind}.create", city=owner.city, target=item_id,
                          before=None, after=msgspec.to_builtins(item), now_us=now)  # fmt: skip
        return item

    def update(self, owner: Owner, item_id: str, patch: ItemPatch) -> schemas.Item:
        changes = patch.changes()
        status = changes.pop("status", None)
        now = self.clock()
        with self.engine.begin() as conn:
            self._check_owner(conn, owner)
            before = self._owned(conn, owner, item_id, for_update=True)
            spec = msgspec.structs.replace(_spec_of(before), **changes)
            spec.check(before["kind"])
            columns = _columns(spec)
            columns["remaining"] = self._remaining(conn, before, spec.quantity)
            store.update_item(conn, item_id, status=status or before["status"], **columns)
            emit(conn, item_id, now)
            after = store.item(conn, item_id)
            assert after is not None  # written above, in this transaction
            self.audit.record(conn, actor=owner.actor, action=f"catalog.{before['kind']}.update", city=owner.city,
                              target=item_id, before=msgspec.to_builtins(item_view(before)),
                              after=msgspec.to_builtins(item_view(after)), now_us=now)  # fmt: skip
        self.indexer.deliver_quietly()
        return item_view(after)

    @staticmethod
    def _remaining(conn: Connection, row: dict[str, Any], quantity: int | None) -> int | None:
        """The stock after a change of quantity: what was taken stays taken (the row is locked)."""
        if quantity is None:
            return None
        taken = (
            row["quantity"] - row["remaining"] if row["quantity"] is not None else store.units_taken(conn, row["id"])
        )
        if quantity < taken:
            raise InvalidItem(
                f"{taken} units are already taken; quantity cannot be lower",
                field="quantity",
                reason="below_taken",
                taken=taken,
            )
        return quantity - taken

    def get(self, owner: Owner, item_id: str) -> schemas.Item:
        with self.engine.connect() as conn:
            return item_view(self._owned(conn, owner, item_id))

    def list(self, owner: Owner, kinds: tuple[str, ...] = (), after_id: str = "", limit: int = 50) -> schemas.ItemPage:
        if not 1 <= limit <= MAX_CATALOG_PAGE:
            raise InvalidRequest(
                f"limit is 1 to {MAX_CATALOG_PAGE}",
                field="limit",
                reason="out_of_range",
                min_value=1,
                max_value=MAX_CATALOG_PAGE,
            )
        with self.engine.connect() as conn:
            # A merchant lists its offers; city staff (no merchant) list every item of the city.
            rows = store.items(conn, city=owner.city, kinds=kinds, after_id=after_id, limit=limit,
                               merchant_id=owner.merchant_id)  # fmt: skip
        views = [item_view(r) for r in rows]
        return schemas.ItemPage(items=views, next_after_id=views[-1].id if len(views) == limit else None)

    # --- shops --------------------------------------------------------------------------------

    def set_shop(
        self, owner: Owner, location: Location | None, is_open: bool, deliver_now: bool = True
    ) -> schemas.Shop:
        """Where the merchant's offers are and whether the shop is open; every offer is reindexed."""
        assert owner.merchant_id is not None
        now = self.clock()
        values = {"lat_e6": None if location is None else microdegrees(location.lat),
                  "lng_e6": None if location is None else microdegrees(location.lng),
                  "address": "" if location is None else location.address, "is_open": is_open, "updated_at_us": now}  # fmt: skip
        with self.engine.begin() as conn:
            self._check_owner(conn, owner)
            before = store.shop(conn, owner.merchant_id)
            store.save_shop(conn, owner.merchant_id, **values)
            for row in store.items(conn, merchant_id=owner.merchant_id, limit=MAX_ITEMS_PER_OWNER):
                emit(conn, row["id"], now)
            shop = store.shop(conn, owner.merchant_id)
            assert shop is not None  # saved above, in this transaction
            self.audit.record(conn, actor=owner.actor, action="catalog.shop", city=owner.city, target=owner.merchant_id,
                                  before=before, after=shop, now_us=now)  # fmt: skip
        if deliver_now:
            self.indexer.deliver_quietly()
        return _shop_view(shop)

    def shop(self, owner: Owner) -> schemas.Shop:
        with self.engine.connect() as conn:
            found = store.shop(conn, owner.merchant_id)
        return _shop_view(found) if found else schemas.Shop(location=None, is_open=True)

    # --- the city's staff -------------------------------------------------------------------

    def suspend(self, city: str, item_id: str, suspended: bool, reason: str | None, actor: str) -> schemas.Item:
        """Suspend any item of the city (a merchant's offer too), or lift a suspension. The owner cannot lift it."""
        if reason is not None and len(reason) > MAX_REASON_CHARS:
            raise InvalidRequest(
                f"reason has at most {MAX_REASON_CHARS} characters",
                field="reason",
                reason="too_long",
                max_chars=MAX_REASON_CHARS,
            )
        now = self.clock()
        with self.engine.begin() as conn:
            before = store.item(conn, item_id, for_update=True) if isinstance(item_id, str) else None
            if before is None or before["city"] != city:
                raise UnknownItem("no such item in this city", item_id=item_id)
            store.update_item(conn, item_id, suspended=suspended, suspended_reason=reason if suspended else None)
            emit(conn, item_id, now)
            after = store.item(conn, item_id)
            assert after is not None  # updated above, in this transaction
            self.audit.record(conn, actor=actor, action="catalog.suspend" if suspended else "catalog.reinstate", city=city,
                                  target=item_id, before={"suspended": before["suspended"]},
                                  after={"suspended": suspended, "reason": reason}, now_us=now)  # fmt: skip
        self.indexer.deliver_quietly()
        return item_view(after)

    # --- checks ---------------------------------------------------------------------------------

    @staticmethod
    def _check_owner(conn: Connection, owner: Owner) -> None:
        if owner.city not in journal.heads(conn):
            raise UnknownLedger(f"no ledger named {owner.city!r}", ledger=owner.city)
        if owner.merchant_id is not None and store.merchant_status(conn, owner.merchant_id) != "approved":
            raise MerchantNotApproved("the merchant is not approved")

    @staticmethod
    def _owned(conn: Connection, owner: Owner, item_id: str, for_update: bool = False) -> dict[str, Any]:
        row = store.item(conn, item_id, for_update) if isinstance(item_id, str) else None
        if row is None:
            raise UnknownItem("no such item", item_id=item_id)
        if not owner.owns(row):
            raise WrongTenant("the item belongs to someone else")
        return row


def _shop_view(row: dict[str, Any]) -> schemas.Shop:
    return schemas.Shop(location=location_of(row), is_open=bool(row["is_open"]), updated_at_us=row["updated_at_us"])
