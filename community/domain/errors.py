"""Refusals of the community layer. Like the ledger's, each has a stable code, mapped to an RFC 9457
problem in one place (api/problems.py); raising one means nothing was written."""

from __future__ import annotations

from ledger.domain.errors import LedgerError


class Unauthorized(LedgerError):
    code = "unauthorized"


class TokenExpired(LedgerError):
    code = "token_expired"


class Forbidden(LedgerError):
    code = "forbidden"


class WrongTenant(LedgerError):
    code = "wrong_tenant"


class NotFound(LedgerError):
    code = "not_found"


class Conflict(LedgerError):
    code = "conflict"


class UnknownProgram(LedgerError):
    code = "unknown_program"


class UnknownResident(LedgerError):
    code = "unknown_resident"


class ResidentExpired(LedgerError):
    code = "resident_expired"


class ResidentErased(LedgerError):
    code = "resident_erased"


class HomeCity(LedgerError):
    """A resident's home city is where their wallet is: they cannot opt out of it."""

    code = "home_city"


class OptOutBlocked(LedgerError):
    """Points are held for a purchase in that city: the opt-out waits until they are captured or released."""

    code = "opt_out_blocked"


class ErasureBlocked(LedgerError):
    """Points are held for a purchase: the erasure waits until they are captured or released."""

    code = "erasure_blocked"


class ConfirmationRequired(LedgerError):
    """A form asked to confirm an action that cannot be undone later, and the box was not ticked."""

    code = "confirmation_required"


class UnknownCard(LedgerError):
    code = "unknown_card"


class CardRevoked(LedgerError):
    code = "card_revoked"


class CardExpired(LedgerError):
    code = "card_expired"


class CardKeyRetired(LedgerError):
    """The card was signed by a retired card key that no longer vouches for it: past the key's
    acceptance, or for a card issued after the key retired."""

    code = "card_key_retired"


class NotOptedIn(LedgerError):
    code = "not_opted_in"


class UnknownOrganization(LedgerError):
    code = "unknown_organization"


class OrganizationNotApproved(LedgerError):
    code = "organization_not_approved"


class ProviderSignInRefused(LedgerError):
    """The city's identity provider did not sign the resident in (they declined, or it refused the
    code), or its answer did not verify (ID token: signature, issuer, audience, nonce, expiry)."""

    code = "provider_sign_in_refused"


class SignInStateMismatch(LedgerError):
    """The provider's answer does not belong to a sign-in this browser started here, recently: no
    flow cookie, an expired or garbled one, or another `state` (a forged or replayed callback)."""

    code = "sign_in_state_mismatch"


class ProviderAccountNotLinked(LedgerError):
    """The provider vouched for an account that no principal (of this area's roles) was linked to."""

    code = "provider_account_not_linked"


class SubjectNotEnrolled(LedgerError):
    """The provider vouched for a subject that no resident was explicitly enrolled with."""

    code = "subject_not_enrolled"


class ActivationCodeInvalid(LedgerError):
    code = "activation_code_invalid"


class ActivationCodeUsed(LedgerError):
    code = "activation_code_used"


class ActivationCodeExpired(LedgerError):
    code = "activation_code_expired"


class PasskeyRefused(LedgerError):
    code = "passkey_refused"


class UnknownPasskey(LedgerError):
    code = "unknown_passkey"


class MailUnavailable(LedgerError):
    code = "mail_unavailable"


class UnknownCorrectionTarget(LedgerError):
    """No attestation, municipal service or event redemption, or resident by that id in the city."""

    code = "unknown_correction_target"


class UnknownCorrection(LedgerError):
    code = "unknown_correction"


class CorrectionNotPending(LedgerError):
    code = "correction_not_pending"
