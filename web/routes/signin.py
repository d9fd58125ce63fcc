"""Signing in on the web: `/wallet/sign-in` for residents, `/portal/sign-in` for a merchant's owner,
`/office/sign-in` for program officers (web.auth.AREAS) — an activation code, or a passkey —, the
passkey step after activation, `/wallet/account/security` (my passkeys, sign out everywhere),
signing out; in the demo only, a list of demo residents and principals, and the dev mailbox.

One handler serves each step for every area: the area is the path's (`web.auth.area_of`), and with
it whose codes and passkeys count (a resident's, or a principal's) and which session opens, so a
resident's code or passkey never opens the office and an officer's never opens the wallet.

The services are the community layer's (`ctx.activation`, `ctx.passkeys`, `ctx.access`); every
sign-in ends in `web.auth.open_session`. A WebAuthn ceremony's challenge is bound to the browser
that asked for it: it travels in a short-lived HttpOnly cookie signed with the deployment's web
secret, naming its purpose (and, for registering, the resident), and is dropped once answered.
The passkey's origin and relying-party id are the site's address (ENTRAIDE_WEB_ORIGIN, else the
address the request came to). Every refusal of a code or a passkey is a 401, so the failure
budgets (api/http/auth.py) slow down anyone guessing codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import msgspec
from anyio import to_thread
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, JSONBody
from litestar.response import Redirect, Template

from api.bootstrap import Context
from api.http.auth import Limits, client_address
from api.http.params import Ctx, NextPath
from api.problems import PROBLEMS, error_params, problem_document
from community.adapters.mail import DevMailbox
from community.domain.errors import PasskeyRefused
from ledger.domain.errors import LedgerError
from web import auth, pages
from web.auth import AREAS, SIGN_IN_PATH, WALLET, Area, Resident, Visitor, area_of

CHALLENGE_COOKIE = "entraide_webauthn"
CHALLENGE_SECONDS = 300
SECURITY_PATH = "/wallet/account/security"
DEFAULT_NEXT = "/wallet"
DEMO_RESIDENTS = 6  # the demo's sign-in page lists this many residents, one per city


class CodeForm(msgspec.Struct, frozen=True):
    code: str = ""
    next: str = ""  # empty: the area's home


class DemoForm(msgspec.Struct, frozen=True):
    resident_id: str
    next: str = DEFAULT_NEXT


class DemoPrincipalForm(msgspec.Struct, frozen=True):
    principal_id: str
    next: str = ""


class PasskeyForm(msgspec.Struct, frozen=True):
    credential_id: str


class PasskeyAnswer(msgspec.Struct, frozen=True):
    credential: dict[str, Any]
    next: str = ""  # empty: the area's home


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


# --- the challenge cookie and the site's address ---------------------------------------------------


def _site(request: Request, ctx: Context) -> tuple[str, str]:
    """(origin, relying-party id): the configured public address, else the request's own."""
    origin = pages.site_origin(request, ctx)
    return origin, urlsplit(origin).hostname or "localhost"


def _mac(ctx: Context, payload: str) -> str:
    key = hmac.new(ctx.keys.secret("web"), b"entraide/webauthn-challenge", hashlib.sha256).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def _challenge_cookie(ctx: Context, purpose: str, challenge: bytes, subject: str = "") -> Cookie:
    expires_s = ctx.clock() // 1_000_000 + CHALLENGE_SECONDS
    payload = ".".join((purpose, base64.urlsafe_b64encode(challenge).decode().rstrip("="), str(expires_s), subject))
    return pages.secure_cookie(CHALLENGE_COOKIE, f"{payload}.{_mac(ctx, payload)}", CHALLENGE_SECONDS)


def _challenge(request: Request, ctx: Context, purpose: str, subject: str = "") -> bytes:
    """The challenge this browser was given for `purpose` (and `subject`), still fresh; else 401."""
    payload, _, mac = request.cookies.get(CHALLENGE_COOKIE, "").rpartition(".")
    parts = payload.split(".")
    if len(parts) != 4 or not hmac.compare_digest(mac, _mac(ctx, payload)):
        raise PasskeyRefused("no challenge for this browser")
    kept_purpose, encoded, expires_s, kept_subject = parts
    if kept_purpose != purpose or kept_subject != subject or int(expires_s) < ctx.clock() // 1_000_000:
        raise PasskeyRefused("the challenge is for something else, or too old")
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def _challenge_done() -> Cookie:
    return pages.secure_cookie(CHALLENGE_COOKIE, "", 0)


