"""The pages' routers, one module per area; `ROUTERS` is all of them, mounted beside the API's
(api/http/app.py) with `routers(ctx)`: CSRF, the session and the error pages apply to them alone."""

from __future__ import annotations

from pathlib import Path

from litestar import Request, Router
from litestar.exceptions import NotFoundException
from litestar.static_files import create_static_files_router
from xstatic.pkg import leaflet

from api.bootstrap import Context
from web import auth, pages
from web.routes import (
    account,
    errors,
    find,
    home,
    office,
    office_accounts,
    office_corrections,
    office_finance,
    office_merchants,
    office_program,
    office_residents,
    office_services,
    oidc,
    portal,
    portal_devices,
    portal_offers,
    portal_sales,
    public,
    signin,
    terminal,
    wallet,
)

# Every page module's router (one per module: a new module adds its name above and here).
AREAS = [
    home.ROUTER, wallet.ROUTER, find.ROUTER, account.ROUTER, public.ROUTER, oidc.ROUTER, signin.ROUTER,
    terminal.ROUTER, portal.ROUTER, portal_offers.ROUTER, portal_sales.ROUTER, portal_devices.ROUTER,
    office.ROUTER, office_finance.ROUTER, office_residents.ROUTER, office_services.ROUTER, office_corrections.ROUTER,
    office_program.ROUTER, office_merchants.ROUTER, office_accounts.ROUTER,
]  # fmt: skip


def _files(path: str, directory: Path, name: str) -> Router:
    """Files from our own origin, with the pages' headers; a name no file can have (a NUL byte, a
    name longer than the file system allows: it would answer with an error) is simply not found."""
    return create_static_files_router(path, directories=[directory], name=name, before_request=_plain_file_name,
                                      after_request=pages.with_security_headers, include_in_schema=False)  # fmt: skip


MAX_FILE_NAME_BYTES = 255  # NAME_MAX of Linux file systems


def _plain_file_name(request: Request) -> None:
    path = request.url.path
    if "\x00" in path or any(len(part.encode()) > MAX_FILE_NAME_BYTES for part in path.split("/")):
        raise NotFoundException()


def routers(ctx: Context) -> list[Router]:
    static = _files("/static", pages.STATIC_DIR, "static")
    vendored = _files("/static/leaflet", Path(leaflet.BASE_DIR), "leaflet")  # the map's Leaflet (xstatic-leaflet)
    site = Router(
        "/",
        route_handlers=AREAS,
        dependencies=auth.DEPENDENCIES,
        middleware=[pages.csrf_middleware(ctx)],
        exception_handlers=errors.HANDLERS,
        after_request=pages.with_security_headers,
        include_in_schema=False,
    )
    return [site, vendored, static]
