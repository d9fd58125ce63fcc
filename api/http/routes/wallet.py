"""/v1/wallet: the resident's balance, history, card, cities, data, and redemptions."""

from __future__ import annotations

from litestar import Response, Router, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from api.http import schemas
from api.http.auth import Principal, bearer_principal
from api.http.params import (
    AcceptLanguage,
    City,
    Ctx,
    Id,
    IdempotencyKey,
    OptionalSequence,
    OptionalTimeUs,
    PageLimit,
    RedemptionPageLimit,
    SequencePath,
    Who,
    idempotency_key,
)
from api.http.schemas import RedeemBody
from api.problems import negotiate_locale
from community.schemas import (
    Balance,
    Card,
    DataExport,
    Done,
    Erasure,
    ExpirySchedule,
    OptIns,
    WalletHistory,
    WalletHolds,
)
from ledger.domain.errors import InvalidRequest, ReceiptNotCheckpointed
from ledger.schemas import Receipt
from marketplace.schemas import Redemption, RedemptionPage
from operations.service_layer.jobs import seconds_until_checkpoint
from operations.service_layer.scheduler import Scheduler


def _resident(principal: Principal) -> str:
    return principal.require("resident").subject


def _home_city(principal: Principal) -> str:
    # A resident's principal is made from their record (see auth), which always names the home city.
    assert principal.city is not None
    return principal.city


@get("/balance", sync_to_thread=True, summary="Read the wallet's balance", operation_id="wallet_get_balance",
     problems=("unknown_resident", "resident_erased"))  # fmt: skip
def balance(principal: Who, ctx: Ctx) -> Balance:
    """The signed-in resident's points: available to spend, posted, and held by open holds."""
    return ctx.wallet.balance(_resident(principal), _home_city(principal))


@get("/history", sync_to_thread=True, summary="Read the wallet's history", operation_id="wallet_list_history",
     problems=("unknown_resident", "resident_erased", "invalid_request"))  # fmt: skip
def history(principal: Who, ctx: Ctx, before_sequence: OptionalSequence = None, after_sequence: OptionalSequence = None,
            limit: PageLimit = 50) -> WalletHistory:  # fmt: skip
    """The signed-in resident's wallet movements, newest first, in business terms (what, with whom,
    the points, the balance after) beside each raw journal entry; page with `before_sequence` (older)
    or `after_sequence` (newer: the page's `newer_after_sequence`), not both."""
    if before_sequence is not None and after_sequence is not None:
        raise InvalidRequest("give before_sequence or after_sequence, not both", field="after_sequence",
                             reason="invalid_value")  # fmt: skip
    return ctx.wallet.history(_resident(principal), _home_city(principal), before_sequence, limit, after_sequence)


@get("/holds", sync_to_thread=True, summary="List the wallet's open holds", operation_id="wallet_list_holds",
     problems=("unknown_resident", "resident_erased"))  # fmt: skip
def holds(principal: Who, ctx: Ctx) -> WalletHolds:
    """The points open holds reserve (redemptions not yet captured or released): what, where, how
    many, and when each lapses. Changes nothing."""
    return ctx.wallet.holds(_resident(principal), _home_city(principal))


@get("/expiry", sync_to_thread=True, summary="Read when the wallet's points expire", operation_id="wallet_get_expiry",
     problems=("unknown_resident", "resident_erased"))  # fmt: skip
def expiry(principal: Who, ctx: Ctx) -> ExpirySchedule:
    """The next days (in the city's calendar) on which available points expire and how many, oldest
    earnings first as expiry takes them; the rest as one sum. Changes nothing."""
    return ctx.expiry.schedule(_resident(principal), _home_city(principal))


@get("/card", sync_to_thread=True, summary="Read the citizen card", operation_id="wallet_get_card",
     problems=("unknown_card",))  # fmt: skip
def card(principal: Who, ctx: Ctx) -> Card:
    """The signed-in resident's current card: a signed token a terminal checks offline (no personal data)."""
    return ctx.residents.card(_resident(principal))


@get("/card/qr.svg", sync_to_thread=True, media_type="image/svg+xml", summary="Show the citizen card as a QR code",
     operation_id="wallet_get_card_qr", problems=("unknown_card",), media_types=("image/svg+xml",))  # fmt: skip
def card_qr(principal: Who, ctx: Ctx) -> Response[bytes]:
    """The card as a QR code (a standalone SVG that scales to the screen) to show at the till."""
    return Response(ctx.residents.card_qr(_resident(principal)), media_type="image/svg+xml")


@post("/card/replace", sync_to_thread=True, status_code=201, summary="Replace a lost card", operation_id="wallet_replace_card",
      problems=("unknown_resident", "resident_expired", "resident_erased", "unknown_card"))  # fmt: skip
