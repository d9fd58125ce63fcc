"""The program's earning rules, pure domain (no database): base points, campaigns, caps, civic awards,
validation and the JSON form of a program.

The stated rounding rule: base points are `purchase_cents × points_per_dollar // 100`, rounded down.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from community.domain.program import (
    CATEGORIES,
    LEVELS,
    MAX_PURCHASE_CENTS,
    Campaign,
    CivicActivity,
    InvalidProgram,
    LevelRequired,
    Program,
    civic_award,
    purchase_award,
    usage_buckets,
)
from ledger.domain.errors import LedgerError

TORONTO = ZoneInfo("America/Toronto")
UTC = dt.UTC
JAN_1 = dt.date(2026, 1, 1)
MERCHANTS = ("m1", "m2")
FAST = settings(max_examples=120, deadline=None)


def us(moment: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def toronto(*args: int) -> int:
    return us(dt.datetime(*args, tzinfo=TORONTO))


NOON = toronto(2026, 1, 15, 12, 0)


def buy(program: Program, cents: int, *, category: str = "food", merchant: str = "m1", time_us: int = NOON,
        usage: dict | None = None):  # fmt: skip
    return purchase_award(program, purchase_cents=cents, category=category, merchant_id=merchant, time_us=time_us,
                          usage=usage or {})  # fmt: skip


def lines_of(award) -> dict[str, int]:
    return {line.rule: line.points for line in award.lines}


# --- base points and the rounding rule ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "rate", "points"),
    [(99, 5, 4), (100, 5, 5), (119, 5, 5), (120, 5, 6), (1, 5, 0), (19, 5, 0), (20, 5, 1), (4250, 5, 212),
     (99, 1, 0), (100, 1, 1), (12_345, 0, 0), (MAX_PURCHASE_CENTS, 5, 50_000_000)],
)  # fmt: skip
def test_base_points_are_rounded_down(cents, rate, points):
    program = Program(city="x", merchant_points_per_dollar=rate, daily_cap_points=10**12, monthly_cap_points=10**12)
    award = buy(program, cents)
    assert award.points == points
    assert award.lines == (award.lines[0],) and (award.lines[0].rule, award.lines[0].points) == ("base", points)


def test_an_award_of_nothing_adds_no_usage():
    award = buy(Program(city="x"), 19)  # 0.95 of a point rounds down to nothing
    assert award.points == 0 and award.usage == {}
    assert sum(line.points for line in award.lines) == 0


@pytest.mark.parametrize("cents", [0, -1, -100, MAX_PURCHASE_CENTS + 1, 1.5, "100", None, True])
def test_purchase_amount_must_be_a_positive_integer_within_bounds(cents):
    with pytest.raises(LedgerError):
        buy(Program(city="x"), cents)


# --- campaigns ---------------------------------------------------------------------------------


def test_campaign_multiplier_and_bonus_add_to_the_base():
    program = Program(city="x", campaigns=(Campaign("double", JAN_1, dt.date(2026, 1, 31), 200, bonus_points=10),))
    award = buy(program, 1_000)
    assert lines_of(award) == {"base": 50, "campaign:double": 60}
    assert award.points == 110
    assert award.usage == {"day:2026-01-15": 110, "month:2026-01": 110, "campaign:double": 60}


def test_campaign_extra_is_rounded_down_too():
    program = Program(city="x", campaigns=(Campaign("half", JAN_1, JAN_1 + dt.timedelta(days=30), 150),))
    award = buy(program, 99)  # base 4, extra 4 × 50 // 100 = 2
    assert lines_of(award) == {"base": 4, "campaign:half": 2}


def test_campaign_cap_limits_extras_to_what_is_left():
    program = Program(
        city="x", campaigns=(Campaign("c", JAN_1, dt.date(2026, 2, 1), bonus_points=100, cap_points=250),)
    )
    assert lines_of(buy(program, 100, usage={"campaign:c": 200})) == {"base": 5, "campaign:c": 50}
    spent = buy(program, 100, usage={"campaign:c": 250})
    assert lines_of(spent) == {"base": 5} and "campaign:c" not in spent.usage
    over = buy(program, 100, usage={"campaign:c": 10_000})  # more used than the cap (cap lowered since)
    assert lines_of(over) == {"base": 5} and over.points == 5


def _window_program(timezone: str = "America/Toronto") -> Program:
    campaign = Campaign("january", JAN_1, dt.date(2026, 1, 31), bonus_points=7, category="food", merchant_id="m1")
    return Program(city="x", timezone=timezone, campaigns=(campaign,))


@pytest.mark.parametrize(
    ("time_us", "applies"),
    [
        (toronto(2026, 1, 1, 0, 0), True),  # first local minute of the first day
        (toronto(2025, 12, 31, 23, 59), False),
        (toronto(2026, 1, 31, 23, 59), True),  # last day is inclusive, in local time (Feb 1, 04:59 UTC)
        (toronto(2026, 2, 1, 0, 0), False),
        (us(dt.datetime(2026, 1, 1, 3, 0, tzinfo=UTC)), False),  # still Dec 31 in Toronto
        (us(dt.datetime(2026, 2, 1, 3, 0, tzinfo=UTC)), True),  # still Jan 31 in Toronto
    ],
)
def test_campaign_applies_within_its_dates_inclusive_in_local_time(time_us, applies):
    award = buy(_window_program(), 1_000, time_us=time_us)
    assert ("campaign:january" in lines_of(award)) is applies
    assert award.points == 50 + (7 if applies else 0)


@pytest.mark.parametrize(
    ("category", "merchant", "applies"),
    [("food", "m1", True), ("retail", "m1", False), ("food", "m2", False), ("culture", "m2", False)],
)
def test_campaign_applies_only_to_its_category_and_merchant(category, merchant, applies):
    award = buy(_window_program(), 1_000, category=category, merchant=merchant)
    assert ("campaign:january" in lines_of(award)) is applies


def test_local_day_uses_the_program_time_zone():
    moment = us(dt.datetime(2026, 1, 2, 3, 0, tzinfo=UTC))
    assert Program(city="x").local_day(moment) == dt.date(2026, 1, 1)
    assert Program(city="x", timezone="UTC").local_day(moment) == dt.date(2026, 1, 2)
    assert Program(city="x", timezone="Asia/Tokyo").local_day(
        us(dt.datetime(2026, 1, 1, 16, 0, tzinfo=UTC))
    ) == dt.date(2026, 1, 2)
    # The usage buckets follow the local day and month, and so does a campaign ending on Jan 1.
    program = Program(city="x", campaigns=(Campaign("newyear", JAN_1, JAN_1, bonus_points=3),))
    award = buy(program, 1_000, time_us=moment)
    assert award.usage == {"day:2026-01-01": 53, "month:2026-01": 53, "campaign:newyear": 3}
    assert buy(Program(city="x"), 100, time_us=us(dt.datetime(2026, 2, 1, 3, 0, tzinfo=UTC))).usage == {
        "day:2026-01-31": 5, "month:2026-01": 5}  # fmt: skip
    utc = Program(city="x", timezone="UTC", campaigns=program.campaigns)
    assert "campaign:newyear" not in lines_of(buy(utc, 1_000, time_us=moment))


def test_usage_buckets_name_the_day_and_the_month():
    assert usage_buckets(Program(city="x"), dt.date(2026, 3, 7)) == ("day:2026-03-07", "month:2026-03")


# --- caps --------------------------------------------------------------------------------------


def test_daily_cap_cuts_campaign_extras_before_the_base():
    program = Program(
        city="x", daily_cap_points=1_000, campaigns=(Campaign("c", JAN_1, dt.date(2026, 12, 31), 200, 10),)
    )
    award = buy(program, 1_000, usage={"day:2026-01-15": 930})  # base 50 + extras 60, room 70
    assert award.points == 70
    assert lines_of(award) == {"base": 50, "campaign:c": 60, "cap:daily": -40}
    assert award.usage == {"day:2026-01-15": 70, "month:2026-01": 70, "campaign:c": 20}
    into_base = buy(program, 1_000, usage={"day:2026-01-15": 970})  # room 30: the base itself is cut
    assert into_base.points == 30 and into_base.usage == {"day:2026-01-15": 30, "month:2026-01": 30}


def test_monthly_cap_applies_after_the_daily_cap():
    program = Program(city="x", daily_cap_points=100, monthly_cap_points=1_000)
    award = buy(program, 10_000, usage={"month:2026-01": 960})  # base 500, daily room 100, monthly room 40
    assert award.points == 40
    assert lines_of(award) == {"base": 500, "cap:daily": -400, "cap:monthly": -60}
    full = buy(program, 10_000, usage={"day:2026-01-15": 100})
    assert full.points == 0 and full.usage == {}
    over = buy(program, 10_000, usage={"day:2026-01-15": 5_000, "month:2026-01": 50_000})  # cap lowered since
    assert over.points == 0 and sum(line.points for line in over.lines) == 0


def test_usage_of_other_days_and_months_does_not_count():
    program = Program(city="x", daily_cap_points=100, monthly_cap_points=1_000)
    award = buy(program, 1_000, usage={"day:2026-01-14": 100, "month:2025-12": 1_000})
    assert award.points == 50


# --- properties --------------------------------------------------------------------------------

START = us(dt.datetime(2025, 12, 31, tzinfo=UTC))
DAYS = 70

campaigns = st.lists(
    st.builds(
        lambda start, length, mult, bonus, category, merchant, cap: dict(
            starts_on=JAN_1 + dt.timedelta(days=start), ends_on=JAN_1 + dt.timedelta(days=start + length),
            multiplier_percent=mult, bonus_points=bonus, category=category, merchant_id=merchant, cap_points=cap),
        st.integers(-5, DAYS), st.integers(0, 40), st.integers(100, 1_000), st.integers(0, 500),
        st.none() | st.sampled_from(CATEGORIES), st.none() | st.sampled_from(MERCHANTS), st.none() | st.integers(0, 3_000),
    ),
    max_size=4,
).map(lambda specs: tuple(Campaign(f"c{i}", **spec) for i, spec in enumerate(specs)))  # fmt: skip

programs = st.builds(
    lambda rate, daily, monthly, tz, camps: Program(city="x", merchant_points_per_dollar=rate, daily_cap_points=daily,
                                                    monthly_cap_points=monthly, timezone=tz, campaigns=camps),
    st.integers(0, 20), st.integers(0, 5_000), st.integers(0, 20_000),
    st.sampled_from(["America/Toronto", "UTC", "America/Vancouver", "Asia/Tokyo"]), campaigns,
)  # fmt: skip


def _check_usage_bookkeeping(program: Program, award, day: dt.date, used: dict, base: int | None) -> None:
    day_bucket, month_bucket = usage_buckets(program, day)
    assert award.points >= 0
    assert sum(line.points for line in award.lines) == award.points
    assert award.points <= max(0, program.daily_cap_points - used.get(day_bucket, 0))
    assert award.points <= max(0, program.monthly_cap_points - used.get(month_bucket, 0))
    assert award.usage.get(day_bucket, 0) == award.points
    assert award.usage.get(month_bucket, 0) == award.points
    assert all(points > 0 for points in award.usage.values())
    for line in award.lines:
        assert line.rule.startswith(("base", "campaign:", "civic:", "cap:daily", "cap:monthly", "cap:campaign:"))
        assert line.points < 0 if line.rule.startswith("cap:") else line.points >= 0


@FAST
@given(
    program=programs,
    cents=st.integers(1, 200_000) | st.integers(1, MAX_PURCHASE_CENTS),
    offset_s=st.integers(0, DAYS * 86_400),
    category=st.sampled_from(CATEGORIES),
    merchant=st.sampled_from(MERCHANTS),
    used_day=st.integers(0, 6_000),
    used_month=st.integers(0, 25_000),
    used_campaigns=st.lists(st.integers(0, 3_500), min_size=4, max_size=4),
)
def test_purchase_award_invariants(program, cents, offset_s, category, merchant, used_day, used_month, used_campaigns):
    time_us = START + offset_s * 1_000_000
    day = dt.datetime.fromtimestamp(time_us / 1_000_000, ZoneInfo(program.timezone)).date()
    assert program.local_day(time_us) == day
    day_bucket, month_bucket = usage_buckets(program, day)
    used = {day_bucket: used_day, month_bucket: used_month, "day:1999-01-01": 10**9, "month:1999-01": 10**9}
    used |= {f"campaign:c{i}": n for i, n in enumerate(used_campaigns)}

    award = buy(program, cents, category=category, merchant=merchant, time_us=time_us, usage=used)

    base = cents * program.merchant_points_per_dollar // 100
    assert award.lines[0].rule == "base" and award.lines[0].points == base
    expected_extras = {}
    for c in program.campaigns:
        if c.starts_on <= day <= c.ends_on and c.category in (None, category) and c.merchant_id in (None, merchant):
            extra = base * (c.multiplier_percent - 100) // 100 + c.bonus_points
            if c.cap_points is not None:
                extra = min(extra, max(0, c.cap_points - used[f"campaign:{c.id}"]))
            if extra > 0:
                expected_extras[f"campaign:{c.id}"] = extra
    extras = {line.rule: line.points for line in award.lines if line.rule.startswith("campaign:")}
    assert extras == expected_extras
    caps = {c.id: c.cap_points for c in program.campaigns}
    for rule, extra in extras.items():
        cap = caps[rule.removeprefix("campaign:")]
        assert cap is None or extra <= max(0, cap - used[rule])

    room = min(max(0, program.daily_cap_points - used_day), max(0, program.monthly_cap_points - used_month))
    assert award.points == min(base + sum(extras.values()), room)
    _check_usage_bookkeeping(program, award, day, used, base)

    campaign_usage = {k: v for k, v in award.usage.items() if k.startswith("campaign:")}
    assert set(award.usage) <= {day_bucket, month_bucket} | set(campaign_usage)
    assert all(campaign_usage[k] <= extras[k] for k in campaign_usage)
    assert sum(campaign_usage.values()) <= sum(extras.values())
    # The caps cut campaign extras first: what survives of them is exactly what exceeds the base.
    assert sum(campaign_usage.values()) == max(0, award.points - base)


@FAST
@given(
    program=programs,
    activity=st.sampled_from(["volunteer_hour", "volunteer_hour_children", "civic_participation"]),
    units=st.integers(1, 12),
    level=st.sampled_from(LEVELS),
    offset_s=st.integers(0, DAYS * 86_400),
    used_day=st.integers(0, 6_000),
    used_month=st.integers(0, 25_000),
)
def test_civic_award_invariants(program, activity, units, level, offset_s, used_day, used_month):
    time_us = START + offset_s * 1_000_000
    day = program.local_day(time_us)
    day_bucket, month_bucket = usage_buckets(program, day)
    used = {day_bucket: used_day, month_bucket: used_month}
    rule = program.civic_activities[activity]
    call = lambda: civic_award(program, activity=activity, units=units, level=level, time_us=time_us, usage=used)  # noqa: E731
    if units > rule.max_units:
        with pytest.raises(LedgerError):
            call()
        return
    if LEVELS.index(level) < LEVELS.index(rule.min_level):
        with pytest.raises(LevelRequired):
            call()
        return
    award = call()
    assert award.lines[0].rule == f"civic:{activity}" and award.lines[0].points == units * rule.points_per_unit
    room = min(max(0, program.daily_cap_points - used_day), max(0, program.monthly_cap_points - used_month))
    assert award.points == min(units * rule.points_per_unit, room)
    assert not any(k.startswith("campaign:") for k in award.usage)
    _check_usage_bookkeeping(program, award, day, used, None)


# --- civic awards: examples --------------------------------------------------------------------


def civic(program: Program, activity: str, units: int = 1, level: str = "basic", usage: dict | None = None):
    return civic_award(program, activity=activity, units=units, level=level, time_us=NOON, usage=usage or {})


@pytest.mark.parametrize("level", ["basic", "verified"])
def test_civic_activity_below_its_level_is_refused(level):
    with pytest.raises(LevelRequired) as refused:
        civic(Program(city="x"), "volunteer_hour_children", 2, level)
    assert refused.value.code == "level_required"
    assert refused.value.context == {"required_level": "checked", "level": level}


def test_civic_activity_at_or_above_its_level_is_awarded():
    program = Program(city="x")
    assert civic(program, "volunteer_hour_children", 2, "checked").points == 200
    for level in LEVELS:
        award = civic(program, "volunteer_hour", 3, level)
        assert award.points == 300 and lines_of(award) == {"civic:volunteer_hour": 300}
    verified_only = Program(city="x", civic_activities={"tutoring": CivicActivity(40, min_level="verified")})
    with pytest.raises(LevelRequired):
        civic(verified_only, "tutoring", 1, "basic")
    assert civic(verified_only, "tutoring", 1, "verified").points == 40


@pytest.mark.parametrize(
    ("activity", "units"),
    [("volunteer_hour", 0), ("volunteer_hour", -1), ("volunteer_hour", 13), ("civic_participation", 2),
     ("volunteer_hour", True), ("volunteer_hour", 1.0), ("volunteer_hour", "2")],
)  # fmt: skip
def test_civic_units_are_bounded(activity, units):
    with pytest.raises(LedgerError) as refused:
        civic(Program(city="x"), activity, units, "checked")
    assert not isinstance(refused.value, LevelRequired)


def test_civic_unit_bounds_are_inclusive():
    assert civic(Program(city="x"), "volunteer_hour", 12).points == 1_000  # 1 200 capped by the daily 1 000
    assert civic(Program(city="x"), "civic_participation", 1).points == 50


def test_unknown_civic_activity_is_refused():
    with pytest.raises(InvalidProgram) as refused:
        civic(Program(city="x"), "skydiving", 1, "checked")
    assert refused.value.code == "invalid_program"


def test_civic_award_respects_the_caps():
    award = civic(Program(city="x", daily_cap_points=1_000), "volunteer_hour", 5, usage={"day:2026-01-15": 850})
    assert award.points == 150
    assert lines_of(award) == {"civic:volunteer_hour": 500, "cap:daily": -350}


# --- validation --------------------------------------------------------------------------------


def test_default_program_is_valid():
    program = Program(city="x")
    assert program.validate() is program


def _campaign(**changes) -> Campaign:
    return Campaign(**({"id": "c", "starts_on": JAN_1, "ends_on": JAN_1} | changes))


BAD_PROGRAMS = {
    "negative daily cap": dict(daily_cap_points=-1),
    "negative monthly cap": dict(monthly_cap_points=-1),
    "negative budget": dict(yearly_budget_points=-1),
    "negative offline floor": dict(offline_floor_points=-1),
    "negative rate": dict(merchant_points_per_dollar=-1),
    "huge cap": dict(daily_cap_points=10**12 + 1),
    "zero point value": dict(point_value_cents_per_100_points=0),
    "zero expiry": dict(expiry_days=0),
    "redemption rate over 100": dict(redemption_rate_percent=101),
    "funding rate over 100": dict(funding_rate_percent=101),
    "negative funding rate": dict(funding_rate_percent=-1),
    "hold timeout too short": dict(hold_timeout_seconds=59),
    "hold timeout too long": dict(hold_timeout_seconds=7 * 86_400 + 1),
    "unknown time zone": dict(timezone="Mars/Olympus"),
    "empty time zone": dict(timezone=""),
    "time zone path": dict(timezone="../../etc/passwd"),
    "duplicate campaign ids": dict(campaigns=(_campaign(), _campaign(bonus_points=5))),
    "campaign ends before it starts": dict(campaigns=(_campaign(ends_on=JAN_1 - dt.timedelta(days=1)),)),
    "unknown campaign category": dict(campaigns=(_campaign(category="weapons"),)),
    "campaign multiplier below 100": dict(campaigns=(_campaign(multiplier_percent=99),)),
    "campaign multiplier above 1000": dict(campaigns=(_campaign(multiplier_percent=1_001),)),
    "negative campaign bonus": dict(campaigns=(_campaign(bonus_points=-1),)),
    "negative campaign cap": dict(campaigns=(_campaign(cap_points=-1),)),
    "bad campaign id": dict(campaigns=(_campaign(id="Spring Sale!"),)),
    "too many campaigns": dict(campaigns=tuple(_campaign(id=f"c{i}") for i in range(101))),
    "civic activity of unknown level": dict(civic_activities={"a": CivicActivity(10, min_level="gold")}),
    "civic activity of no points": dict(civic_activities={"a": CivicActivity(0)}),
    "civic activity of no units": dict(civic_activities={"a": CivicActivity(10, max_units=0)}),
    "bad civic activity name": dict(civic_activities={"Bad Name": CivicActivity(10)}),
}


@pytest.mark.parametrize("changes", BAD_PROGRAMS.values(), ids=BAD_PROGRAMS.keys())
def test_validate_refuses_values_a_city_could_not_have_meant(changes):
    with pytest.raises(InvalidProgram) as refused:
        Program(city="x", **changes).validate()
    assert refused.value.code == "invalid_program"


@pytest.mark.parametrize(
    "changes",
    [dict(redemption_rate_percent=0), dict(funding_rate_percent=100), dict(daily_cap_points=0),
     dict(merchant_points_per_dollar=0), dict(hold_timeout_seconds=60), dict(timezone="UTC"),
     dict(campaigns=(_campaign(), _campaign(id="d", category="food", cap_points=0, multiplier_percent=1_000))),
     dict(campaigns=tuple(_campaign(id=f"c{i}") for i in range(100)))],
)  # fmt: skip
def test_validate_accepts_values_at_the_bounds(changes):
    Program(city="x", **changes).validate()


# --- JSON round trip ---------------------------------------------------------------------------


def test_program_json_round_trip():
    program = Program(
        city="brossard", timezone="America/Montreal", merchant_points_per_dollar=7, daily_cap_points=0,
        civic_activities={"tutoring": CivicActivity(40, min_level="verified", max_units=3)},
        campaigns=(Campaign("spring", dt.date(2026, 3, 20), dt.date(2026, 6, 20), 150, 25, "food", "boulangerie", 900),
                   _campaign(id="plain")),
    )  # fmt: skip
    again = msgspec.json.decode(msgspec.json.encode(program), type=Program)
    assert again == program and again.validate() == program
    assert again.campaigns[0].starts_on == dt.date(2026, 3, 20)
    assert msgspec.json.decode(msgspec.json.encode(Program(city="x")), type=Program) == Program(city="x")


@settings(max_examples=60, deadline=None)
@given(programs)
def test_generated_program_json_round_trip(program):
    program.validate()
    assert msgspec.json.decode(msgspec.json.encode(program), type=Program) == program


def test_program_json_refuses_unknown_fields():
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"city": "x", "daily_cap": 5}', type=Program)
