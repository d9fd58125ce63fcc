"""Reconciliation against the bank: the city's camt.053 statement matched to what we paid and collected.

Where `Payouts.reconcile` compares a period with the pain.001 file we wrote ourselves, this reads what
the bank says it booked on the city's treasury account. Every booked entry is matched by its end-to-end
id to a payout (the pain.001 credit transfer of a closed period, id `<period>-<merchant>`, a debit) or
to a collection (a requested pain.008 direct debit, the same id, a credit). The import stores one
result per entry and one per payment still expected: `matched`, `amount_differs`, `unknown_entry` (the bank booked it; it is not
ours), `missing_from_bank` (ours, of a period closed before the statement's end, matched by no import
yet). Importing the same statement again (same message id, same SHA-256) changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from community.domain.errors import Conflict, NotFound
from community.service_layer.programs import Programs
from finance.adapters import bank_statements as bank
from finance.adapters.exports import BankFileError, end_to_end_id
from finance.schemas import BankMatch, BankStatementImport, BankStatementImports, BankStatementResults, Statement
from ledger.domain.errors import LedgerError
from ledger.service_layer.audit_trail import AuditTrail

MAX_PERIODS_EXPECTED = 36  # closed periods whose payments a statement may still settle
RESULT_COLUMNS = ("status", "kind", "end_to_end_id", "period", "merchant_id", "expected_cents", "bank_cents",
                  "booking_date", "entry_ref", "remittance")  # fmt: skip
ResultsFormat = Literal["csv", "json"]


class InvalidBankStatement(LedgerError):
    """A statement that cannot be read safely, is not a camt.053.001.08, or is of another account."""

    code = "invalid_bank_statement"


@dataclass(frozen=True)
class Expected:
    kind: Literal["payout", "collection"]
    period: str
    merchant_id: str
    cents: int  # signed, on the city's account: a payout is a debit (< 0)


class BankReconciliation:
    def __init__(self, engine: Engine, programs: Programs, audit: AuditTrail, clock: Callable[[], int]) -> None:
        self.engine, self.programs, self.audit, self.clock = engine, programs, audit, clock

    def import_statement(self, city: str, document: bytes, actor: str) -> BankStatementImport:
        """Read, validate, match and store a camt.053 statement of the city's treasury account (audited)."""
        try:
            statement = bank.read_camt053(document)
            program = self.programs.get(city)
            to_us = bank.parse_time_us(statement.to_text, ZoneInfo(program.timezone))
            from_us = (
                None
                if statement.from_text is None
                else bank.parse_time_us(statement.from_text, ZoneInfo(program.timezone))
            )
        except (BankFileError, ValueError) as exc:
            raise InvalidBankStatement(str(exc), reason="unreadable_bank_statement") from None
        if program.treasury is None:
            raise InvalidBankStatement("the program has no treasury account", reason="no_treasury")
        foreign = [a for a in statement.accounts if a != program.treasury.account_number]
        if foreign:
            raise InvalidBankStatement(f"a statement of the account {foreign[0]!r}, not the city's treasury",
                                       reason="wrong_bank_account", account=foreign[0][:34])  # fmt: skip
        sha256 = hashlib.sha256(document).hexdigest()
        try:
            return self._store(city, statement, sha256, program.currency, from_us, to_us, actor)
        except IntegrityError:  # the same statement imported at the same moment: that import is the answer
            return self._store(city, statement, sha256, program.currency, from_us, to_us, actor)

    def _store(self, city: str, statement: bank.BankStatement, sha256: str, currency: str, from_us: int | None,
               to_us: int, actor: str) -> BankStatementImport:  # fmt: skip
        now = self.clock()
        with self.engine.begin() as conn:
            known = bank.statement_by_message(conn, city, statement.message_id)
            if known is not None:
                if known["sha256"] != sha256:
                    raise Conflict(f"the statement {statement.message_id!r} was imported with other content",
                                   reason="bank_statement_changed", message_id=statement.message_id)  # fmt: skip
                return self._view(conn, known, replayed=True)
            expected = _expected_payouts(conn, city, to_us) | _expected_collections(conn, city, to_us)
            for reference in bank.matched_references(conn, city):
                expected.pop(reference, None)
            results = match(expected, statement.entries, currency)
            row = {"id": "bs" + secrets.token_hex(10), "city": city, "message_id": statement.message_id,
                   "sha256": sha256, "account": statement.accounts[0][:34], "currency": currency,
                   "from_us": from_us, "to_us": to_us, "entries": len(statement.entries), "imported_at_us": now,
                   "imported_by": actor}  # fmt: skip
            bank.add_statement(conn, results, **row)
            view = self._view(conn, row, replayed=False)
            self.audit.record(conn, actor=actor, action="bank_statements.import", city=city, target=statement.message_id,
                              before=None, after=msgspec.to_builtins(view), now_us=now)  # fmt: skip
        return view

    def _view(self, conn: Connection, row: dict[str, Any], replayed: bool) -> BankStatementImport:
        lines = bank.results(conn, row["id"])
        matched = sum(1 for line in lines if line["status"] == "matched")
        return msgspec.convert(row | {"matched": matched, "differences": len(lines) - matched, "replayed": replayed},
                               BankStatementImport)  # fmt: skip

    def list(self, city: str) -> BankStatementImports:
        """The city's imported statements, latest first."""
        with self.engine.connect() as conn:
            return BankStatementImports(
                statements=[self._view(conn, row, False) for row in bank.statements(conn, city)]
            )

    def results(self, city: str, statement_id: str) -> BankStatementResults:
        """An import and all its reconciliation lines (NotFound for another city's import)."""
        with self.engine.connect() as conn:
            row = bank.statement(conn, statement_id)
            if row is None or row["city"] != city:
                raise NotFound(f"no bank statement {statement_id!r} in {city}")
            lines = bank.results(conn, statement_id)
            view = self._view(conn, row, False)
        return BankStatementResults(statement=view, results=[msgspec.convert(line, BankMatch) for line in lines])

    def export(self, city: str, statement_id: str, fmt: ResultsFormat) -> tuple[bytes, str, str]:
        """(content, media type, file name) of an import's results as CSV (one row a line) or JSON."""
        report = self.results(city, statement_id)
        name = f"entraide-{city}-bank-{report.statement.message_id}.{fmt}"
        if fmt == "json":
            text = json.dumps(msgspec.to_builtins(report), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
            return text.encode(), "application/json", name
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(RESULT_COLUMNS)
        for line in report.results:
            writer.writerow(["" if (v := getattr(line, c)) is None else v for c in RESULT_COLUMNS])
        return out.getvalue().encode(), "text/csv", name


def match(expected: dict[str, Expected], entries: tuple[bank.BankEntry, ...], currency: str) -> list[dict[str, Any]]:
    """The results of a statement's booked entries against the payments expected (by end-to-end id), in the
    statement's order, then the expected payments it does not show. No I/O."""
    booked: dict[str, int | None] = {}  # reference → sum of its entries (None: one in another currency)
    results: list[dict[str, Any]] = []
    for entry in entries:
        ours = expected.get(entry.end_to_end_id or "")
        line: dict[str, Any] = {"end_to_end_id": entry.end_to_end_id, "bank_cents": entry.cents,
                                "booking_date": entry.booking_date, "entry_ref": entry.entry_ref,
                                "remittance": entry.remittance}  # fmt: skip
        if ours is None or entry.end_to_end_id is None:
            results.append(line | {"status": "unknown_entry"})
            continue
        reference, cents = entry.end_to_end_id, entry.cents if entry.currency == currency else None
        if reference in booked:  # the same payment booked in parts: one result for their sum
            previous = booked[reference]
            booked[reference] = None if previous is None or cents is None else previous + cents
            continue
        booked[reference] = cents
        results.append(line | {"kind": ours.kind, "period": ours.period, "merchant_id": ours.merchant_id,
                               "expected_cents": ours.cents})  # fmt: skip
    for line in results:
        if line.get("kind") is not None:
            total = booked[line["end_to_end_id"]]
            line["bank_cents"] = total
            line["status"] = "matched" if total == line["expected_cents"] else "amount_differs"
    missing = sorted(((ref, e) for ref, e in expected.items() if ref not in booked), key=lambda r: (r[1].period, r[0]))
    results += [{"status": "missing_from_bank", "kind": e.kind, "end_to_end_id": ref, "period": e.period,
                 "merchant_id": e.merchant_id, "expected_cents": e.cents} for ref, e in missing]  # fmt: skip
    return results


def _expected_payouts(conn: Connection, city: str, until_us: int) -> dict[str, Expected]:
    """Every credit transfer of the city's pain.001 files of periods closed before `until_us`: the positive
    nets of their stored statements, debits on the treasury account."""
    expected: dict[str, Expected] = {}
    for close in bank.closes_before(conn, city, until_us, MAX_PERIODS_EXPECTED):
        statement = msgspec.json.decode(close["statement"], type=Statement)
        for line in statement.merchants:
            if line.net_cents > 0:
                expected[end_to_end_id(statement.period, line.merchant_id)] = Expected(
                    "payout", statement.period, line.merchant_id, -line.net_cents
                )
    return expected


def _expected_collections(conn: Connection, city: str, until_us: int) -> dict[str, Expected]:
    """Every pain.008 direct debit of the city requested before `until_us` (its file issued): what the
    merchant owes, a credit on the treasury account, under the same end-to-end id `<period>-<merchant>`.
    Invoices are paid by the merchant under a reference of theirs: the bank shows them as unknown entries."""
    return {
        end_to_end_id(row["period"], row["merchant_id"]): Expected("collection", row["period"], row["merchant_id"],
                                                                   row["amount_cents"])
        for row in bank.direct_debits_requested(conn, city, until_us, bank.MAX_DEBITS_EXPECTED)
    }  # fmt: skip
