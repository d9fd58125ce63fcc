"""What the community services answer: programs, residents, members (merchants and organizations),
terminals, access (tokens, credentials, principals) and the resident's wallet.

Each struct is a `ledger.schemas.Result`: the API encodes it as it is and documents it field by
field; units are in the field names (`points`, `*_us` for microseconds since the epoch).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from community.domain.program import Program
from ledger.schemas import Cents, Points, Result, Sequence, TimeUs

City = Annotated[str, msgspec.Meta(description="the city (municipality) whose ledger and program this is")]
ResidentId = Annotated[str, msgspec.Meta(description="the resident's opaque id, as the ledger knows them")]
Replayed = Annotated[
    bool, msgspec.Meta(description="true when this answers a retry of an earlier request (nothing new was written)")
]
Actor = Annotated[str, msgspec.Meta(description="who acted, as the audit trail names them (`role:subject/credential`)")]
OptionalTimeUs = Annotated[int, msgspec.Meta(ge=0)] | None  # µs since the epoch, or null


# --- programs ---------------------------------------------------------------------------------


class ProgramVersion(Result, frozen=True):
    """A city's program as saved, with its version (1 on creation, one more on each change)."""

    version: Annotated[int, msgspec.Meta(ge=1, description="the program's version after this change")]
    program: Annotated[Program, msgspec.Meta(description="the program as saved")]


class BudgetFunding(Result, frozen=True):
    """City funds allocated to the program budget (program:funding → program:budget)."""

    transfer_id: Annotated[str, msgspec.Meta(description="the journal transfer that moved the points")]
    points: Annotated[Points, msgspec.Meta(description="points added to the budget")]
    replayed: Replayed


# --- residents and cards ----------------------------------------------------------------------


class Resident(Result, frozen=True):
    """A resident's record: no personal data (that is the resident's own export)."""

    id: ResidentId
    city: Annotated[str, msgspec.Meta(description="the resident's home city, where their wallet is")]
    level: Annotated[str, msgspec.Meta(description="verification level: basic, verified or checked")]
    status: Annotated[str, msgspec.Meta(description="active or erased")]
    valid_until_us: Annotated[
        TimeUs, msgspec.Meta(description="when the city-issued identifier lapses (µs since the epoch)")
    ]
    created_at_us: Annotated[TimeUs, msgspec.Meta(description="when the resident was enrolled (µs since the epoch)")]


class ResidentRecord(Resident, frozen=True):
    """A resident's record with the other cities they opted in to, and their pending erasure if any."""

    opt_ins: Annotated[list[str], msgspec.Meta(description="other participating cities the resident opted in to")]
    erasure_due_at_us: Annotated[OptionalTimeUs, msgspec.Meta(
        description="when the erasure the resident asked for will be carried out (they can undo it until then), or null")] = None  # fmt: skip


class Card(Result, frozen=True):
    """The resident's current citizen card: a compact token signed by the city, to show as a QR code."""

    card_id: Annotated[str, msgspec.Meta(description="the card's id")]
    city: City
    expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when the card expires (µs since the epoch)")]
    token: Annotated[str, msgspec.Meta(description="the signed card token (JWS) a terminal checks offline")]


class CardRecord(Result, frozen=True):
    """One card the resident holds or held."""

    id: Annotated[str, msgspec.Meta(description="the card's id")]
    issued_at_us: Annotated[TimeUs, msgspec.Meta(description="when the card was issued")]
    expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when the card expires")]
    revoked_at_us: Annotated[OptionalTimeUs, msgspec.Meta(description="when the card was revoked, or null")]


CardKeyStatus = Literal["active", "retiring", "retired"]


class CardKeyState(Result, frozen=True):
    """One card key of a city and its validity (community/service_layer/card_keys.py has the rule)."""

    kid: Annotated[
        str, msgspec.Meta(description="the key id cards name in their header: card-<city>.<thumbprint start>")
    ]
    city: City
    public_key: Annotated[str, msgspec.Meta(description="the Ed25519 public key, base64url (the JWK's x)")]
    status: Annotated[CardKeyStatus, msgspec.Meta(description="active: signs new cards; retiring: only verifies the "
                                                               "cards it signed, until accepted_until_s; retired: accepted no more")]  # fmt: skip
    valid_from_us: Annotated[
        TimeUs, msgspec.Meta(description="when it began signing (0: the city's first key, from its first card)")
    ]
    retired_at_us: Annotated[OptionalTimeUs, msgspec.Meta(description="when it stopped signing, or null while active")]
    accepted_until_s: Annotated[int | None, msgspec.Meta(description="cards it signed verify while now < this (s since "
                                                                     "the epoch: the last such card's exp); null while active")]  # fmt: skip


