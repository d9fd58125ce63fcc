"""/v1/transparency: what anyone needs to check the ledger and the cards, and the open data."""

from __future__ import annotations

import msgspec
from litestar import Response, Router, get

from api.http.params import City, Ctx, OpenDataFormat, Period
from community.adapters.secrets import public_jwks
from finance.schemas import OpenData
from finance.service_layer.reporting import open_data_csv
from ledger.schemas import Checkpoints, Jwks, PublicKeys
from ledger.service_layer import audit


def _jwks(document: object) -> Jwks:
    """A key set as published, from whichever form its service returns (a dict today)."""
    return msgspec.convert(msgspec.to_builtins(document), Jwks)


@get("/keys", sync_to_thread=True, summary="Get the public keys", operation_id="transparency_get_keys", problems=())
def public_keys(ctx: Ctx) -> PublicKeys:
    """Ledger signing keys (current and retired), the cities' card keys and the token issuer's key: all a
    verifier needs to check entries, checkpoints, citizen cards and tokens offline. Public."""
    return PublicKeys(ledger=audit.public_keys(ctx.engine), cards=_jwks(ctx.residents.card_keys(ctx.programs.cities())),
                      token_issuer=_jwks(public_jwks([ctx.keys.issuer_key()])))  # fmt: skip


@get("/checkpoints", sync_to_thread=True, summary="Get the latest checkpoints", operation_id="transparency_get_checkpoints",
     problems=())  # fmt: skip
def checkpoints(ctx: Ctx) -> Checkpoints:
    """The latest signed checkpoint of every ledger (C2SP signed notes, with the witnesses' cosignatures),
    to check later that history was only appended to; `witnessed` once the configured quorum of witnesses
    has cosigned it. Public."""
    return audit.latest_checkpoints(ctx.engine, ctx.settings.witnesses)


@get("/open-data/{city:str}/{period:str}", sync_to_thread=True, summary="Get a closed month's open data",
     operation_id="transparency_get_open_data", problems=("unknown_program", "period_not_published"),
     media_types=("application/json", "text/csv"))  # fmt: skip
def open_data(city: City, period: Period, ctx: Ctx, format: OpenDataFormat = "json") -> OpenData:
    """Anonymous monthly aggregates of a closed month, as JSON or CSV (an attachment); any cell counting
    fewer than 10 residents is suppressed. A month that is not closed is not published (404). Public."""
    data = ctx.reports.open_data(city, period)
    if format == "csv":
        disposition = f'attachment; filename="entraide-open-data-{city}-{period}.csv"'
        return Response(open_data_csv(data).encode(), media_type="text/csv",  # type: ignore[return-value]  # OpenData documents the JSON; CSV is its other media type (litestar adds the charset)
                        headers={"Content-Disposition": disposition})  # fmt: skip
    return data


transparency = Router("/v1/transparency", route_handlers=[public_keys, checkpoints, open_data], tags=["transparency"])

ROUTERS = [transparency]
