"""What finance's services answer: statements and closes, adjustments, payout accounts and payouts,
reconciliation, and the budget, redemption and open data reports.

Money is integer cents of the program's currency (`_cents`), points are integers (`_points`);
a statement line carries both, and so do a statement's totals. The statement is also the document
stored (and hashed) when a period closes, so its fields only ever grow, with defaults.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from community.domain.program import CollectionMethod
from ledger.schemas import Cents, Points, Result, TimeUs
from merchants.schemas import Statement as MerchantStatement

City = Annotated[str, msgspec.Meta(description="the city (its ledger's name)")]
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
Period = Annotated[str, msgspec.Meta(pattern=PERIOD_PATTERN, description="a calendar month, YYYY-MM")]
MerchantId = Annotated[str, msgspec.Meta(description="the merchant's id")]
Actor = Annotated[str, msgspec.Meta(description="who did it: the principal's actor name")]
OptionalCents = Annotated[int | None, msgspec.Meta(description="an amount in cents, or null when there is none")]

# --- statements ----------------------------------------------------------------------------------

SettledBy = Literal["credit_transfer", "direct_debit", "invoice"]


class StatementLine(Result, frozen=True):
    """One merchant's settlement for a period: points in both directions, their value, and the net."""

    merchant_id: MerchantId
    redeemed_points: Annotated[
        int, msgspec.Meta(description="points redeemed at the merchant in the period, net of refunds")
    ]
    issued_points: Annotated[int, msgspec.Meta(description="points the merchant funded in the period, net of refunds")]
    reimbursement_cents: Annotated[
        int, msgspec.Meta(description="what the program owes for the redeemed points (redemption rate)")
    ]
    funding_cents: Annotated[
        int, msgspec.Meta(description="what the merchant owes for the points it funded (funding rate)")
    ]
    fees_cents: Annotated[int, msgspec.Meta(description="the program's settlement fee for the period")]
    adjustments_cents: Annotated[
        int, msgspec.Meta(description="corrections of earlier closed periods applied by this close")
    ]
    net_cents: Annotated[
        int,
        msgspec.Meta(
            description="reimbursement - funding - fees + adjustments; positive: the program pays, negative: the merchant owes"
        ),
    ]
    settled_by: Annotated[
        SettledBy | None,
        msgspec.Meta(
            description="how the net moves: `credit_transfer` (pain.001, a positive net), `direct_debit` (pain.008) "
            "or `invoice` (a negative net, per the city's collection_method); null for a zero net, or a period "
            "closed before collections existed"
        ),
    ] = None


class CityPosition(Result, frozen=True):
    """What one city owes another for the period's cross-city redemptions, after bilateral netting."""

    payer: Annotated[str, msgspec.Meta(description="the city that pays")]
    payee: Annotated[str, msgspec.Meta(description="the city that is paid")]
    points: Annotated[int, msgspec.Meta(description="net points the payer's residents redeemed with the payee")]
    cents: Annotated[int, msgspec.Meta(description="their value in cents, at the payer's point value")]


class StatementTotals(Result, frozen=True):
    """The period's totals over every merchant line, in points and in cents."""

    redeemed_points: Annotated[int, msgspec.Meta(description="sum of the lines' redeemed points")]
    issued_points: Annotated[int, msgspec.Meta(description="sum of the lines' issued points")]
    reimbursement_cents: Annotated[int, msgspec.Meta(description="sum of the lines' reimbursements")]
    funding_cents: Annotated[int, msgspec.Meta(description="sum of the lines' funding")]
    fees_cents: Annotated[int, msgspec.Meta(description="sum of the lines' fees")]
    adjustments_cents: Annotated[int, msgspec.Meta(description="sum of the lines' adjustments")]
    net_cents: Annotated[int, msgspec.Meta(description="sum of the lines' nets")]
    payable_cents: Annotated[int, msgspec.Meta(ge=0, description="what the program pays: the sum of positive nets")]
    receivable_cents: Annotated[
        int, msgspec.Meta(ge=0, description="what merchants owe: the sum of negative nets, as a positive amount")
    ]


