"""`/office/residents`: a program officer's resident care. Look a resident up by id or card number
(exactly: personal data is sealed with each resident's own key, so it is never searched), read their
record (level, cards, balance, recent movements, a pending erasure), enrol one with a first activation
code shown once (with its QR), renew, change the level with the evidence seen, revoke a card, give a
new activation code (shown, or e-mailed when a mail server is set), and schedule or cancel an erasure,
which waits the delay a resident's own request waits.

Each handler calls the service its `/v1/admin/residents/…` route calls: `Residents.find`, `record`,
`cards`, `enroll` + `Activation.issue`, `renew`, `set_level`, `revoke_card`, `Activation.send`,
`request_erasure`, `cancel_erasure`; `Wallet.balance` and `history` for the balance.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

import msgspec
import segno
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.params import Ctx, DoneNotice, Id, ResidentLookup
from api.problems import problem_document
from community.schemas import ActivationCode
from ledger.domain.errors import LedgerError
from web import pages
from web.auth import Staff, office_city
from web.mail import activation_message
from web.routes.office import render_office

BASE = "/office/residents"
RECENT_MOVEMENTS = 10  # the resident's page shows the last few; the resident's own export has all
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
Level = Annotated[str, msgspec.Meta(pattern=r"^(basic|verified|checked)$")]
Language = Annotated[str, msgspec.Meta(pattern=r"^(fr|en|es)$")]


class EnrolForm(msgspec.Struct, frozen=True):
    key: Annotated[str, msgspec.Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    email: Annotated[str, msgspec.Meta(max_length=254)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=40)] = ""
    language: Language = "fr"
    level: Level = "basic"
    email_code: Literal["", "yes"] = ""  # e-mail the code to the resident instead of showing it here


class LevelForm(msgspec.Struct, frozen=True):
    level: Level
    evidence: Annotated[str, msgspec.Meta(max_length=500)] = ""


class KeyForm(msgspec.Struct, frozen=True):
    key: Annotated[str, msgspec.Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _key() -> str:
    """A form's idempotency key: sending the form twice (a double click, a reload) does it once."""
    return secrets.token_urlsafe(16)


def _lookup_page(request: Request, ctx: Ctx, officer: Staff, q: str = "", problem: dict | None = None) -> Template:
    return render_office(request, ctx, officer, "office/residents.html", status_code=problem["status"] if problem else 200,
                   q=q, problem=problem, key=_key(), can_email=ctx.mailer is not None)  # fmt: skip


@get(BASE, sync_to_thread=True)
def lookup(request: Request, ctx: Ctx, officer: Staff, q: ResidentLookup = "") -> Template | Redirect:
    """The lookup form; with `q`, the resident it names exactly, else the form again saying so (404)."""
    city = office_city(officer, "residents")
    if not q.strip():
        return _lookup_page(request, ctx, officer)
    try:
        found = ctx.residents.find(q, city)
    except LedgerError as exc:
        if exc.code not in ("unknown_resident", "wrong_tenant", "resident_erased"):
            raise
        return _lookup_page(request, ctx, officer, q, problem_document(exc.code, pages.locale(request), {}))
    return pages.see_other(f"{BASE}/{found.id}")


@post(BASE, sync_to_thread=True, status_code=201)
def enrol(request: Request, ctx: Ctx, officer: Staff, data: Annotated[EnrolForm, Form]) -> Template | Redirect:
    """Enrol, then show the first activation code once (no redirect: the code is never put in a URL;
    sending the form again answers the same resident and code, by its idempotency key), or e-mail it
    to the resident when asked (a mail server set: `Activation.send`, as the API's …/activation/email)."""
    city = office_city(officer, "residents")
    personal = {k: v.strip() for k, v in (("name", data.name), ("email", data.email), ("phone", data.phone))
                if v.strip()} | {"language": data.language}  # fmt: skip
    resident = ctx.residents.enroll(city, personal, data.level, officer.actor, key=data.key)
    if data.email_code:
        return _send_code(request, ctx, officer, resident.id, data.key)
    code = ctx.activation.issue(resident.id, city, officer.actor, key=data.key)
    return _code_page(request, ctx, officer, code, enrolled=True)


def _send_code(request: Request, ctx: Ctx, officer: Staff, resident_id: str, key: str) -> Redirect:
    ctx.activation.send(resident_id, office_city(officer, "residents"), officer.actor,
                        activation_message(ctx, pages.site_origin(request, ctx)), key=key)  # fmt: skip
    return _back(resident_id, "code-sent")