class CardKeyRotation(Result, frozen=True):
    """A city's card key rotation: the key that retired and the one that signs from now on."""

    retired: CardKeyState
    active: CardKeyState


class Community(Result, frozen=True):
    """A city that runs a program, as residents read its name."""

    city: City
    name: Annotated[str, msgspec.Meta(description="the city's name as shown (its program's `name`, else its id)")]
    timezone: Annotated[str, msgspec.Meta(description="the IANA time zone its dates are shown in")]


class OptIns(Result, frozen=True):
    """The resident's home city and the other cities where they may earn and redeem."""

    home: Annotated[str, msgspec.Meta(description="the resident's home city")]
    opt_ins: Annotated[list[str], msgspec.Meta(description="other participating cities the resident opted in to")]


class Erasure(Result, frozen=True):
    """The resident's erasure: asked for or not, when it will be carried out, and what becomes of their points.

    Asking starts a delay (`delay_days`) during which everything keeps working (card, earning,
    spending, export) and the resident can undo it; then the `erasures` job carries it out: their
    personal data, key, identity provider subject and cards go, the points left in the wallet move to
    `breakage` (as expired points do: the city no longer owes them) and the journal keeps its entries,
    under the opaque id only."""

    status: Annotated[Literal["none", "pending"], msgspec.Meta(description="none: not asked for; pending: will be carried out at due_at_us")]  # fmt: skip
    requested_at_us: Annotated[OptionalTimeUs, msgspec.Meta(description="when the resident asked, or null")]
    due_at_us: Annotated[OptionalTimeUs, msgspec.Meta(description="when it will be carried out, or null")]
    delay_days: Annotated[int, msgspec.Meta(ge=1, description="the delay between asking and erasure, in days")]
    points: Annotated[Points, msgspec.Meta(description="the points available now, which go to breakage on erasure")]
    points_value_cents: Annotated[Cents, msgspec.Meta(description="what those points are worth (the program's point value, rounded down)")]  # fmt: skip
    held_points: Annotated[Points, msgspec.Meta(description="points reserved by open holds: erasure waits until they are captured or released")]  # fmt: skip


class Done(Result, frozen=True):
    """An action that returns no record: what became of its target."""

    status: Annotated[Literal["erased", "revoked", "renamed"], msgspec.Meta(description="the target's state now")]


# --- members: merchants and organizations, and terminals ----------------------------------------


class Member(Result, frozen=True):
    """A merchant or a community organization of a city."""

    id: Annotated[str, msgspec.Meta(description="the member's id, chosen by the city")]
    city: City
    name: Annotated[str, msgspec.Meta(description="the display name")]
    status: Annotated[str, msgspec.Meta(description="pending, approved or suspended")]
    created_at_us: Annotated[TimeUs, msgspec.Meta(description="when the city added the member")]
    category: Annotated[str | None, msgspec.Meta(description="a merchant's category (null for an organization)")] = None


class TerminalKey(Result, frozen=True):
    """A terminal's registered public key."""

    key_id: Annotated[str, msgspec.Meta(description="the key id the terminal signs its requests with")]
    status: Annotated[str, msgspec.Meta(description="active or revoked")]
    created_at_us: Annotated[TimeUs, msgspec.Meta(description="when the key was registered")]


class MerchantListing(Member, frozen=True):
    """A merchant with its terminals."""

    terminals: Annotated[list[TerminalKey], msgspec.Meta(description="the merchant's terminal keys, oldest first")] = (
        msgspec.field(default_factory=list)
    )


class Merchants(Result, frozen=True):
    """The merchants of a city, by id."""

    merchants: list[MerchantListing]


class Organizations(Result, frozen=True):
    """The community organizations of a city, by id."""

    organizations: list[Member]


class TerminalRegistration(Result, frozen=True):
    """A terminal key registered for a merchant."""

    terminal_key_id: Annotated[str, msgspec.Meta(description="the key id the terminal signs its requests with")]
    merchant_id: Annotated[str, msgspec.Meta(description="the merchant the terminal belongs to")]


# --- access: tokens, credentials, principals --------------------------------------------------


