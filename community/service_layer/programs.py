"""Configuring a city's program: every change is validated, versioned and audited (who, when, before, after)."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable

import msgspec
from sqlalchemy import Connection, Engine

from community.adapters import store
from community.domain.errors import UnknownProgram
from community.domain.program import Program
from community.schemas import BudgetFunding, Community, ProgramVersion
from ledger.domain import accounts
from ledger.domain.accounts import check_ledger_name
from ledger.domain.errors import InvalidRequest
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.audit_trail import AuditTrail
from ledger.service_layer.transfers import LedgerService

MAX_FUNDING_POINTS = 10**12
CACHE_SECONDS = 5


class Programs:
    def __init__(self, engine: Engine, ledger: LedgerService, audit: AuditTrail, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.ledger = ledger
        self.audit = audit
        self.clock = clock
        self._cache: dict[str, tuple[float, Program]] = {}

    def current(self, city: str) -> Program:
        """The program, read at most every few seconds per process: for the hot POS path, where a
        change may take CACHE_SECONDS to apply (a hold's timeout, the offline floor)."""
        cached = self._cache.get(city)
        if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
            cached = self._cache[city] = (time.monotonic(), self.get(city))
        return cached[1]

    def get(self, city: str, conn: Connection | None = None) -> Program:
        if conn is None:
            with self.engine.connect() as conn:
                return self.get(city, conn)
        row = store.program(conn, city)
        if row is None:
            raise UnknownProgram(f"no program for {city!r}", city=city)
        return msgspec.json.decode(row["config"], type=Program)

    def cities(self) -> list[str]:
        """The cities that run a program (a bare ledger, as simulations make, is not one)."""
        with self.engine.connect() as conn:
            return store.program_cities(conn)

    def communities(self) -> list[Community]:
        """Every city that runs a program, with its name and time zone, in the order of their names."""
        programs = [self.current(city) for city in self.cities()]
        listed = [Community(city=p.city, name=p.name or p.city, timezone=p.timezone) for p in programs]
        return sorted(listed, key=lambda c: unicodedata.normalize("NFKD", c.name.casefold()))  # É with the Es

    def configure(self, program: Program, actor: str) -> ProgramVersion:
        """Create or replace a city's program (its ledger too, the first time); returns it and its version."""
        check_ledger_name(program.city)
        program.validate()
        self.ledger.create_ledger(program.city)
        now = self.clock()
        with self.engine.begin() as conn:
            before = store.program(conn, program.city)
            config = msgspec.json.encode(program).decode()
            version = store.save_program(conn, program.city, config, now)
            self.audit.record(conn, actor=actor, action="program.configure", city=program.city, target=f"program:{program.city}",
                        before=before and msgspec.json.decode(before["config"]), after=msgspec.to_builtins(program),
                        now_us=now)  # fmt: skip
        return ProgramVersion(version=version, program=program)

    def fund_budget(self, city: str, points: int, idempotency_key: str, actor: str) -> BudgetFunding:
        """Allocate city funds to the program budget: program:funding → program:budget, audited."""
        if type(points) is not int or not 0 < points <= MAX_FUNDING_POINTS:
            raise InvalidRequest(
                "points must be a positive integer",
                field="points",
                reason="out_of_range",
                min_value=1,
                max_value=MAX_FUNDING_POINTS,
            )
        self.get(city)
        request = TransferRequest(city, f"budget:{idempotency_key}", "budget_funding", "single", accounts.PROGRAM_FUNDING,
                                  accounts.PROGRAM_BUDGET, points)  # fmt: skip
        with self.engine.begin() as conn:
            (outcome,) = self.ledger.submit([[request]], conn)
            if outcome.error is not None:
                raise outcome.error
            (result,) = outcome.transfers
            if not result.replayed:
                self.audit.record(conn, actor=actor, action="program.fund_budget", city=city, target=accounts.PROGRAM_BUDGET,
                            before=None, after={"points": points, "transfer_id": result.transfer_id}, now_us=self.clock())  # fmt: skip
        return BudgetFunding(transfer_id=result.transfer_id, points=points, replayed=result.replayed)
