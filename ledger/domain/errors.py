"""Domain errors. Each has a stable code; the API maps codes to RFC 9457 problem types in one place."""

from __future__ import annotations


class LedgerError(Exception):
    """A request the ledger refuses. Nothing was written."""

    code = "ledger_error"

    def __init__(self, detail: str, **context: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class InvalidRequest(LedgerError):
    code = "invalid_request"


class InvalidAccount(InvalidRequest):
    code = "invalid_account"


class UnknownLedger(LedgerError):
    code = "unknown_ledger"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"


class BudgetExceeded(InsufficientFunds):
    code = "budget_exceeded"


class IdempotencyConflict(LedgerError):
    code = "idempotency_conflict"


class UnknownTransfer(LedgerError):
    code = "unknown_transfer"


class HoldNotOpen(LedgerError):
    """The hold was already posted, voided or expired: a hold resolves at most once."""

    code = "hold_not_open"


class HoldExpired(LedgerError):
    code = "hold_expired"


class ExceedsOriginal(LedgerError):
    """A post above its hold, or refunds above the original transfer."""

    code = "exceeds_original"


class NotRefundable(LedgerError):
    """A refund that names a transfer no refund may reverse (a settlement, an expiry, a budget
    funding...): only a merchant's own sales are refundable (REFUNDABLE_KINDS)."""

    code = "not_refundable"


class InvariantViolation(RuntimeError):
    """The append path caught itself breaking a ledger invariant (a bug, never a caller's mistake):
    the transaction rolls back and the API answers internal_error. Not an `assert`, which -O removes."""
