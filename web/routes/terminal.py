"""`/terminal`: the web till a shop clerk opens on a tablet or a phone, and `/terminal/pair`, where
the device becomes a terminal of its merchant with a one-time pairing code.

The pages hold no terminal identity on the server: the browser makes its own Ed25519 key
(WebCrypto, not extractable, kept in IndexedDB), registers it with `POST /v1/pairing`, then signs
every request to the existing `/v1/pos` routes itself with RFC 9421 (`static/js/terminal/`), so the
web terminal is admitted, limited, audited and revoked as any other terminal. These handlers only
render the pages: their static text here, the messages the scripts show in a JSON block.
"""

from __future__ import annotations

from litestar import Request, Router, get, post
from litestar.response import Template

from api.http.params import Ctx
from web import pages


def _floors(ctx: Ctx) -> dict[str, int]:
    """Each city's offline floor (the most one redemption may take offline): the program is public."""
    return {city: ctx.programs.current(city).offline_floor_points for city in ctx.programs.cities()}


@get("/pair", sync_to_thread=False)
def pair_page(request: Request) -> Template:
    return pages.render(request, "terminal/pair.html", needs_script=False)


@post("/pair", sync_to_thread=False, status_code=400)
def pair_without_script(request: Request) -> Template:
    """The form posted without its script (the key is made in the browser): say so, nothing done."""
    return pages.render(request, "terminal/pair.html", status_code=400, needs_script=True)


@get("/", sync_to_thread=True)
def till(request: Request, ctx: Ctx) -> Template:
    return pages.render(request, "terminal/till.html", floors=_floors(ctx))


ROUTER = Router("/terminal", route_handlers=[pair_page, pair_without_script, till])
