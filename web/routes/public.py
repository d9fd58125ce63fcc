"""`/public`: the transparency site, no sign-in. Every community's signed checkpoints and keys, how
to check them with the CLI from public data alone, the program in numbers (the closed months' open
data, as charts and tables), and a receipt checker that runs in the visitor's browser.

Each page calls the services `/v1/transparency` calls (api/http/routes/transparency.py)."""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Request, Response, Router, get
from litestar.response import Template

from api.http.params import City, Ctx, OptionalPeriod, OptionalSequence
from api.http.routes.transparency import jwks
from community.schemas import Community
from finance.schemas import OpenData, OpenDataCell
from ledger.schemas import Checkpoint
from ledger.service_layer import audit, public_log
from web import pages

HISTORY_PAGE = 20  # checkpoints listed per page of a city's history
KEYS_FILE = "entraide-keys.json"


class Bar(msgspec.Struct, frozen=True):
    """One bar of a chart: what it counts and its length in thousandths of the longest (integers)."""

    dimension: str
    points: int | None
    residents: int | None
    length_permille: int


def _latest_by_city(ctx: Ctx) -> dict[str, Checkpoint]:
    return {c.ledger: c for c in audit.latest_checkpoints(ctx.engine, ctx.settings.witnesses).checkpoints}


def _community(ctx: Ctx, city: str) -> Community:
    program = ctx.programs.get(city)  # an unknown city is the unknown_program page (404)
    return Community(city=city, name=program.name or city, timezone=program.timezone)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@get("/", sync_to_thread=True)
def index(request: Request, ctx: Ctx) -> Template:
    return pages.render(request, "public/index.html", communities=ctx.programs.communities(),
                        latest=_latest_by_city(ctx))  # fmt: skip


@get("/keys.json", sync_to_thread=True)
def keys_file(ctx: Ctx) -> Response[bytes]:
    """The ledger's public keys as the `entraide.keys/1` file the CLI's `--keys` takes (the member
    `ledger` of `/v1/transparency/keys`), to download."""
    return pages.download(msgspec.json.encode(audit.public_keys(ctx.engine)), "application/json", KEYS_FILE)


@get("/check", sync_to_thread=True)
def check(request: Request) -> Template:
    return pages.render(request, "public/check.html", base_url=_base_url(request))


@get("/{city:str}", sync_to_thread=True)
def city_log(request: Request, city: City, ctx: Ctx, after: OptionalSequence = None) -> Template:
    community = _community(ctx, city)
    history = public_log.checkpoint_history(ctx.engine, city, after, HISTORY_PAGE, ctx.settings.witnesses)
    return pages.render(
        request, "public/city.html", community=community, latest=_latest_by_city(ctx).get(city), history=history,
        after=after, log_keys=public_log.keys(ctx.engine, city), card_keys=jwks(ctx.residents.card_keys([city])),
        base_url=_base_url(request), keys_file=KEYS_FILE,
    )  # fmt: skip


# The bars of a chart: metrics, each cell a bar named by its dimension (a metric of one cell, `all`, by the metric).
EARNED: dict[str, str | None] = {"earned_points_by_kind": None}
SPENT: dict[str, str | None] = {"redeemed_points_by_category": None, "spent_points_on_services": "municipal_services"}


def bars(cells: list[OpenDataCell], metrics: dict[str, str | None]) -> list[Bar]:
    """The cells of these metrics as bars, longest first; a withheld cell has no length (it is said, not drawn)."""
    chosen = [c for c in cells if c.metric in metrics]
    longest = max((c.points for c in chosen if c.points is not None and c.points > 0), default=1)
    made = [Bar(dimension=metrics[c.metric] or c.dimension, points=c.points, residents=c.residents,
                length_permille=max(0, c.points) * 1000 // longest if c.points is not None else 0) for c in chosen]  # fmt: skip
    return sorted(made, key=lambda b: (b.points is None, -(b.points or 0), b.dimension))


FIGURES = ("active_residents", "active_merchants", "budget_used_points", "expired_points")  # one cell each


def _cell(data: OpenData, metric: str) -> OpenDataCell | None:
    return next((c for c in data.cells if c.metric == metric), None)


@get("/{city:str}/numbers", sync_to_thread=True)
def numbers(request: Request, city: City, ctx: Ctx, period: OptionalPeriod = None) -> Template:
    community = _community(ctx, city)
    published = ctx.reports.published_periods(city)
    chosen = period or (published.periods[0] if published.periods else None)
    data = None if chosen is None else ctx.reports.open_data(city, chosen)  # a month not closed: its 404 page
    months = {p: dt.date(int(p[:4]), int(p[5:7]), 1) for p in {*published.periods, *([chosen] if chosen else [])}}
    return pages.render(
        request, "public/numbers.html", community=community, periods=published.periods, months=months, data=data,
        earned=bars(data.cells, EARNED) if data else [], spent=bars(data.cells, SPENT) if data else [],
        figures={m: _cell(data, m) for m in FIGURES} if data else {},
    )  # fmt: skip


ROUTER = Router("/public", route_handlers=[index, keys_file, check, city_log, numbers])
