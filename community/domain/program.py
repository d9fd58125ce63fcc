"""A city's program: what a point is worth, how points are earned, and the limits on earning.

Pure rules, no I/O. Every amount is an integer; the one rounding rule is stated where it applies:
earned points are rounded down (`//`), so a purchase never earns a fraction of a point and the
funder never pays for one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from ledger.domain.errors import LedgerError

LEVELS = ("basic", "verified", "checked")  # a resident's verification levels, weakest first
CATEGORIES = ("food", "retail", "services", "culture", "sports", "tourism")
MAX_POINTS = 10**12
MAX_PURCHASE_CENTS = 10**9  # ten million dollars: anything above is a typo or an attack
MAX_CAMPAIGNS = 100
CollectionMethod = Literal["invoice", "direct_debit"]  # how a merchant whose net is negative is collected
COLLECTION_METHODS: tuple[str, ...] = get_args(CollectionMethod)
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class InvalidProgram(LedgerError):
    code = "invalid_program"


class LevelRequired(LedgerError):
    code = "level_required"


class Campaign(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A bonus for purchases in a date range, optionally only in one category or at one merchant."""

    id: str
    starts_on: dt.date
    ends_on: dt.date  # inclusive
    multiplier_percent: int = 100  # 200 doubles the base points
    bonus_points: int = 0  # added once per qualifying purchase
    category: str | None = None
    merchant_id: str | None = None
    cap_points: int | None = None  # the most one resident can earn from this campaign's extras

    def applies(self, day: dt.date, category: str, merchant_id: str) -> bool:
        return (
            self.starts_on <= day <= self.ends_on
            and self.category in (None, category)
            and self.merchant_id in (None, merchant_id)
        )


class CivicActivity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """City-funded points for a civic activity, per unit (an hour of volunteering, a session)."""

    points_per_unit: int
    min_level: str = "basic"
    max_units: int = 12  # per attestation


