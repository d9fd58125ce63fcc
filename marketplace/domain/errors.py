"""Refusals of the marketplace. Each has a stable code (mapped in api/problems.py); nothing was written."""

from __future__ import annotations

from ledger.domain.errors import LedgerError


class UnknownItem(LedgerError):
    code = "unknown_item"


class ItemUnavailable(LedgerError):
    """Not published, suspended, out of its dates, or its shop is closed."""

    code = "item_unavailable"


class SoldOut(LedgerError):
    code = "sold_out"


class ResidentLimitReached(LedgerError):
    code = "resident_limit_reached"


class InvalidItem(LedgerError):
    code = "invalid_item"


class UnknownRedemption(LedgerError):
    code = "unknown_redemption"


class RedemptionNotPending(LedgerError):
    code = "redemption_not_pending"


class CardPaymentsUnavailable(LedgerError):
    """No Stripe key is configured (the embedded default): the same code as payouts use."""

    code = "payments_disabled"


class PaymentProviderUnavailable(LedgerError):
    """Stripe did not answer: a 503 with Retry-After. A redemption's attempt failed and gave back
    what it held; a cancellation or a refund changed nothing and can be asked again."""

    code = "overloaded"


class RedemptionContended(LedgerError):
    """Concurrent retries of one redemption kept moving it under this call: a 503, try again."""

    code = "overloaded"


class TooManyAttempts(LedgerError):
    """A redemption's key has failed too often: the resident starts again with a new key."""

    code = "conflict"


class InvalidWebhook(LedgerError):
    """A webhook whose signature (or body) does not check out: nothing is read from it."""

    code = "invalid_webhook"


class SearchUnavailable(LedgerError):
    """The search backend is down: a 503 with Retry-After, as for an overloaded ledger. Nothing else is affected."""

    code = "overloaded"
