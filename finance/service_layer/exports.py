"""Producing a closed period's files: statements (csv, json), pain.001 credit transfers, ERP journal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from community.adapters import store as community_store
from community.service_layer.programs import Programs
from finance.adapters import exports, store
from finance.service_layer.settlement import Settlement
from ledger.domain.errors import InvalidRequest, LedgerError
from merchants.adapters.tables import MERCHANTS

ExportFormat = Literal["csv", "json", "pain001", "erp"]
# litestar adds `; charset=utf-8` to the text types
FORMATS = {"csv": "text/csv", "json": "application/json", "pain001": "application/xml", "erp": "text/csv"}
EXTENSIONS = {"csv": "csv", "json": "json", "pain001": "xml", "erp": "erp.csv"}
MEDIA_TYPES = tuple(dict.fromkeys(FORMATS.values()))  # for the OpenAPI document
assert set(FORMATS) == set(EXTENSIONS) == set(get_args(ExportFormat))


class ExportUnavailable(LedgerError):
    code = "export_unavailable"


class Exports:
    def __init__(self, engine: Engine, settlement: Settlement, programs: Programs, clock: Callable[[], int]) -> None:
        self.engine, self.settlement, self.programs, self.clock = engine, settlement, programs, clock

    def render(self, city: str, period: str, fmt: ExportFormat) -> tuple[bytes, str, str]:
        """(content, media type, file name) of a closed period's file in `fmt`."""
        if fmt not in FORMATS:
            raise InvalidRequest(
                f"format is one of {', '.join(FORMATS)}",
                field="format",
                reason="not_one_of",
                allowed=", ".join(FORMATS),
            )
        statement = self.settlement.closed_statement(city, period)
        program = self.programs.get(city)
        today = dt.datetime.fromtimestamp(self.clock() / 1_000_000, ZoneInfo(program.timezone))
        name = f"entraide-{city}-{period}.{EXTENSIONS[fmt]}"
        if fmt == "csv":
            return exports.statement_csv(statement).encode(), FORMATS[fmt], name
        if fmt == "json":
            return exports.statement_json(statement).encode(), FORMATS[fmt], name
        if fmt == "erp":
            closing_day = dt.datetime.fromtimestamp(
                statement.until_us / 1_000_000 - 1, ZoneInfo(program.timezone)
            ).date()
            return exports.erp_journal(statement, closing_day).encode(), FORMATS[fmt], name
        if program.treasury is None:
            raise ExportUnavailable("the program has no treasury account to pay from", reason="no_treasury")
        with self.engine.connect() as conn:
            ids = [line.merchant_id for line in statement.merchants]
            accounts = store.payout_accounts(conn, ids)
            names = {m["id"]: m["name"] for m in community_store.members(conn, MERCHANTS, city)}
        payer = {"name": program.treasury.name, "institution": program.treasury.institution,
                 "transit": program.treasury.transit, "account_number": program.treasury.account_number}  # fmt: skip
        try:
            xml = exports.pain001(statement, payer, accounts, names, today.replace(tzinfo=None), today.date())
        except exports.ExportError as exc:
            raise ExportUnavailable(str(exc), reason="export_failed") from None
        return xml, FORMATS[fmt], name
