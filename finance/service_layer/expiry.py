"""Expiry: points unused after the program's expiry period move from wallets to `breakage`, oldest first.

Each earning is a lot dated by its entry; each spend consumes the oldest lots (FIFO), and open holds
reserve the oldest points too; the expiry of a lot takes only what is left of it, never a balance
already spent or reserved. The Rust core computes it (`expire_lots`), the oracle checks it. A refund
returned to a wallet is a new lot, dated when it was refunded (the resident's favour).

The breakage transfers are idempotent per city, account and cutoff day, so running expiry twice the
same day writes nothing; a later run finds the expired lots consumed by the breakage entries and
expires only what aged since.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from community.schemas import ExpiryDate, ExpirySchedule
from community.service_layer.programs import Programs
from ledger import core
from ledger.adapters import journal
from ledger.domain import accounts
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.audit_trail import AuditTrail
from ledger.service_layer.transfers import LedgerService

DAY_US = 86_400_000_000
BATCH_GROUPS = 1_000
MAX_EXPIRY_DATES = 12  # the wallet shows the next dates; the rest is one sum
LAST_DAY_US = int(dt.datetime(9999, 12, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000  # the calendar's end, nearly


class Expiry:
    def __init__(self, engine: Engine, ledger: LedgerService, programs: Programs, audit: AuditTrail,
                 clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.ledger, self.programs, self.audit, self.clock = engine, ledger, programs, audit, clock

    def due(self, city: str, cutoff_us: int) -> list[tuple[str, int]]:
        """(wallet, points) that expire at `cutoff_us`: what is left of lots dated before it."""
        return core.expire_lots(self._events(city, None), cutoff_us)

    def _events(self, city: str, wallet: str | None) -> list[tuple[str, int, int]]:
        """Every wallet's (or one's) lots and spends, in journal order, then its open holds."""
        with self.engine.connect() as conn:
            events = [e for chunk in journal.wallet_events(conn, city, wallet) for e in chunk]
            # Open holds reserve the oldest points: they come last, as spends, in each wallet's order.
            events += [(h.debit_account, h.expires_at_us, -h.amount) for h in journal.open_holds(conn, city, wallet).values()
                       if accounts.is_wallet(h.debit_account)]  # fmt: skip
        return events

    def schedule(self, resident_id: str, city: str) -> ExpirySchedule:
        """When the resident's available points expire, by day of the city's calendar, soonest first.

        What expires by the end of a day is what a run of `due` at that moment would take if nothing
        else happened: the points left of lots dated before the day's end minus `expiry_days`. That
        amount only grows with the cutoff, and FIFO leaves the unspent lots as a suffix, so a binary
        search finds the first day with points left and each day after it has some.
        """
        wallet = accounts.wallet(resident_id)
        program = self.programs.current(city)
        period_us = program.expiry_days * DAY_US
        events = self._events(city, wallet)
        zone = ZoneInfo(program.timezone)
        today = program.local_day(self.clock())
        # The days on which lots reach their expiry (one already past it is due today), in order.
        days = sorted({max(today, program.local_day(t + period_us)) for _, t, delta in events
                       if delta > 0 and t + period_us < LAST_DAY_US})  # beyond the calendar: "later"  # fmt: skip

        def left_by_end_of(day: dt.date) -> int:
            end_us = int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone).timestamp()) * 1_000_000
            return dict(core.expire_lots(events, end_us - period_us)).get(wallet, 0)

        first = bisect.bisect_left(range(len(days)), True, key=lambda n: left_by_end_of(days[n]) > 0)
        dates, before = [], 0
        for day in days[first : first + MAX_EXPIRY_DATES]:
            total = left_by_end_of(day)
            assert total > before  # every lot after the first with points left is whole
            dates.append(ExpiryDate(day=day, points=total - before))
            before = total
        later = sum(delta for _, _, delta in events) - before  # the events sum to the available points
        assert later >= 0
        return ExpirySchedule(city=city, expiry_days=program.expiry_days, dates=dates, later_points=later)

    def run(self, cities: list[str] | None = None, actor: str = "system:expiry") -> dict[str, dict[str, int]]:
        """Expire due points in every city with a program (or the given ones); returns what moved."""
        report: dict[str, dict[str, int]] = {}
        now = self.clock()
        for city in cities or self.programs.cities():
            program = self.programs.get(city)
            cutoff = now - program.expiry_days * DAY_US
            day = dt.datetime.fromtimestamp(cutoff / 1_000_000, dt.UTC).date().isoformat()
            groups = [[TransferRequest(city, f"expiry:{day}:{account}", "expiry", "single", account, accounts.BREAKAGE, points)]
                      for account, points in self.due(city, cutoff)]  # fmt: skip
            moved = refused = 0
            for start in range(0, len(groups), BATCH_GROUPS):
                batch = groups[start : start + BATCH_GROUPS]
                for group, outcome in zip(batch, self.ledger.submit(batch), strict=True):
                    if outcome.ok and not outcome.transfers[0].replayed:
                        amount = group[0].amount_points
                        assert amount is not None  # a single transfer carries its amount
                        moved += amount
                    elif not outcome.ok:
                        refused += 1  # spent or held since it was computed: the next run sees it
            report[city] = {"cutoff_us": cutoff, "accounts": len(groups), "points": moved, "refused": refused}
            with self.engine.begin() as conn:
                self.audit.record(conn, actor=actor, action="expiry.run", city=city, target=accounts.BREAKAGE, before=None,
                                      after=report[city], now_us=now)  # fmt: skip
        return report
