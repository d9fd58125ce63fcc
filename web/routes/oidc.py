"""`<area>/sign-in/provider`: signing in through the city's identity provider (OpenID Connect,
authorization code with PKCE), where the deployment configures one (ENTRAIDE_OIDC_CLIENT_ID), in
each area (web.auth.AREAS): a resident in the wallet (`/wallet/sign-in/provider`), a merchant owner
in the portal and an officer in the office (`/portal/sign-in/provider`, `/office/sign-in/provider`).

The start sends the browser to the provider with a fresh `state`, `nonce` and code challenge, whose
secrets the browser keeps sealed in a ten-minute HttpOnly cookie, sent to that area's callback alone.
The callback accepts only the answer to that sign-in, exchanges the code, checks the ID token and
finds who it names (community/service_layer/provider_sign_in.py): the resident enrolled with its
subject, or the principal of the area's roles its account is linked to; then the session of the area
opens (`web.auth.open_session`) and the browser goes on to `next`, a page of this site. Any refusal
is a page in the visitor's language, without a session (a definitive one at
`<area>/sign-in/provider/refused?problem=…`); the flow cookie is gone either way.

`<portal|office>/security`: a signed-in principal's accounts at the provider. "Link my city account"
(a link) starts the same flow, bound to this session's principal: its callback links the account
instead of signing in (community/service_layer/principal_links.py); each link can be undone there.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Router, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect, Response, Template

from api.http.auth import Principal
from api.http.params import Ctx, NextPath, OAuthCode, OAuthError, OAuthState, SignInProblem
from api.problems import PROBLEMS, error_params, problem_document
from community.adapters.jwks import IdentityProviderUnavailable
from community.adapters.oidc_client import FLOW_SECONDS
from community.domain.errors import NotFound
from community.service_layer.provider_sign_in import ProviderSignIn
from ledger.domain.errors import LedgerError
from web import auth, pages
from web.auth import AREAS, OFFICE, PORTAL, WALLET, Area, Resident, Visitor, area_of
from web.routes import office
from web.routes.signin import Form, _each

START_PATH = WALLET.sign_in + "/provider"
CALLBACK_PATH = f"{START_PATH}/callback"
REFUSED_PATH = f"{START_PATH}/refused"
# A definitive refusal is shown at its own address (POST-redirect-GET's cousin): the provider's code
# leaves the address bar, and reloading the page or switching its language shows the same refusal.
REFUSALS = ("provider_sign_in_refused", "sign_in_state_mismatch", "subject_not_enrolled",
            "provider_account_not_linked")  # fmt: skip
FLOW_COOKIE = "entraide_oidc_flow"
PRINCIPAL_AREAS = (PORTAL, OFFICE)
SECURITY_NOTICES = ("linked", "unlinked")


class UnlinkForm(msgspec.Struct, frozen=True):
    provider_subject: str = ""


def start_path(area: Area) -> str:
    return f"{area.sign_in}/provider"


def security_path(area: Area) -> str:
    return f"{area.base}/security"


def _sign_in(ctx: Ctx) -> ProviderSignIn:
    if ctx.provider_sign_in is None:
        raise NotFound("no identity provider is configured")
    return ctx.provider_sign_in


def _redirect_uri(request: Request, area: Area) -> str:
    """Where the provider sends the browser back: the area's callback, as the provider registered it."""
    return str(request.base_url).rstrip("/") + start_path(area) + "/callback"


def _flow_cookie(area: Area, value: str, max_age_seconds: int) -> Cookie:
    # SameSite=Lax: the provider's redirect back is a top-level GET from another site, which Lax lets through.
    return Cookie(key=FLOW_COOKIE, value=value, max_age=max_age_seconds, path=start_path(area), httponly=True,
                  secure=True, samesite="lax")  # fmt: skip


def _to_provider(request: Request, ctx: Ctx, area: Area, next_path: str, linker: Principal | None = None) -> Response:
    try:
        url, sealed = _sign_in(ctx).start(_redirect_uri(request, area), next_path, area.name,
                                          None if linker is None else linker.grantor)  # fmt: skip
    except IdentityProviderUnavailable as exc:  # its metadata: the page says when to try again
        return _refused(request, area, exc.code, error_params(exc), _flow_cookie(area, "", 0))
    cookie = _flow_cookie(area, sealed, FLOW_SECONDS)
    return Redirect(url, status_code=303, cookies=[cookie], headers=pages.SECURITY_HEADERS)


@_each(get, [start_path(a) for a in AREAS], sync_to_thread=True)
def start(request: Request, ctx: Ctx, next: NextPath = None) -> Response:
    """To the provider's authorization endpoint; `next` (a page of this site) is where to land after."""
    area = area_of(request.url.path)
    return _to_provider(request, ctx, area, pages.local_target(next, area.base))