def _json(data: Any, status_code: int = 200, cookies: list[Cookie] | None = None) -> Response:
    return Response(content=data, status_code=status_code, media_type="application/json", cookies=cookies or [],
                    headers={**pages.SECURITY_HEADERS, "Cache-Control": "no-store"})  # fmt: skip


def _json_problem(request: Request, exc: LedgerError) -> Response:
    """A refusal of a script's request: the problem document in the visitor's language (the
    script shows its detail in a live region)."""
    code = exc.code if exc.code in PROBLEMS else "internal_error"
    document = problem_document(code, pages.locale(request), error_params(exc), instance=request.url.path)
    response = _json(document, int(document["status"]))  # type: ignore[call-overload]
    response.media_type = "application/problem+json"
    return response


# --- signing in ---------------------------------------------------------------------------------


def _each(method: Any, paths: list[str], **options: Any) -> Any:
    """One route handler per path for a step every area shares (one handler given several paths
    breaks the routers' `after_request` in litestar 2.25): the function, with its handlers in `.handlers`."""

    def register(fn: Any) -> Any:
        fn.handlers = [method(path, **options)(fn) for path in paths]
        return fn

    return register


def _demo_residents(ctx: Context) -> list[dict[str, str]]:
    """In the demo only: a few of its residents (one per city), with their names, to sign in as."""
    if not ctx.settings.demo:
        return []
    from api.demo.seed import credentials_path

    path = credentials_path(ctx)
    if not path.exists():
        return []
    listed: dict[str, dict[str, str]] = {}
    for entry in json.loads(path.read_text(encoding="utf-8")).get("residents", []):
        if entry["city"] not in listed and len(listed) < DEMO_RESIDENTS:
            try:
                name = ctx.residents.personal(entry["resident_id"]).get("name", entry["resident_id"])
            except LedgerError:
                continue
            listed[entry["city"]] = {"id": entry["resident_id"], "city": entry["city"], "name": name}
    names = {c.city: c.name for c in ctx.programs.communities()}
    return [r | {"city_name": names.get(r["city"], r["city"])} for r in listed.values()]


def _demo_principals(ctx: Context, area: Area) -> list[dict[str, str]]:
    """In the demo only: its merchant owners (portal) or program officers (office), to sign in as."""
    if not ctx.settings.demo:
        return []
    from api.demo.seed import credentials_path

    path = credentials_path(ctx)
    if not path.exists():
        return []
    entries = json.loads(path.read_text(encoding="utf-8")).get("principals", [])
    return [e for e in entries if e["role"] in area.roles]


def _holder(ctx: Context, area: Area, principal: auth.Principal) -> str:
    """Whose passkeys these are: the resident's id, or the signed-in principal's."""
    if area.kind == "resident":
        return principal.subject
    assert principal.city is not None
    return ctx.access.principal_id(principal.city, principal.role, principal.subject)


def _sign_in_page(request: Request, ctx: Context, next_: str | None, status_code: int = 200, code: str = "",
                  problem: dict | None = None) -> Template:  # fmt: skip
    area = area_of(request.url.path)
    notice = request.query_params.get("signed_out")
    return pages.render(request, "signin/sign_in.html", status_code=status_code, next=pages.local_target(next_, area.base),
                        code=code, problem=problem, notice=notice if notice in ("1", "everywhere") else None, area=area.name,
                        base=area.base, demo_residents=_demo_residents(ctx) if area is WALLET else [],
                        demo_principals=_demo_principals(ctx, area),
                        identity_provider=area is WALLET and ctx.provider_sign_in is not None)  # fmt: skip


@_each(get, [a.sign_in for a in AREAS], sync_to_thread=True)
def sign_in_page(request: Request, ctx: Ctx, next: NextPath = "") -> Template:
    return _sign_in_page(request, ctx, next)


@_each(post, [a.sign_in for a in AREAS], sync_to_thread=True)
def sign_in_with_code(request: Request, ctx: Ctx, limits: NamedDependency[Limits], visitor: Visitor,
                      data: Annotated[CodeForm, Form]) -> Template | Redirect:  # fmt: skip
    """An activation code of the area's kind: used up, a session opened, then the passkey step. A
    refused code is the page again with the reason next to the field (401, nothing changed)."""
    area = area_of(request.url.path)
    try:
        with limits.failures.attempt(client_address(request)) as attempt:
            attempt.claim("activation:" + hashlib.blake2b(data.code.encode(), digest_size=16).hexdigest())
            holder_id, city = ctx.activation.redeem(data.code, area.kind)
            cookie = auth.open_session(ctx, holder_id, city, "web:activation", area, replacing=visitor)
    except LedgerError as exc:
        document = problem_document(exc.code, pages.locale(request), error_params(exc))
        return _sign_in_page(request, ctx, data.next, int(document["status"]), data.code, document)  # type: ignore[call-overload]
    target = pages.local_target(data.next, area.base)
    return pages.see_other(f"{area.sign_in}/passkey?next={quote(target, safe='/')}", [cookie])


