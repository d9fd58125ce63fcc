"""/v1/transparency: what anyone needs to check the ledger and the cards, and the open data."""

from __future__ import annotations

import msgspec
from litestar import Response, Router, get

from api.http.downloads import attachment
from api.http.params import BundlePath, City, Ctx, OpenDataFormat, OptionalSequence, PageLimit, Period, TilePath
from community.adapters.secrets import public_jwks
from finance.schemas import OpenData, PublishedPeriods
from finance.service_layer.reporting import open_data_csv
from ledger.schemas import CheckpointPage, Checkpoints, Jwks, LogKeys, PublicKeys
from ledger.service_layer import audit, public_log


def jwks(document: object) -> Jwks:
    """A key set as published, from whichever form its service returns (a dict today)."""
    return msgspec.convert(msgspec.to_builtins(document), Jwks)


@get("/keys", sync_to_thread=True, summary="Get the public keys", operation_id="transparency_get_keys", problems=())
def public_keys(ctx: Ctx) -> PublicKeys:
    """Ledger signing keys (current and retired), the cities' card keys and the token issuer's key: all a
    verifier needs to check entries, checkpoints, citizen cards and tokens offline. Public."""
    return PublicKeys(ledger=audit.public_keys(ctx.engine), cards=jwks(ctx.residents.card_keys(ctx.programs.cities())),
                      token_issuer=jwks(public_jwks([ctx.keys.issuer_key()])))  # fmt: skip


@get("/checkpoints", sync_to_thread=True, summary="Get the latest checkpoints", operation_id="transparency_get_checkpoints",
     problems=())  # fmt: skip
def checkpoints(ctx: Ctx) -> Checkpoints:
    """The latest signed checkpoint of every ledger (C2SP signed notes, with the witnesses' cosignatures),
    to check later that history was only appended to; `witnessed` once the configured quorum of witnesses
    has cosigned it. Public."""
    return audit.latest_checkpoints(ctx.engine, ctx.settings.witnesses)


@get("/open-data/{city:str}", sync_to_thread=True, summary="List the months of a city's open data",
     operation_id="transparency_list_open_data", problems=("unknown_program",))  # fmt: skip
def open_data_periods(city: City, ctx: Ctx) -> PublishedPeriods:
    """The closed months whose open data is published, latest first. Public."""
    return ctx.reports.published_periods(city)


@get("/open-data/{city:str}/{period:str}", sync_to_thread=True, summary="Get a closed month's open data",
     operation_id="transparency_get_open_data", problems=("unknown_program", "period_not_published"),
     media_types=("application/json", "text/csv"))  # fmt: skip
def open_data(city: City, period: Period, ctx: Ctx, format: OpenDataFormat = "json") -> OpenData:
    """Anonymous monthly aggregates of a closed month, as JSON or CSV (an attachment); any cell counting
    fewer than 10 residents is suppressed. A month that is not closed is not published (404). Public."""
    data = ctx.reports.open_data(city, period)
    if format == "csv":
        # OpenData documents the JSON; CSV is its other media type (litestar adds the charset)
        return attachment(open_data_csv(data), "text/csv", f"entraide-open-data-{city}-{period}.csv")  # type: ignore[return-value]
    return data


# --- a city's public log, in the C2SP tlog-tiles layout (docs/ledger-format.md, "Public log (tiles)") ---

OCTETS = "application/octet-stream"
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}  # a published tile never changes
MUTABLE = {"Cache-Control": "public, max-age=5"}  # the checkpoint moves on: cache it only seconds
LOG_PROBLEMS = ("unknown_ledger", "not_in_log")


@get("/{city:str}/checkpoint", sync_to_thread=True, summary="Get a city's latest checkpoint",
     operation_id="transparency_get_log_checkpoint", problems=LOG_PROBLEMS, media_types=("text/plain",))  # fmt: skip
def log_checkpoint(city: City, ctx: Ctx) -> Response[str]:
    """The latest signed checkpoint of the city's log (C2SP tlog-checkpoint), as a signed note with the
    witnesses' cosignatures it has gathered. Cached a few seconds only. Public."""
    note = public_log.checkpoint_note(ctx.engine, city)
    return Response(note, media_type="text/plain", headers=MUTABLE)  # litestar adds "; charset=utf-8"


@get("/{city:str}/tile/entries/{bundle:path}", sync_to_thread=True, summary="Get an entry bundle of a city's log",
     operation_id="transparency_get_log_entries", problems=LOG_PROBLEMS, media_types=(OCTETS,))  # fmt: skip
def log_entries(city: City, bundle: BundlePath, ctx: Ctx) -> Response[bytes]:
    """256 entries of the city's log (fewer in a partial bundle), each a big-endian uint16 length then
    the entry's JSON line as `entraide ledger export` writes it. Only what the latest checkpoint covers
    is served; immutable. Public."""
    return Response(public_log.entry_bundle(ctx.engine, city, bundle), media_type=OCTETS, headers=IMMUTABLE)


@get("/{city:str}/tile/{tile:path}", sync_to_thread=True, summary="Get a hash tile of a city's log",
     operation_id="transparency_get_log_tile", problems=LOG_PROBLEMS, media_types=(OCTETS,))  # fmt: skip
def log_tile(city: City, tile: TilePath, ctx: Ctx) -> Response[bytes]:
    """256 hashes of 32 bytes of one level of the city's Merkle tree (fewer in a partial tile): level 0
    holds the leaf hashes, level L+1 the roots of level L's full tiles (C2SP tlog-tiles). Only what the
    latest checkpoint covers is served; immutable. Public."""
    return Response(public_log.tile(ctx.engine, city, tile), media_type=OCTETS, headers=IMMUTABLE)


@get("/{city:str}/checkpoints", sync_to_thread=True, summary="List a city's checkpoints",
     operation_id="transparency_list_log_checkpoints", problems=("unknown_ledger",))  # fmt: skip
def log_checkpoints(city: City, ctx: Ctx, after_size: OptionalSequence = None, limit: PageLimit = 50) -> CheckpointPage:
    """Every checkpoint the city's log has signed, smallest tree size first, a page at a time (pass
    `next_after_size` as `after_size`). Public."""
    return public_log.checkpoint_history(ctx.engine, city, after_size, limit, ctx.settings.witnesses)


@get("/{city:str}/keys", sync_to_thread=True, summary="Get the keys of a city's log",
     operation_id="transparency_get_log_keys", problems=("unknown_ledger",))  # fmt: skip
def log_keys(city: City, ctx: Ctx) -> LogKeys:
    """The keys that sign the city's entries and checkpoints, when each was valid, and each as the
    signed-note verifier key (`<origin>+<hash>+<key>`) generic tlog clients take. Public."""
    return public_log.keys(ctx.engine, city)


transparency = Router(
    "/v1/transparency", route_handlers=[public_keys, checkpoints, open_data_periods, open_data], tags=["transparency"]
)
for _log_route in (log_checkpoint, log_entries, log_tile, log_checkpoints, log_keys):
    transparency.register(_log_route)

ROUTERS = [transparency]
