"""Who is looking at a page: the session cookie holds a built-in bearer token (HttpOnly, so no script
can read it), checked exactly as the API checks a bearer token (`api.http.auth.principal_from_token`):
its credential must be live, so signing out (revoking it) ends the session at once, on every server.

Three areas have their own sessions and sign-in pages (`AREAS`): the wallet (`principal: Resident`),
a merchant owner's portal (`owner: Merchant`) and the city's back office (`officer: Staff`, the roles
staff, finance, auditor, admin). A session of one area never opens another: without a valid
session of its area the visitor is sent to that area's sign-in page, and back after signing in.
What a program officer may do in the office is `may(officer, action)`, the one rule that both the
templates (to show a link or a button) and the handlers (`require`, to refuse it) use.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from anyio import to_thread
from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide

from api.bootstrap import Context
from api.http.auth import Limits, Principal, client_address, principal_from_token, token_credential
from community.domain.access import STAFF_ROLES
from community.domain.errors import Forbidden
from ledger.domain.errors import LedgerError
from web.pages import SESSION_COOKIE, secure_cookie

SESSION_SECONDS = 7 * 86_400  # a phone stays signed in for a week; signing out ends it at once
PRINCIPAL_SESSION_SECONDS = 12 * 3_600  # an owner's or an officer's working day


@dataclass(frozen=True)
class Area:
    """Where a kind of visitor signs in and works: its pages under `base`, the roles its sessions
    hold, and how long a session lasts."""

    name: str  # wallet | portal | office
    base: str
    roles: tuple[str, ...]
    session_seconds: int

    @property
    def kind(self) -> str:
        """Whose codes and passkeys sign in here: a resident's, or a principal's."""
        return "resident" if self.name == "wallet" else "principal"

    @property
    def sign_in(self) -> str:
        return f"{self.base}/sign-in"


WALLET = Area("wallet", "/wallet", ("resident",), SESSION_SECONDS)
PORTAL = Area("portal", "/portal", ("merchant",), PRINCIPAL_SESSION_SECONDS)
OFFICE = Area("office", "/office", STAFF_ROLES, PRINCIPAL_SESSION_SECONDS)
AREAS = (WALLET, PORTAL, OFFICE)
SIGN_IN_PATH = WALLET.sign_in


def area_of(path: str) -> Area:
    """The area a page's path belongs to (the wallet's unless it is the portal's or the office's)."""
    return next((a for a in (PORTAL, OFFICE) if path == a.base or path.startswith(a.base + "/")), WALLET)


# What the back office lets each role do: the navigation shows an action only to the roles here, and
# its handler refuses the others (`require`). Only pages that exist are listed.
OFFICE_ACTIONS: dict[str, tuple[str, ...]] = {
    "audit": ("staff", "finance", "auditor", "admin"),  # the city's audit trail
    # finance (web/routes/office_finance.py), the same roles as the API routes behind each
    "budget": ("staff", "finance", "auditor"),  # funded, used, left
    "fund_budget": ("staff",),  # program staff fund the budget, as POST /v1/admin/programs/{city}/budget
    "periods": ("finance", "auditor"),  # the months: previews, closed statements, collections, payouts
    "close_period": ("finance",),
    "exports": ("finance", "auditor"),  # a closed month's files: csv, json, pain.001, ERP, intercity, invoices
    "collect": ("finance",),  # request the pain.008 direct debits, issue invoices
    "payouts": ("finance",),  # queue a closed month's payouts
    "reconciliation": ("finance", "auditor"),  # the bank's camt.053 statements and their results
    "import_bank_statement": ("finance",),
    "open_data": ("staff", "finance", "auditor", "admin"),  # the published months' public files
    # payout accounts, adjustments, disputes (web/routes/office_accounts.py), as their API routes
    "payout_accounts": ("finance", "admin", "auditor"),  # the changes, account numbers masked
    "propose_payout_account": ("finance",),
    "decide_payout_account": ("finance", "admin"),  # not the proposer: the service refuses it
    "adjust": ("finance",),  # correct a closed month, applied by the next close
    "disputes": ("finance", "auditor"),  # card payment disputes
    "residents": ("staff",),  # look up, enrol, renew, level, cards, activation codes, erasure (as /v1/admin/residents)
    "services": ("staff",),  # the city's municipal services and events (as /v1/admin/catalog)
    "corrections": ("staff", "admin"),  # the list, approve or reject (as GET and …/{decision} of /v1/admin/corrections)
    "propose_correction": ("staff",),  # the form (POST /v1/admin/corrections is staff's)
    # The program, merchants and organizations: staff run them (as in the API); auditors read them.
    "program": ("staff", "auditor"),
    "program.edit": ("staff",),
    "merchants": ("staff", "auditor"),
    "merchants.edit": ("staff",),
    "organizations": ("staff", "auditor"),
    "organizations.edit": ("staff",),
}


def may(principal: Principal | None, action: str) -> bool:
    """Whether the signed-in officer may use the office's `action` (unknown actions: nobody)."""
    return principal is not None and principal.role in OFFICE_ACTIONS.get(action, ())