class IssuedToken(Result, frozen=True):
    """A bearer token from the built-in issuer. Its text is shown only here: it is never stored."""

    token: Annotated[str, msgspec.Meta(description="the bearer token")]
    jti: Annotated[str, msgspec.Meta(description="the token's credential id, to list or revoke it")]
    principal_id: Annotated[
        str | None, msgspec.Meta(description="the principal the token belongs to (null for a resident)")
    ]
    city: City
    role: Annotated[str, msgspec.Meta(description="the role granted")]
    subject: Annotated[str, msgspec.Meta(description="who holds it")]
    org_id: Annotated[str | None, msgspec.Meta(description="the organization of an `org` token, else null")]
    expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when the token expires")]
    merchant_id: Annotated[
        str | None, msgspec.Meta(description="the merchant of a `merchant` (owner) token, else null")
    ] = None


class Credential(Result, frozen=True):
    """A token as recorded (never its text)."""

    jti: Annotated[str, msgspec.Meta(description="the credential id")]
    principal_id: Annotated[str | None, msgspec.Meta(description="its principal (null for a resident's token)")]
    city: City
    role: Annotated[str, msgspec.Meta(description="the role granted")]
    subject: Annotated[str, msgspec.Meta(description="the principal's subject, or the resident id")]
    issued_by: Actor
    issued_at_us: Annotated[TimeUs, msgspec.Meta(description="when it was issued")]
    expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when it expires")]
    revoked_by: Annotated[str | None, msgspec.Meta(description="who revoked it, or null")]
    revoked_at_us: Annotated[OptionalTimeUs, msgspec.Meta(description="when it was revoked, or null")]


class Credentials(Result, frozen=True):
    """Credentials, newest first (at most 1,000)."""

    credentials: list[Credential]


class Principal(Result, frozen=True):
    """A city's staff member, finance officer, auditor, administrator or organization coordinator."""

    id: Annotated[str, msgspec.Meta(description="the principal's id")]
    city: City
    role: Annotated[str, msgspec.Meta(description="org, merchant, staff, finance, auditor or admin")]
    subject: Annotated[str, msgspec.Meta(description="who the principal is")]
    org_id: Annotated[
        str | None, msgspec.Meta(description="the organization an `org` principal coordinates, else null")
    ]
    status: Annotated[str, msgspec.Meta(description="active or revoked")]
    granted_by: Actor
    granted_at_us: Annotated[TimeUs, msgspec.Meta(description="when the role was (last) granted")]
    revoked_by: Annotated[str | None, msgspec.Meta(description="who withdrew the grant, or null")]
    revoked_at_us: Annotated[OptionalTimeUs, msgspec.Meta(description="when the grant was withdrawn, or null")]
    merchant_id: Annotated[
        str | None, msgspec.Meta(description="the merchant a `merchant` principal owns, else null")
    ] = None


class Principals(Result, frozen=True):
    """A city's principals by role and subject (at most 1,000)."""

    principals: list[Principal]


class PrincipalRevocation(Principal, frozen=True, kw_only=True):
    """A principal whose grant was withdrawn, and how many of its tokens this revoked."""

    tokens_revoked: Annotated[int, msgspec.Meta(ge=0, description="tokens revoked by this request")]


class ProviderLink(Result, frozen=True):
    """A principal's account at the city's identity provider, linked: signing in there opens the
    principal's portal or office session."""

    issuer: Annotated[str, msgspec.Meta(description="the identity provider (its issuer URL)")]
    subject: Annotated[str, msgspec.Meta(description="the account's `sub` at the provider")]
    principal_id: Annotated[str, msgspec.Meta(description="the principal it signs in")]
    city: City
    linked_by: Actor
    linked_at_us: TimeUs


class ProviderLinks(Result, frozen=True):
    links: list[ProviderLink]


# --- the wallet -------------------------------------------------------------------------------


class Balance(Result, frozen=True):
    """The resident's wallet: what they may spend now, what is posted, and what is held."""

    available: Annotated[Points, msgspec.Meta(description="points the resident may spend now (posted minus held)")]
    posted: Annotated[Points, msgspec.Meta(description="points in the wallet, holds not deducted")]
    pending: Annotated[
        Points, msgspec.Meta(description="points held by open holds (redemptions not yet captured or voided)")
    ]
    city: Annotated[str, msgspec.Meta(description="the resident's home city, whose ledger holds the wallet")]


WHAT = Literal["purchase", "civic_activity", "volunteering", "redemption", "municipal_service", "refund", "expiry",
               "donation", "other"]  # fmt: skip


