"""`/wallet`: the resident's home (points, their value, holds, what expires when, cities), the card
(full screen, printable, replace a lost one) and the history with each line's receipt.

Each handler calls the service the API's `/v1/wallet` route calls (api/http/routes/wallet.py).
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from api.bootstrap import Context
from api.http.auth import Principal
from api.http.params import Ctx, Flag, OptionalSequence, SequencePath
from community.schemas import Community
from ledger.domain.errors import ReceiptNotCheckpointed
from operations.service_layer.jobs import seconds_until_checkpoint
from operations.service_layer.scheduler import Scheduler
from web import pages
from web.auth import Resident

HISTORY_PAGE = 20  # lines per page of the history: a phone's screen or two


def _who(principal: Principal) -> tuple[str, str]:
    """The resident and their home city (a resident's principal always names it)."""
    assert principal.city is not None
    return principal.require("resident").subject, principal.city


def _cities(ctx: Context) -> dict[str, Community]:
    return {c.city: c for c in ctx.programs.communities()}


@get("/", sync_to_thread=True)
def home(request: Request, principal: Resident, ctx: Ctx) -> Template:
    resident_id, city = _who(principal)
    program = ctx.programs.current(city)
    balance = ctx.wallet.balance(resident_id, city)
    return pages.render(
        request, "wallet/home.html", balance=balance, value_cents=program.points_to_cents(balance.available),
        cents_per_100_points=program.point_value_cents_per_100_points, holds=ctx.wallet.holds(resident_id, city),
        expiry=ctx.expiry.schedule(resident_id, city), opt_ins=ctx.residents.cities(resident_id),
        cities=_cities(ctx), timezone=program.timezone, erasure=ctx.residents.erasure(resident_id),
    )  # fmt: skip


@get("/card", sync_to_thread=True)
def card(request: Request, principal: Resident, ctx: Ctx, replaced: Flag = False) -> Template:
    resident_id, city = _who(principal)
    return pages.render(request, "wallet/card.html", card=ctx.residents.card(resident_id), cities=_cities(ctx),
                        timezone=ctx.programs.current(city).timezone, replaced=replaced)  # fmt: skip


@get("/card/full", sync_to_thread=True)
def card_full_screen(request: Request, principal: Resident, ctx: Ctx) -> Template:
    """The QR alone, as large as the screen, black on white: works without any script."""
    resident_id, _ = _who(principal)
    return pages.render(request, "wallet/card_full.html", card=ctx.residents.card(resident_id))


@get("/card/qr.svg", sync_to_thread=True, media_type="image/svg+xml")
def card_qr(principal: Resident, ctx: Ctx) -> Response[bytes]:
    resident_id, _ = _who(principal)
    return Response(ctx.residents.card_qr(resident_id), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store"})  # fmt: skip


@get("/card/replace", sync_to_thread=True)
def confirm_replacement(request: Request, principal: Resident, ctx: Ctx) -> Template:
    """The confirmation step: what replacing does, before it is done."""
    resident_id, _ = _who(principal)
    return pages.render(request, "wallet/card_replace.html", card=ctx.residents.card(resident_id))


@post("/card/replace", sync_to_thread=True, status_code=303)
def replace_card(principal: Resident, ctx: Ctx) -> Redirect:
    """Revoke every card of the resident and issue a new one (the API's `POST /v1/wallet/card/replace`)."""
    resident_id, _ = _who(principal)
    ctx.residents.replace_card(resident_id, principal.actor)
    return pages.see_other("/wallet/card?replaced=true")


@get("/history", sync_to_thread=True)
def history(
    request: Request, principal: Resident, ctx: Ctx,
    before: OptionalSequence = None,
    after: OptionalSequence = None,
) -> Template:  # fmt: skip
    resident_id, city = _who(principal)
    page = ctx.wallet.history(resident_id, city, before, HISTORY_PAGE, None if before is not None else after)
    return pages.render(request, "wallet/history.html", history=page, city=city, cities=_cities(ctx),
                        timezone=ctx.programs.current(city).timezone)  # fmt: skip


@get("/receipts/{sequence:str}", sync_to_thread=True)
def receipt(
    request: Request, sequence: SequencePath, principal: Resident, ctx: Ctx, jobs: NamedDependency[Scheduler]
) -> Response:
    """The receipt of one history line as a JSON download, named for the public site's checker;
    one not yet covered by a checkpoint is a page saying when it will be (409, as the API)."""
    resident_id, city = _who(principal)
    try:
        found = ctx.receipts.get(resident_id, city, sequence)
    except ReceiptNotCheckpointed:
        wait_seconds = seconds_until_checkpoint(jobs, ctx.clock())
        return pages.render(request, "wallet/receipt_pending.html", status_code=409, sequence=sequence,
                            minutes=-(-wait_seconds // 60))  # fmt: skip
    filename = f"entraide-receipt-{city}-{sequence}.json"
    return pages.download(msgspec.json.encode(found), "application/json", filename)


ROUTER = Router("/wallet", route_handlers=[home, card, card_full_screen, card_qr, confirm_replacement, replace_card,
                                          history, receipt])  # fmt: skip