class Statement(Result, frozen=True):
    """A city's settlement statement for a month: one line per merchant, cross-city positions and totals.
    Closing the period stores it; the preview computes it from the ledger as it stands."""

    city: City
    period: Period
    since_us: Annotated[
        int, msgspec.Meta(description="start of the month in the city's time zone (µs since the epoch, inclusive)")
    ]
    until_us: Annotated[
        int, msgspec.Meta(description="end of the month in the city's time zone (µs since the epoch, exclusive)")
    ]
    currency: Annotated[str, msgspec.Meta(description="ISO 4217 currency of every amount in cents")]
    merchants: tuple[StatementLine, ...]
    interop: tuple[CityPosition, ...]
    totals: StatementTotals


class PeriodClose(Result, frozen=True):
    """A closed period: its statement as stored, the statement's hash, and who closed it when."""

    statement: Statement
    statement_sha256: Annotated[str, msgspec.Meta(description="SHA-256 (hex) of the stored statement document")]
    closed_at_us: TimeUs
    closed_by: Actor
    replayed: Annotated[
        bool, msgspec.Meta(description="true when the period was already closed and nothing was written")
    ]


PeriodStatus = Literal["in_progress", "ended", "closed"]


class PeriodState(Result, frozen=True):
    """A month of a city: in progress (it cannot close yet), ended (it may close) or closed."""

    period: Period
    status: Annotated[PeriodStatus, msgspec.Meta(description="in_progress, ended (closable) or closed")]


class PeriodList(Result, frozen=True):
    """A city's recent months, latest first, the one in progress included (at most 24)."""

    city: City
    periods: list[PeriodState]


class Adjustment(Result, frozen=True):
    """A correction of a closed period, applied by the next close (a closed period never changes)."""

    id: Annotated[int, msgspec.Meta(description="the adjustment's id")]
    city: City
    merchant_id: MerchantId
    amount_cents: Annotated[int, msgspec.Meta(description="added to the merchant's net (negative: taken from it)")]
    reason: Annotated[str, msgspec.Meta(description="why, for the audit trail")]
    ref_period: Period
    created_at_us: TimeUs
    created_by: Actor


# --- payout accounts and payouts ------------------------------------------------------------------

ChangeStatus = Literal["pending", "confirmed", "rejected", "superseded"]
PayoutStatus = Literal["queued", "transferred", "in_transit", "paid", "failed"]


class PayoutAccountChange(Result, kw_only=True, frozen=True):
    """A proposed payout account for a merchant; it pays nothing until a second principal confirms it.
    The account number is masked to its last three digits."""

    id: Annotated[str, msgspec.Meta(description="the change's id")]
    city: City
    merchant_id: MerchantId
    holder_name: Annotated[str, msgspec.Meta(description="the account holder's name")]
    institution: Annotated[str, msgspec.Meta(description="CPA institution number (3 digits)")]
    transit: Annotated[str, msgspec.Meta(description="branch transit number (5 digits)")]
    account_number: Annotated[str, msgspec.Meta(description="the account number, masked: … and its last three digits")]
    stripe_account_id: Annotated[str | None, msgspec.Meta(description="the Stripe connected account, if any")] = None
    status: Annotated[ChangeStatus, msgspec.Meta(description="pending until confirmed, rejected or superseded")]
    proposed_by: Actor
    proposed_at_us: TimeUs
    decided_by: Annotated[str | None, msgspec.Meta(description="who decided it, once decided")] = None
    decided_at_us: Annotated[TimeUs | None, msgspec.Meta(description="when it was decided, once decided")] = None


class PayoutAccountChanges(Result, frozen=True):
    """A city's payout account changes, newest first (at most 1,000)."""

    changes: list[PayoutAccountChange]


class PayoutsQueued(Result, frozen=True):
    """What queuing a closed period's payouts did; queuing again adds nothing."""

    queued: Annotated[int, msgspec.Meta(ge=0, description="payouts newly queued")]
    without_account: Annotated[
        list[str], msgspec.Meta(description="merchants owed money but without a Stripe connected account: not queued")
    ]


