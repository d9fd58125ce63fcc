"""/v1/merchants: a merchant's catalog, shop and payout account onboarding, from its signed terminals;
its terminals and its activity, for its owner (a `merchant` principal's bearer token, as the portal)."""

from __future__ import annotations

from litestar import Router, get, patch, post, put
from litestar.di import Provide
from litestar.params import JSONBody

from api.http.auth import Principal, bearer_principal, terminal_principal
from api.http.params import Ctx, Cursor, Id, IdempotencyKey, OptionalSequence, PageLimit, Who, idempotency_key
from api.http.schemas import PairingCodeBody, ShopBody, TerminalNameBody
from community.schemas import Done
from finance.schemas import OnboardingLink, OnboardingStatus
from marketplace.domain.catalog import ItemPatch, ItemSpec
from marketplace.schemas import Item, ItemPage, Shop
from marketplace.service_layer.catalog import Owner
from merchants.schemas import MerchantActivity, MerchantTerminals, PairingCode
from merchants.service_layer.activity import activity

# Every write checks the merchant is approved; the items' rules answer invalid_item.
_WRITE_PROBLEMS = ("merchant_not_approved", "unknown_ledger")


def _merchant(principal: Principal) -> Owner:
    assert principal.terminal is not None
    return Owner(principal.terminal.city, principal.terminal.merchant_id, f"merchant:{principal.terminal.merchant_id}")


@post("/offers", sync_to_thread=True, status_code=201, summary="Publish an offer", operation_id="merchants_create_offer",
      problems=("invalid_item", *_WRITE_PROBLEMS))  # fmt: skip
def create_offer(data: JSONBody[ItemSpec], principal: Who, ctx: Ctx, key: IdempotencyKey) -> Item:
    """Publish an offer of the signed terminal's merchant, or save it as a draft: titles and
    descriptions in fr/en/es, a price in points per unit plus an optional cash part paid at the till,
    stock and a per-resident limit, dates. The merchant must be approved. A retry with the same
    Idempotency-Key returns the offer first made and publishes no second one."""
    return ctx.catalog.create(_merchant(principal), "offer", data, idempotency_key(key))


@get("/offers", sync_to_thread=True, summary="List the merchant's offers", operation_id="merchants_list_offers")
def list_offers(principal: Who, ctx: Ctx, after_id: Cursor = "", limit: PageLimit = 50) -> ItemPage:
    """The signed terminal's merchant's offers in every status, by id, a page at a time. Changes nothing."""
    return ctx.catalog.list(_merchant(principal), (), after_id, limit)


@get("/offers/{item_id:str}", sync_to_thread=True, summary="Read one of the merchant's offers",
     operation_id="merchants_get_offer", problems=("unknown_item",))  # fmt: skip
def get_offer(item_id: Id, principal: Who, ctx: Ctx) -> Item:
    """One offer of the signed terminal's merchant, with its stock, status and any suspension by the city."""
    return ctx.catalog.get(_merchant(principal), item_id)


@patch("/offers/{item_id:str}", sync_to_thread=True, summary="Change an offer", operation_id="merchants_update_offer",
       problems=("unknown_item", "invalid_item", *_WRITE_PROBLEMS))  # fmt: skip
def update_offer(item_id: Id, data: JSONBody[ItemPatch], principal: Who, ctx: Ctx) -> Item:
    """Change some fields of one of the merchant's offers; absent fields keep their value, `null`
    clears an optional one, `status: archived` withdraws the offer. Stock already taken stays taken.
    A city's suspension stays until the city lifts it. Audited, and search follows at once."""
    return ctx.catalog.update(_merchant(principal), item_id, data)


@put("/shop", sync_to_thread=True, summary="Set the shop's place and opening", operation_id="merchants_put_shop",
     problems=_WRITE_PROBLEMS)  # fmt: skip
def put_shop(data: JSONBody[ShopBody], principal: Who, ctx: Ctx) -> Shop:
    """Where the merchant's shop is and whether it is open now: every offer follows, in search and at
    redemption (a closed shop's offers cannot be redeemed). Audited."""
    return ctx.catalog.set_shop(_merchant(principal), data.location, data.is_open)


@get("/shop", sync_to_thread=True, summary="Read the shop", operation_id="merchants_get_shop")
def get_shop(principal: Who, ctx: Ctx) -> Shop:
    """The merchant's shop as last set (open, with no place, until it is set). Changes nothing."""
    return ctx.catalog.shop(_merchant(principal))


def _payee(principal: Principal) -> tuple[str, str, str]:
    """The signed terminal's city, merchant and actor name."""
    owner = _merchant(principal)
    assert owner.merchant_id is not None
    return owner.city, owner.merchant_id, owner.actor


@post("/payout-onboarding", sync_to_thread=True, status_code=200, summary="Start the payout account's onboarding",
      operation_id="merchants_start_payout_onboarding", problems=("payments_disabled", "overloaded"))  # fmt: skip
