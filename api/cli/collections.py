"""`entraide settlement collections|pain008|invoices|intercity`: money that flows back, the same service
calls as `/v1/finance/{city}/…` (finance/service_layer/collections.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from api.cli.finance import Period, settlement_app
from api.cli.i18n import _
from api.cli.support import City, DataDirOption, DbOption, actor, context, errors, out, plain

if TYPE_CHECKING:
    from finance.service_layer.collections import File, IntercityFormat, InvoiceFormat

OutFile = Annotated[Path | None, typer.Option("--out", help="File to write (default: standard output)")]


def _write(file: File, out_file: Path | None) -> None:
    content = file[0]
    if out_file is None:
        typer.echo(content.decode(), nl=False)
    else:
        out_file.write_bytes(content)
        out.print(_("{name} written to {file} ({size:,} bytes)").format(name=file[2], file=out_file, size=len(content)))


@settlement_app.command("collections")
def collections(city: City, period: Period, db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """List what merchants whose closed period nets negative owe, and how each is collected."""
    from finance.domain.settlement import cents_text

    with errors():
        listed = plain(context(db, data_dir).collections.owed(city, period))
    table = Table(title=f"{city} {period}")
    for n, column in enumerate((_("merchant"), _("owed"), _("method"), _("status"))):
        table.add_column(column, justify="right" if n == 1 else "left")
    for c in listed["collections"]:
        table.add_row(c["merchant_id"], cents_text(c["amount_cents"]), c["method"], c["status"])
    out.print(table)
    out.print(_("total to collect {total}").format(total=cents_text(listed["total_cents"])))


@settlement_app.command("pain008")
def pain008(city: City, period: Period, out_file: OutFile = None, db: DbOption = None,
            data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Write the closed period's ISO 20022 pain.008 direct debits (validated); they become requested."""
    with errors():
        _write(context(db, data_dir).collections.direct_debits(city, period, actor()), out_file)


@settlement_app.command("invoices")
def invoices(city: City, period: Period,
             merchant: Annotated[str | None, typer.Option("--merchant", help="Write this merchant's invoice")] = None,
             fmt: Annotated[str, typer.Option("--format", help="text, json or csv (with --merchant)")] = "text",
             out_file: OutFile = None, db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Issue the closed period's invoices (collections by invoice); with --merchant, write one of them."""
    from finance.domain.settlement import cents_text

    with errors():
        ctx = context(db, data_dir)
        issued = ctx.collections.issue_invoices(city, period, actor())
        if merchant is not None:
            # Typer takes any string; the service refuses one that is not a format, listing them.
            _write(ctx.collections.invoice(city, period, merchant, cast("InvoiceFormat", fmt)), out_file)
            return
    for invoice in issued.invoices:
        out.print(f"{invoice.number}  {invoice.merchant_name}  {cents_text(invoice.total_cents)} {invoice.currency}"
                  f"  {_('due')} {invoice.due_on}")  # fmt: skip
    out.print(_("{count} invoices issued").format(count=len(issued.invoices)))


@settlement_app.command("intercity")
def intercity(city: City, period: Period,
              fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
              counterparty: Annotated[str | None, typer.Option("--with", help="Only the pair with this city")] = None,
              out_file: OutFile = None, db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Write the closed period's settlement between the city and each other city (one payment per pair)."""
    with errors():
        file = context(db, data_dir).collections.intercity_file(
            city, period, cast("IntercityFormat", fmt), counterparty
        )
        _write(file, out_file)
