"""Closing a period: statements computed from the ledger, and settlement transfers written into it.

Closing locks the city's chain, computes each merchant's statement from the period's movements
(Rust core), nets inter-city positions across the consortium (Rust core), and in the same database
transaction appends the settlement transfers that move the period's redeemed and issued points and
the interop balances to `settlement:clearing`, and stores the statement. So a statement always
equals the ledger, closing again returns the stored statement and writes nothing, and a crash leaves
either all of it or none of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine

from community.adapters import store as community_store
from community.domain.errors import Conflict, NotFound
from community.service_layer.programs import Programs
from finance.adapters import store
from finance.domain.settlement import (
    SETTLEMENT_KINDS,
    PeriodOpen,
    merchant_lines,
    period_bounds_us,
    points_to_cents,
    recent_periods,
    totals,
)
from finance.schemas import Adjustment, CityPosition, PeriodClose, PeriodList, PeriodState, Statement
from ledger import core
from ledger.adapters import idempotency, journal
from ledger.domain import accounts
from ledger.domain.errors import InvalidRequest
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.audit import make_checkpoints
from ledger.service_layer.audit_trail import AuditTrail
from ledger.service_layer.transfers import LedgerService
from merchants.adapters.tables import MERCHANTS

MAX_ADJUSTMENT_CENTS = 10**11
MAX_PERIODS_LISTED = 24  # two years of months


class Settlement:
    def __init__(self, engine: Engine, ledger: LedgerService, programs: Programs, audit: AuditTrail,
                 clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.ledger, self.programs, self.audit, self.clock = engine, ledger, programs, audit, clock

    # --- statements ---------------------------------------------------------------------------

    def preview(self, city: str, period: str) -> Statement:
        """The statement of a period as the ledger stands, without writing anything."""
        with self.engine.connect() as conn:
            return self._compute(conn, city, period)[0]

    def _compute(self, conn: Connection, city: str, period: str) -> tuple[Statement, list[tuple[str, str, int, int]]]:
        program = self.programs.get(city, conn)
        since, until = period_bounds_us(period, program.timezone)
        entries = [e for chunk in journal.period_entries(conn, city, since, until, SETTLEMENT_KINDS) for e in chunk]
        movements = core.movements(entries, since, until)
        adjustments: dict[str, int] = {}
        for adjustment in store.open_adjustments(conn, city):
            adjustments[adjustment["merchant_id"]] = (
                adjustments.get(adjustment["merchant_id"], 0) + adjustment["amount_cents"]
            )
        active = {m for _, a, _, _ in movements if (m := accounts.merchant_of(a)) is not None}
        fees = {m: program.settlement_fee_cents for m in active if program.settlement_fee_cents}
        lines = merchant_lines(program, movements, adjustments, fees)
        interop = self._interop(conn, city, since, until)
        statement = Statement(city=city, period=period, since_us=since, until_us=until, currency=program.currency,
                              merchants=tuple(lines), interop=tuple(interop), totals=totals(lines))  # fmt: skip
        return statement, movements

    def _interop(self, conn: Connection, city: str, since: int, until: int) -> list[CityPosition]:
        """Consortium-wide netting of the period's cross-city obligations; the pairs that involve `city`.

        Each ledger's credits to `interop:<other>` are what its city owes the other (its residents'
        redemptions there, the other's merchants' awards here are credited on the other ledger), so
        every obligation is counted once. Obligations are valued at the debtor city's point value.
        """
        gross_points = {(ledger, accounts.interop_city(account)): points
                        for ledger, account, points in journal.interop_credits(conn, since, until, SETTLEMENT_KINDS)}  # fmt: skip
        obligations = [
            (debtor, creditor, points_to_cents(points, self.programs.get(debtor, conn), 100))
            for (debtor, creditor), points in sorted(gross_points.items())
        ]
        _, transfers = core.net_positions(obligations)

        def net_points(payer: str, payee: str) -> int:
            return gross_points.get((payer, payee), 0) - gross_points.get((payee, payer), 0)

        return [CityPosition(payer=payer, payee=payee, points=net_points(payer, payee), cents=cents) for payer, payee, cents in transfers
                if city in (payer, payee)]  # fmt: skip

    # --- closing ------------------------------------------------------------------------------

    def close(self, city: str, period: str, actor: str) -> PeriodClose:
        """Close a period once: statement, settlement transfers and audit in one transaction."""
        program = self.programs.get(city)
        _, until = period_bounds_us(period, program.timezone)
        if self.clock() < until:
            raise PeriodOpen(f"{period} is not over in {city}", period=period)
        with self.engine.begin() as conn:
            journal.lock_ledgers(conn, [city])  # one closer at a time; transfers wait behind the close
            existing = store.close(conn, city, period)
            if existing is not None:
                return self._closed(existing, replayed=True)
            statement, movements = self._compute(conn, city, period)
            groups = self._settlement_transfers(statement, movements)
            for outcome in self.ledger.submit(groups, conn) if groups else []:
                if outcome.error is not None:
                    raise outcome.error
            document = msgspec.json.encode(statement)
            closed_at_us = self.clock()
            row = {"city": city, "period": period, "closed_at_us": closed_at_us, "closed_by": actor,
                   "statement": document.decode(), "statement_sha256": hashlib.sha256(document).hexdigest()}  # fmt: skip
            store.add_close(conn, **row)
            # Bound late: the collections service reads closed statements back through this one.
            from finance.service_layer.collections import record_at_close

            record_at_close(conn, self.audit, statement, actor, closed_at_us)
            store.apply_adjustments(conn, [a["id"] for a in store.open_adjustments(conn, city)], period)
            self.audit.record(conn, actor=actor, action="settlement.close", city=city, target=period, before=None,
                                  after={"totals": msgspec.to_builtins(statement.totals), "statement_sha256": row["statement_sha256"]},
                                  now_us=closed_at_us)  # fmt: skip
        # Once the close has committed, a checkpoint of the city's ledger as the period left it (the
        # checkpoints job submits it to the witnesses at its next run).
        make_checkpoints(self.engine, self.ledger.signer, self.clock, [city])
        return self._closed(row, replayed=False)

    @staticmethod
    def _settlement_transfers(
        statement: Statement, movements: list[tuple[str, str, int, int]]
    ) -> list[list[TransferRequest]]:
        """Transfers that move the period's merchant and interop movements to `settlement:clearing`."""
        city, period = statement.city, statement.period
        moves: list[tuple[str, int, str]] = []  # (account, points owed to the clearing, kind)
        for line in statement.merchants:
            moves.append((accounts.merchant_redeemed(line.merchant_id), line.redeemed_points, "settlement"))
            moves.append((accounts.merchant_issued(line.merchant_id), -line.issued_points, "settlement"))
        for _, account, debits, credits in movements:
            if accounts.is_interop(account):
                moves.append((account, credits - debits, "settlement_interop"))
        groups = []
        for account, points, kind in moves:
            if points == 0:
                continue
            debit, credit = (
                (account, accounts.SETTLEMENT_CLEARING) if points > 0 else (accounts.SETTLEMENT_CLEARING, account)
            )
            key = f"settlement:{period}:{account}"
            groups.append([TransferRequest(city, key, kind, "single", debit, credit, abs(points))])
        return groups

    @staticmethod
    def _closed(row: dict[str, Any], replayed: bool) -> PeriodClose:
        return PeriodClose(statement=msgspec.json.decode(row["statement"], type=Statement),
                           statement_sha256=row["statement_sha256"], closed_at_us=row["closed_at_us"],
                           closed_by=row["closed_by"], replayed=replayed)  # fmt: skip

    def closed(self, city: str, period: str) -> PeriodClose:
        """A closed period's stored statement (NotFound while it is not closed)."""
        with self.engine.connect() as conn:
            row = store.close(conn, city, period)
        if row is None:
            raise NotFound(f"{period} is not closed in {city}")
        return self._closed(row, replayed=False)

    def closed_statement(self, city: str, period: str) -> Statement:
        return self.closed(city, period).statement

    def periods(self, city: str, count: int = 12) -> PeriodList:
        """The city's last `count` months (at most MAX_PERIODS_LISTED), latest first: the one in progress,
        those ended but not closed (a close may run) and the closed ones."""
        program = self.programs.get(city)
        months = recent_periods(self.clock(), program.timezone, min(count, MAX_PERIODS_LISTED))
        with self.engine.connect() as conn:
            closed = set(store.closed_periods(conn, city, MAX_PERIODS_LISTED))
        states = [PeriodState(period=p, status="closed" if p in closed else "ended") for p in months[1:]]
        return PeriodList(city=city, periods=[PeriodState(period=months[0], status="in_progress"), *states])

    # --- adjustments --------------------------------------------------------------------------

    def adjust(self, city: str, merchant_id: str, amount_cents: int, reason: str, ref_period: str, actor: str, *,
               key: str) -> Adjustment:  # fmt: skip
        """Record a correction of a closed period; the next close applies it (a closed period never changes).
        A retry with the same idempotency `key` returns the first answer and records nothing."""
        if type(amount_cents) is not int or not 0 < abs(amount_cents) <= MAX_ADJUSTMENT_CENTS:
            raise InvalidRequest(
                "amount_cents must be a non-zero integer", field="amount_cents", reason="nonzero_integer"
            )
        if not isinstance(reason, str) or not 1 <= len(reason) <= 500:
            raise InvalidRequest(
                "a reason of 1 to 500 characters is required",
                field="reason",
                reason="length",
                min_chars=1,
                max_chars=500,
            )
        request = {"merchant_id": merchant_id, "amount_cents": amount_cents, "reason": reason, "ref_period": ref_period}
        now = self.clock()
        with self.engine.begin() as conn:
            return idempotency.once(conn, f"{city}:{actor}:finance.adjust", key, request, Adjustment,
                                    lambda: self._adjust(conn, city, actor, now, request), now)  # fmt: skip

    def _adjust(self, conn: Connection, city: str, actor: str, now: int, request: dict[str, Any]) -> Adjustment:
        if store.close(conn, city, request["ref_period"]) is None:
            raise Conflict(f"{request['ref_period']} is not closed: correct the ledger instead", field="ref_period",
                           reason="period_not_closed", period=request["ref_period"])  # fmt: skip
        merchant = community_store.member(conn, MERCHANTS, request["merchant_id"])
        if merchant is None or merchant["city"] != city:
            raise NotFound(f"no merchant {request['merchant_id']!r} in {city}")
        adjustment = {"city": city, **request, "created_at_us": now, "created_by": actor}
        adjustment_id = store.add_adjustment(conn, **adjustment)
        self.audit.record(conn, actor=actor, action="settlement.adjust", city=city, target=request["merchant_id"],
                          before=None, after={k: request[k] for k in ("amount_cents", "ref_period", "reason")},
                          now_us=now)  # fmt: skip
        return Adjustment(id=adjustment_id, **adjustment)
