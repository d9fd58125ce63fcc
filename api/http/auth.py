"""Who is calling: bearer tokens (residents, organizations, staff) and signed requests (POS terminals).

Every handler receives a Principal from one of the two dependencies below and checks role and
tenant through it; a missing or bad credential never reaches a service. Each principal also has a
request budget (token bucket): past it the caller gets a 429 problem with Retry-After. Failed
authentications have budgets of their own, per client address and per claimed credential, checked
before any costly step (token or signature check, database lookup).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from litestar import Request
from litestar.di import NamedDependency
from litestar.exceptions import SerializationException

from api.bootstrap import Context
from api.http.schemas import check_body, check_body_strictly
from api.http.signatures import SignatureRejected, verify_request
from api.problems import PROBLEMS
from community.adapters.secrets import BUILTIN_ISSUER, TokenRejected
from community.domain.access import ROLES, Grantor, actor_name
from community.domain.errors import Forbidden, TokenExpired, Unauthorized, WrongTenant
from ledger.domain.errors import LedgerError
from merchants.service_layer.pos import SIGNATURE_WINDOW_SECONDS, Terminal

MAX_CLIENTS_TRACKED = 100_000
# Refused credentials (401) are failures; a 403 or a 404 answers a caller whose credential held.
AUTHENTICATION_FAILURES = frozenset(code for code, status in PROBLEMS.items() if status == 401)


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
    credential: str | None = None  # the built-in token's jti
    merchant_id: str | None = None  # the merchant a `merchant` principal owns

    def require(self, *roles: str) -> Principal:
        if self.role not in roles:
            raise Forbidden(f"this action needs the role {' or '.join(roles)}")
        return self

    def require_city(self, city: str) -> None:
        if self.city != city:
            raise WrongTenant("this belongs to another city")

    @property
    def identity(self) -> str:
        return f"{self.role}:{self.subject}"

    @property
    def actor(self) -> str:
        """How the audit trail names this caller: the principal and the credential it used."""
        return actor_name(self.role, self.subject, self.credential)

    @property
    def grantor(self) -> Grantor:
        return Grantor(self.role, self.subject, self.city, self.actor)


class RateLimiter:
    """A token bucket per caller: `rate_per_second` sustained, `burst` at once. Per API worker, in
    memory: at most `tracked` callers, the longest idle forgotten first (a forgotten bucket comes
    back full, so the bound costs at most a fresh burst). `clock_seconds` is injected for tests."""

    def __init__(self, rate_per_second: float, burst: int, clock_seconds: Callable[[], float] = time.monotonic,
                 tracked: int = MAX_CLIENTS_TRACKED) -> None:  # fmt: skip
        self.rate, self.burst, self.clock, self.tracked = rate_per_second, burst, clock_seconds, tracked
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at); oldest first
        self._lock = threading.Lock()

    def _tokens(self, caller: str, now: float) -> float:
        tokens, last = self._buckets.get(caller, (float(self.burst), now))
        return min(self.burst, tokens + max(0.0, now - last) * self.rate)

    def _refuse_if_empty(self, tokens: float) -> None:
        if tokens < 1:
            raise RateLimited("too many requests", retry_after_seconds=math.ceil((1 - tokens) / self.rate))

    def _store(self, caller: str, tokens: float, now: float) -> None:
        self._buckets.pop(caller, None)  # re-inserted last: the dict stays ordered by last use
        if len(self._buckets) >= self.tracked:
            del self._buckets[next(iter(self._buckets))]
        self._buckets[caller] = (tokens, now)

    def check(self, caller: str) -> None:
        """Refuse (RateLimited) if the caller has no token left; spend nothing, remember nothing."""
        with self._lock:
            self._refuse_if_empty(self._tokens(caller, self.clock()))

    def take(self, caller: str) -> None:
        """Spend a token, or refuse (RateLimited) if none is left."""
        now = self.clock()
        with self._lock:
            tokens = self._tokens(caller, now)
            self._refuse_if_empty(tokens)
            self._store(caller, tokens - 1, now)

    def spend(self, caller: str) -> None:
        """Spend a token for a cost already incurred (a failure): never refuses, never below zero."""
        now = self.clock()
        with self._lock:
            self._store(caller, max(0.0, self._tokens(caller, now) - 1), now)


@dataclass
class FailureLimits:
    """Failed authentications, per client address and per claimed credential (a terminal's key id,
    a bearer token). Past either budget an attempt is refused with 429 before any costly step.
    Per API worker, as the request budgets are."""

    per_address: RateLimiter
    per_credential: RateLimiter

    @contextmanager
    def attempt(self, address: str) -> Iterator[Attempt]:
        """One authentication: refused at once if the address is over its budget; a 401 raised
        inside counts against the address and the credential the attempt claimed."""
        self.per_address.check(address)
        attempt = Attempt(self, address)
        try:
            yield attempt
        except LedgerError as exc:
            if exc.code in AUTHENTICATION_FAILURES:
                self.per_address.spend(address)
                if attempt.credential is not None:
                    self.per_credential.spend(attempt.credential)
            raise


@dataclass
class Attempt:
    limits: FailureLimits
    address: str
    credential: str | None = None

    def claim(self, credential: str) -> None:
        """Name the credential tried (unverified): refused at once if it is over its budget."""
        self.credential = credential
        self.limits.per_credential.check(credential)


@dataclass
class Limits:
    bearer: RateLimiter
    terminal: RateLimiter
    failures: FailureLimits


def client_address(request: Request) -> str:
    """The caller's address, for the failure budgets. Behind a proxy, uvicorn reads it from
    X-Forwarded-For when the proxy is trusted (FORWARDED_ALLOW_IPS). An IPv6 address counts by its
    /64: one host commonly holds the whole prefix."""
    host = request.client.host if request.client else ""
    if ":" in host:
        with suppress(ValueError):
            return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
    return host or "unknown"


def token_credential(token: str) -> str:
    # The token itself is the credential (its `kid` names the issuer's key, which every token
    # shares: counting by it would let anyone lock every resident out).
    return "token:" + hashlib.blake2b(token.encode(), digest_size=16).hexdigest()


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a bearer token is required")
    return token.strip()


def principal_from_token(ctx: Context, token: str) -> Principal:
    try:
        claims = ctx.tokens.verify(token, ctx.clock() // 1_000_000)
    except TokenRejected as exc:
        raise (
            TokenExpired("the token has expired") if exc.reason == "expired" else Unauthorized("invalid token")
        ) from None
    role, subject = claims.get("role"), claims.get("sub")
    if role not in ROLES or not isinstance(subject, str):
        raise Unauthorized("invalid token")
    # A built-in token is good only while its credential is: not revoked, its principal not withdrawn.
    credential = ctx.access.check(claims) if claims.get("iss") == BUILTIN_ISSUER else None
    if role == "resident":
        # The token names an identity; the resident record (home city, status) is the authority.
        resident = ctx.residents.for_token(claims)
        return Principal("resident", resident["id"], resident["city"], credential=credential)
    return Principal(role, subject, claims.get("city"), claims.get("org"), credential=credential,
                     merchant_id=claims.get("merchant"))  # fmt: skip


class AuthenticatedFirst(Request):
    """A request whose JSON body, when malformed, is refused only after authentication.

    litestar decodes the body before it resolves dependencies, which would answer a stranger 400
    `malformed_json` where the route answers strangers 401. On a protected route the decoding error
    is deferred: the principal dependency decodes the body strictly once the caller is known
    (`check_body_strictly`) and refuses it there."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except SerializationException:
            if "principal" not in self.route_handler.resolve_dependencies():
                raise
            return None


