"""What the point of sale answers (/v1/pos): each operation's result, field by field.

A terminal talks about cards, purchases, holds and refunds; the ledger underneath talks about
transfers. Every result that moved points names its transfer (`transfer_id`, `city`, `sequence`)
so a receipt can be checked against the public ledger, and a retried request answers the same
result with `replayed` set.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ledger.schemas import AuditEntry, Cents, Points, Receipt, Result, Sequence, TimeUs

TransferId = Annotated[str, msgspec.Meta(description="the ledger transfer's id, unique within its city's ledger")]
City = Annotated[str, msgspec.Meta(description="the city whose ledger holds the transfer")]
CardId = Annotated[str, msgspec.Meta(description="the card's opaque id (never the resident's name)")]
Replayed = Annotated[
    bool, msgspec.Meta(description="true when this answers a retry of an earlier request with the same Idempotency-Key")
]
Phase = Annotated[str, msgspec.Meta(description="the ledger phase: single, pending, post, void or expire")]
ResidentReceipt = Annotated[
    Receipt,
    msgspec.Meta(description="the resident's receipt: the sealed entries of the transfer (both ledgers across cities)"),
]
IdempotencyKey = Annotated[str, msgspec.Meta(description="the item's own idempotency key, as sent")]


class Identity(Result, frozen=True):
    """The holder of a presented card, as a terminal may know them: no name, only what it needs."""

    card_id: CardId
    city: Annotated[str, msgspec.Meta(description="the resident's home city")]
    level: Annotated[str, msgspec.Meta(description="the resident's verification level (basic, checked, ...)")]
    available_points: Annotated[int, msgspec.Meta(description="points the resident can spend now (posted minus held)")]


class AwardLine(Result, frozen=True):
    """One step of an award's computation; the lines' points sum to the award."""

    rule: Annotated[
        str,
        msgspec.Meta(
            description='the rule applied: "base", "campaign:<id>", "cap:daily", "cap:monthly", "cap:campaign:<id>"'
        ),
    ]
    points: Annotated[int, msgspec.Meta(description="points this rule adds (negative for a cap)")]


class AwardResult(Result, frozen=True):
    """Merchant-funded points awarded for a purchase, with the explanation of how they were computed."""

    transfer_id: TransferId
    city: City
    points: Annotated[
        int, msgspec.Meta(ge=0, description="points awarded (0 when caps left nothing: no transfer is written)")
    ]
    card_id: CardId
    lines: Annotated[list[AwardLine], msgspec.Meta(description="the computation, step by step")]
    time_us: TimeUs
    replayed: Replayed
    purchase_cents: Cents | None = None
    receipt: Annotated[
        Receipt | None, msgspec.Meta(description="the resident's receipt; null when no transfer was written")
    ] = None


class Posting(Result, frozen=True):
    """A transfer the terminal's request wrote on the merchant's ledger."""

    transfer_id: TransferId
    city: City
    sequence: Sequence
    phase: Phase
    points: Points
    time_us: TimeUs
    replayed: Replayed
    receipt: ResidentReceipt


class HoldResult(Posting, frozen=True):
    """Points reserved for a redemption: capture them (in full or in part) or void them before `expires_at_us`."""

    hold_id: Annotated[
        str, msgspec.Meta(description="the hold to capture or void (the transfer id of the merchant's side)")
    ]
    status: Annotated[
        Literal["pending"], msgspec.Meta(description="always pending: the points are held, not yet spent")
    ]
    expires_at_us: Annotated[
        int | None,
        msgspec.Meta(description="when the hold is released if neither captured nor voided (µs since the epoch)"),
    ]


class CaptureResult(Posting, frozen=True):
    """A hold captured: the points captured are spent at the merchant, the rest returns to the wallet."""

    hold_id: Annotated[str, msgspec.Meta(description="the hold captured")]
    status: Annotated[Literal["captured"], msgspec.Meta(description="always captured")]


class VoidResult(Posting, frozen=True):
    """A hold voided: every held point returns to the wallet."""

    hold_id: Annotated[str, msgspec.Meta(description="the hold voided")]
    status: Annotated[Literal["voided"], msgspec.Meta(description="always voided")]


class RefundResult(Posting, frozen=True):
    """A refund: a new compensating transfer that reverses part or all of an award or a captured redemption."""

    refunded_transfer_id: Annotated[str, msgspec.Meta(description="the award or captured redemption refunded")]


class OfflineItemResult(Result, frozen=True):
    """The fate of one offline item: accepted (written now), replayed (written earlier) or refused (nothing written).

    A refusal carries the problem's stable `code` with its `title` and `detail` in the language of
    the request's Accept-Language; an accepted or replayed item carries its transfer, and for a
    purchase the award's explanation."""

    idempotency_key: IdempotencyKey
    status: Annotated[
        Literal["accepted", "replayed", "refused"], msgspec.Meta(description="accepted, replayed or refused")
    ]
    code: Annotated[str | None, msgspec.Meta(description="a refusal's problem code (a key of the problem catalog)")] = (
        None
    )
    title: Annotated[str | None, msgspec.Meta(description="a refusal's problem title, in the caller's language")] = None
    detail: Annotated[str | None, msgspec.Meta(description="a refusal's problem detail, in the caller's language")] = (
        None
    )
    transfer_id: TransferId | None = None
    city: City | None = None
    sequence: Sequence | None = None
    phase: Phase | None = None
    points: Points | None = None
    time_us: TimeUs | None = None
    replayed: Replayed | None = None
    card_id: CardId | None = None
    lines: Annotated[list[AwardLine] | None, msgspec.Meta(description="a purchase's award explanation")] = None
    purchase_cents: Cents | None = None
    receipt: Annotated[Receipt | None, msgspec.Meta(description="an accepted or replayed item's receipt")] = None