@_each(get, [f"{a.sign_in}/passkey" for a in AREAS], sync_to_thread=True)
def passkey_step(request: Request, ctx: Ctx, principal: Resident, next: NextPath = "") -> Template:
    """Right after activation: register a passkey on this device (or later, from the security page)."""
    area = area_of(request.url.path)
    return pages.render(request, "signin/passkey.html", next=pages.local_target(next, area.base), area=area.name,
                        base=area.base, passkeys=ctx.passkeys.list(_holder(ctx, area, principal), area.kind))  # fmt: skip


@_each(post, [f"{a.sign_in}/passkey/options" for a in AREAS], sync_to_thread=True)
def passkey_sign_in_options(request: Request, ctx: Ctx) -> Response:
    options, challenge = ctx.passkeys.authentication_options(_site(request, ctx)[1])
    purpose = f"sign-in:{area_of(request.url.path).name}"
    return _json(json.loads(options), cookies=[_challenge_cookie(ctx, purpose, challenge)])


@_each(post, [f"{a.sign_in}/passkey" for a in AREAS])
async def passkey_sign_in(
    request: Request, ctx: Ctx, limits: NamedDependency[Limits], visitor: Visitor, data: JSONBody[PasskeyAnswer]
) -> Response:
    """The device's signature of the sign-in challenge: a session of the area, and where to go next."""
    area = area_of(request.url.path)
    try:
        with limits.failures.attempt(client_address(request)) as attempt:
            attempt.claim("passkey:" + str(data.credential.get("id"))[:255])
            origin, rp_id = _site(request, ctx)
            challenge = _challenge(request, ctx, f"sign-in:{area.name}")
            holder_id, city = await to_thread.run_sync(
                ctx.passkeys.authenticate, json.dumps(data.credential), challenge, origin, rp_id, area.kind
            )
            session = await to_thread.run_sync(
                partial(auth.open_session, ctx, holder_id, city, "web:passkey", area, replacing=visitor)
            )
    except LedgerError as exc:
        return _json_problem(request, exc)
    return _json({"next": pages.local_target(data.next, area.base)}, cookies=[session, _challenge_done()])


@post("/wallet/sign-in/demo", sync_to_thread=True)
def demo_sign_in(request: Request, ctx: Ctx, visitor: Visitor, data: Annotated[DemoForm, Form]) -> Redirect:
    """The demo only: sign in as one of the listed demo residents, no code needed."""
    if not ctx.settings.demo or data.resident_id not in {r["id"] for r in _demo_residents(ctx)}:
        raise NotFoundException()
    resident = ctx.residents.get(data.resident_id)
    cookie = auth.open_session(ctx, resident["id"], resident["city"], "web:demo", replacing=visitor)
    return pages.see_other(pages.local_target(data.next, DEFAULT_NEXT), [cookie])


@_each(post, [f"{a.sign_in}/demo" for a in AREAS if a is not WALLET], sync_to_thread=True)
def demo_principal_sign_in(
    request: Request, ctx: Ctx, visitor: Visitor, data: Annotated[DemoPrincipalForm, Form]
) -> Redirect:
    """The demo only: sign in to the portal or the office as one of its listed demo principals."""
    area = area_of(request.url.path)
    listed = {e["principal_id"]: e for e in _demo_principals(ctx, area)}
    if data.principal_id not in listed:
        raise NotFoundException()
    cookie = auth.open_session(ctx, data.principal_id, listed[data.principal_id]["city"], "web:demo", area,
                               replacing=visitor)  # fmt: skip
    return pages.see_other(pages.local_target(data.next, area.base), [cookie])


@_each(post, [f"{a.base}/sign-out" for a in AREAS], sync_to_thread=True)
def sign_out(request: Request, ctx: Ctx, visitor: Visitor) -> Redirect:
    """End this browser's session: its token is revoked (it stops working everywhere at once)."""
    if visitor is not None and visitor.credential is not None and visitor.city is not None:
        ctx.access.revoke(visitor.grantor, visitor.city, visitor.credential)
    return pages.see_other(f"{area_of(request.url.path).sign_in}?signed_out=1", [auth.ended_session()])


