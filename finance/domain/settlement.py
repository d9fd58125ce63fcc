"""Settlement arithmetic: from a period's ledger movements to each merchant's statement. Pure, integer.

Rounding rule, stated once: a value in cents is rounded toward zero at the merchant-line level, so
nobody ever pays a fraction of a cent; the difference (under one cent per line) stays with the payer.
A period whose refunds outweigh its redemptions gives negative points and cents: the merchant owes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from community.domain.program import CollectionMethod, Program
from finance.schemas import PERIOD_PATTERN, SettledBy, StatementLine, StatementTotals
from ledger.domain.accounts import parse_account
from ledger.domain.errors import LedgerError

PERIOD = re.compile(PERIOD_PATTERN)
SETTLEMENT_KINDS = ("settlement", "settlement_interop")  # written by closing; never part of a period's activity


class InvalidPeriod(LedgerError):
    code = "invalid_period"


class PeriodOpen(LedgerError):
    """The period has not ended yet: closing it now could leave out transfers that still belong to it."""

    code = "period_open"


def period_bounds_us(period: str, timezone: str) -> tuple[int, int]:
    """[start, end) of a calendar month in the city's time zone, in µs since the epoch."""
    match = PERIOD.fullmatch(period) if isinstance(period, str) else None
    if match is None:
        raise InvalidPeriod(f"a period is YYYY-MM, not {period!r}", period=str(period)[:20])
    year, month = int(period[:4]), int(period[5:])
    zone = ZoneInfo(timezone)
    start = dt.datetime(year, month, 1, tzinfo=zone)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return _us(start), _us(end)


def recent_periods(now_us: int, timezone: str, count: int) -> list[str]:
    """The `count` calendar months up to the one in progress at `now_us` in the city's time zone, latest first."""
    assert 0 < count <= 120
    today = dt.datetime.fromtimestamp(now_us / 1_000_000, ZoneInfo(timezone))
    months = today.year * 12 + today.month - 1
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(months, months - count, -1)]


def _us(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def points_to_cents(points: int, program: Program, rate_percent: int) -> int:
    """Value of points at a rate, rounded toward zero: points × (cents per 100 points) × rate% / 10 000."""
    assert 0 <= rate_percent <= 100
    cents = abs(points) * program.point_value_cents_per_100_points * rate_percent // 10_000
    return cents if points >= 0 else -cents


def merchant_lines(program: Program, movements: Iterable[tuple[str, str, int, int]],
                   adjustments_cents: dict[str, int], fees_cents: dict[str, int]) -> list[StatementLine]:  # fmt: skip
    """One line per merchant with any movement or adjustment, from (ledger, account, debits, credits)."""
    redeemed: dict[str, int] = {}
    issued: dict[str, int] = {}
    for _, account, debits, credits in movements:
        kind, merchant = parse_account(account)
        if merchant is None:  # not a merchant's account
            continue
        if kind == "merchant_redeemed":
            redeemed[merchant] = redeemed.get(merchant, 0) + credits - debits
        elif kind == "merchant_issued":
            issued[merchant] = issued.get(merchant, 0) + debits - credits
    lines = []
    for merchant in sorted(set(redeemed) | set(issued) | set(adjustments_cents) | set(fees_cents)):
        r, i = redeemed.get(merchant, 0), issued.get(merchant, 0)
        reimbursement = points_to_cents(r, program, program.redemption_rate_percent)
        funding = points_to_cents(i, program, program.funding_rate_percent)
        fee, adjustment = fees_cents.get(merchant, 0), adjustments_cents.get(merchant, 0)
        lines.append(StatementLine(
            merchant_id=merchant, redeemed_points=r, issued_points=i, reimbursement_cents=reimbursement,
            funding_cents=funding, fees_cents=fee, adjustments_cents=adjustment,
            net_cents=(net := reimbursement - funding - fee + adjustment),
            settled_by=settled_by(net, program.collection_method),
        ))  # fmt: skip
    return lines


def settled_by(net_cents: int, collection_method: CollectionMethod) -> SettledBy | None:
    """A positive net is paid by credit transfer (pain.001); a negative one collected the city's way."""
    if net_cents == 0:
        return None
    return "credit_transfer" if net_cents > 0 else collection_method


def totals(lines: list[StatementLine]) -> StatementTotals:
    fields = ("redeemed_points", "issued_points", "reimbursement_cents", "funding_cents", "fees_cents",
              "adjustments_cents", "net_cents")  # fmt: skip
    return StatementTotals(
        **{f: sum(getattr(line, f) for line in lines) for f in fields},
        payable_cents=sum(line.net_cents for line in lines if line.net_cents > 0),
        receivable_cents=-sum(line.net_cents for line in lines if line.net_cents < 0),
    )


def cents_text(cents: int) -> str:
    """Cents as a decimal amount (`12345` → `123.45`), integers only: formatting happens at the edge."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