def start_payout_onboarding(principal: Who, ctx: Ctx, key: IdempotencyKey) -> OnboardingLink:
    """The URL of Stripe's hosted onboarding, where the merchant gives Stripe its identity and bank
    account; its Stripe connected account is made on the first call. Once Stripe enables its payouts,
    the merchant's payouts go there. A retry with the same Idempotency-Key returns the same link; an
    expired link: ask again with a new key. Needs the site's public origin (`ENTRAIDE_WEB_ORIGIN`), where
    Stripe sends the merchant back."""
    city, merchant_id, actor = _payee(principal)
    return ctx.onboarding.start(city, merchant_id, actor, key=idempotency_key(key))


@get("/payout-onboarding", sync_to_thread=True, summary="Read the payout account's onboarding",
     operation_id="merchants_get_payout_onboarding", problems=("payments_disabled", "overloaded"))  # fmt: skip
def get_payout_onboarding(principal: Who, ctx: Ctx) -> OnboardingStatus:
    """Whether the merchant's Stripe connected account exists, its forms are done and its payouts are
    enabled, as Stripe says now (what the portal shows when the merchant comes back from Stripe)."""
    return ctx.onboarding.status(*_payee(principal))


merchants = Router("/v1/merchants", route_handlers=[create_offer, list_offers, get_offer, update_offer, put_shop, get_shop,
                                                    start_payout_onboarding, get_payout_onboarding],
                   dependencies={"principal": Provide(terminal_principal)}, tags=["merchants"])  # fmt: skip


def owned(principal: Principal) -> tuple[str, str, str]:
    """A merchant owner's city, merchant and actor name (a `merchant` principal, bound to its merchant)."""
    principal.require("merchant")
    assert principal.city is not None and principal.merchant_id is not None
    return principal.city, principal.merchant_id, principal.actor


@post("/pairing-codes", sync_to_thread=True, status_code=201, summary="Issue a pairing code for a new device",
      operation_id="owners_issue_pairing_code", problems=("unknown_merchant", "invalid_request"))  # fmt: skip
def owner_pairing_code(data: JSONBody[PairingCodeBody], principal: Who, ctx: Ctx, key: IdempotencyKey) -> PairingCode:
    """A one-time code (15 minutes) with which a device of the owner's shop pairs itself as one of its
    terminals (`/terminal/pair?code=…`, `POST /v1/pairing`); `{}` for a device without a name. A retry
    with the same Idempotency-Key shows the same code. The merchant's owner only."""
    city, merchant_id, actor = owned(principal)
    return ctx.pairing.issue(merchant_id, city, actor, data.name, key=idempotency_key(key))


@get("/terminals", sync_to_thread=True, summary="List the merchant's terminals", operation_id="owners_list_terminals",
     problems=("unknown_merchant",))  # fmt: skip
def owner_terminals(principal: Who, ctx: Ctx) -> MerchantTerminals:
    """The owner's terminals, newest first: name, web till or POS, when paired, last seen (within the
    last minutes), active or revoked. Changes nothing. The merchant's owner only."""
    city, merchant_id, _ = owned(principal)
    return ctx.terminals.of_merchant(merchant_id, city)


@put("/terminals/{key_id:str}/name", sync_to_thread=True, summary="Rename a terminal",
     operation_id="owners_rename_terminal", problems=("unknown_merchant", "invalid_request"))  # fmt: skip
def owner_rename_terminal(key_id: Id, data: JSONBody[TerminalNameBody], principal: Who, ctx: Ctx) -> Done:
    """Name one of the merchant's terminals ("Till 1"), audited. The merchant's owner only."""
    city, merchant_id, actor = owned(principal)
    ctx.terminals.rename(key_id, data.name, actor, city, merchant_id=merchant_id)
    return Done(status="renamed")


@post("/terminals/{key_id:str}/revoke", sync_to_thread=True, status_code=200, summary="Revoke a terminal",
      operation_id="owners_revoke_terminal", problems=("unknown_merchant",))  # fmt: skip
def owner_revoke_terminal(key_id: Id, principal: Who, ctx: Ctx) -> Done:
    """Revoke one of the merchant's terminals: its next request is refused. Audited. The merchant's owner only."""
    city, merchant_id, actor = owned(principal)
    ctx.terminals.revoke(key_id, actor, city, merchant_id=merchant_id)
    return Done(status="revoked")


@get("/activity", sync_to_thread=True, summary="Read who did what at the merchant", operation_id="owners_activity")
def owner_activity(
    principal: Who, ctx: Ctx, before_seq: OptionalSequence = None, limit: PageLimit = 50
) -> MerchantActivity:
    """The city's audit records about the merchant, newest first: its terminals paired, renamed and
    revoked, its offers, its payout account, its owners' sign-in codes. Changes nothing. The merchant's owner only."""
    city, merchant_id, _ = owned(principal)
    return activity(ctx.engine, city, merchant_id, before_seq, limit)


owners = Router("/v1/merchants", route_handlers=[owner_pairing_code, owner_terminals, owner_rename_terminal,
                                                 owner_revoke_terminal, owner_activity],
                dependencies={"principal": Provide(bearer_principal)}, tags=["merchants"])  # fmt: skip


ROUTERS = [merchants, owners]
