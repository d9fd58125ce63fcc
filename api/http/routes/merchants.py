"""/v1/merchants: a merchant's catalog and shop, from its signed terminals."""

from __future__ import annotations

from litestar import Router, get, patch, post, put
from litestar.di import Provide
from litestar.params import JSONBody

from api.http.auth import Principal, terminal_principal
from api.http.params import Ctx, Cursor, Id, PageLimit, Who
from api.http.schemas import ShopBody
from marketplace.domain.catalog import ItemPatch, ItemSpec
from marketplace.service_layer.catalog import Owner


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


ROUTERS = [merchants]
