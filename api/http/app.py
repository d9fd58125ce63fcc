"""The litestar application: routes, dependencies, limits, and the one place errors become problems.

Every refusal, from the domain (LedgerError and its kin, each with a stable code) or from the
framework (validation, 404, 405, 413), leaves here as an RFC 9457 `application/problem+json`
document in the caller's language; so does a database that cannot be reached (503
`database_unavailable`, logged once per outage, not per request). The OpenAPI document
(`api/http/openapi.py`) is served at `/schema/openapi.json`, Swagger UI at `/schema/swagger`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from litestar import Litestar, Request, Response
from litestar.concurrency import get_asyncio_executor, set_asyncio_executor
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from api.bootstrap import Context
from api.http.auth import AuthenticatedFirst, FailureLimits, Limits, RateLimiter
from api.http.openapi import openapi_config
from api.http.routes import ROUTERS
from api.problems import PROBLEMS, error_params, negotiate_locale, problem_document, validation_params
from ledger.domain.errors import LedgerError
from operations.service_layer.jobs import scheduler
from operations.service_layer.scheduler import Scheduler
from web.pages import template_config

MAX_BODY_BYTES = 256 * 1024
STATUS_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
                415: "unsupported_media_type", 429: "rate_limited"}  # fmt: skip
RETRY_LATER = (
    "rate_limited",
    "overloaded",
    "database_unavailable",
    "identity_provider_unavailable",
    "receipt_not_checkpointed",
)  # with Retry-After
log = logging.getLogger("entraide.api")


def _problem(request: Request, code: str, params: dict, headers: dict[str, str] | None = None) -> Response:
    locale = negotiate_locale(request.headers.get("accept-language"))
    document = problem_document(code, locale, params, instance=request.url.path)
    status = document["status"]
    assert isinstance(status, int)  # problem_document puts the code's status there
    headers = {**(headers or {}), "Content-Language": locale}
    if code in RETRY_LATER:
        headers["Retry-After"] = str(params.get("retry_after_seconds", 1))
    return Response(document, status_code=status, media_type="application/problem+json", headers=headers)


def _domain_error(request: Request, exc: LedgerError) -> Response:
    # The error's English text is for logs; the client reads the catalog's, from `field` and `reason`.
    return _problem(request, exc.code if exc.code in PROBLEMS else "internal_error", error_params(exc))


def validation_error_params(exc: ValidationException) -> dict[str, object]:
    """Wrong types, missing or unknown fields, out-of-range values: the first one's field, where it
    is (`pointer`, into a body) and why (`reason`), worded by the catalogs; msgspec's English stays
    under `validator_message_en`. The pages' error pages take the same parameters."""
    errors = [e for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else []
    return validation_params(errors[0]) if errors else {}


def _validation_error(request: Request, exc: ValidationException) -> Response:
    return _problem(request, "validation_error", validation_error_params(exc))


def _wants_a_page(request: Request) -> bool:
    """A browser asking for a page of the site (not the API's, not the schema's): it reads HTML."""
    return not request.url.path.startswith(("/v1/", "/schema")) and "text/html" in request.headers.get("accept", "")


def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 400:  # a body msgspec could not parse (schema errors are ValidationExceptions)
        return _problem(request, "malformed_json", {})
    if exc.status_code == 413:
        return _problem(request, "body_too_large", {"max_bytes": MAX_BODY_BYTES})
    if exc.status_code == 404 and _wants_a_page(request):
        from web.routes.errors import problem_page

        return problem_page(request, "not_found", {})
    code = STATUS_CODES.get(exc.status_code)
    if code is None:
        if exc.status_code >= 500:
            log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        code = "internal_error" if exc.status_code >= 500 else "invalid_request"
    params: dict[str, object] = {"message": str(exc.detail)[:500]}
    # A 405 keeps litestar's Allow header: the methods the path has.
    headers = {name: value for name, value in (exc.headers or {}).items() if name.lower() == "allow"}
    return _problem(request, code, params, headers)


def _options(request: Request) -> Response | None:
    """Answer OPTIONS with every method of the path. litestar's own answer lists only the methods of
    the handlers registered first when two handlers of a router share a path (a GET and a POST)."""
    if request.method != "OPTIONS":
        return None
    handlers = request.app.route_handler_method_map.get(request.scope.get("path_template", ""), {})
    methods = sorted({method for method in handlers if method.isupper()} | {"OPTIONS"})
    return Response(None, status_code=204, headers={"Allow": ", ".join(methods)}, media_type="text/plain")


# What CPython's json and msgspec add to a RecursionError when a document nests deeper than they
# recurse: the body is malformed (any caller can send one, a Stripe webhook too). Any other
# RecursionError is ours.
_DECODER_DEPTH_MESSAGES = ("while decoding a JSON", "while deserializing")


def _too_deep(request: Request, exc: RecursionError) -> Response:
    if any(message in str(exc) for message in _DECODER_DEPTH_MESSAGES):
        return _problem(request, "malformed_json", {})
    return _unexpected(request, exc)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem(request, "internal_error", {})


# SQLSTATE classes of a server that cannot serve: connection exceptions, shutting down or starting
# up (57P01-57P05), out of resources (too many connections, disk full). A deadlock or a statement
# timeout (57014) is a request's own failure, and stays a 500.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")
DATABASE_RETRY_SECONDS = 5


def database_unreachable(exc: DBAPIError) -> bool:
    """Whether a driver error means the database cannot be reached, rather than a request's own fault."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    if exc.connection_invalidated:  # SQLAlchemy recognised a lost connection
        return True
    sqlstate = getattr(exc.orig, "sqlstate", ...)
    if sqlstate is None:  # psycopg's own error, no server answer: refused, reset, timed out, closed
        return True
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def _first_line(error: BaseException | None) -> str:
    # psycopg's messages go on with hints over several lines; the first says what happened.
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__


class DatabaseOutage:
    """Answers 503 `database_unavailable` while the database cannot be reached, and logs the outage
    twice: one line when it starts, one when a connection succeeds again (with how long it lasted
    and how many requests were refused), never a line per request. Per API worker."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None  # time.monotonic() of the first refusal
        self._refused = 0
        event.listen(engine, "connect", self._reconnected)  # a new connection: the server answers

    def answer(self, request: Request, exc: DBAPIError) -> Response:
        if not database_unreachable(exc):
            return _unexpected(request, exc)
        with self._lock:
            starts = self._since is None
            if starts:
                self._since, self._refused = time.monotonic(), 0
            self._refused += 1
        if starts:
            log.error("database unavailable (%s): answering 503 until it is back", _first_line(exc.orig))
        return _problem(request, "database_unavailable", {"retry_after_seconds": DATABASE_RETRY_SECONDS})

    def _reconnected(self, _dbapi_connection, _record) -> None:
        with self._lock:
            if self._since is None:
                return
            lasted_s, refused = time.monotonic() - self._since, self._refused
            self._since = None
        log.warning("database available again after %.1f s; %d requests answered 503 meanwhile", lasted_s, refused)


HANDLER_THREADS = 64  # blocking handlers wait on the group commit; too few threads starve the batches


def _handler_threads() -> None:
    """Run sync handlers on a pool large enough to fill group commits (asyncio's default has cores + 4
    threads, and each waiting POS request holds one). Set once, before any event loop runs."""
    if get_asyncio_executor() is None:
        with contextlib.suppress(RuntimeError):  # created inside a running loop: keep the loop's default
            set_asyncio_executor(ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="entraide-api"))


