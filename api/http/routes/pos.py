"""/v1/pos: signed requests from a merchant's terminals at the till."""

from __future__ import annotations

import hashlib

from anyio import to_thread
from litestar import Request, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from api.bootstrap import Context
from api.http import schemas
from api.http.auth import Limits, Principal, client_address, terminal_principal
from api.http.params import Ctx, Id, IdempotencyKey, OptionalSequence, PageLimit, TimeUs, Who, idempotency_key
from api.problems import error_params, negotiate_locale, problem_document
from community.schemas import TerminalRegistration
from ledger.domain.errors import LedgerError
from merchants.schemas import (
    AwardResult,
    CaptureResult,
    CardKeys,
    HoldResult,
    Identity,
    OfflineResults,
    RefundResult,
    Revocations,
    Statement,
    VoidResult,
)
from merchants.service_layer.pos import Describe, Operation, R, Terminal

# Every signed request can be refused for its signature or its merchant before the handler runs.
SIGNED = ("invalid_signature", "signature_expired", "replayed_request", "unknown_key", "merchant_not_approved")
# A presented card, checked with its holder.
CARD = (
    "unknown_card",
    "card_revoked",
    "card_expired",
    "card_key_retired",
    "resident_expired",
    "resident_erased",
    "not_opted_in",
)


def _terminal(principal: Principal) -> Terminal:
    assert principal.terminal is not None
    return principal.terminal


@post("/identify", sync_to_thread=True, status_code=200, summary="Identify a card", operation_id="pos_identify_card",
      problems=(*SIGNED, *CARD))  # fmt: skip
def identify(data: JSONBody[schemas.CardBody], principal: Who, ctx: Ctx) -> Identity:
    """Who holds this card (its opaque id, city and level, never a name), and how many points they can
    spend here now. Any terminal of an approved merchant; writes nothing."""
    return ctx.pos.identify(_terminal(principal), data.card)


@post("/awards", sync_to_thread=True, status_code=201, summary="Award points for a purchase", operation_id="pos_create_award",
      problems=(*SIGNED, *CARD, "unknown_program", "invalid_request"))  # fmt: skip