class OfflineResults(Result, frozen=True):
    """One result per offline item, in the order sent."""

    results: list[OfflineItemResult]


StatementWhat = Literal["purchase_award", "award_refund", "redemption", "redemption_hold", "hold_voided", "hold_expired",
                        "redemption_refund", "settlement", "other"]  # fmt: skip


class StatementLine(Result, frozen=True):
    """One entry of the merchant's statement: what it was and with whom, beside the raw ledger entry."""

    what: Annotated[StatementWhat, msgspec.Meta(description=(
        "purchase_award (points the merchant funded for a purchase), award_refund, redemption (points spent at the "
        "merchant: a capture or an offline redemption), redemption_hold (points reserved, not yet spent), hold_voided, "
        "hold_expired, redemption_refund, settlement (the period close moving the balance to the clearing account)"))]  # fmt: skip
    counterpart: Annotated[Literal["resident", "resident_of_another_city", "program"], msgspec.Meta(
        description="who is on the other side: a resident of the city (their card stays opaque), a resident of another "
                    "city (through the inter-city clearing), or the program (a settlement)")]  # fmt: skip
    # The raw ledger entry, as the public ledger has it.
    sequence: Sequence
    transfer_id: TransferId
    kind: Annotated[str, msgspec.Meta(description="the ledger kind (earn_purchase, redeem, refund, settlement, ...)")]
    phase: Phase
    debit_account: Annotated[str, msgspec.Meta(description="the account debited")]
    credit_account: Annotated[str, msgspec.Meta(description="the account credited")]
    amount: Annotated[int, msgspec.Meta(gt=0, description="points moved (always positive: the accounts say which way)")]
    ref: Annotated[str | None, msgspec.Meta(description="the transfer this one resolves or refunds")]
    time_us: TimeUs
    hash: Annotated[str, msgspec.Meta(description="the entry's hash in the hash chain (hex)")]
    counterpart_city: Annotated[
        str | None, msgspec.Meta(description="the other city, for a resident of another city")
    ] = None
    occurred_at_us: Annotated[int | None, msgspec.Meta(
        description="an offline sale's time at the till, as its terminal signed it (time_us is when the ledger committed it)")] = None  # fmt: skip
    purchase_cents: Annotated[int | None, msgspec.Meta(description="a purchase award's purchase amount, in cents")] = (
        None
    )


class StatementTotals(Result, frozen=True):
    """The whole period's totals (every page's), posted movements only, settlements left out.

    Cents follow the period close exactly: the city's point value and its redemption and funding
    rates, rounded toward zero once per merchant (finance.domain.settlement), before fees and
    adjustments, which only the close applies."""

    currency: Annotated[str, msgspec.Meta(description="the program's currency (ISO 4217)")]
    awarded_points: Annotated[int, msgspec.Meta(description="points the merchant funded for purchases")]
    award_refunds_points: Annotated[int, msgspec.Meta(description="points of those awards taken back by refunds")]
    redeemed_points: Annotated[
        int, msgspec.Meta(description="points residents spent at the merchant (captures and offline redemptions)")
    ]
    redemption_refunds_points: Annotated[
        int, msgspec.Meta(description="points of those redemptions given back by refunds")
    ]
    refunded_points: Annotated[
        int, msgspec.Meta(description="all refunds: award_refunds_points + redemption_refunds_points")
    ]
    issued_net_points: Annotated[
        int, msgspec.Meta(description="awarded_points − award_refunds_points: what the merchant funds")
    ]
    redeemed_net_points: Annotated[
        int, msgspec.Meta(description="redeemed_points − redemption_refunds_points: what the program reimburses")
    ]
    net_points: Annotated[
        int,
        msgspec.Meta(description="redeemed_net_points − issued_net_points (positive: the program owes the merchant)"),
    ]
    funding_cents: Annotated[int, msgspec.Meta(description="value of issued_net_points at the funding rate")]
    reimbursement_cents: Annotated[int, msgspec.Meta(description="value of redeemed_net_points at the redemption rate")]
    net_cents: Annotated[
        int, msgspec.Meta(description="reimbursement_cents − funding_cents (positive: the program owes the merchant)")
    ]