class Payout(Result, kw_only=True, frozen=True):
    """One merchant's payout of a closed period, moved by the payout worker and Stripe's webhooks."""

    id: Annotated[str, msgspec.Meta(description="<city>:<period>:<merchant>")]
    city: City
    period: Period
    merchant_id: MerchantId
    amount_cents: Cents
    status: Annotated[PayoutStatus, msgspec.Meta(description="queued → transferred → in_transit → paid | failed")]
    attempts: Annotated[int, msgspec.Meta(ge=0, description="Stripe calls tried so far")]
    lease_until_us: TimeUs
    stripe_transfer_id: Annotated[str | None, msgspec.Meta(description="Stripe's transfer, once made")] = None
    stripe_payout_id: Annotated[str | None, msgspec.Meta(description="Stripe's payout, once made")] = None
    last_error: Annotated[str | None, msgspec.Meta(description="the last failure, if any")] = None
    created_at_us: TimeUs
    updated_at_us: TimeUs


class PayoutList(Result, frozen=True):
    """A closed period's payouts, by merchant."""

    payouts: list[Payout]


class PayoutWebhookAck(Result, omit_defaults=True, frozen=True):
    """Stripe Connect's event acknowledged: applied to a payout or a connected account once, or ignored
    (another type, a redelivery)."""

    event: Annotated[str, msgspec.Meta(description="Stripe's event id")]
    applied: Annotated[bool, msgspec.Meta(description="true when the event changed a payout or a connected account")]
    duplicate: Annotated[bool, msgspec.Meta(description="true when the event was already applied")] = False
    payout: Annotated[str | None, msgspec.Meta(description="the payout it changed")] = None
    status: Annotated[PayoutStatus | None, msgspec.Meta(description="the payout's new status")] = None
    account: Annotated[str | None, msgspec.Meta(description="the connected account it changed (account.updated)")] = (
        None
    )


# --- Stripe Connect onboarding ---------------------------------------------------------------------

StripeAccountId = Annotated[str, msgspec.Meta(description="the merchant's Stripe connected account (acct_…)")]


class OnboardingLink(Result, frozen=True):
    """Where to send the merchant: Stripe's hosted onboarding page for its connected account."""

    stripe_account_id: StripeAccountId
    url: Annotated[str, msgspec.Meta(description="Stripe's onboarding page (single use; ask again once it expired)")]
    expires_at_us: Annotated[TimeUs, msgspec.Meta(description="when the link stops working")]


class OnboardingStatus(Result, frozen=True):
    """The merchant's connected account as Stripe last said, and whether its payouts go there."""

    started: Annotated[bool, msgspec.Meta(description="true once a connected account was made for the merchant")]
    stripe_account_id: Annotated[str | None, msgspec.Meta(description="the connected account, once made")] = None
    details_submitted: Annotated[bool, msgspec.Meta(description="the merchant finished Stripe's forms")] = False
    payouts_enabled: Annotated[
        bool,
        msgspec.Meta(description="Stripe verified the account and pays out from it: the merchant's payouts go there"),
    ] = False


# --- reconciliation --------------------------------------------------------------------------------

Issue = Literal["paid_without_statement", "payout_amount", "payout_failed", "not_paid", "bank_file_amount"]


class Difference(Result, omit_defaults=True, frozen=True):
    """One mismatch between the statement, the payouts and the bank file, for one merchant."""

    merchant_id: MerchantId
    issue: Annotated[Issue, msgspec.Meta(description="what differs")]
    statement_cents: Annotated[int | None, msgspec.Meta(description="what the statement owes the merchant")] = None
    payout_cents: Annotated[int | None, msgspec.Meta(description="what the payout pays")] = None
    bank_cents: Annotated[int | None, msgspec.Meta(description="what the bank file pays (null: nothing)")] = None
    error: Annotated[str | None, msgspec.Meta(description="the failed payout's error")] = None


