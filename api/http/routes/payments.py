"""/v1/payments: Stripe's card-payment webhook."""

from __future__ import annotations

from anyio import to_thread
from litestar import Request, post

from api.http.params import Ctx
from ledger.domain.errors import InvalidRequest


@post("/v1/payments/stripe/webhook", status_code=200, tags=["payments"])
async def stripe_webhook(request: Request, ctx: Ctx) -> dict:
    """Payment outcomes from Stripe, checked with the library's signature verification on the raw body."""
    raw = await request.body()
    if not raw:
        raise InvalidRequest("an empty webhook", field="body", reason="required")
    return await to_thread.run_sync(ctx.payment_events.handle, raw, request.headers.get("stripe-signature"))


ROUTERS = [stripe_webhook]