def _code_page(request: Request, ctx: Ctx, officer: Staff, code: ActivationCode, enrolled: bool) -> Template:
    qr = segno.make(code.code, error="m").svg_data_uri(scale=6, light="#fff", dark="#000")
    return render_office(request, ctx, officer, "office/residents_code.html", status_code=201, code=code, qr=qr,
                   enrolled=enrolled, sign_in=f"{pages.site_origin(request, ctx)}/wallet/sign-in",
                   timezone=ctx.programs.get(code.city).timezone)  # fmt: skip


@get(f"{BASE}/{{resident_id:str}}", sync_to_thread=True)
def resident(request: Request, ctx: Ctx, officer: Staff, resident_id: Id, done: DoneNotice = None) -> Template:
    city = office_city(officer, "residents")
    record = ctx.residents.record(resident_id, city)
    communities = {c.city: c for c in ctx.programs.communities()}
    return render_office(request, ctx, officer, "office/residents_record.html", record=record, done=done,
                   cards=ctx.residents.cards(resident_id, city), balance=ctx.wallet.balance(resident_id, city),
                   history=ctx.wallet.history(resident_id, city, None, RECENT_MOVEMENTS), cities=communities,
                   erasure=ctx.residents.erasure(resident_id), timezone=communities[city].timezone, key=_key(),
                   can_email=ctx.mailer is not None)  # fmt: skip


def _back(resident_id: str, done: str) -> Redirect:
    return pages.see_other(f"{BASE}/{resident_id}?done={done}#done")


@post(f"{BASE}/{{resident_id:str}}/renew", sync_to_thread=True)
def renew(ctx: Ctx, officer: Staff, resident_id: Id) -> Redirect:
    ctx.residents.renew(resident_id, officer.actor, office_city(officer, "residents"))
    return _back(resident_id, "renewed")


@post(f"{BASE}/{{resident_id:str}}/level", sync_to_thread=True)
def set_level(ctx: Ctx, officer: Staff, resident_id: Id, data: Annotated[LevelForm, Form]) -> Redirect:
    """The level, with what was seen: the service refuses an empty evidence (the audit trail keeps it)."""
    ctx.residents.set_level(
        resident_id, data.level, officer.actor, office_city(officer, "residents"), data.evidence.strip()
    )
    return _back(resident_id, "level")


@post(f"{BASE}/{{resident_id:str}}/cards/{{card_id:str}}/revoke", sync_to_thread=True)
def revoke_card(ctx: Ctx, officer: Staff, resident_id: Id, card_id: Id) -> Redirect:
    ctx.residents.revoke_card(card_id, officer.actor, office_city(officer, "residents"))
    return _back(resident_id, "card-revoked")


@post(f"{BASE}/{{resident_id:str}}/activation", sync_to_thread=True, status_code=201)
def new_code(request: Request, ctx: Ctx, officer: Staff, resident_id: Id, data: Annotated[KeyForm, Form]) -> Template:
    """A new code, shown once (the older one stops working)."""
    code = ctx.activation.issue(resident_id, office_city(officer, "residents"), officer.actor, key=data.key)
    return _code_page(request, ctx, officer, code, enrolled=False)


@post(f"{BASE}/{{resident_id:str}}/activation/email", sync_to_thread=True)
def email_code(request: Request, ctx: Ctx, officer: Staff, resident_id: Id, data: Annotated[KeyForm, Form]) -> Redirect:
    """A new code, e-mailed to the resident in their language (not shown here)."""
    return _send_code(request, ctx, officer, resident_id, data.key)


@post(f"{BASE}/{{resident_id:str}}/erasure", sync_to_thread=True)
def schedule_erasure(ctx: Ctx, officer: Staff, resident_id: Id) -> Redirect:
    """Erasure after the delay a resident's own request waits, cancellable until then."""
    ctx.residents.request_erasure(resident_id, officer.actor, office_city(officer, "residents"))
    return _back(resident_id, "erasure-scheduled")


@post(f"{BASE}/{{resident_id:str}}/erasure/cancel", sync_to_thread=True)
def cancel_erasure(ctx: Ctx, officer: Staff, resident_id: Id) -> Redirect:
    ctx.residents.cancel_erasure(resident_id, officer.actor, office_city(officer, "residents"))
    return _back(resident_id, "erasure-cancelled")


ROUTER = Router("/", route_handlers=[lookup, enrol, resident, renew, set_level, revoke_card, new_code, email_code,
                                     schedule_erasure, cancel_erasure])  # fmt: skip
