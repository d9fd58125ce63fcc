"""The pages' routers, one module per area; `ROUTERS` is all of them, mounted beside the API's
(api/http/app.py) with `routers(ctx)`: CSRF, the session and the error pages apply to them alone."""

from __future__ import annotations

from litestar import Router
from litestar.static_files import create_static_files_router

from api.bootstrap import Context
from web import auth, pages
from web.routes import errors, home, signin

AREAS = [home.ROUTER, signin.ROUTER]


def routers(ctx: Context) -> list[Router]:
    static = create_static_files_router("/static", directories=[pages.STATIC_DIR], name="static",
                                        after_request=pages.with_security_headers, include_in_schema=False)  # fmt: skip
    site = Router(
        "/",
        route_handlers=AREAS,
        dependencies=auth.DEPENDENCIES,
        middleware=[pages.csrf_middleware(ctx)],
        exception_handlers=errors.HANDLERS,
        after_request=pages.with_security_headers,
        include_in_schema=False,
    )
    return [site, static]
