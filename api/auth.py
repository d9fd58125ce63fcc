"""Who is calling: bearer tokens (residents, organizations, staff) and signed requests (POS terminals).

Every handler receives a Principal from one of the two dependencies below and checks role and
tenant through it; a missing or bad credential never reaches a service. Each principal also has a
request budget (token bucket): past it the caller gets a 429 problem with Retry-After.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from anyio import to_thread
from litestar import Request
from litestar.di import NamedDependency

from api.bootstrap import Context
from api.schemas import check_body_strictly
from api.signatures import SignatureRejected, verify_request
from community.adapters.secrets import TokenRejected
from community.domain.errors import Forbidden, TokenExpired, Unauthorized, WrongTenant
from ledger.domain.errors import LedgerError
from merchants.service_layer.pos import SIGNATURE_WINDOW_SECONDS, Terminal

ROLES = ("resident", "org", "staff", "finance", "auditor")
MAX_CLIENTS_TRACKED = 100_000


class InvalidSignature(LedgerError):
    code = "invalid_signature"


class SignatureExpired(LedgerError):
    code = "signature_expired"


class ReplayedRequest(LedgerError):
    code = "replayed_request"


class UnknownKey(LedgerError):
    code = "unknown_key"


class RateLimited(LedgerError):
    code = "rate_limited"


@dataclass(frozen=True)
class Principal:
    role: str
    subject: str
    city: str | None = None
    org_id: str | None = None
    terminal: Terminal | None = None

    def require(self, *roles: str) -> Principal:
        if self.role not in roles:
            raise Forbidden(f"this action needs the role {' or '.join(roles)}")
        return self

    def require_city(self, city: str) -> None:
        if self.city != city:
            raise WrongTenant("this belongs to another city")

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.subject}"


class RateLimiter:
    """A token bucket per caller: `rate_per_second` sustained, `burst` at once. Per API worker."""

    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.rate, self.burst = rate_per_second, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                retry = math.ceil((1 - tokens) / self.rate)
                raise RateLimited("too many requests", retry_after_seconds=retry)
            if len(self._buckets) >= MAX_CLIENTS_TRACKED and caller not in self._buckets:
                self._buckets.clear()  # bounded memory; a reset only ever grants a fresh burst
            self._buckets[caller] = (tokens - 1, now)


@dataclass
class Limits:
    bearer: RateLimiter
    terminal: RateLimiter


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a bearer token is required")
    return token.strip()


def _principal_from_token(ctx: Context, token: str) -> Principal:
    try:
        claims = ctx.tokens.verify(token, ctx.clock() // 1_000_000)
    except TokenRejected as exc:
        raise (TokenExpired("the token has expired") if exc.reason == "expired" else Unauthorized("invalid token")) from None
    role, subject = claims.get("role"), claims.get("sub")
    if role not in ROLES or not isinstance(subject, str):
        raise Unauthorized("invalid token")
    if role == "resident":
        # The token names an identity; the resident record (home city, status) is the authority.
        resident = ctx.residents.for_token(claims)
        return Principal("resident", resident["id"], resident["city"])
    return Principal(role, subject, claims.get("city"), claims.get("org"))


async def bearer_principal(request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]) -> Principal:
    principal = await to_thread.run_sync(_principal_from_token, ctx, _bearer(request))
    limits.bearer.take(principal.actor)
    await check_body_strictly(request)
    return principal


def _admit_terminal(ctx: Context, request_line: tuple[str, str], headers: list[tuple[str, str]], body: bytes) -> Terminal:
    method, path = request_line

    def verify(resolve) -> tuple[str, str, int]:
        checked = verify_request(method, path, headers, body, resolve, ctx.clock() // 1_000_000,
                                 max_age_seconds=SIGNATURE_WINDOW_SECONDS)  # fmt: skip
        return checked.key_id, checked.nonce, checked.created

    try:
        terminal = ctx.terminals.admit(verify)
    except SignatureRejected as exc:
        if exc.reason == "unknown_key":
            raise UnknownKey("unknown or revoked terminal key", key_id=exc.key_id) from None
        if exc.reason == "expired":
            raise SignatureExpired("the signature is too old or from the future") from None
        raise InvalidSignature("the request signature was refused", reason=exc.reason) from None
    if terminal is None:
        raise ReplayedRequest("this signed request was already received")
    return terminal


def _request_target(scope) -> str:
    """The path and query string as sent, still percent-encoded: what the signature covers."""
    # ASGI servers give the path alone; litestar's test client leaves the query on it.
    path = scope["raw_path"].partition(b"?")[0].decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    return f"{path}?{query}" if query else path


async def terminal_principal(request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]) -> Principal:
    """A POS terminal, after its RFC 9421 signature, freshness and nonce are checked."""
    body = await request.body()
    path = _request_target(request.scope)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
    terminal = await to_thread.run_sync(_admit_terminal, ctx, (request.method, path), headers, body)
    limits.terminal.take(terminal.key_id)
    await check_body_strictly(request)
    return Principal("terminal", terminal.key_id, terminal.city, terminal=terminal)
