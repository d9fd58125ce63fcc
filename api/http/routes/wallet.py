"""/v1/wallet: the resident's balance, history, card, cities, data, and redemptions."""

from __future__ import annotations

import segno
from litestar import Response, Router, get, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.http import schemas
from api.http.auth import Principal, bearer_principal
from api.http.params import (
    Ctx,
    Id,
    IdempotencyKey,
    OptionalSequence,
    OptionalTimeUs,
    PageLimit,
    RedemptionPageLimit,
    Who,
    idempotency_key,
)
from api.http.schemas import RedeemBody
from ledger.adapters import journal
from ledger.domain import accounts


def _resident(principal: Principal) -> str:
    return principal.require("resident").subject


@get("/balance", sync_to_thread=True)
def balance(principal: Who, ctx: Ctx) -> dict:
    b = ctx.ledger.balance(principal.city, accounts.wallet(_resident(principal)))
    return {"available": b.available, "posted": b.posted, "pending": -b.pending, "city": principal.city}


@get("/history", sync_to_thread=True)
def history(principal: Who, ctx: Ctx, before_sequence: OptionalSequence = None, limit: PageLimit = 50) -> dict:
    with ctx.engine.connect() as conn:
        rows = journal.account_entries(conn, principal.city, [accounts.wallet(_resident(principal))],
                                       before_sequence=before_sequence, limit=limit)  # fmt: skip
    return journal.entry_page(rows, limit)


@get("/card", sync_to_thread=True)
def card(principal: Who, ctx: Ctx) -> dict:
    found = ctx.residents.current_card(_resident(principal))
    return {"card_id": found["id"], "city": found["city"], "expires_at_us": found["expires_at_us"], "token": found["token"]}


@get("/card/qr.svg", sync_to_thread=True, media_type="image/svg+xml")
def card_qr(principal: Who, ctx: Ctx) -> Response[bytes]:
    """The card as a QR code (SVG) to show at the till."""
    token = ctx.residents.current_card(_resident(principal))["token"]
    return Response(segno.make(token, error="m").svg_inline(scale=4).encode(), media_type="image/svg+xml")


@post("/card/replace", sync_to_thread=True, status_code=201)
def replace_card(principal: Who, ctx: Ctx) -> dict:
    """Report the card lost: every card of the resident is revoked and a new one issued."""
    found = ctx.residents.replace_card(_resident(principal), principal.actor)
    return {"card_id": found["id"], "city": found["city"], "expires_at_us": found["expires_at_us"], "token": found["token"]}


@get("/opt-ins", sync_to_thread=True)
def list_opt_ins(principal: Who, ctx: Ctx) -> dict:
    return {"home": principal.city, "opt_ins": ctx.residents.opt_ins(_resident(principal))}


@post("/opt-ins", sync_to_thread=True, status_code=200)
def opt_in(data: JSONBody[schemas.OptInBody], principal: Who, ctx: Ctx) -> dict:
    return {"home": principal.city, "opt_ins": ctx.residents.opt_in(_resident(principal), data.city)}


@get("/export", sync_to_thread=True)
def export(principal: Who, ctx: Ctx) -> dict:
    """Everything held about the resident, in JSON."""
    return ctx.residents.export(_resident(principal))


@post("/erasure", sync_to_thread=True, status_code=202)
def erasure(principal: Who, ctx: Ctx) -> dict:
    """Erase the resident's personal data (their key is destroyed); the ledger keeps opaque entries."""
    ctx.residents.erase(_resident(principal), principal.actor)
    return {"status": "erased"}







@post("/redemptions", sync_to_thread=True, status_code=201)
def redeem(data: JSONBody[RedeemBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Redeem an offer, book event seats or pay a municipal service; a cash part of a city's item is paid by card."""
    return ctx.redemptions.redeem(_resident(principal), idempotency_key(key), data.item_id, data.quantity)


@get("/redemptions", sync_to_thread=True)
def list_redemptions(principal: Who, ctx: Ctx, before_us: OptionalTimeUs = None, limit: RedemptionPageLimit = 20) -> dict:
    return ctx.redemptions.list(_resident(principal), before_us, limit)


@get("/redemptions/{redemption_id:str}", sync_to_thread=True)
def get_redemption(redemption_id: Id, principal: Who, ctx: Ctx) -> dict:
    return ctx.redemptions.get(_resident(principal), redemption_id)


@post("/redemptions/{redemption_id:str}/cancel", sync_to_thread=True, status_code=200)
def cancel_redemption(redemption_id: Id, principal: Who, ctx: Ctx) -> dict:
    """Give up a card payment not yet made: the points are released and the unit goes back on sale."""
    return ctx.redemptions.cancel(_resident(principal), redemption_id)


wallet = Router("/v1/wallet", route_handlers=[balance, history, card, card_qr, replace_card, list_opt_ins, opt_in, export, erasure,
                                          redeem, list_redemptions, get_redemption, cancel_redemption],
                dependencies={"principal": Provide(bearer_principal)}, tags=["wallet"])  # fmt: skip


ROUTERS = [wallet]
