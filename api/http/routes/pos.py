"""/v1/pos: signed requests from a merchant's terminals at the till."""

from __future__ import annotations

from anyio import to_thread
from litestar import Router, get, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.bootstrap import Context
from api.http import schemas
from api.http.auth import Principal, terminal_principal
from api.http.params import Ctx, Id, IdempotencyKey, OptionalSequence, PageLimit, TimeUs, Who, idempotency_key
from merchants.service_layer.pos import Terminal


def _terminal(principal: Principal) -> Terminal:
    assert principal.terminal is not None
    return principal.terminal


@post("/identify", sync_to_thread=True, status_code=200)
def identify(data: JSONBody[schemas.CardBody], principal: Who, ctx: Ctx) -> dict:
    """Who holds this card, and how many points they can spend here."""
    return ctx.pos.identify(_terminal(principal), data.card)


@post("/awards", sync_to_thread=True, status_code=201)
def award(data: JSONBody[schemas.AwardBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Award merchant-funded points for a purchase; the answer explains the computation."""
    return ctx.pos.award(_terminal(principal), idempotency_key(key), data.card, data.purchase_cents)


async def _committed(ctx: Context, prepare, *args) -> dict:
    """Prepare on a thread (lookups), then await the group commit without holding one: concurrent
    terminals then share batches instead of queueing for threads."""
    group, view = await to_thread.run_sync(prepare, *args)
    return view(await ctx.committer.transfer_async(*group))


@post("/holds", status_code=201)
async def hold(data: JSONBody[schemas.HoldBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Reserve points for a redemption; capture or void it, or it expires."""
    return await _committed(ctx, ctx.pos.hold_operation, _terminal(principal), idempotency_key(key), data.card, data.points)


@post("/holds/{hold_id:str}/capture", status_code=200)
async def capture(hold_id: Id, data: JSONBody[schemas.CaptureBody], principal: Who, ctx: Ctx,
                  key: IdempotencyKey) -> dict:  # fmt: skip
    return await _committed(ctx, ctx.pos.resolve_operation, _terminal(principal), idempotency_key(key), hold_id, "post",
                            data.points)  # fmt: skip


@post("/holds/{hold_id:str}/void", status_code=200)
async def void(hold_id: Id, principal: Who, ctx: Ctx, key: IdempotencyKey,
               data: JSONBody[schemas.VoidBody | None] = None) -> dict:  # fmt: skip
    return await _committed(ctx, ctx.pos.resolve_operation, _terminal(principal), idempotency_key(key), hold_id, "void", None)


@post("/refunds", sync_to_thread=True, status_code=201)
def refund(data: JSONBody[schemas.RefundBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> dict:
    """Refund a purchase's points or a captured redemption, never more than is left of it."""
    return ctx.pos.refund(_terminal(principal), idempotency_key(key), data.transfer_id, data.points)


@post("/offline", sync_to_thread=True, status_code=200)
def offline(data: JSONBody[schemas.OfflineBatch], principal: Who, ctx: Ctx) -> dict:
    """Redemptions and purchases recorded offline; each item is idempotent and gets its own result."""
    items = [schemas.msgspec.structs.asdict(item) for item in data.items]
    return {"results": ctx.pos.offline(_terminal(principal), items)}


@get("/statement", sync_to_thread=True)
def statement(principal: Who, ctx: Ctx, since_us: TimeUs = 0, until_us: TimeUs = 2**62, before_sequence: OptionalSequence = None,
              limit: PageLimit = 100) -> dict:  # fmt: skip
    terminal = _terminal(principal)
    return ctx.pos.statement(terminal.merchant_id, terminal.city, since_us, until_us, before_sequence, limit)


@get("/cards/keys", sync_to_thread=True)
def card_keys(principal: Who, ctx: Ctx) -> dict:
    """The card public keys of every city, for checking cards offline."""
    return ctx.residents.card_keys(ctx.programs.cities())


@get("/cards/revocations", sync_to_thread=True)
def revocations(principal: Who, ctx: Ctx, since_us: TimeUs = 0) -> dict:
    """Cards of the terminal's city revoked since `since_us`: what an offline terminal must refuse."""
    rows = ctx.residents.revocations(_terminal(principal).city, since_us)
    return {"city": principal.city, "revoked": rows}


pos = Router("/v1/pos", route_handlers=[identify, award, hold, capture, void, refund, offline, statement, card_keys, revocations],
             dependencies={"principal": Provide(terminal_principal)}, tags=["pos"])  # fmt: skip


ROUTERS = [pos]