class Statement(Result, frozen=True):
    """The merchant's own ledger entries in [since_us, until_us), newest first, one page at a time, with the period's totals."""

    merchant_id: Annotated[str, msgspec.Meta(description="the merchant")]
    city: Annotated[str, msgspec.Meta(description="the merchant's city (its ledger)")]
    since_us: TimeUs
    until_us: TimeUs
    entries: list[StatementLine]
    next_before_sequence: Annotated[
        int | None, msgspec.Meta(description="pass as before_sequence for the next page; null on the last")
    ]
    totals: StatementTotals


class CardKey(Result, frozen=True, omit_defaults=True):
    """A city's card public key (a JWK, RFC 8037 Ed25519): cards are EdDSA-signed tokens a terminal can check offline."""

    kty: Annotated[str, msgspec.Meta(description='"OKP"')]
    crv: Annotated[str, msgspec.Meta(description='"Ed25519"')]
    x: Annotated[str, msgspec.Meta(description="the public key, base64url")]
    kid: Annotated[str, msgspec.Meta(description="the key id named in a card's header")]
    alg: Annotated[str, msgspec.Meta(description='"Ed25519" (EdDSA over Ed25519, RFC 9864)')]
    use: Annotated[str, msgspec.Meta(description='"sig"')]
    nbf: Annotated[
        int, msgspec.Meta(description="when the key began signing cards (s since the epoch; 0 for a city's first key)")
    ]
    exp: Annotated[int | None, msgspec.Meta(description="once retired: cards it signed verify while now < exp (s since the "
                                                        "epoch), then drop the key; absent on the active key")] = None  # fmt: skip


class CardKeys(Result, frozen=True):
    """The card public keys that verify cards now, of every city (a JWKS): each city's active key and
    the retired keys whose cards have not all expired. Cache them by kid; refresh at least daily."""

    keys: list[CardKey]


class RevokedCard(Result, frozen=True):
    """A card an offline terminal must refuse."""

    id: CardId
    revoked_at_us: TimeUs
    expires_at_us: Annotated[
        int, msgspec.Meta(description="when the card would have expired (µs since the epoch): after it, forget it")
    ]


class Revocations(Result, frozen=True):
    """The cards of the terminal's city revoked since `since_us`, oldest first."""

    city: Annotated[str, msgspec.Meta(description="the terminal's city")]
    revoked: list[RevokedCard]


class PairingCode(Result, frozen=True):
    """A one-time code that pairs one device as a terminal of the merchant (the web terminal's
    `/terminal/pair`): it works once, until `expires_at_us`."""

    code: Annotated[str, msgspec.Meta(description="eight letters and digits in two groups of four (no 0, 1, I or O)")]
    merchant_id: Annotated[str, msgspec.Meta(description="the merchant the paired terminal will belong to")]
    city: Annotated[str, msgspec.Meta(description="the merchant's city")]
    expires_at_us: TimeUs
    name: Annotated[str | None, msgspec.Meta(description="the device's name, if given with the code")] = None


class MerchantTerminal(Result, frozen=True):
    """One of the merchant's terminals as its owner sees it (the portal's `/portal/terminals`)."""

    key_id: Annotated[str, msgspec.Meta(description="the key id the terminal signs its requests with")]
    name: Annotated[str | None, msgspec.Meta(description="what the shop calls it (given at pairing, renamed since)")]
    kind: Annotated[
        Literal["web", "pos"],
        msgspec.Meta(description="web: a browser paired with a code (/terminal); pos: a POS registered by its key"),
    ]
    status: Annotated[Literal["active", "revoked"], msgspec.Meta(description="a revoked terminal is refused")]
    paired_at_us: TimeUs
    last_seen_at_us: Annotated[
        int | None, msgspec.Meta(description="its latest signed request, if within the last minutes; else null")
    ] = None


class MerchantTerminals(Result, frozen=True):
    """The merchant's terminals, newest first."""

    terminals: list[MerchantTerminal]


class MerchantActivity(Result, frozen=True):
    """A page of the audit records about one merchant, newest first (the portal's `/portal/activity`)."""

    entries: list[AuditEntry]
    next_before_seq: Annotated[
        int | None, msgspec.Meta(description="pass as `before_seq` for the older records; null at the start")
    ]