class Reconciliation(Result, kw_only=True, frozen=True):
    """A closed period's statement against its payouts and the bank file; every difference listed."""

    city: City
    period: Period
    statement_cents: Annotated[int, msgspec.Meta(description="what the statement owes merchants")]
    payouts_cents: Annotated[int, msgspec.Meta(description="what the payouts pay, failed ones excluded")]
    paid_cents: Annotated[int, msgspec.Meta(description="what Stripe reported paid")]
    bank_file_cents: OptionalCents = None
    differences: list[Difference]


# --- reports ---------------------------------------------------------------------------------------


class BudgetReport(Result, kw_only=True, frozen=True):
    """A city's program budget: funded, consumed and remaining; the points outstanding in wallets (the
    liability, also in cents); the points held by open holds; breakage."""

    city: City
    yearly_budget_points: Annotated[int | None, msgspec.Meta(description="the program's yearly budget, if set")] = None
    funded_points: Points
    consumed_points: Points
    remaining_points: Points
    outstanding_points: Points
    outstanding_cents: Cents
    reserved_points: Points
    breakage_points: Points


class RedemptionsReport(Result, frozen=True):
    """Points redeemed in a period, net of refunds, by merchant and by merchant category."""

    city: City
    period: Period
    by_merchant: Annotated[dict[str, int], msgspec.Meta(description="merchant id → points")]
    by_category: Annotated[dict[str, int], msgspec.Meta(description="category → points")]


class OpenDataCell(Result, kw_only=True, frozen=True):
    """One anonymous aggregate; a cell counting fewer than 10 residents is suppressed (figures null)."""

    city: City
    period: Period
    metric: Annotated[Literal["earned_points_by_kind", "redeemed_points_by_category", "spent_points_on_services",
                              "expired_points", "budget_used_points", "active_residents", "active_merchants"],
                      msgspec.Meta(description="what is counted")]  # fmt: skip
    dimension: Annotated[str, msgspec.Meta(description="the kind, the category, or `all`")]
    points: Annotated[int | None, msgspec.Meta(description="points, or null (suppressed, or not a points metric)")] = (
        None
    )
    residents: Annotated[
        int | None, msgspec.Meta(description="distinct residents, or null (suppressed, or not counted)")
    ] = None
    merchants: Annotated[int | None, msgspec.Meta(description="distinct merchants (active_merchants only)")] = None
    suppressed: Annotated[bool, msgspec.Meta(description="true when the figures are withheld")]


class PublishedPeriods(Result, frozen=True):
    """The months of a city whose open data is published (closed), latest first."""

    city: City
    periods: list[Period]


class OpenData(Result, frozen=True):
    """A closed month's anonymous open data for a city."""

    city: City
    period: Period
    cells: list[OpenDataCell]


# --- the bank's camt.053 statements ------------------------------------------------------------------

MatchStatus = Literal["matched", "amount_differs", "unknown_entry", "missing_from_bank"]


class BankStatementImport(Result, kw_only=True, frozen=True):
    """An imported camt.053 statement of the city's treasury account and how its entries matched."""

    id: Annotated[str, msgspec.Meta(description="the import's id")]
    city: City
    message_id: Annotated[str, msgspec.Meta(description="the statement message's id (GrpHdr/MsgId)")]
    sha256: Annotated[str, msgspec.Meta(description="SHA-256 (hex) of the file as imported")]
    account: Annotated[str, msgspec.Meta(description="the bank account the statement is of")]
    currency: Annotated[str, msgspec.Meta(description="ISO 4217 currency of the program's amounts")]
    from_us: Annotated[TimeUs | None, msgspec.Meta(description="start of the statement's period, if it says")] = None
    to_us: Annotated[TimeUs, msgspec.Meta(description="end of the statement's period (else its creation time)")]
    entries: Annotated[int, msgspec.Meta(ge=0, description="booked entries read (a batch's transactions each count)")]
    matched: Annotated[int, msgspec.Meta(ge=0, description="results that match a payout or collection exactly")]
    differences: Annotated[int, msgspec.Meta(ge=0, description="results that are not `matched`")]
    imported_at_us: TimeUs
    imported_by: Actor
    replayed: Annotated[
        bool, msgspec.Meta(description="true when this statement was already imported: nothing written")
    ] = False


