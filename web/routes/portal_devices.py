"""The portal's terminals, activity and payout account, for the merchant's signed-in owner (web.auth
`Merchant`). Each handler calls the service its API route calls (api/http/routes/merchants.py):

- `/portal/terminals`: the merchant's terminals (`Terminals.of_merchant`); "pair a new device" issues
  a one-time code (`Pairing.issue`), shown big with a QR of `/terminal/pair?code=…` until a device
  uses it (`Pairing.live`); rename (`Terminals.rename`) and revoke (`Terminals.revoke`), both audited.
- `/portal/activity`: the audit records about the merchant, newest first (`merchants.service_layer.activity`).
- `/portal/payout-onboarding`: the payout account (`Onboarding.status`); its button goes to Stripe's
  hosted onboarding (`Onboarding.start`), which sends the owner back to `…/return` (the status again)
  or, if its link expired, to `…/refresh` (the same page, whose button makes a new link).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import msgspec
import segno
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.params import Ctx, DoneNotice, Id, OptionalSequence, PairingCodeQuery
from merchants.service_layer.activity import activity
from web import pages
from web.auth import Merchant, owner_merchant

TERMINALS = "/portal/terminals"
ACTIVITY_PAGE = 25  # records per page of the merchant's activity
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
MAX_FORM_KEY = 100


class PairForm(msgspec.Struct, frozen=True):
    idempotency_key: str = ""  # the page's: a double submit shows the same code
    name: str = ""


class NameForm(msgspec.Struct, frozen=True):
    name: str = ""


class OnboardingForm(msgspec.Struct, frozen=True):
    idempotency_key: str = ""  # the page's: a double submit asks Stripe for one link


def _form_key(key: str) -> str:
    """The form's idempotency key, or a fresh one if the form came without the page's (a stale page)."""
    if not key or not key.isprintable() or " " in key or len(key) > MAX_FORM_KEY:
        key = secrets.token_urlsafe(18)
    return f"web:{key}"


def _name(text: str) -> str | None:
    return text.strip() or None  # blank: no name (the service refuses one too long)


def _render(request: Request, ctx: Ctx, owner: Merchant, template: str, **context: Any) -> Template:
    city, _ = owner_merchant(owner)
    return pages.render(request, template, owner=owner, timezone=ctx.programs.get(city).timezone, **context)


@get(TERMINALS, sync_to_thread=True)
def terminals(request: Request, ctx: Ctx, owner: Merchant, done: DoneNotice = None) -> Template:
    city, merchant_id = owner_merchant(owner)
    return _render(request, ctx, owner, "portal/terminals.html", listing=ctx.terminals.of_merchant(merchant_id, city),
                   idempotency_key=secrets.token_urlsafe(18), done=done)  # fmt: skip


@post(f"{TERMINALS}/pairing-codes", sync_to_thread=True, status_code=303)
def issue_code(ctx: Ctx, owner: Merchant, data: Annotated[PairForm, Form]) -> Redirect:
    city, merchant_id = owner_merchant(owner)
    issued = ctx.pairing.issue(merchant_id, city, owner.actor, _name(data.name), key=_form_key(data.idempotency_key))
    return pages.see_other(f"{TERMINALS}/pairing?code={issued.code}")


@get(f"{TERMINALS}/pairing", sync_to_thread=True)
def pairing(request: Request, ctx: Ctx, owner: Merchant, code: PairingCodeQuery) -> Template:
    """The code, big, with the QR a tablet's camera opens (`/terminal/pair?code=…`), while it works."""
    city, merchant_id = owner_merchant(owner)
    live = ctx.pairing.live(code, merchant_id, city)
    url = f"{pages.site_origin(request, ctx)}/terminal/pair?code={live.code}"
    qr = segno.make(url, error="m").svg_data_uri(scale=5, border=2)
    return _render(request, ctx, owner, "portal/terminals_pairing.html", pairing=live, url=url, qr=qr)


@post(f"{TERMINALS}/{{key_id:str}}/name", sync_to_thread=True, status_code=303)
def rename(key_id: Id, ctx: Ctx, owner: Merchant, data: Annotated[NameForm, Form]) -> Redirect:
    city, merchant_id = owner_merchant(owner)
    ctx.terminals.rename(key_id, _name(data.name), owner.actor, city, merchant_id=merchant_id)
    return pages.see_other(f"{TERMINALS}?done=renamed")


@post(f"{TERMINALS}/{{key_id:str}}/revoke", sync_to_thread=True, status_code=303)
def revoke(key_id: Id, ctx: Ctx, owner: Merchant) -> Redirect:
    city, merchant_id = owner_merchant(owner)
    ctx.terminals.revoke(key_id, owner.actor, city, merchant_id=merchant_id)
    return pages.see_other(f"{TERMINALS}?done=revoked")


@get("/portal/activity", sync_to_thread=True)
def merchant_activity(request: Request, ctx: Ctx, owner: Merchant, before: OptionalSequence = None) -> Template:
    city, merchant_id = owner_merchant(owner)
    page = activity(ctx.engine, city, merchant_id, before, ACTIVITY_PAGE)
    return _render(request, ctx, owner, "portal/activity.html", page=page, before=before)


ONBOARDING = "/portal/payout-onboarding"


def _payout_page(request: Request, ctx: Ctx, owner: Merchant, back: str | None) -> Template:
    city, merchant_id = owner_merchant(owner)
    return _render(request, ctx, owner, "portal/payout_onboarding.html", back=back,
                   status=ctx.onboarding.status(city, merchant_id, owner.actor), idempotency_key=secrets.token_urlsafe(18))  # fmt: skip


@get(ONBOARDING, sync_to_thread=True)
def payout_account(request: Request, ctx: Ctx, owner: Merchant) -> Template:
    return _payout_page(request, ctx, owner, None)


@post(ONBOARDING, sync_to_thread=True, status_code=303)
def start_onboarding(ctx: Ctx, owner: Merchant, data: Annotated[OnboardingForm, Form]) -> Redirect:
    """Off to Stripe's hosted onboarding (its account link), for a first link or a new one."""
    city, merchant_id = owner_merchant(owner)
    link = ctx.onboarding.start(city, merchant_id, owner.actor, key=_form_key(data.idempotency_key))
    return Redirect(link.url, status_code=303, headers=pages.SECURITY_HEADERS)  # Stripe's page, not ours


@get(f"{ONBOARDING}/return", sync_to_thread=True)
def onboarding_return(request: Request, ctx: Ctx, owner: Merchant) -> Template:
    """Back from Stripe: what Stripe says of the account now."""
    return _payout_page(request, ctx, owner, "return")


@get(f"{ONBOARDING}/refresh", sync_to_thread=True)
def onboarding_refresh(request: Request, ctx: Ctx, owner: Merchant) -> Template:
    """Stripe's link expired or was used: Stripe sends the owner here, and the page's button asks for a
    new one (a POST: opening a page makes nothing at Stripe)."""
    return _payout_page(request, ctx, owner, "refresh")


ROUTER = Router("/", route_handlers=[terminals, issue_code, pairing, rename, revoke, merchant_activity, payout_account,
                                     start_onboarding, onboarding_return, onboarding_refresh])  # fmt: skip