@_each(get, [f"{start_path(a)}/callback" for a in AREAS], sync_to_thread=True)
def callback(request: Request, ctx: Ctx, visitor: Visitor, state_: OAuthState = None, code: OAuthCode = None,
             error: OAuthError = None) -> Response:  # fmt: skip
    """The provider's answer: signed in (or the account linked) and on to `next`, or a page that says
    why not and what to do."""
    area = area_of(request.url.path)
    sign_in, gone = _sign_in(ctx), _flow_cookie(area, "", 0)
    session = visitor.grantor if visitor is not None and visitor.role in area.roles and area is not WALLET else None
    try:
        signed = sign_in.finish(request.cookies.get(FLOW_COOKIE), _redirect_uri(request, area), state_, code, error,
                                area=area.name, roles=area.roles, session=session)  # fmt: skip
    except LedgerError as exc:
        if exc.code in REFUSALS:
            refused_at = f"{start_path(area)}/refused?{urlencode({'problem': exc.code})}"
            return pages.see_other(refused_at, [gone])
        return _refused(request, area, exc.code, error_params(exc), gone)  # a moment's outage, a conflict
    if signed.linked:
        return pages.see_other(f"{security_path(area)}?done=linked", [gone])
    cookie = auth.open_session(ctx, signed.holder_id, signed.city, "web:oidc", area, replacing=visitor)
    return pages.see_other(signed.next, [cookie, gone])


@_each(get, [f"{start_path(a)}/refused" for a in AREAS])
async def refused(request: Request, problem: SignInProblem = "") -> Response:
    """Why the sign-in was refused, and what to do (with the refusal's status)."""
    if problem not in REFUSALS:
        raise NotFound("not a refusal of this sign-in")
    return _refused(request, area_of(request.url.path), problem, {}, None)


def _refused(request: Request, area: Area, code: str, params: dict, gone: Cookie | None) -> Response:
    code = code if code in PROBLEMS else "internal_error"
    document = problem_document(code, pages.locale(request), params, instance=request.url.path)
    status = document["status"]
    assert isinstance(status, int)
    page = pages.render(request, "oidc/refused.html", status_code=status, problem=document, start_path=start_path(area),
                        sign_in_path=area.sign_in, area=area.name)  # fmt: skip
    if gone is not None:
        page.cookies.append(gone)
    if code == "identity_provider_unavailable":
        page.headers["Retry-After"] = str(document.get("retry_after_seconds", 5))
    return page


# --- a principal's accounts at the provider -----------------------------------------------------------


@_each(get, [security_path(a) for a in PRINCIPAL_AREAS], sync_to_thread=True)
def security_page(request: Request, ctx: Ctx, principal: Resident) -> Template:
    """The signed-in owner's or officer's linked accounts, and the button to link one."""
    area = area_of(request.url.path)
    assert principal.city is not None
    links = ctx.principal_links.links(principal.grantor, principal.city, principal.role, principal.subject).links
    notice = request.query_params.get("done")
    context: dict[str, Any] = {"area": area.name, "base": area.base, "links": links, "provider": ctx.provider_sign_in is not None,
               "notice": notice if notice in SECURITY_NOTICES else None}  # fmt: skip
    if area is OFFICE:
        return office.render_office(request, ctx, principal, "signin/principal_security.html", **context)
    return pages.render(request, "signin/principal_security.html", **context)


@_each(get, [f"{security_path(a)}/link" for a in PRINCIPAL_AREAS], sync_to_thread=True)
def link(request: Request, ctx: Ctx, principal: Resident) -> Response:
    """Off to the provider to sign in there: its answer links that account to this principal. A link,
    not a form: the CSP's `form-action 'self'` would stop a form's redirect to the provider. Nothing
    changes before the principal signs in at the provider and its answer comes back to this browser's
    flow and session, so a page elsewhere that sends a signed-in visitor here links nothing of its own."""
    area = area_of(request.url.path)
    return _to_provider(request, ctx, area, security_path(area), principal)


@_each(post, [f"{security_path(a)}/unlink" for a in PRINCIPAL_AREAS], sync_to_thread=True)
def unlink(request: Request, ctx: Ctx, principal: Resident, data: Annotated[UnlinkForm, Form]) -> Redirect:
    area = area_of(request.url.path)
    assert principal.city is not None
    ctx.principal_links.unlink(principal.grantor, principal.city, principal.role, principal.subject,
                               data.provider_subject)  # fmt: skip
    return pages.see_other(f"{security_path(area)}?done=unlinked")


HANDLERS = (start, callback, refused, security_page, link, unlink)
ROUTER = Router("/", route_handlers=[h for fn in HANDLERS for h in fn.handlers])
