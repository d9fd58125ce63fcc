"""`/office`: the city's back office for its program officers (web.auth `Staff`: an office session
of staff, finance, auditor or admin). The home shows the city, the signed-in role and the
navigation that role may use: `web.auth.may` decides what the navigation shows, and the same rule
(`web.auth.require`) refuses it in each handler, so a hidden link is also a closed door.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get
from litestar.response import Template

from api.http.params import Ctx
from ledger.service_layer import audit_trail
from web import pages
from web.auth import OFFICE_ACTIONS, Staff, may, require

AUDIT_PAGE = 50  # records per page of the audit trail


def _render(request: Request, ctx: Ctx, officer: Staff, template: str, **context: Any) -> Template:
    assert officer.city is not None
    actions = [a for a in OFFICE_ACTIONS if may(officer, a)]
    return pages.render(request, template, officer=officer, city_name=pages.city_name(ctx, officer.city), actions=actions,
                        **context)  # fmt: skip


@get("/office", sync_to_thread=True)
def office_home(request: Request, ctx: Ctx, officer: Staff) -> Template:
    return _render(request, ctx, officer, "office/home.html")


@get("/office/audit", sync_to_thread=True)
def office_audit(request: Request, ctx: Ctx, officer: Staff) -> Template:
    """The city's audit trail, its first records (staff, finance, auditors, admins)."""
    city = require(officer, "audit").city
    assert city is not None
    page = audit_trail.page(ctx.engine, city, 0, AUDIT_PAGE)
    return _render(
        request, ctx, officer, "office/audit.html", entries=page.entries, timezone=ctx.programs.get(city).timezone
    )


ROUTER = Router("/", route_handlers=[office_home, office_audit])
