"""Refusals specific to merchants and their terminals (codes mapped in api/problems.py)."""

from __future__ import annotations

from ledger.domain.errors import LedgerError


class UnknownMerchant(LedgerError):
    code = "unknown_merchant"


class MerchantNotApproved(LedgerError):
    code = "merchant_not_approved"


class FloorLimitExceeded(LedgerError):
    code = "floor_limit_exceeded"


class PairingCodeInvalid(LedgerError):
    code = "pairing_code_invalid"


class PairingCodeUsed(LedgerError):
    code = "pairing_code_used"


class PairingCodeExpired(LedgerError):
    code = "pairing_code_expired"
