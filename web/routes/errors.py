"""A refusal on a page is a page: the problem's title and detail from the same catalogs as the API's
problem documents, in the visitor's language, with the same status. A page that needs a session
sends the visitor to sign in instead."""

from __future__ import annotations

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException, ValidationException
from litestar.response import Redirect
from litestar.types import ExceptionHandlersMap

from api.http.app import STATUS_CODES, validation_error_params
from api.problems import PROBLEMS, error_params, problem_document
from ledger.domain.errors import LedgerError
from web import pages
from web.auth import SignInRequired


def problem_page(request: Request, code: str, params: dict) -> Response:
    document = problem_document(code, pages.locale(request), params, instance=request.url.path)
    status = document["status"]
    assert isinstance(status, int)
    return pages.render(request, "error.html", status_code=status, problem=document)


def _domain_error(request: Request, exc: LedgerError) -> Response:
    if isinstance(exc, SignInRequired):
        return Redirect(exc.sign_in_url, status_code=303, headers=pages.SECURITY_HEADERS)
    return problem_page(request, exc.code if exc.code in PROBLEMS else "internal_error", error_params(exc))


def _http_error(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, NotAuthorizedException | PermissionDeniedException) and "csrf" in str(exc.detail).lower():
        return problem_page(request, "csrf_failed", {})
    code = STATUS_CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "invalid_request")
    return problem_page(request, code, {})


def _validation_error(request: Request, exc: ValidationException) -> Response:
    """A query parameter of the wrong type or out of range (a hand-edited link): the API's
    validation problem, as a page (the app's own handler, more specific, would answer JSON)."""
    return problem_page(request, "validation_error", validation_error_params(exc))


HANDLERS: ExceptionHandlersMap = {LedgerError: _domain_error, ValidationException: _validation_error,
                                  HTTPException: _http_error}  # fmt: skip
