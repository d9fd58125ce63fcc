"""`/office`: the city's back office for its program officers (web.auth `Staff`: an office session
of staff, finance, auditor or admin). The home shows the city, the signed-in role and the
navigation that role may use: `web.auth.may` decides what the navigation shows, and the same rule
(`web.auth.require`) refuses it in each handler, so a hidden link is also a closed door.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from litestar import Request, Router, get
from litestar.response import Template

from api.http.params import Ctx, FilterText, OptionalDay, OptionalSequence
from ledger.domain.errors import InvalidRequest
from ledger.service_layer import audit_trail
from web import pages
from web.auth import OFFICE_ACTIONS, Staff, may, require

AUDIT_PAGE = 50  # records per page of the audit trail, newest first


def render_office(request: Request, ctx: Ctx, officer: Staff, template: str, **context: Any) -> Template:
    """An office page: the officer, the city's name and the actions the role may use (the nav)."""
    assert officer.city is not None
    actions = [a for a in OFFICE_ACTIONS if may(officer, a)]
    return pages.render(request, template, officer=officer, city_name=pages.city_name(ctx, officer.city), actions=actions,
                        **context)  # fmt: skip


@get("/office", sync_to_thread=True)
def office_home(request: Request, ctx: Ctx, officer: Staff) -> Template:
    return render_office(request, ctx, officer, "office/home.html")


def _day_us(field: str, day: str, timezone: str, days_after: int = 0) -> int | None:
    """The start of a local day (`YYYY-MM-DD`, as a date field sends it), `days_after` later; None for none."""
    if not day:
        return None
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise InvalidRequest(f"{field} is not a date of the calendar", field=field, reason="invalid_value") from None
    start = dt.datetime.combine(date + dt.timedelta(days=days_after), dt.time(), ZoneInfo(timezone))
    return int(start.timestamp()) * 1_000_000


@get("/office/audit", sync_to_thread=True)
def office_audit(request: Request, ctx: Ctx, officer: Staff, actor: FilterText = "", kind: FilterText = "",
                 subject: FilterText = "", since: OptionalDay = "", until: OptionalDay = "",
                 before: OptionalSequence = None) -> Template:  # fmt: skip
    """The city's audit trail, newest first, narrowed by who, what kind of action, on what and which
    days (`since` to `until`, both included, in the city's time zone), a page at a time (`before`:
    the older records). For staff, finance, auditors and admins."""
    city = require(officer, "audit").city
    assert city is not None
    timezone = ctx.programs.get(city).timezone
    where = audit_trail.AuditFilter(actor=actor.strip(), family=kind.strip(), target=subject.strip(),
                                    since_us=_day_us("since", since, timezone), until_us=_day_us("until", until, timezone, 1))  # fmt: skip
    found = audit_trail.search(ctx.engine, city, where, before, AUDIT_PAGE)
    asked = {"actor": actor, "kind": kind, "subject": subject, "since": since, "until": until}
    older = (
        urlencode({**{k: v for k, v in asked.items() if v}, "before": found.next_before_seq})
        if found.next_before_seq
        else None
    )
    return render_office(request, ctx, officer, "office/audit.html", found=found, timezone=timezone, asked=asked,
                   older=older, newest=urlencode({k: v for k, v in asked.items() if v}) if before else None,
                   subject_page=_subject_pages(officer))  # fmt: skip


# The office's page of what a record of each kind of action acted on: the office action that opens it
# (a link shows only to a role that may follow it) and its path, `{}` the record's target.
SUBJECT_PAGES = {
    "program": ("program", "/office/program"),
    "merchant": ("merchants", "/office/merchants/{}"),
    "organization": ("organizations", "/office/organizations#org-{}"),
    "resident": ("residents", "/office/residents/{}"),
}


def _subject_pages(officer: Staff) -> Callable[[str, str], str | None]:
    def subject_page(action: str, target: str) -> str | None:
        office_action, path = SUBJECT_PAGES.get(action.partition(".")[0], ("", ""))
        return path.format(quote(target, safe="")) if may(officer, office_action) else None

    return subject_page


ROUTER = Router("/", route_handlers=[office_home, office_audit])