class BankStatementImports(Result, frozen=True):
    """A city's imported bank statements, latest first (at most 200)."""

    statements: list[BankStatementImport]


class BankMatch(Result, omit_defaults=True, frozen=True):
    """One reconciliation line: a bank entry and the payout or collection it pays, or what is missing.
    Amounts are signed cents of the city's account: a debit (a payout) is negative, a credit positive."""

    status: Annotated[MatchStatus, msgspec.Meta(
        description="matched; amount_differs (ours, another amount); unknown_entry (at the bank, not ours); "
                    "missing_from_bank (ours, not on any statement yet)")]  # fmt: skip
    kind: Annotated[Literal["payout", "collection"] | None, msgspec.Meta(description="what of ours it is")] = None
    end_to_end_id: Annotated[str | None, msgspec.Meta(description="the transfer's end-to-end id")] = None
    period: Annotated[Period | None, msgspec.Meta(description="the closed period it settles")] = None
    merchant_id: Annotated[MerchantId | None, msgspec.Meta(description="the merchant it pays or is paid by")] = None
    expected_cents: Annotated[int | None, msgspec.Meta(description="what we expect on the account")] = None
    bank_cents: Annotated[int | None, msgspec.Meta(description="what the bank booked (null: nothing)")] = None
    booking_date: Annotated[str | None, msgspec.Meta(description="the bank's booking date, YYYY-MM-DD")] = None
    entry_ref: Annotated[str | None, msgspec.Meta(description="the bank's reference of the entry")] = None
    remittance: Annotated[str | None, msgspec.Meta(description="the entry's remittance information")] = None


class BankStatementResults(Result, frozen=True):
    """An import and every one of its reconciliation lines, in the statement's order then the missing ones."""

    statement: BankStatementImport
    results: list[BankMatch]


# --- money that flows back: collections, invoices, positions between cities -----------------------

CollectionStatus = Literal["due", "requested"]
InvoiceItem = Literal["funding", "fees", "reimbursement", "adjustments"]
OwedCents = Annotated[int, msgspec.Meta(gt=0, description="what the merchant owes the program, in cents")]


class Collection(Result, kw_only=True, frozen=True):
    """What a merchant whose closed period nets negative owes the program, and how it is collected."""

    id: Annotated[str, msgspec.Meta(description="<city>:<period>:<merchant>")]
    city: City
    period: Period
    merchant_id: MerchantId
    amount_cents: OwedCents
    method: Annotated[CollectionMethod, msgspec.Meta(description="the city's collection_method when it closed")]
    status: Annotated[
        CollectionStatus, msgspec.Meta(description="due at the close; requested once in a pain.008 file or invoiced")
    ]
    created_at_us: TimeUs
    requested_at_us: Annotated[TimeUs | None, msgspec.Meta(description="when it was first requested")] = None
    requested_by: Annotated[str | None, msgspec.Meta(description="who first requested it")] = None


class CollectionList(Result, frozen=True):
    """A closed period's collections, by merchant, and what they add up to."""

    city: City
    period: Period
    total_cents: Annotated[int, msgspec.Meta(ge=0, description="the sum of the collections")]
    collections: list[Collection]


class InvoiceLine(Result, kw_only=True, frozen=True):
    """One line of an invoice: positive, the merchant owes it; negative, it is credited to the merchant."""

    item: Annotated[InvoiceItem, msgspec.Meta(description="what the line is for")]
    points: Annotated[int | None, msgspec.Meta(description="the points it values, if any")] = None
    amount_cents: Cents


class Invoice(Result, kw_only=True, frozen=True):
    """The invoice of a merchant whose closed period nets negative; its lines sum to the total."""

    number: Annotated[str, msgspec.Meta(description="INV-<city>-<period>-<merchant>")]
    city: City
    period: Period
    merchant_id: MerchantId
    merchant_name: Annotated[str, msgspec.Meta(description="the merchant's name")]
    currency: Annotated[str, msgspec.Meta(description="ISO 4217 code")]
    issued_on: Annotated[str, msgspec.Meta(description="the day it was issued, in the city's time zone (ISO 8601)")]
    due_on: Annotated[str, msgspec.Meta(description="the day payment is due (ISO 8601)")]
    pay_to: Annotated[str | None, msgspec.Meta(description="the program's treasury account holder, if set")] = None
    lines: list[InvoiceLine]
    total_cents: OwedCents


