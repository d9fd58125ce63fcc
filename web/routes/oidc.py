"""`/wallet/sign-in/provider`: a resident signs in through their city's identity provider (OpenID
Connect, authorization code with PKCE), where the deployment configures one (ENTRAIDE_OIDC_CLIENT_ID).

The start sends the browser to the provider with a fresh `state`, `nonce` and code challenge, whose
secrets the browser keeps sealed in a ten-minute HttpOnly cookie, sent to the callback alone. The
callback accepts only the answer to that sign-in, exchanges the code, checks the ID token and finds
the resident enrolled with its subject (community/service_layer/provider_sign_in.py); then the
session opens (`web.auth.open_session`) and the browser goes on to `next`, a page of this site. Any
refusal is a page in the visitor's language, without a session (a definitive one at
`/wallet/sign-in/provider/refused?problem=…`); the flow cookie is gone either way.
"""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Request, Router, get
from litestar.datastructures import Cookie
from litestar.response import Redirect, Response

from api.http.params import Ctx, NextPath, OAuthCode, OAuthError, OAuthState, SignInProblem
from api.problems import PROBLEMS, error_params, problem_document
from community.adapters.jwks import IdentityProviderUnavailable
from community.adapters.oidc_client import FLOW_SECONDS
from community.domain.errors import NotFound
from community.service_layer.provider_sign_in import ProviderSignIn
from ledger.domain.errors import LedgerError
from web import auth, pages

START_PATH = "/wallet/sign-in/provider"
CALLBACK_PATH = f"{START_PATH}/callback"
REFUSED_PATH = f"{START_PATH}/refused"
# A definitive refusal is shown at its own address (POST-redirect-GET's cousin): the provider's code
# leaves the address bar, and reloading the page or switching its language shows the same refusal.
REFUSALS = ("provider_sign_in_refused", "sign_in_state_mismatch", "subject_not_enrolled")
FLOW_COOKIE = "entraide_oidc_flow"
DEFAULT_NEXT = "/wallet"


def _sign_in(ctx: Ctx) -> ProviderSignIn:
    if ctx.provider_sign_in is None:
        raise NotFound("no identity provider is configured")
    return ctx.provider_sign_in


def _redirect_uri(request: Request) -> str:
    """Where the provider sends the browser back: this site's callback, as the provider registered it."""
    return str(request.base_url).rstrip("/") + CALLBACK_PATH


def _flow_cookie(value: str, max_age_seconds: int) -> Cookie:
    # SameSite=Lax: the provider's redirect back is a top-level GET from another site, which Lax lets through.
    return Cookie(key=FLOW_COOKIE, value=value, max_age=max_age_seconds, path=START_PATH, httponly=True, secure=True,
                  samesite="lax")  # fmt: skip


@get(START_PATH, sync_to_thread=True)
def start(request: Request, ctx: Ctx, next: NextPath = None) -> Response:
    """To the provider's authorization endpoint; `next` (a page of this site) is where to land after."""
    try:
        url, sealed = _sign_in(ctx).start(_redirect_uri(request), pages.local_target(next, DEFAULT_NEXT))
    except IdentityProviderUnavailable as exc:  # its metadata: the page says when to try again
        return _refused(request, exc.code, error_params(exc), _flow_cookie("", 0))
    return Redirect(url, status_code=303, cookies=[_flow_cookie(sealed, FLOW_SECONDS)], headers=pages.SECURITY_HEADERS)


@get(CALLBACK_PATH, sync_to_thread=True)
def callback(request: Request, ctx: Ctx, state_: OAuthState = None, code: OAuthCode = None,
             error: OAuthError = None) -> Response:  # fmt: skip
    """The provider's answer: signed in and on to `next`, or a page that says why not and what to do."""
    sign_in, gone = _sign_in(ctx), _flow_cookie("", 0)
    try:
        signed = sign_in.finish(request.cookies.get(FLOW_COOKIE), _redirect_uri(request), state_, code, error)
    except LedgerError as exc:
        if exc.code in REFUSALS:
            return pages.see_other(f"{REFUSED_PATH}?{urlencode({'problem': exc.code})}", [gone])
        return _refused(request, exc.code, error_params(exc), gone)  # a moment's outage: try again
    session = auth.open_session(ctx, signed.resident["id"], signed.resident["city"], "web:oidc")
    return pages.see_other(signed.next, [session, gone])


@get(REFUSED_PATH)
async def refused(request: Request, problem: SignInProblem = "") -> Response:
    """Why the sign-in was refused, and what to do (with the refusal's status)."""
    if problem not in REFUSALS:
        raise NotFound("not a refusal of this sign-in")
    return _refused(request, problem, {}, None)


def _refused(request: Request, code: str, params: dict, gone: Cookie | None) -> Response:
    code = code if code in PROBLEMS else "internal_error"
    document = problem_document(code, pages.locale(request), params, instance=request.url.path)
    status = document["status"]
    assert isinstance(status, int)
    page = pages.render(request, "oidc/refused.html", status_code=status, problem=document, start_path=START_PATH,
                        sign_in_path=auth.SIGN_IN_PATH)  # fmt: skip
    if gone is not None:
        page.cookies.append(gone)
    if code == "identity_provider_unavailable":
        page.headers["Retry-After"] = str(document.get("retry_after_seconds", 5))
    return page


ROUTER = Router("/", route_handlers=[start, callback, refused])
