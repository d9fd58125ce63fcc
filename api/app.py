"""The litestar application: routes, dependencies, limits, and the one place errors become problems.

Every refusal, from the domain (LedgerError and its kin, each with a stable code) or from the
framework (validation, 404, 405, 413), leaves here as an RFC 9457 `application/problem+json`
document in the caller's language. The OpenAPI document is served at `/schema/openapi.json`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from concurrent.futures import ThreadPoolExecutor

from litestar import Litestar, Request, Response
from litestar.concurrency import get_asyncio_executor, set_asyncio_executor
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig

from api.auth import Limits, RateLimiter
from api.bootstrap import Context
from api.jobs import scheduler
from api.problems import PROBLEMS, negotiate_locale, problem_document
from api.routes import ROUTERS
from api.routes_finance import FINANCE_ROUTERS
from api.routes_marketplace import MARKETPLACE_ROUTERS
from ledger.domain.errors import LedgerError
from operations.service_layer.scheduler import Scheduler

MAX_BODY_BYTES = 256 * 1024
STATUS_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
                415: "unsupported_media_type", 429: "rate_limited"}  # fmt: skip
RETRY_LATER = ("rate_limited", "overloaded", "database_unavailable", "identity_provider_unavailable")  # with Retry-After
log = logging.getLogger("entraide.api")


def _problem(request: Request, code: str, params: dict) -> Response:
    locale = negotiate_locale(request.headers.get("accept-language"))
    document = problem_document(code, locale, params, instance=request.url.path)
    headers = {"Content-Language": locale}
    if code in RETRY_LATER:
        headers["Retry-After"] = str(params.get("retry_after_seconds", 1))
    return Response(document, status_code=int(document["status"]), media_type="application/problem+json", headers=headers)


def _domain_error(request: Request, exc: LedgerError) -> Response:
    params = dict(exc.context)
    params.setdefault("message", exc.detail)
    if "ref" in params:
        params.setdefault("transfer_id", params["ref"])
    return _problem(request, exc.code if exc.code in PROBLEMS else "internal_error", params)


def _validation_error(request: Request, exc: ValidationException) -> Response:
    """Wrong types, missing or unknown fields, out-of-range values: msgspec's message and the field."""
    errors = [e for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else []
    messages = [f"{e.get('message', '')} ({e['key']})" if e.get("key") else str(e.get("message", "")) for e in errors]
    return _problem(request, "validation_error", {"message": ("; ".join(messages) or str(exc.detail))[:500]})


def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 400:  # a body msgspec could not parse (schema errors are ValidationExceptions)
        return _problem(request, "malformed_json", {})
    code = STATUS_CODES.get(exc.status_code)
    if code is None:
        if exc.status_code >= 500:
            log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        code = "internal_error" if exc.status_code >= 500 else "invalid_request"
    return _problem(request, code, {"message": str(exc.detail)[:500], "max_bytes": MAX_BODY_BYTES})


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem(request, "internal_error", {})


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


def create_app(ctx: Context, terminal_rate_per_second: float = 50, resident_rate_per_second: float = 10,
               jobs: Scheduler | None = None) -> Litestar:  # fmt: skip
    """The app; with `jobs`, it also runs that schedule in the background (`entraide serve` does).
    `/v1/health/jobs` reports on it, or else on the default schedule (which then runs elsewhere)."""
    _handler_threads()
    schedule = jobs or scheduler(ctx)
    limits = Limits(
        bearer=RateLimiter(resident_rate_per_second, burst=int(resident_rate_per_second * 4)),
        terminal=RateLimiter(terminal_rate_per_second, burst=int(terminal_rate_per_second * 4)),
    )
    return Litestar(
        route_handlers=[*ROUTERS, *FINANCE_ROUTERS, *MARKETPLACE_ROUTERS],
        dependencies={"ctx": Provide(lambda: ctx, use_cache=True, sync_to_thread=False),
                      "limits": Provide(lambda: limits, use_cache=True, sync_to_thread=False),
                      "jobs": Provide(lambda: schedule, use_cache=True, sync_to_thread=False)},  # fmt: skip
        exception_handlers={
            LedgerError: _domain_error,
            ValidationException: _validation_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        openapi_config=OpenAPIConfig(title="Entraide", version="1.0.0", description="Rewards ledger and local commerce"),
        request_max_body_size=MAX_BODY_BYTES,
        on_startup=[_freeze_startup_heap, *([jobs.start] if jobs else [])],
        on_shutdown=[*([jobs.stop] if jobs else []),
                     lambda: ctx.committer.close() if "committer" in vars(ctx) else None],  # fmt: skip
    )