class JournalEntry(Result, frozen=True):
    """A journal entry as the ledger holds it."""

    sequence: Sequence
    transfer_id: Annotated[str, msgspec.Meta(description="the transfer this entry belongs to")]
    kind: Annotated[
        str, msgspec.Meta(description="the transfer's purpose (earn_purchase, redeem, service, refund, expiry, …)")
    ]
    phase: Annotated[
        str, msgspec.Meta(description="single, pending (a hold), post (its capture) or void (its release)")
    ]
    debit_account: Annotated[str, msgspec.Meta(description="the account debited")]
    credit_account: Annotated[str, msgspec.Meta(description="the account credited")]
    amount: Annotated[Points, msgspec.Meta(description="points moved (positive)")]
    ref: Annotated[str | None, msgspec.Meta(description="the transfer this one posts, voids or refunds, or null")]
    time_us: TimeUs
    hash: Annotated[str, msgspec.Meta(description="the entry's hash in the ledger's chain (hex)")]


class Counterparty(Result, frozen=True):
    """Who the resident dealt with."""

    kind: Annotated[
        Literal["merchant", "organization", "city"], msgspec.Meta(description="a merchant, an organization or the city")
    ]
    id: Annotated[str, msgspec.Meta(description="the merchant's or organization's id, or the city's name")]
    name: Annotated[str, msgspec.Meta(description="the display name")]


class WalletLine(Result, frozen=True):
    """One movement of the resident's wallet, in business terms, beside the raw journal entry."""

    what: Annotated[WHAT, msgspec.Meta(description="what it was")]
    status: Annotated[
        Literal["posted", "held", "released"],
        msgspec.Meta(
            description="posted (it counts), held (reserved by an open hold) or released (a hold voided or lapsed)"
        ),
    ]
    points: Annotated[
        Points, msgspec.Meta(description="points for the resident: positive earned or given back, negative spent")
    ]
    time_us: TimeUs
    entry: Annotated[JournalEntry, msgspec.Meta(description="the journal entry this line reads")]
    balance_after_points: Annotated[
        int | None,
        msgspec.Meta(
            description="the wallet's posted points after this movement; on the first page only (null on later pages)"
        ),
    ] = None
    counterparty: Annotated[
        Counterparty | None, msgspec.Meta(description="the merchant, organization or city, when known")
    ] = None
    item_title: Annotated[
        dict[str, str] | None,
        msgspec.Meta(description="the offer's, event's or service's title by language, for a marketplace redemption"),
    ] = None


class WalletHistory(Result, frozen=True):
    """A page of the wallet's history, newest first."""

    entries: Annotated[list[WalletLine], msgspec.Meta(description="the movements, newest first")]
    next_before_sequence: Annotated[
        int | None, msgspec.Meta(description="pass as `before_sequence` for the next page; null on the last page")
    ]
    newer_after_sequence: Annotated[
        int | None,
        msgspec.Meta(description="pass as `after_sequence` for the page of newer movements; null on the newest page"),
    ] = None


class WalletHold(Result, frozen=True):
    """Points an open hold reserves (a redemption not yet captured or released), and until when."""

    line: Annotated[WalletLine, msgspec.Meta(description="the hold as a history line: what, with whom, the points")]
    expires_at_us: Annotated[
        TimeUs, msgspec.Meta(description="when the hold lapses and its points come back, unless captured first")
    ]


class WalletHolds(Result, frozen=True):
    """The wallet's open holds, newest first."""

    holds: list[WalletHold]


class ExpiryDate(Result, frozen=True):
    """Points that expire on one day of the city's calendar."""

    day: Annotated[dt.date, msgspec.Meta(description="the day, in the city's time zone (today: already due)")]
    points: Annotated[Points, msgspec.Meta(description="points that expire that day unless spent before")]


class ExpirySchedule(Result, frozen=True):
    """When the wallet's available points expire, oldest first as expiry takes them: each earning
    expires `expiry_days` after it, and spending (or a hold) uses the oldest points first."""

    city: City
    expiry_days: Annotated[int, msgspec.Meta(ge=1, description="the program's expiry period in days")]
    dates: Annotated[
        list[ExpiryDate], msgspec.Meta(description="the next days on which points expire, soonest first (at most 12)")
    ]
    later_points: Annotated[
        Points, msgspec.Meta(description="the available points that expire after the last listed day")
    ]