class InvoiceList(Result, frozen=True):
    """The invoices of a closed period (collections by invoice), by merchant."""

    invoices: list[Invoice]


class IntercitySettlement(Result, kw_only=True, frozen=True):
    """A closed period's positions between the city and each other city, one payment per pair, from the
    consortium's netting; what the city receives minus what it pays is its balance."""

    city: City
    period: Period
    statement_sha256: Annotated[str, msgspec.Meta(description="SHA-256 of the closed statement it comes from")]
    positions: list[CityPosition]
    receivable_cents: Annotated[int, msgspec.Meta(ge=0, description="what other cities pay the city")]
    payable_cents: Annotated[int, msgspec.Meta(ge=0, description="what the city pays other cities")]
    balance_cents: Annotated[int, msgspec.Meta(description="receivable - payable")]


# --- a merchant's own view: its sales, its closed periods and what they pay or collect ------------

MerchantPayment = Literal["none", "not_queued", "pending", "paid", "failed", "collection_due", "collection_requested"]
MerchantPeriodItem = Literal["reimbursement", "funding", "fees", "adjustments"]


class MerchantPeriodLine(Result, kw_only=True, frozen=True):
    """One line of a merchant's statement; the lines sum to its net."""

    item: Annotated[MerchantPeriodItem, msgspec.Meta(description="what the line is for")]
    points: Annotated[int | None, msgspec.Meta(description="the points it values, if any")] = None
    amount_cents: Annotated[
        int, msgspec.Meta(description="positive: the program owes it to the merchant; negative: the merchant owes it")
    ]


class MerchantPeriod(Result, kw_only=True, frozen=True):
    """One merchant's line of a closed period, in its own terms: the lines, the net, and whether the
    city pays it (its payout and that payout's status) or collects it (its collection)."""

    city: City
    period: Period
    merchant_id: MerchantId
    currency: Annotated[str, msgspec.Meta(description="ISO 4217 code")]
    since_us: TimeUs
    until_us: TimeUs
    closed_at_us: TimeUs
    statement_sha256: Annotated[str, msgspec.Meta(description="SHA-256 (hex) of the city's stored statement")]
    lines: list[MerchantPeriodLine]
    net_cents: Annotated[
        int, msgspec.Meta(description="the lines' sum; positive: the city pays, negative: it collects")
    ]
    payable_cents: Annotated[int, msgspec.Meta(ge=0, description="what the city pays the merchant (a positive net)")]
    collectable_cents: Annotated[int, msgspec.Meta(ge=0, description="what the city collects (a negative net)")]
    settled_by: SettledBy | None = None
    payment: Annotated[MerchantPayment, msgspec.Meta(description=(
        "none (a zero net), not_queued (owed, no payout yet), pending, paid, failed (the payout's status), "
        "collection_due, collection_requested"))]  # fmt: skip
    payout: Payout | None = None
    collection: Collection | None = None


class MerchantPeriods(Result, frozen=True):
    """A merchant's closed periods, latest first (bounded), each with what it pays or collects."""

    merchant_id: MerchantId
    periods: list[MerchantPeriod]


class MerchantSales(Result, frozen=True):
    """A merchant's sales today and over a month: the merchants statement service's totals and pages."""

    today: Annotated[dt.date, msgspec.Meta(description="today in the city's time zone")]
    period: Period
    first_day: Annotated[dt.date, msgspec.Meta(description="the month's first day")]
    previous_period: Period
    next_period: Annotated[str | None, msgspec.Meta(description="the next month, unless it has not begun")]
    timezone: Annotated[str, msgspec.Meta(description="the city's time zone, for showing times")]
    today_statement: MerchantStatement
    month_statement: MerchantStatement
