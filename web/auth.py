"""Who is looking at a page: the session cookie holds a built-in bearer token (HttpOnly, so no script
can read it), checked exactly as the API checks a bearer token (`api.http.auth.principal_from_token`):
its credential must be live, so signing out (revoking it) ends the session at once, on every server.

A page that needs a signed-in resident declares `principal: Resident`; without a valid session the
visitor is sent to the sign-in page, and back to the page after signing in.
"""

from __future__ import annotations

from urllib.parse import quote

from anyio import to_thread
from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide

from api.bootstrap import Context
from api.http.auth import Limits, Principal, client_address, principal_from_token, token_credential
from ledger.domain.errors import LedgerError
from web.pages import SESSION_COOKIE, secure_cookie

SIGN_IN_PATH = "/wallet/sign-in"
SESSION_SECONDS = 7 * 86_400  # a phone stays signed in for a week; signing out ends it at once


class SignInRequired(LedgerError):
    """No session, or one that ended (signed out, expired, revoked): the page sends the visitor to
    sign in (`web.routes.errors`), with the page to come back to."""

    code = "unauthorized"

    def __init__(self, back_to: str) -> None:
        super().__init__("sign in to see this page")
        self.back_to = back_to

    @property
    def sign_in_url(self) -> str:
        return f"{SIGN_IN_PATH}?next={quote(self.back_to, safe='/')}"


async def session_principal(
    request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]
) -> Principal | None:
    """The signed-in principal, or None: no cookie, or a cookie whose session is over."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        with limits.failures.attempt(client_address(request)) as attempt:
            attempt.claim(token_credential(token))
            return await to_thread.run_sync(principal_from_token, ctx, token)
    except LedgerError as exc:
        if exc.code in ("unauthorized", "token_expired", "token_revoked", "unknown_resident", "resident_erased"):
            return None
        raise


async def resident_principal(
    request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]
) -> Principal:
    principal = await session_principal(request, ctx, limits)
    if principal is None or principal.role != "resident":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return principal


Visitor = NamedDependency[Principal | None]  # a page anyone may see, that knows who is signed in
Resident = NamedDependency[Principal]  # a page for a signed-in resident
DEPENDENCIES = {
    "visitor": Provide(session_principal),
    "principal": Provide(resident_principal),
}


def open_session(ctx: Context, resident_id: str, city: str, how: str) -> Cookie:
    """A resident's new session (however they proved who they are: `how` names it in the audit
    trail, e.g. "web:passkey"): a built-in token of SESSION_SECONDS in the HttpOnly cookie."""
    token = ctx.access.issue_resident(resident_id, city, SESSION_SECONDS, issued_by=how)
    return secure_cookie(SESSION_COOKIE, token, SESSION_SECONDS)


def ended_session() -> Cookie:
    """The cookie that replaces a session's when it ends (the token is revoked separately)."""
    return secure_cookie(SESSION_COOKIE, "", 0)