def replace_card(principal: Who, ctx: Ctx) -> Card:
    """Report the card lost: every card of the resident is revoked and a new one issued, audited."""
    return ctx.residents.replace_card(_resident(principal), principal.actor)


@get("/opt-ins", sync_to_thread=True, summary="List the cities opted in to", operation_id="wallet_list_opt_ins",
     problems=("unknown_resident", "resident_erased"))  # fmt: skip
def list_opt_ins(principal: Who, ctx: Ctx) -> OptIns:
    """The resident's home city and the other cities where they may earn and redeem."""
    return ctx.residents.cities(_resident(principal))


@post("/opt-ins", sync_to_thread=True, status_code=200, summary="Opt in to another city", operation_id="wallet_opt_in",
      problems=("unknown_program", "unknown_resident", "resident_expired", "resident_erased"))  # fmt: skip
def opt_in(data: JSONBody[schemas.OptInBody], principal: Who, ctx: Ctx) -> OptIns:
    """Let the resident earn and redeem in another participating city; their wallet stays at home."""
    return ctx.residents.opt_in(_resident(principal), data.city, principal.actor)


@delete("/opt-ins/{city:str}", sync_to_thread=True, status_code=200, summary="Opt out of a city",
        operation_id="wallet_opt_out",
        problems=("unknown_program", "home_city", "opt_out_blocked", "unknown_resident", "resident_erased"))  # fmt: skip
def opt_out(city: City, principal: Who, ctx: Ctx) -> OptIns:
    """Stop earning and redeeming in a city opted in to (audited). Refused with 409 while points are
    held for a purchase there, until the hold is captured or released; points earned there stay in
    the wallet and vouchers redeemed there stay valid. Opting out of the home city is 409; of a city
    not opted in to, changes nothing."""
    return ctx.residents.opt_out(_resident(principal), city, principal.actor)


@get("/export", sync_to_thread=True, summary="Export the resident's data", operation_id="wallet_export_data",
     problems=("unknown_resident", "resident_erased"))  # fmt: skip
def export(principal: Who, ctx: Ctx) -> DataExport:
    """Everything held about the signed-in resident, in JSON: record, personal data, opt-ins, cards, wallet history."""
    return ctx.residents.export(_resident(principal))


ERASURE_PROBLEMS = ("unknown_resident", "resident_erased")


@get("/erasure", sync_to_thread=True, summary="Read the resident's erasure", operation_id="wallet_get_erasure",
     problems=ERASURE_PROBLEMS)  # fmt: skip
def get_erasure(principal: Who, ctx: Ctx) -> Erasure:
    """Whether the resident asked to be erased and when it will be carried out, with the points that
    would go to breakage now and their value. Changes nothing."""
    return ctx.residents.erasure(_resident(principal))


@post("/erasure", sync_to_thread=True, status_code=202, summary="Ask to be erased", operation_id="wallet_request_erasure",
      problems=ERASURE_PROBLEMS)  # fmt: skip
def erasure(principal: Who, ctx: Ctx) -> Erasure:
    """Ask to be erased `delay_days` from now (audited; asking again keeps the first date). Until
    then everything keeps working and `DELETE /v1/wallet/erasure` undoes it; then the personal data,
    key and cards are destroyed, the points left in the wallet go to breakage, and the ledger keeps
    its entries under the opaque id only."""
    return ctx.residents.request_erasure(_resident(principal), principal.actor)


@delete("/erasure", sync_to_thread=True, status_code=200, summary="Undo an erasure asked for",
        operation_id="wallet_cancel_erasure", problems=ERASURE_PROBLEMS)  # fmt: skip
def cancel_erasure(principal: Who, ctx: Ctx) -> Erasure:
    """Undo a pending erasure before its date (audited); with none pending, changes nothing."""
    return ctx.residents.cancel_erasure(_resident(principal), principal.actor)


@post("/sign-out-everywhere", sync_to_thread=True, status_code=200, summary="Sign out everywhere",
      operation_id="wallet_sign_out_everywhere", problems=("unknown_resident", "resident_erased"))  # fmt: skip
def sign_out_everywhere(principal: Who, ctx: Ctx) -> Done:
    """Revoke every live token of the resident at once, this one included: every app and browser
    signed in to the wallet is signed out (a lost phone). Passkeys stay registered."""
    ctx.access.revoke_resident(_resident(principal), _home_city(principal), principal.actor)
    return Done(status="revoked")