class Treasury(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The city's bank account that pays merchants (the debtor of pain.001 credit transfers)."""

    name: str
    institution: str  # CPA institution number, 3 digits
    transit: str  # branch transit number, 5 digits
    account_number: str  # 7 to 12 digits

    def validate(self) -> None:
        if not (1 <= len(self.name) <= 140 and is_bank_account(self.institution, self.transit, self.account_number)):
            raise InvalidProgram(
                "treasury: a name, a 3-digit institution, a 5-digit transit and a 7-12 digit account",
                field="treasury",
                reason="invalid_value",
            )


def is_bank_account(institution: object, transit: object, account_number: object) -> bool:
    """A Canadian account: CPA institution (3 digits), branch transit (5), account number (7 to 12)."""
    return all(isinstance(v, str) and re.fullmatch(p, v) for v, p in
               ((institution, r"\d{3}"), (transit, r"\d{5}"), (account_number, r"\d{7,12}")))  # fmt: skip


def _default_activities() -> dict[str, CivicActivity]:
    return {
        "volunteer_hour": CivicActivity(points_per_unit=100),
        "volunteer_hour_children": CivicActivity(points_per_unit=100, min_level="checked"),
        "civic_participation": CivicActivity(points_per_unit=50, max_units=1),
    }


MAX_NAME_CHARS = 80


class Program(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    city: str
    name: str | None = None  # as residents read it ("Saint-Jean-sur-Richelieu"); the pages show `city` without one
    currency: str = "CAD"
    timezone: str = "America/Toronto"
    point_value_cents_per_100_points: int = 100  # 100: one point is worth one cent
    merchant_points_per_dollar: int = 5
    civic_activities: dict[str, CivicActivity] = msgspec.field(default_factory=_default_activities)
    campaigns: tuple[Campaign, ...] = ()
    daily_cap_points: int = 1_000  # per resident, all earnings
    monthly_cap_points: int = 10_000
    yearly_budget_points: int = 50_000_000
    expiry_days: int = 730
    offline_floor_points: int = 2_000  # the most one offline redemption may take
    hold_timeout_seconds: int = 900
    redemption_rate_percent: int = 100  # share of a redeemed point's value the program reimburses
    funding_rate_percent: int = 100  # share of an issued point's value the merchant pays
    settlement_fee_cents: int = 0  # charged per period to each merchant with activity
    treasury: Treasury | None = None  # needed to export pain.001 credit transfers (and pain.008 debits)
    # A merchant whose period nets negative owes the program: an invoice it pays (the default: it needs
    # nothing on file), or a pre-authorized debit (pain.008) on its confirmed payout account.
    collection_method: CollectionMethod = "invoice"
    # A staff correction above this many points waits for a second principal (docs/money-model.md "Corrections").
    correction_approval_points: int = 1_000

    def validate(self) -> Program:
        """Raise InvalidProgram on any value a city could not have meant."""
        if self.name is not None and not 0 < len(self.name.strip()) == len(self.name) <= MAX_NAME_CHARS:
            raise InvalidProgram("name must be 1 to 80 characters, without surrounding spaces", field="name",
                                 reason="invalid_value")  # fmt: skip
        _positive_ints(self, ("point_value_cents_per_100_points", "expiry_days", "hold_timeout_seconds"))
        _non_negative_ints(self, ("merchant_points_per_dollar", "daily_cap_points", "monthly_cap_points",
                                  "yearly_budget_points", "offline_floor_points", "settlement_fee_cents",
                                  "correction_approval_points"))  # fmt: skip
        for name in ("redemption_rate_percent", "funding_rate_percent"):
            if not 0 <= getattr(self, name) <= 100:
                raise InvalidProgram(
                    f"{name} must be between 0 and 100", field=name, reason="out_of_range", min_value=0, max_value=100
                )
        if not 60 <= self.hold_timeout_seconds <= 7 * 86_400:
            raise InvalidProgram(
                "hold_timeout_seconds must be between 60 seconds and 7 days",
                field="hold_timeout_seconds",
                reason="out_of_range",
                min_value=60,
                max_value=7 * 86_400,
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidProgram(
                f"unknown time zone {self.timezone!r}", field="timezone", reason="invalid_value"
            ) from None
        if len(self.campaigns) > MAX_CAMPAIGNS or len({c.id for c in self.campaigns}) != len(self.campaigns):
            raise InvalidProgram(
                f"at most {MAX_CAMPAIGNS} campaigns, with distinct ids",
                field="campaigns",
                reason="too_many",
                max_items=MAX_CAMPAIGNS,
            )
        for campaign in self.campaigns:
            _check_campaign(campaign)
        if self.treasury is not None:
            self.treasury.validate()
        if self.collection_method not in COLLECTION_METHODS:
            raise InvalidProgram(
                f"collection_method is one of {', '.join(COLLECTION_METHODS)}",
                field="collection_method",
                reason="not_one_of",
                allowed=", ".join(COLLECTION_METHODS),
            )
        for name, activity in self.civic_activities.items():
            if not _ID.fullmatch(name) or activity.min_level not in LEVELS:
                raise InvalidProgram(
                    f"invalid civic activity {name!r}", field=f"civic_activities.{name}", reason="invalid_value"
                )
            if not (0 < activity.points_per_unit <= MAX_POINTS and 0 < activity.max_units <= 1_000):
                raise InvalidProgram(
                    f"civic activity {name!r} needs positive points and units",
                    field=f"civic_activities.{name}",
                    reason="below_minimum",
                    min_value=1,
                )
        return self

    def local_day(self, time_us: int) -> dt.date:
        """The calendar day in the city: caps reset at local midnight, not UTC."""
        return dt.datetime.fromtimestamp(time_us / 1_000_000, ZoneInfo(self.timezone)).date()

    def points_to_cents(self, points: int) -> int:
        """Value of points in cents, rounded down."""
        return points * self.point_value_cents_per_100_points // 100


def _positive_ints(program: Program, names: tuple[str, ...]) -> None:
    for name in names:
        if not 0 < getattr(program, name) <= MAX_POINTS:
            raise InvalidProgram(
                f"{name} must be a positive integer",
                field=name,
                reason="out_of_range",
                min_value=1,
                max_value=MAX_POINTS,
            )


def _non_negative_ints(program: Program, names: tuple[str, ...]) -> None:
    for name in names:
        if not 0 <= getattr(program, name) <= MAX_POINTS:
            raise InvalidProgram(
                f"{name} must be a non-negative integer",
                field=name,
                reason="out_of_range",
                min_value=0,
                max_value=MAX_POINTS,
            )


def _check_campaign(campaign: Campaign) -> None:
    if not _ID.fullmatch(campaign.id):
        raise InvalidProgram(f"invalid campaign id {campaign.id!r}", field="campaigns.id", reason="invalid_value")
    if campaign.ends_on < campaign.starts_on:
        raise InvalidProgram(
            f"campaign {campaign.id} ends before it starts",
            field=f"campaigns.{campaign.id}.ends_on",
            reason="must_be_after",
            other_field="starts_on",
        )
    if not 100 <= campaign.multiplier_percent <= 1_000 or not 0 <= campaign.bonus_points <= MAX_POINTS:
        raise InvalidProgram(
            f"campaign {campaign.id}: multiplier 100–1000 %, bonus non-negative",
            field=f"campaigns.{campaign.id}.multiplier_percent",
            reason="out_of_range",
            min_value=100,
            max_value=1_000,
        )
    if campaign.category is not None and campaign.category not in CATEGORIES:
        raise InvalidProgram(
            f"campaign {campaign.id}: unknown category {campaign.category!r}",
            field=f"campaigns.{campaign.id}.category",
            reason="not_one_of",
            allowed=", ".join(CATEGORIES),
        )
    if campaign.cap_points is not None and not 0 <= campaign.cap_points <= MAX_POINTS:
        raise InvalidProgram(
            f"campaign {campaign.id}: cap must be non-negative",
            field=f"campaigns.{campaign.id}.cap_points",
            reason="out_of_range",
            min_value=0,
            max_value=MAX_POINTS,
        )


# --- earning -----------------------------------------------------------------------------------


class AwardLine(msgspec.Struct, frozen=True):
    """One step of an award's explanation; the lines' points sum to the award."""

    rule: str  # "base", "campaign:<id>", "civic:<activity>", "cap:daily", "cap:monthly", "cap:campaign:<id>"
    points: int


class Award(msgspec.Struct, frozen=True):
    points: int
    lines: tuple[AwardLine, ...]
    usage: dict[str, int]  # bucket -> points this award adds to it


def usage_buckets(program: Program, day: dt.date) -> tuple[str, str]:
    """The cap buckets of a day: one per local day and one per local month."""
    return f"day:{day.isoformat()}", f"month:{day.year:04d}-{day.month:02d}"


def purchase_award(program: Program, *, purchase_cents: int, category: str, merchant_id: str, time_us: int,
                   usage: Mapping[str, int]) -> Award:  # fmt: skip
    """Merchant-funded points for a purchase, with campaigns and caps applied.

    Base points are `purchase_cents × points_per_dollar // 100`; each applicable campaign adds
    `base × (multiplier − 100) // 100 + bonus`, within what its cap leaves; the daily and monthly caps
    then cut the total, campaign extras first (the base is what the resident was promised).
    """
    if type(purchase_cents) is not int or not 0 < purchase_cents <= MAX_PURCHASE_CENTS:
        raise LedgerError(
            "purchase_cents must be a positive integer",
            field="purchase_cents",
            reason="out_of_range",
            min_value=1,
            max_value=MAX_PURCHASE_CENTS,
        )
    day = program.local_day(time_us)
    base = purchase_cents * program.merchant_points_per_dollar // 100
    lines = [AwardLine("base", base)]
    extra_usage: dict[str, int] = {}
    for campaign in program.campaigns:
        if not campaign.applies(day, category, merchant_id):
            continue
        extra = base * (campaign.multiplier_percent - 100) // 100 + campaign.bonus_points
        if campaign.cap_points is not None:
            extra = min(extra, max(0, campaign.cap_points - usage.get(f"campaign:{campaign.id}", 0)))
        if extra > 0:
            lines.append(AwardLine(f"campaign:{campaign.id}", extra))
            extra_usage[f"campaign:{campaign.id}"] = extra
    return _capped(program, day, lines, extra_usage, usage)


def civic_award(program: Program, *, activity: str, units: int, level: str, time_us: int,
                usage: Mapping[str, int]) -> Award:  # fmt: skip
    """City-funded points for a civic activity, gated by the resident's verification level."""
    rule = program.civic_activities.get(activity)
    if rule is None:
        raise InvalidProgram(
            f"no civic activity {activity!r} in the program",
            field="activity",
            reason="unknown_activity",
            activity=str(activity)[:64],
        )
    if type(units) is not int or not 0 < units <= rule.max_units:
        raise LedgerError(
            f"units must be 1 to {rule.max_units}",
            field="units",
            reason="out_of_range",
            min_value=1,
            max_value=rule.max_units,
        )
    if level not in LEVELS or LEVELS.index(level) < LEVELS.index(rule.min_level):
        raise LevelRequired(f"{activity} needs level {rule.min_level}", required_level=rule.min_level, level=level)
    day = program.local_day(time_us)
    return _capped(program, day, [AwardLine(f"civic:{activity}", units * rule.points_per_unit)], {}, usage)


def _capped(program: Program, day: dt.date, lines: list[AwardLine], extra_usage: dict[str, int],
            usage: Mapping[str, int]) -> Award:  # fmt: skip
    total = sum(line.points for line in lines)
    day_bucket, month_bucket = usage_buckets(program, day)
    for bucket, cap, rule in ((day_bucket, program.daily_cap_points, "cap:daily"),
                              (month_bucket, program.monthly_cap_points, "cap:monthly")):  # fmt: skip
        room = max(0, cap - usage.get(bucket, 0))
        if total > room:
            lines.append(AwardLine(rule, room - total))
            total = room
    granted = _grant_campaigns_last(lines, extra_usage, total)
    granted[day_bucket] = granted[month_bucket] = total
    assert total == sum(line.points for line in lines) and total >= 0
    return Award(total, tuple(lines), {k: v for k, v in granted.items() if v})


def _grant_campaigns_last(lines: list[AwardLine], extra_usage: dict[str, int], total: int) -> dict[str, int]:
    """How much of each campaign survived the caps: the base is granted first, then campaigns in order."""
    left = total - sum(line.points for line in lines if not line.rule.startswith(("campaign:", "cap:")))
    granted = {}
    for bucket, extra in extra_usage.items():
        granted[bucket] = max(0, min(extra, left))
        left -= granted[bucket]
    return granted