def require(principal: Principal, action: str) -> Principal:
    if not may(principal, action):
        raise Forbidden(f"the role {principal.role} may not use {action}")
    return principal


def office_city(officer: Principal, action: str) -> str:
    """The city of an office session whose role may use `action` (else refused, as `require`)."""
    city = require(officer, action).city
    assert city is not None  # an office session always names its city
    return city


def owner_merchant(owner: Principal) -> tuple[str, str]:
    """A portal session's (city, merchant_id): its principal is bound to one merchant."""
    assert owner.city is not None and owner.merchant_id is not None
    return owner.city, owner.merchant_id


class SignInRequired(LedgerError):
    """No session, or one that ended (signed out, expired, revoked): the page sends the visitor to
    sign in (`web.routes.errors`), with the page to come back to."""

    code = "unauthorized"

    def __init__(self, back_to: str) -> None:
        super().__init__("sign in to see this page")
        self.back_to = back_to

    @property
    def sign_in_url(self) -> str:
        return f"{area_of(self.back_to).sign_in}?next={quote(self.back_to, safe='/')}"


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


async def area_principal(request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]) -> Principal:
    """The signed-in principal of the page's area (`area_of` its path), else off to its sign-in."""
    principal = await session_principal(request, ctx, limits)
    if principal is None or principal.role not in area_of(request.url.path).roles:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return principal


async def owner_principal(
    request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]
) -> Principal:
    """A portal page's merchant owner (one provider per dependency name, as litestar asks)."""
    return await area_principal(request, ctx, limits)


async def officer_principal(
    request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]
) -> Principal:
    """An office page's program officer."""
    return await area_principal(request, ctx, limits)


Visitor = NamedDependency[Principal | None]  # a page anyone may see, that knows who is signed in
Resident = NamedDependency[Principal]  # a page for a signed-in resident
Merchant = NamedDependency[Principal]  # a portal page, for a merchant's signed-in owner
Staff = NamedDependency[Principal]  # an office page, for a signed-in program officer
DEPENDENCIES = {
    "visitor": Provide(session_principal),
    "principal": Provide(area_principal),
    "owner": Provide(owner_principal),
    "officer": Provide(officer_principal),
}


def open_session(ctx: Context, holder_id: str, city: str, how: str, area: Area = WALLET,
                 replacing: Principal | None = None) -> Cookie:  # fmt: skip
    """A new session of the area (however its holder proved who they are: `how` names it in the
    audit trail, e.g. "web:passkey"): a built-in token of the area's length in the HttpOnly cookie,
    a resident's or, in the portal and the office, the principal's (`holder_id`). The session the
    browser had (`replacing`: its cookie is about to be overwritten) ends first, so no live token is
    left behind that nobody holds any more."""
    if replacing is not None and replacing.credential is not None and replacing.city is not None:
        ctx.access.revoke(replacing.grantor, replacing.city, replacing.credential)
    if area.kind == "resident":
        token = ctx.access.issue_resident(holder_id, city, area.session_seconds, issued_by=how)
    else:
        token = ctx.access.issue_principal(holder_id, area.session_seconds, issued_by=how)
    return secure_cookie(SESSION_COOKIE, token, area.session_seconds)


def ended_session() -> Cookie:
    """The cookie that replaces a session's when it ends (the token is revoked separately)."""
    return secure_cookie(SESSION_COOKIE, "", 0)