async def bearer_principal(
    request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]
) -> Principal:
    with limits.failures.attempt(client_address(request)) as attempt:
        token = _bearer(request)
        attempt.claim(token_credential(token))
        principal = await to_thread.run_sync(principal_from_token, ctx, token)
    limits.bearer.take(principal.identity)
    await check_body_strictly(request)
    return principal


def _admit_terminal(ctx: Context, attempt: Attempt, request_line: tuple[str, str], headers: list[tuple[str, str]],
                    body: bytes, admitted: Callable[[str], None]) -> Terminal:  # fmt: skip
    method, path = request_line

    def screen(key_id: str) -> None:
        attempt.claim(f"keyid:{key_id}")

    def verify(resolve) -> tuple[str, str, int]:
        checked = verify_request(method, path, headers, body, resolve, ctx.clock() // 1_000_000,
                                 max_age_seconds=SIGNATURE_WINDOW_SECONDS, screen=screen)  # fmt: skip
        return checked.key_id, checked.nonce, checked.created

    try:
        terminal = ctx.terminals.admit(verify, admitted)
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


async def terminal_principal(
    request: Request, ctx: NamedDependency[Context], limits: NamedDependency[Limits]
) -> Principal:
    """A POS terminal, after its RFC 9421 signature, freshness, request budget and nonce are checked.

    A request refused at any of these steps writes nothing: the nonce is claimed last, so a request
    refused for its budget (429) can be sent again as it is once the budget allows."""
    with limits.failures.attempt(client_address(request)) as attempt:
        body = await request.body()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]

        def admitted(key_id: str) -> None:  # verified, its nonce not yet claimed
            limits.terminal.take(key_id)
            check_body(request, body)

        target = (request.method, _request_target(request.scope))
        terminal = await to_thread.run_sync(_admit_terminal, ctx, attempt, target, headers, body, admitted)
    return Principal("terminal", terminal.key_id, terminal.city, terminal=terminal)
