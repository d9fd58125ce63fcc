"""Domain errors. Each has a stable code; the API maps codes to RFC 9457 problem types in one place.

An error carries three things, each under one name, everywhere:
- its English `detail`, for logs and the CLI (never shown to an API client: it is not translated);
- `field`, which member of the request is at fault, as the client wrote it (`limit`, `kind`);
- `reason`, why: a stable snake_case code whose sentence is in the problem catalogs
  (msgid `reason.<reason>`, filled with the error's other context, e.g. `max_value`).
Anything else in the context is a parameter of the code's detail template (`available_points`).
"""

from __future__ import annotations


class LedgerError(Exception):
    """A request the ledger refuses. Nothing was written."""

    code = "ledger_error"

    def __init__(self, detail: str, *, field: str | None = None, reason: str | None = None, **context: object) -> None:
        # `message=` once held a field name here and was shown as the explanation: the one word
        # the problem catalog reserves for neither is refused, so that mix-up cannot come back.
        if "message" in context:
            raise TypeError("LedgerError takes field= (which member) and reason= (why), not message=")
        super().__init__(detail)
        self.detail = detail
        self.context: dict[str, object] = context
        if field is not None:
            self.context["field"] = field
        if reason is not None:
            self.context["reason"] = reason


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


class NotInLog(LedgerError):
    """A tile, bundle or checkpoint the public log does not publish: past its latest checkpoint,
    or before the ledger's first one."""

    code = "not_in_log"


class UnknownReceipt(LedgerError):
    """No entry of the resident's own at that sequence: another resident's entry answers the same,
    so that sequences cannot be probed."""

    code = "unknown_receipt"


class ReceiptNotCheckpointed(LedgerError):
    """The entry is not yet covered by a signed checkpoint of its ledger: ask again after the next one."""

    code = "receipt_not_checkpointed"


class InvariantViolation(RuntimeError):
    """The append path caught itself breaking a ledger invariant (a bug, never a caller's mistake):
    the transaction rolls back and the API answers internal_error. Not an `assert`, which -O removes."""