@_each(post, [f"{a.base}/sign-out-everywhere" for a in AREAS if a is not WALLET], sync_to_thread=True)
def principal_sign_out_everywhere(request: Request, ctx: Ctx, principal: Resident) -> Redirect:
    """Every session and token of the signed-in owner or officer ends at once."""
    area = area_of(request.url.path)
    ctx.access.sign_out_everywhere(principal.grantor, _holder(ctx, area, principal))
    return pages.see_other(f"{area.sign_in}?signed_out=everywhere", [auth.ended_session()])


# --- my passkeys and sessions ---------------------------------------------------------------------


@get(SECURITY_PATH, sync_to_thread=True)
def security_page(request: Request, ctx: Ctx, principal: Resident) -> Template:
    assert principal.city is not None
    sessions = ctx.access.credentials(principal.grantor, principal.city).credentials
    notice = request.query_params.get("done")
    return pages.render(request, "signin/security.html", passkeys=ctx.passkeys.list(principal.subject), sessions=len(sessions),
                        timezone=ctx.programs.get(principal.city).timezone,
                        notice=notice if notice in ("added", "removed") else None)  # fmt: skip


@_each(post, [f"{a.base}/passkeys/options" for a in AREAS], sync_to_thread=True)
def passkey_options(request: Request, ctx: Ctx, principal: Resident) -> Response:
    assert principal.city is not None
    area = area_of(request.url.path)
    try:
        holder = _holder(ctx, area, principal)
        options, challenge = ctx.passkeys.registration_options(
            holder, principal.city, _site(request, ctx)[1], area.kind
        )
    except LedgerError as exc:
        return _json_problem(request, exc)
    return _json(json.loads(options), cookies=[_challenge_cookie(ctx, "register", challenge, holder)])


@_each(post, [f"{a.base}/passkeys" for a in AREAS], sync_to_thread=True)
def passkey_register(request: Request, ctx: Ctx, principal: Resident, data: JSONBody[PasskeyAnswer]) -> Response:
    """The device's new passkey, verified against this browser's registration challenge."""
    assert principal.city is not None
    area = area_of(request.url.path)
    try:
        origin, rp_id = _site(request, ctx)
        holder = _holder(ctx, area, principal)
        challenge = _challenge(request, ctx, "register", holder)
        ctx.passkeys.register(holder, principal.city, principal.actor, json.dumps(data.credential), challenge, origin, rp_id,
                              area.kind)  # fmt: skip
    except LedgerError as exc:
        return _json_problem(request, exc)
    after = SECURITY_PATH if area is WALLET else area.base
    return _json({"next": pages.local_target(data.next, after)}, status_code=201, cookies=[_challenge_done()])


@post(f"{SECURITY_PATH}/passkeys/remove", sync_to_thread=True)
def passkey_remove(ctx: Ctx, principal: Resident, data: Annotated[PasskeyForm, Form]) -> Redirect:
    assert principal.city is not None
    ctx.passkeys.remove(principal.subject, principal.city, principal.actor, data.credential_id)
    return pages.see_other(f"{SECURITY_PATH}?done=removed")


@post(f"{SECURITY_PATH}/sign-out-everywhere", sync_to_thread=True)
def sign_out_everywhere(ctx: Ctx, principal: Resident) -> Redirect:
    """Every session and token of the resident ends at once (a lost phone, a shared computer)."""
    assert principal.city is not None
    ctx.access.revoke_resident(principal.subject, principal.city, principal.actor)
    return pages.see_other(f"{SIGN_IN_PATH}?signed_out=everywhere", [auth.ended_session()])


# --- the demo's mailbox -----------------------------------------------------------------------------


@get("/dev/mailbox", sync_to_thread=True)
def dev_mailbox(request: Request, ctx: Ctx) -> Template:
    """The demo's outgoing e-mail (nothing leaves the machine); `entraide serve` has no such page."""
    mailbox = ctx.mailer if ctx.settings.demo else None
    if not isinstance(mailbox, DevMailbox):
        raise NotFoundException()
    messages = [{"to": m["To"], "subject": m["Subject"], "date": m["Date"] or "", "lang": m["Content-Language"] or "fr",
                 "text": m.get_content()} for m in mailbox.messages()]  # fmt: skip
    return pages.render(request, "signin/mailbox.html", messages=messages)


SHARED = (sign_in_page, sign_in_with_code, passkey_step, passkey_sign_in_options, passkey_sign_in, demo_principal_sign_in,
          sign_out, principal_sign_out_everywhere, passkey_options, passkey_register)  # fmt: skip
ROUTER = Router("/", route_handlers=[*(h for fn in SHARED for h in fn.handlers), demo_sign_in, security_page, passkey_remove,
                                     sign_out_everywhere, dev_mailbox])  # fmt: skip
