"""/v1/payments: Stripe's card-payment webhook."""

from __future__ import annotations

from anyio import to_thread
from litestar import Request, post

from api.http.params import Ctx
from ledger.domain.errors import InvalidRequest
from marketplace.schemas import WebhookAck


@post("/v1/payments/stripe/webhook", status_code=200, tags=["payments"], summary="Receive a Stripe event",
      operation_id="payments_stripe_webhook", problems=("invalid_request", "invalid_webhook", "payments_disabled", "overloaded"))  # fmt: skip
async def stripe_webhook(request: Request, ctx: Ctx) -> WebhookAck:
    """Payment outcomes from Stripe (no authentication: the `Stripe-Signature` header is checked with
    the library's verification on the raw body). A succeeded payment captures the redemption's hold
    (or refunds the card if the hold is gone); a failed or canceled one voids the hold and puts the
    unit back on sale. A redelivered event changes nothing; other events are acknowledged and ignored."""
    raw = await request.body()
    if not raw:
        raise InvalidRequest("an empty webhook", field="body", reason="required")
    return await to_thread.run_sync(ctx.payment_events.handle, raw, request.headers.get("stripe-signature"))


ROUTERS = [stripe_webhook]
