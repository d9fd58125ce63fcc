"""`/portal`: a merchant owner's home (web.auth `Merchant`: a portal session only). It shows the
merchant the owner's principal is bound to: its name, city and status. Sales, statements, offers
and terminals get their pages here as they are built; the home links only to pages that exist.
"""

from __future__ import annotations

from litestar import Request, Router, get
from litestar.response import Template

from api.http.params import Ctx
from web import pages
from web.auth import Merchant, owner_merchant


@get("/portal", sync_to_thread=True)
def portal_home(request: Request, ctx: Ctx, owner: Merchant) -> Template:
    city, merchant_id = owner_merchant(owner)
    merchant = ctx.merchants.get(merchant_id, city)
    return pages.render(
        request, "portal/home.html", owner=owner, merchant=merchant, city_name=pages.city_name(ctx, city)
    )


ROUTER = Router("/", route_handlers=[portal_home])
