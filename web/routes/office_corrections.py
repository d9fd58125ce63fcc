"""`/office/corrections`: staff corrections as compensating transfers (docs/money-model.md,
"Corrections"). The form proposes one with its reason (an attestation reversed, a municipal service
or event seat refunded, a wallet credited or debited); at or below the program's
`correction_approval_points` it posts at once, above it waits for a second principal. The list of
pending ones lets another staff officer or a city administrator approve, and anyone of them reject;
the proposer's own are marked as waiting for someone else, and the service refuses their approval
anyway (`second_principal_required`, shown as the refusal's page).

The handlers call `CorrectionsService.propose`, `list` and `decide`, as `/v1/admin/corrections` does.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

import msgspec
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.params import CorrectionDecision, Ctx, DoneNotice, Id
from community.domain.access import identity
from web import pages
from web.auth import Staff, may, office_city
from web.routes.office import render_office

BASE = "/office/corrections"
RECENT = 20  # the decided ones shown under the pending ones
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class CorrectionForm(msgspec.Struct, frozen=True):
    key: Annotated[str, msgspec.Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    kind: Literal["attestation", "redemption", "wallet"]
    target: Annotated[str, msgspec.Meta(max_length=64)]
    points: Annotated[int, msgspec.Meta(ge=1)]
    reason: Annotated[str, msgspec.Meta(max_length=500)]
    direction: Literal["credit", "debit", ""] = ""


@get(BASE, sync_to_thread=True)
def corrections(request: Request, ctx: Ctx, officer: Staff, done: DoneNotice = None) -> Template:
    city = office_city(officer, "corrections")
    pending = ctx.corrections.list(city, "pending", None, RECENT)
    recent = [c for c in ctx.corrections.list(city, None, None, RECENT).corrections if c.status != "pending"]
    return render_office(request, ctx, officer, "office/corrections.html", pending=pending.corrections, recent=recent,
                   done=done, key=secrets.token_urlsafe(16),
                   mine={c.id for c in pending.corrections if identity(c.proposed_by) == identity(officer.actor)},
                   may_propose=may(officer, "propose_correction"),
                   threshold=ctx.programs.get(city).correction_approval_points,
                   timezone=ctx.programs.get(city).timezone)  # fmt: skip


@post(BASE, sync_to_thread=True)
def propose(ctx: Ctx, officer: Staff, data: Annotated[CorrectionForm, Form]) -> Redirect:
    city = office_city(officer, "propose_correction")
    made = ctx.corrections.propose(city, data.kind, data.target.strip(), data.points, data.reason, officer.actor,
                                   key=data.key, direction=data.direction or None)  # fmt: skip
    return pages.see_other(f"{BASE}?done={made.status}#done")


@post(f"{BASE}/{{correction_id:str}}/{{decision:str}}", sync_to_thread=True)
def decide(ctx: Ctx, officer: Staff, correction_id: Id, decision: CorrectionDecision) -> Redirect:
    made = ctx.corrections.decide(office_city(officer, "corrections"), correction_id, decision, officer.actor)
    return pages.see_other(f"{BASE}?done={made.status}#done")


ROUTER = Router("/", route_handlers=[corrections, propose, decide])