def _freeze_startup_heap() -> None:
    """Move everything alive at startup (libraries, the app, SQLAlchemy's tables) out of the cyclic
    collector's reach. Each full collection walked those ~180,000 objects again: pauses of 100 to 250
    ms that every request in flight waited out, the whole POS p99 under a light load."""
    gc.collect()
    gc.freeze()


def _limits(ctx: Context, terminal_rate_per_second: float, resident_rate_per_second: float,
            address_failures_per_minute: int, credential_failures_per_minute: int) -> Limits:  # fmt: skip
    """Request budgets (burst of 4 s worth) and failure budgets (a minute's worth at once, then the
    same rate), all on the context's clock."""

    def seconds() -> float:
        return ctx.clock() / 1_000_000

    def per_minute(failures: int) -> RateLimiter:
        return RateLimiter(failures / 60, burst=failures, clock_seconds=seconds)

    return Limits(
        bearer=RateLimiter(resident_rate_per_second, burst=int(resident_rate_per_second * 4), clock_seconds=seconds),
        terminal=RateLimiter(terminal_rate_per_second, burst=int(terminal_rate_per_second * 4), clock_seconds=seconds),
        failures=FailureLimits(per_minute(address_failures_per_minute), per_minute(credential_failures_per_minute)),
    )


def create_app(ctx: Context, terminal_rate_per_second: float = 50, resident_rate_per_second: float = 10,
               address_failures_per_minute: int = 60, credential_failures_per_minute: int = 20,
               jobs: Scheduler | None = None) -> Litestar:  # fmt: skip
    """The app; with `jobs`, it also runs that schedule in the background (`entraide serve` does).
    `/v1/health/jobs` reports on it, or else on the default schedule (which then runs elsewhere)."""
    _handler_threads()
    schedule = jobs or scheduler(ctx)
    limits = _limits(ctx, terminal_rate_per_second, resident_rate_per_second, address_failures_per_minute,
                     credential_failures_per_minute)  # fmt: skip
    outage = DatabaseOutage(ctx.engine)
    from web.routes import routers as pages  # the pages import the API's auth and errors: bound late

    return Litestar(
        route_handlers=[*ROUTERS, *pages(ctx)],
        dependencies={
            "ctx": Provide(lambda: ctx, use_cache=True, sync_to_thread=False),
            "limits": Provide(lambda: limits, use_cache=True, sync_to_thread=False),
            "jobs": Provide(lambda: schedule, use_cache=True, sync_to_thread=False),
        },
        exception_handlers={
            LedgerError: _domain_error,
            ValidationException: _validation_error,
            HTTPException: _http_error,
            DBAPIError: outage.answer,
            RecursionError: _too_deep,
            Exception: _unexpected,
        },
        openapi_config=openapi_config(),
        template_config=template_config(),
        request_max_body_size=MAX_BODY_BYTES,
        request_class=AuthenticatedFirst,
        before_request=_options,
        on_startup=[_freeze_startup_heap, ctx.tokens.start, *([jobs.start] if jobs else [])],
        on_shutdown=[
            *([jobs.stop] if jobs else []),
            ctx.tokens.stop,
            lambda: ctx.committer.close() if "committer" in vars(ctx) else None,
        ],
    )