def award(data: JSONBody[schemas.AwardBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> AwardResult:
    """Award merchant-funded points for a purchase: the program's rate, campaigns and caps apply, and the
    answer explains the computation line by line. Writes one transfer from the merchant's issued
    account to the resident's wallet (none when caps leave 0 points); a retry with the same
    Idempotency-Key answers the first result."""
    return ctx.pos.award(_terminal(principal), idempotency_key(key), data.card, data.purchase_cents)


async def _committed(ctx: Context, prepare, *args) -> R:
    """Prepare on a thread (lookups), then await the group commit without holding one: concurrent
    terminals then share batches instead of queueing for threads."""
    operation: Operation[R] = await to_thread.run_sync(prepare, *args)
    group, view = operation
    return view(await ctx.committer.transfer_async(*group))


@post("/holds", status_code=201, summary="Hold points for a redemption", operation_id="pos_create_hold",
      problems=(*SIGNED, *CARD, "insufficient_funds", "unknown_program"))  # fmt: skip
async def hold(data: JSONBody[schemas.HoldBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> HoldResult:
    """Reserve points of the card's wallet for a redemption at this merchant (a pending transfer; across
    cities, one linked pair through the interop accounts). Capture or void it before
    `expires_at_us`, or it is released. A retry with the same Idempotency-Key answers the first result."""
    return await _committed(
        ctx, ctx.pos.hold_operation, _terminal(principal), idempotency_key(key), data.card, data.points
    )


@post("/holds/{hold_id:str}/capture", status_code=200, summary="Capture a hold", operation_id="pos_capture_hold",
      problems=(*SIGNED, "unknown_transfer", "hold_not_open", "hold_expired", "exceeds_original"))  # fmt: skip
async def capture(hold_id: Id, data: JSONBody[schemas.CaptureBody], principal: Who, ctx: Ctx,
                  key: IdempotencyKey) -> CaptureResult:  # fmt: skip
    """Spend a hold of this merchant, in full or in part (`points`, at most the hold's): the captured
    points go to the merchant's redeemed account, the rest back to the wallet. A hold resolves once."""
    return await _committed(
        ctx, ctx.pos.capture_operation, _terminal(principal), idempotency_key(key), hold_id, data.points
    )


@post("/holds/{hold_id:str}/void", status_code=200, summary="Void a hold", operation_id="pos_void_hold",
      problems=(*SIGNED, "unknown_transfer", "hold_not_open", "hold_expired"))  # fmt: skip
async def void(hold_id: Id, principal: Who, ctx: Ctx, key: IdempotencyKey,
               data: JSONBody[schemas.VoidBody | None] = None) -> VoidResult:  # fmt: skip
    """Release a hold of this merchant: every held point returns to the wallet. A hold resolves once."""
    return await _committed(ctx, ctx.pos.void_operation, _terminal(principal), idempotency_key(key), hold_id)


@post("/refunds", sync_to_thread=True, status_code=201, summary="Refund an award or a redemption", operation_id="pos_create_refund",
      problems=(*SIGNED, "unknown_transfer", "not_refundable", "exceeds_original", "insufficient_funds"))  # fmt: skip
def refund(data: JSONBody[schemas.RefundBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> RefundResult:
    """Refund this merchant's purchase award (points leave the wallet again) or captured redemption
    (points return to it), in part (`points`) or whatever is left of it, never more: a new
    compensating transfer that references the original."""
    return ctx.pos.refund(_terminal(principal), idempotency_key(key), data.transfer_id, data.points)


def _describe(request: Request) -> Describe:
    """Word a refused offline item like the problem the same refusal online would answer, in the
    request's language."""
    locale = negotiate_locale(request.headers.get("accept-language"))

    def describe(exc: LedgerError) -> tuple[str, str]:
        document = problem_document(exc.code, locale, error_params(exc))
        return str(document["title"]), str(document["detail"])

    return describe


@post("/offline", sync_to_thread=True, status_code=200, summary="Submit an offline batch", operation_id="pos_submit_offline_batch",
      problems=(*SIGNED, "unknown_program"))  # fmt: skip
def offline(data: JSONBody[schemas.OfflineBatch], principal: Who, ctx: Ctx, request: Request) -> OfflineResults:
    """Redemptions (`points`, up to the program's floor limit) and purchases (`purchase_cents`) recorded
    while offline. Each item is idempotent by its own key and gets its own result, in order:
    accepted, replayed, or refused with the problem's code, title and detail in the language of
    Accept-Language. A refused item writes nothing and does not stop the others."""
    return ctx.pos.offline(_terminal(principal), data.items, _describe(request))


@get("/statement", sync_to_thread=True, summary="Read the merchant's statement", operation_id="pos_get_statement",
     problems=(*SIGNED, "unknown_program"))  # fmt: skip
def statement(principal: Who, ctx: Ctx, since_us: TimeUs = 0, until_us: TimeUs = 2**62, before_sequence: OptionalSequence = None,
              limit: PageLimit = 100) -> Statement:  # fmt: skip
    """The merchant's own ledger entries in [since_us, until_us), newest first, each saying what it was
    and with whom beside the raw entry, with the whole range's totals in points and in cents.
    Page with `before_sequence` = the previous page's `next_before_sequence`. Writes nothing."""
    terminal = _terminal(principal)
    return ctx.pos.statement(terminal.merchant_id, terminal.city, since_us, until_us, before_sequence, limit)


@get("/cards/keys", sync_to_thread=True, summary="Get the card public keys", operation_id="pos_get_card_keys",
     problems=SIGNED)  # fmt: skip
def card_keys(principal: Who, ctx: Ctx) -> CardKeys:
    """The card public keys of every city (a JWKS), for checking cards offline. Writes nothing."""
    return ctx.pos.card_keys()


@get("/cards/revocations", sync_to_thread=True, summary="List revoked cards", operation_id="pos_list_card_revocations",
     problems=SIGNED)  # fmt: skip
def revocations(principal: Who, ctx: Ctx, since_us: TimeUs = 0) -> Revocations:
    """Cards of the terminal's city revoked since `since_us`, oldest first: what an offline terminal
    must refuse. Writes nothing."""
    return ctx.pos.revocations(_terminal(principal), since_us)


@post("/", sync_to_thread=True, status_code=201, summary="Pair a device as a terminal", operation_id="pairing_pair_device",
      problems=("pairing_code_invalid", "pairing_code_used", "pairing_code_expired", "conflict", "invalid_request",
                "rate_limited"))  # fmt: skip
def pair(
    data: JSONBody[schemas.PairingBody], ctx: Ctx, request: Request, limits: NamedDependency[Limits]
) -> TerminalRegistration:
    """Register the device's own Ed25519 public key (raw 32 bytes, base64) as a terminal of the merchant
    the one-time pairing code was issued for, exactly as `POST /v1/admin/merchants/.../terminals`
    does; the code is used up. Unauthenticated: the code is the credential, and every refused code
    counts against the caller's failure budget (429 past it)."""
    with limits.failures.attempt(client_address(request)) as attempt:
        attempt.claim("pairing:" + hashlib.blake2b(data.code.encode(), digest_size=16).hexdigest())
        return ctx.pairing.pair(data.code, data.public_key, data.name)


pairing = Router("/v1/pairing", route_handlers=[pair], tags=["pos"])

pos = Router("/v1/pos", route_handlers=[identify, award, hold, capture, void, refund, offline, statement, card_keys, revocations],
             dependencies={"principal": Provide(terminal_principal)}, tags=["pos"])  # fmt: skip


ROUTERS = [pos, pairing]
