"""What a city and the public see: budget and liability, redemption by merchant and category, and
anonymous monthly open data in which any cell counting fewer than 10 residents is suppressed.

Open data is published for closed periods only. While a month is open its figures move with each
transfer, and two reads a minute apart tell who did what in between (one resident's 370-point
award), whatever the suppression of small cells. A closed month is frozen: it can only be closed
once it is over, every entry is dated when it commits and none is ever changed, and a merchant's
category is set once; so every read of a closed month returns the same document.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from sqlalchemy import Engine

from community.adapters import store as community_store
from community.service_layer.programs import Programs
from finance.adapters import store as finance_store
from finance.domain.settlement import SETTLEMENT_KINDS, period_bounds_us
from finance.schemas import BudgetReport, OpenData, OpenDataCell, PublishedPeriods, RedemptionsReport
from ledger.adapters import journal
from ledger.domain import accounts
from ledger.domain.errors import LedgerError
from merchants.adapters.tables import MERCHANTS

MIN_RESIDENTS_PER_CELL = 10
MAX_PUBLISHED_PERIODS = 120  # ten years of months: a page lists them all
OPEN_DATA_COLUMNS = ("city", "period", "metric", "dimension", "points", "residents", "suppressed", "merchants")


# Where a wallet's points go to the city itself: municipal services paid in points, expiry.
_PROGRAM_METRICS = {accounts.SERVICES_REVENUE: "spent_points_on_services", accounts.BREAKAGE: "expired_points"}


class PeriodNotPublished(LedgerError):
    """Open data of a period that is not closed: a 404, as if it did not exist yet."""

    code = "period_not_published"


class Reports:
    def __init__(self, engine: Engine, programs: Programs, clock: Callable[[], int]) -> None:
        self.engine, self.programs, self.clock = engine, programs, clock

    def budget(self, city: str) -> BudgetReport:
        """Budget funded, consumed and remaining; points outstanding in wallets (the liability); breakage."""
        program = self.programs.get(city)
        with self.engine.connect() as conn:
            balances = journal.all_balances(conn, city)
        budget = balances.get(accounts.PROGRAM_BUDGET)
        wallets = [b for name, b in balances.items() if accounts.is_wallet(name)]
        outstanding = sum(b.posted for b in wallets)
        return BudgetReport(
            city=city, yearly_budget_points=program.yearly_budget_points,
            funded_points=budget.credits_posted if budget else 0, consumed_points=budget.debits_posted if budget else 0,
            remaining_points=budget.available if budget else 0,
            outstanding_points=outstanding, outstanding_cents=program.points_to_cents(outstanding),
            reserved_points=sum(-b.pending for b in wallets),
            breakage_points=balances[accounts.BREAKAGE].posted if accounts.BREAKAGE in balances else 0,
        )  # fmt: skip

    def _activity(self, city: str, period: str) -> tuple[list[tuple[str, str, str, int]], dict[str, str]]:
        """The period's posted entries (kind, debit, credit, amount) without settlements, and merchant categories."""
        program = self.programs.get(city)
        since, until = period_bounds_us(period, program.timezone)
        columns = ("kind", "debit_account", "credit_account", "amount")
        with self.engine.connect() as conn:
            rows = journal.period_rows(conn, city, since, until, columns, SETTLEMENT_KINDS)
            categories = {m["id"]: m["category"] for m in community_store.members(conn, MERCHANTS, city)}
        return rows, categories

    def redemptions(self, city: str, period: str) -> RedemptionsReport:
        """Points redeemed in the period, by merchant and by category (net of refunds)."""
        rows, categories = self._activity(city, period)
        by_merchant: dict[str, int] = {}
        for _, debit, credit, amount in rows:
            for account, sign in ((credit, 1), (debit, -1)):
                merchant = accounts.merchant_of(account)
                if merchant is not None and accounts.is_redeemed(account):
                    by_merchant[merchant] = by_merchant.get(merchant, 0) + sign * amount
        by_category: dict[str, int] = {}
        for merchant, points in by_merchant.items():
            category = categories.get(merchant, "unknown")
            by_category[category] = by_category.get(category, 0) + points
        return RedemptionsReport(city=city, period=period, by_merchant=dict(sorted(by_merchant.items())),
                                 by_category=dict(sorted(by_category.items())))  # fmt: skip

    def published_periods(self, city: str) -> PublishedPeriods:
        """The months whose open data is published (the closed ones), latest first."""
        self.programs.get(city)  # an unknown city is a 404, as for its open data
        with self.engine.connect() as conn:
            periods = finance_store.closed_periods(conn, city, MAX_PUBLISHED_PERIODS)
        return PublishedPeriods(city=city, periods=periods)

    def open_data(self, city: str, period: str) -> OpenData:
        """Anonymous aggregates of a closed period: earnings by kind, redemptions by category, points
        spent on municipal services, expired, and paid from the city's budget, active residents and merchants. An open or future period is not published (PeriodNotPublished)."""
        period_bounds_us(period, self.programs.get(city).timezone)  # a malformed period is a 400, before anything
        with self.engine.connect() as conn:
            closed = finance_store.close(conn, city, period) is not None
        if not closed:
            raise PeriodNotPublished(f"{period} is not closed in {city}", period=period)
        rows, categories = self._activity(city, period)
        earned: dict[str, tuple[int, set[str]]] = {}
        redeemed: dict[str, tuple[int, set[str]]] = {}
        program: dict[str, tuple[int, set[str]]] = {}  # by metric: the city's own accounts' side of wallets
        residents: set[str] = set()
        merchants: set[str] = set()
        for kind, debit, credit, amount in rows:
            for account in (debit, credit):
                if accounts.is_wallet(account):
                    residents.add(account)
                elif merchant := accounts.merchant_of(account):
                    merchants.add(merchant)
            if accounts.is_wallet(credit) and kind.startswith("earn"):
                _add(earned, kind, amount, credit)
            elif accounts.is_wallet(debit) and accounts.is_redeemed(credit):
                _add(redeemed, _category(categories, credit), amount, debit)
            elif accounts.is_wallet(credit) and accounts.is_redeemed(debit):  # a refunded redemption
                _add(redeemed, _category(categories, debit), -amount, credit)
            if accounts.is_wallet(debit) and credit in _PROGRAM_METRICS:
                _add(program, _PROGRAM_METRICS[credit], amount, debit)
            if debit == accounts.PROGRAM_BUDGET and accounts.is_wallet(credit):
                _add(program, "budget_used_points", amount, credit)
        cells = [_cell(city, period, "earned_points_by_kind", k, p, len(r)) for k, (p, r) in sorted(earned.items())]
        cells += [
            _cell(city, period, "redeemed_points_by_category", c, p, len(r)) for c, (p, r) in sorted(redeemed.items())
        ]
        cells += [_cell(city, period, metric, "all", p, len(r)) for metric, (p, r) in sorted(program.items())]
        cells.append(_cell(city, period, "active_residents", "all", None, len(residents)))
        cells.append(OpenDataCell(city=city, period=period, metric="active_merchants", dimension="all",
                                  merchants=len(merchants), suppressed=False))  # fmt: skip
        return OpenData(city=city, period=period, cells=cells)


def _category(categories: dict[str, str], account: str) -> str:
    merchant = accounts.merchant_of(account)
    return "unknown" if merchant is None else categories.get(merchant, "unknown")


def _add(table: dict[str, tuple[int, set[str]]], key: str, amount: int, resident: str) -> None:
    points, who = table.get(key, (0, set()))
    who.add(resident)
    table[key] = (points + amount, who)


def _cell(city: str, period: str, metric: str, dimension: str, points: int | None, residents: int) -> OpenDataCell:
    """A cell of fewer than 10 residents could point at someone: its figures are withheld."""
    hidden = residents < MIN_RESIDENTS_PER_CELL
    return OpenDataCell(city=city, period=period, metric=metric, dimension=dimension,  # type: ignore[arg-type]
                        points=None if hidden else points, residents=None if hidden else residents, suppressed=hidden)  # fmt: skip


def open_data_csv(data: OpenData) -> str:
    """The cells as CSV, one per row; an empty field is null (suppressed, or not counted)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OPEN_DATA_COLUMNS)
    for cell in data.cells:
        values = (getattr(cell, c) for c in OPEN_DATA_COLUMNS)
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()
