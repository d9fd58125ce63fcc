"""One module per URL prefix, each with its `ROUTERS`; `ROUTERS` here is all of them, in the order
the OpenAPI document lists them."""

from litestar import Router
from litestar.handlers import HTTPRouteHandler

from api.http.routes import (
    admin,
    catalog,
    collections,
    finance,
    health,
    merchants,
    orgs,
    payments,
    pos,
    transparency,
    wallet,
)

ROUTERS: list[Router | HTTPRouteHandler] = [
    *pos.ROUTERS, *merchants.ROUTERS, *wallet.ROUTERS, *catalog.ROUTERS, *orgs.ROUTERS, *admin.ROUTERS,
    *finance.ROUTERS, *collections.ROUTERS, *payments.ROUTERS, *transparency.ROUTERS, *health.ROUTERS,
]  # fmt: skip
