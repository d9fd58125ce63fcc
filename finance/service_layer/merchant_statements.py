"""A merchant's own money, for its owner's portal: its sales today and over a month (the POS
statement service that `/v1/pos/statement` reads), and its closed periods: its line of the city's
stored statement, and whether the city pays it (the payout and its status) or collects it.

It only reads: closing, paying and collecting are finance's (settlement, payouts, collections).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import Engine

from community.domain.errors import NotFound
from community.service_layer.programs import Programs
from finance.adapters import collections as collections_store
from finance.adapters import store
from finance.adapters.exports import merchant_period_csv
from finance.domain.settlement import period_bounds_us
from finance.schemas import (
    MerchantPayment,
    MerchantPeriod,
    MerchantPeriodLine,
    MerchantPeriods,
    MerchantSales,
    PeriodClose,
    StatementLine,
)
from finance.service_layer.settlement import Settlement
from merchants.service_layer.pos import PointOfSale

MAX_PERIODS_LISTED = 24  # two years of months on one page
SALES_PAGE = 25  # entries per page of a day's or a month's sales
_PENDING = ("queued", "transferred", "in_transit")


class MerchantStatements:
    def __init__(self, engine: Engine, settlement: Settlement, pos: PointOfSale, programs: Programs,
                 clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.settlement, self.pos, self.programs, self.clock = engine, settlement, pos, programs, clock

    def sales(self, city: str, merchant_id: str, period: str | None = None, before_sequence: int | None = None,
              limit: int = SALES_PAGE) -> MerchantSales:  # fmt: skip
        """Today's entries and totals, and a month's (this one unless `period`, one page from
        `before_sequence`), in the city's time zone."""
        timezone = self.programs.get(city).timezone
        zone = ZoneInfo(timezone)
        today = dt.datetime.fromtimestamp(self.clock() // 1_000_000, zone).date()
        start, end = (int(dt.datetime.combine(d, dt.time(), zone).timestamp()) * 1_000_000
                      for d in (today, today + dt.timedelta(days=1)))  # fmt: skip
        period = period or today.strftime("%Y-%m")
        since, until = period_bounds_us(period, timezone)
        first = dt.date(int(period[:4]), int(period[5:]), 1)
        following = (first + dt.timedelta(days=31)).replace(day=1)
        return MerchantSales(
            today=today, period=period, first_day=first, timezone=timezone,
            previous_period=(first - dt.timedelta(days=1)).strftime("%Y-%m"),
            next_period=following.strftime("%Y-%m") if following <= today else None,
            today_statement=self.pos.statement(merchant_id, city, start, end, None, limit),
            month_statement=self.pos.statement(merchant_id, city, since, until, before_sequence, limit),
        )  # fmt: skip

    def closed(self, city: str, merchant_id: str, period: str) -> MerchantPeriod:
        """The merchant's line of a closed period (NotFound while it is open, or if it has no line)."""
        view = self._view(self.settlement.closed(city, period), merchant_id)
        if view is None:
            raise NotFound(f"{merchant_id} has no statement for {period} in {city}")
        return view

    def closed_csv(self, city: str, merchant_id: str, period: str) -> str:
        """The same line as a CSV file: one row per line, then the net, payable and collectable."""
        return merchant_period_csv(self.closed(city, merchant_id, period))

    def periods(self, city: str, merchant_id: str, limit: int = MAX_PERIODS_LISTED) -> MerchantPeriods:
        """The city's closed periods in which the merchant has a line, latest first (at most `limit`)."""
        limit = min(limit, MAX_PERIODS_LISTED)
        with self.engine.connect() as conn:
            closed = store.closed_periods(conn, city, limit)
        views = (self._view(self.settlement.closed(city, period), merchant_id) for period in closed)
        return MerchantPeriods(merchant_id=merchant_id, periods=[view for view in views if view is not None])

    def _view(self, close: PeriodClose, merchant_id: str) -> MerchantPeriod | None:
        statement = close.statement
        line = next((line for line in statement.merchants if line.merchant_id == merchant_id), None)
        if line is None:
            return None
        with self.engine.connect() as conn:
            payout = _mine(store.payouts(conn, statement.city, statement.period), merchant_id)
            collection = _mine(collections_store.collections(conn, statement.city, statement.period), merchant_id)
        lines = _lines(line)
        assert sum(item.amount_cents for item in lines) == line.net_cents, "a statement's lines sum to its net"
        return msgspec.convert({
            "city": statement.city, "period": statement.period, "merchant_id": merchant_id,
            "currency": statement.currency, "since_us": statement.since_us, "until_us": statement.until_us,
            "closed_at_us": close.closed_at_us, "statement_sha256": close.statement_sha256, "lines": lines,
            "net_cents": line.net_cents, "payable_cents": max(line.net_cents, 0),
            "collectable_cents": max(-line.net_cents, 0), "settled_by": line.settled_by,
            "payment": _payment(line.net_cents, payout, collection), "payout": payout, "collection": collection,
        }, MerchantPeriod, from_attributes=True)  # fmt: skip


def _mine(rows: list[dict[str, Any]], merchant_id: str) -> dict[str, Any] | None:
    return next((row for row in rows if row["merchant_id"] == merchant_id), None)


def _lines(line: StatementLine) -> list[MerchantPeriodLine]:
    """Signed as the net counts them: what the program owes is positive, what the merchant owes negative."""
    return [
        MerchantPeriodLine(item="reimbursement", points=line.redeemed_points, amount_cents=line.reimbursement_cents),
        MerchantPeriodLine(item="funding", points=line.issued_points, amount_cents=-line.funding_cents),
        MerchantPeriodLine(item="fees", amount_cents=-line.fees_cents),
        MerchantPeriodLine(item="adjustments", amount_cents=line.adjustments_cents),
    ]


def _payment(net_cents: int, payout: dict[str, Any] | None, collection: dict[str, Any] | None) -> MerchantPayment:
    """Where the net stands: collected (a negative net), paid out (a positive one), or nothing to move."""
    if net_cents < 0:
        requested = collection is not None and collection["status"] == "requested"
        return "collection_requested" if requested else "collection_due"
    if net_cents == 0:
        return "none"
    if payout is None:
        return "not_queued"
    return "pending" if payout["status"] in _PENDING else payout["status"]
