"""`/wallet/account`: the resident's cities (opt in, opt out), their data (a download) and their
erasure (a warning in numbers, a confirmation, the delay during which it can be undone).

Each handler calls the service the wallet API calls (`api/http/routes/wallet.py`): `Residents.cities`,
`opt_in`, `opt_out`, `export`, `erasure`, `request_erasure`, `cancel_erasure`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.auth import Principal
from api.http.params import Ctx, DoneNotice, OptionalCity
from api.problems import problem_document
from community.schemas import Community
from community.service_layer.residents import DAY_US
from web import pages
from web.auth import Resident

ACCOUNT_PATH = "/wallet/account"
ERASE_PATH = f"{ACCOUNT_PATH}/erase"
CONFIRMATION = "yes"  # the box's value: ticked, it says the resident understood the warning


class CityChoice(msgspec.Struct, frozen=True):
    city: str


class ErasureConfirmation(msgspec.Struct, frozen=True):
    confirm: str = ""


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


def _ids(principal: Principal) -> tuple[str, str]:
    assert principal.city is not None  # a resident's principal always names their home city
    return principal.subject, principal.city


def _communities(ctx: Ctx) -> dict[str, Community]:
    return {c.city: c for c in ctx.programs.communities()}


@get(ACCOUNT_PATH, sync_to_thread=True)
def account(
    request: Request, principal: Resident, ctx: Ctx, done: DoneNotice = None, city: OptionalCity = None
) -> Template:
    """The page; after a form, `done` (joined, left, erasure-asked, erasure-undone) and `city` say what changed."""
    resident_id, home = _ids(principal)
    communities = _communities(ctx)
    mine = ctx.residents.cities(resident_id)
    joinable = [c for c in communities.values() if c.city != home and c.city not in mine.opt_ins]
    return pages.render(request, "account/index.html", home=communities[home], opted_in=[communities[c] for c in mine.opt_ins],
                        joinable=joinable, erasure=ctx.residents.erasure(resident_id), done=done,
                        done_city=communities.get(city) if city else None)  # fmt: skip


@post(f"{ACCOUNT_PATH}/opt-ins", sync_to_thread=True)
def opt_in(principal: Resident, ctx: Ctx, data: Annotated[CityChoice, Form]) -> Redirect:
    ctx.residents.opt_in(_ids(principal)[0], data.city, principal.actor)
    return pages.see_other(f"{ACCOUNT_PATH}?done=joined&city={data.city}#cities")


@post(f"{ACCOUNT_PATH}/opt-outs", sync_to_thread=True)
def opt_out(principal: Resident, ctx: Ctx, data: Annotated[CityChoice, Form]) -> Redirect:
    ctx.residents.opt_out(_ids(principal)[0], data.city, principal.actor)
    return pages.see_other(f"{ACCOUNT_PATH}?done=left&city={data.city}#cities")


@get(f"{ACCOUNT_PATH}/export", sync_to_thread=True)
def export(principal: Resident, ctx: Ctx) -> Response[bytes]:
    """Everything held about the resident (the API's export), as a file named by the city's date."""
    resident_id, home = _ids(principal)
    today = dt.datetime.fromtimestamp(ctx.clock() / 1_000_000, ZoneInfo(ctx.programs.get(home).timezone)).date()
    body = msgspec.json.format(msgspec.json.encode(ctx.residents.export(resident_id)), indent=2)
    return pages.download(body, "application/json", f"entraide-my-data-{today.isoformat()}.json")


def _erase_page(request: Request, ctx: Ctx, resident_id: str, home: str, status_code: int = 200,
                error: dict | None = None) -> Template:  # fmt: skip
    erasure = ctx.residents.erasure(resident_id)
    return pages.render(request, "account/erase.html", status_code=status_code, erasure=erasure,
                        home=_communities(ctx)[home], due_at_us=ctx.clock() + erasure.delay_days * DAY_US, error=error)  # fmt: skip


@get(ERASE_PATH, sync_to_thread=True)
def erase_warning(request: Request, principal: Resident, ctx: Ctx) -> Template | Redirect:
    resident_id, home = _ids(principal)
    if ctx.residents.erasure(resident_id).status == "pending":
        return pages.see_other(f"{ACCOUNT_PATH}#erasure")  # asked already: the date and the undo are there
    return _erase_page(request, ctx, resident_id, home)


@post(ERASE_PATH, sync_to_thread=True)
def erase(request: Request, principal: Resident, ctx: Ctx,
          data: Annotated[ErasureConfirmation, Form]) -> Template | Redirect:  # fmt: skip
    resident_id, home = _ids(principal)
    if data.confirm != CONFIRMATION:
        error = problem_document("confirmation_required", pages.locale(request), {})
        return _erase_page(request, ctx, resident_id, home, status_code=422, error=error)
    ctx.residents.request_erasure(resident_id, principal.actor)
    return pages.see_other(f"{ACCOUNT_PATH}?done=erasure-asked#erasure")


@post(f"{ERASE_PATH}/cancel", sync_to_thread=True)
def cancel_erasure(principal: Resident, ctx: Ctx) -> Redirect:
    ctx.residents.cancel_erasure(_ids(principal)[0], principal.actor)
    return pages.see_other(f"{ACCOUNT_PATH}?done=erasure-undone#erasure")


ROUTER = Router("/", route_handlers=[account, opt_in, opt_out, export, erase_warning, erase, cancel_erasure])
