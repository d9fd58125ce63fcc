"""/v1/transparency: what anyone needs to check the ledger and the cards, and the open data."""

from __future__ import annotations

from litestar import Response, Router, get

from api.http.params import City, Ctx, Format, Id
from community.adapters.secrets import public_jwks
from finance.service_layer.reporting import open_data_csv
from ledger.adapters import journal
from ledger.service_layer import audit


@get("/keys", sync_to_thread=True)
def public_keys(ctx: Ctx) -> dict:
    """Ledger signing keys (current and retired), city card keys and the token issuer's key."""
    return {
        "ledger": audit.keys_document(ctx.engine),
        "cards": ctx.residents.card_keys(ctx.programs.cities()),
        "token_issuer": public_jwks([ctx.keys.issuer_key()]),
    }


@get("/checkpoints", sync_to_thread=True)
def checkpoints(ctx: Ctx) -> dict:
    """The latest signed checkpoint of every ledger (C2SP signed notes), to check history only grows."""
    with ctx.engine.connect() as conn:
        latest = journal.latest_checkpoints(conn)
    return {"checkpoints": [{k: c[k] for k in ("ledger", "tree_size", "root_hash", "time_us", "note")} for c in latest]}


@get("/open-data/{city:str}/{period:str}", sync_to_thread=True)
def open_data(city: City, period: Id, ctx: Ctx, format: Format = "json") -> Response:  # noqa: A002
    """Anonymous monthly aggregates; any cell counting fewer than 10 residents is suppressed."""
    cells = ctx.reports.open_data(city, period)
    if format == "csv":
        return Response(open_data_csv(cells).encode(), media_type="text/csv")
    return Response({"city": city, "period": period, "cells": cells}, media_type="application/json")


transparency = Router("/v1/transparency", route_handlers=[public_keys, checkpoints, open_data], tags=["transparency"])

ROUTERS = [transparency]
