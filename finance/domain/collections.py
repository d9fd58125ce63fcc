"""Money that flows back, as arithmetic: which merchants a closed statement collects, and the lines of
their invoices. Pure, integer; the lines always sum to what the merchant owes."""

from __future__ import annotations

from finance.schemas import InvoiceLine, Statement, StatementLine

INVOICE_TERMS_DAYS = 30  # an invoice is due 30 days after it is issued
COLLECTION_NOTICE_DAYS = 10  # a pre-authorized debit is requested 10 days ahead (Payments Canada rule H1)


def collections_due(statement: Statement) -> list[StatementLine]:
    """The lines whose net is negative: each merchant owes the program its net, as a positive amount."""
    return [line for line in statement.merchants if line.net_cents < 0]


def invoice_lines(line: StatementLine) -> list[InvoiceLine]:
    """What the merchant owes (funding, fees) and what it is credited (reimbursement, adjustments)."""
    assert line.net_cents < 0, "only a negative net is invoiced"
    lines = [
        InvoiceLine(item="funding", points=line.issued_points, amount_cents=line.funding_cents),
        InvoiceLine(item="fees", amount_cents=line.fees_cents),
        InvoiceLine(item="reimbursement", points=line.redeemed_points, amount_cents=-line.reimbursement_cents),
        InvoiceLine(item="adjustments", amount_cents=-line.adjustments_cents),
    ]
    lines = [item for item in lines if item.amount_cents or item.points]
    assert sum(item.amount_cents for item in lines) == -line.net_cents
    return lines