@post("/redemptions", sync_to_thread=True, status_code=201, summary="Redeem an item", operation_id="wallet_redeem_item",
      problems=("unknown_item", "item_unavailable", "sold_out", "resident_limit_reached", "not_opted_in", "resident_expired",
                "insufficient_funds", "invalid_item", "payments_disabled", "overloaded", "conflict", "unknown_resident",
                "resident_erased"))  # fmt: skip
def redeem(data: JSONBody[RedeemBody], principal: Who, ctx: Ctx, key: IdempotencyKey,
           accept_language: AcceptLanguage = None) -> Redemption:  # fmt: skip
    """Redeem `quantity` units of an offer, book event seats or pay a municipal service, from the
    resident's wallet (also in a city they opted in to). Points are held then captured at once; a
    city item's cash part is a card payment (`payment.client_secret` for Stripe.js), captured when it
    succeeds. A refusal leaves the redemption `failed` with nothing taken; a retry with the same
    Idempotency-Key tries again, or returns the redemption as it stands (`replayed`). Residents only."""
    return ctx.redemptions.redeem(_resident(principal), idempotency_key(key), data.item_id, data.quantity,
                                  negotiate_locale(accept_language))  # fmt: skip


@get(
    "/redemptions",
    sync_to_thread=True,
    summary="List the resident's redemptions",
    operation_id="wallet_list_redemptions",
    problems=("unknown_resident", "resident_erased"),
)
def list_redemptions(principal: Who, ctx: Ctx, before_us: OptionalTimeUs = None, limit: RedemptionPageLimit = 20,
                     accept_language: AcceptLanguage = None) -> RedemptionPage:  # fmt: skip
    """The resident's redemptions, newest first, with what was redeemed and where each stands. Changes nothing."""
    return ctx.redemptions.list(_resident(principal), before_us, limit, negotiate_locale(accept_language))


@get("/redemptions/{redemption_id:str}", sync_to_thread=True, summary="Read a redemption",
     operation_id="wallet_get_redemption", problems=("unknown_redemption", "unknown_resident", "resident_erased"))  # fmt: skip
def get_redemption(redemption_id: Id, principal: Who, ctx: Ctx, accept_language: AcceptLanguage = None) -> Redemption:
    """One of the resident's redemptions (another resident's is 404), e.g. to follow a card payment. Changes nothing."""
    return ctx.redemptions.get(_resident(principal), redemption_id, negotiate_locale(accept_language))


@post("/redemptions/{redemption_id:str}/cancel", sync_to_thread=True, status_code=200, summary="Cancel an unpaid redemption",
      operation_id="wallet_cancel_redemption",
      problems=("unknown_redemption", "redemption_not_pending", "payments_disabled", "overloaded", "unknown_resident",
                "resident_erased"))  # fmt: skip
def cancel_redemption(
    redemption_id: Id, principal: Who, ctx: Ctx, accept_language: AcceptLanguage = None
) -> Redemption:
    """Give up a card payment not yet made: the payment is cancelled at Stripe, the points are
    released and the unit goes back on sale. Only a redemption `awaiting_payment` can be cancelled."""
    return ctx.redemptions.cancel(_resident(principal), redemption_id, negotiate_locale(accept_language))


@get("/receipts/{sequence:str}", sync_to_thread=True, summary="Get a receipt with its inclusion proof",
     operation_id="wallet_get_receipt",
     problems=("unknown_receipt", "receipt_not_checkpointed", "unknown_resident", "resident_erased"))  # fmt: skip
def get_receipt(sequence: SequencePath, principal: Who, ctx: Ctx, jobs: NamedDependency[Scheduler]) -> Receipt:
    """The receipt of the resident's entry at `sequence` of their home city's ledger (with the rest of
    its linked group, in every ledger), each entry proved against the latest signed checkpoint of its
    ledger: check it offline with `entraide ledger verify-receipt`. Another resident's entry is 404,
    like a sequence that does not exist; an entry no checkpoint covers yet is 409 with Retry-After
    (until the next scheduled checkpoint). Changes nothing."""
    try:
        return ctx.receipts.get(_resident(principal), _home_city(principal), sequence)
    except ReceiptNotCheckpointed as exc:
        exc.context["retry_after_seconds"] = seconds_until_checkpoint(jobs, ctx.clock())
        raise


wallet = Router("/v1/wallet", route_handlers=[balance, history, holds, expiry, card, card_qr, replace_card, list_opt_ins, opt_in, opt_out,
                                          export, get_erasure, erasure, cancel_erasure, sign_out_everywhere,
                                          redeem, list_redemptions, get_redemption, cancel_redemption, get_receipt],
                dependencies={"principal": Provide(bearer_principal)}, tags=["wallet"])  # fmt: skip


ROUTERS = [wallet]