class PersonalRecord(Result, omit_defaults=True, frozen=True):
    """What the city holds to reach the resident (decrypted for their own export): only the fields given."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    language: str | None = None


class DataExport(Result, frozen=True):
    """Everything held about the resident: record, personal data, opt-ins, cards and wallet history."""

    resident: Resident
    personal: PersonalRecord
    opt_ins: Annotated[list[str], msgspec.Meta(description="other cities the resident opted in to")]
    cards: Annotated[list[CardRecord], msgspec.Meta(description="every card, oldest first")]
    history: Annotated[
        list[WalletLine], msgspec.Meta(description="the wallet's movements, newest first (at most 100,000)")
    ]


class ActivationCode(Result, frozen=True):
    """A resident's one-time activation code, for signing in on the web the first time or on a new
    device: shown once to whoever issued it (staff, the CLI), never stored in clear."""

    resident_id: ResidentId
    city: City
    code: Annotated[
        str, msgspec.Meta(description="twelve letters and digits in three groups of four, e.g. 7KQD-M2XA-9PRT")
    ]
    expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when the code stops working (µs since the epoch)")]


class PrincipalActivationCode(Result, frozen=True):
    """A principal's one-time activation code (a merchant's owner, a program officer), for signing in
    on the web (`/portal/sign-in`, `/office/sign-in`) and registering a passkey: shown once."""

    principal_id: Annotated[str, msgspec.Meta(description="the principal's id")]
    city: City
    role: Annotated[str, msgspec.Meta(description="merchant, staff, finance, auditor or admin")]
    subject: Annotated[str, msgspec.Meta(description="who the principal is")]
    code: Annotated[
        str, msgspec.Meta(description="twelve letters and digits in three groups of four, e.g. 7KQD-M2XA-9PRT")
    ]
    expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when the code stops working (µs since the epoch)")]


class ActivationSent(Result, frozen=True):
    """An activation code sent to the resident's e-mail address (the code itself is not shown)."""

    resident_id: ResidentId
    city: City
    status: Annotated[str, msgspec.Meta(description="sent")]
    expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when the code stops working (µs since the epoch)")]


class EnrolledResident(Resident, frozen=True):
    """A newly enrolled resident, with their first activation code (to sign in on the web)."""

    activation_code: Annotated[str, msgspec.Meta(description="one-time code to sign in on the web, valid 72 hours")]
    activation_expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when the activation code stops working")]


class Passkey(Result, frozen=True):
    """One of a resident's passkeys, as their security page lists it."""

    credential_id: Annotated[str, msgspec.Meta(description="the WebAuthn credential id, base64url")]
    transports: Annotated[list[str], msgspec.Meta(description="how the browser reaches it, e.g. internal, hybrid")]
    created_at_us: TimeUs
    last_used_at_us: OptionalTimeUs


# --- corrections ------------------------------------------------------------------------------

CorrectionKind = Literal["attestation", "redemption", "wallet"]
CorrectionStatus = Literal["pending", "posted", "rejected"]


class CorrectionTransfer(Result, frozen=True):
    ledger: Annotated[str, msgspec.Meta(description="the ledger the compensating transfer is in")]
    transfer_id: Annotated[str, msgspec.Meta(description="the compensating transfer's id in that ledger")]


class Correction(Result, frozen=True):
    """A staff correction: a compensating transfer (never an edit), its reason, and its approval."""

    id: Annotated[str, msgspec.Meta(description="the correction's id")]
    city: City
    kind: Annotated[
        CorrectionKind, msgspec.Meta(description="attestation reversed, redemption refunded, wallet corrected")
    ]
    target: Annotated[str, msgspec.Meta(description="what it corrects: the attestation's transfer id, the redemption id, "
                                                    "or the resident id")]  # fmt: skip
    resident_id: ResidentId
    direction: Annotated[
        Literal["credit", "debit"], msgspec.Meta(description="the resident's wallet is credited or debited")
    ]
    points: Points
    reason: Annotated[str, msgspec.Meta(description="why, as the proposer wrote it (also in the audit trail)")]
    status: Annotated[CorrectionStatus, msgspec.Meta(description="pending until a second principal approves it; "
                                                                 "posted once its transfer is in the ledger")]  # fmt: skip
    proposed_by: Actor
    proposed_at_us: TimeUs
    decided_by: Actor | None
    decided_at_us: OptionalTimeUs
    transfers: Annotated[list[CorrectionTransfer], msgspec.Meta(description="the compensating transfers, once posted")]
    replayed: Replayed = False


class Corrections(Result, frozen=True):
    corrections: list[Correction]
    next_before_us: Annotated[
        OptionalTimeUs, msgspec.Meta(description="pass as before_us for the next page; null: no more")
    ]
