"""`entraide settlement …`, `entraide expiry run` and `entraide opendata`: finance staff's commands."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.table import Table

from api.cli.support import DataDirOption, DbOption, context, errors, out
from finance.adapters.exports import MAX_BANK_FILE_BYTES
from finance.domain.settlement import cents_text
from finance.service_layer.reporting import open_data_csv

settlement_app = typer.Typer(help="Close periods, export statements and bank files, pay merchants, reconcile.",
                             no_args_is_help=True)  # fmt: skip
expiry_app = typer.Typer(help="Expire unused points to breakage, oldest lot first.", no_args_is_help=True)
opendata_app = typer.Typer(help="Anonymous monthly aggregates for open data.", no_args_is_help=True)

City = Annotated[str, typer.Option("--city", help="City (ledger) id, e.g. brossard")]
Period = Annotated[str, typer.Option("--period", help="Month, YYYY-MM")]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@settlement_app.command("close")
def close(city: City, period: Period, db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Close a month: statements and settlement transfers written into the ledger, once."""
    with errors():
        result = context(db, data_dir).settlement.close(city, period, _actor())
    statement = result.statement
    table = Table(title=f"{city} {period}" + (" (already closed)" if result.replayed else ""))
    for column in ("merchant", "redeemed", "issued", "reimbursement", "funding", "fees", "adjustments", "net"):
        table.add_column(column, justify="left" if column == "merchant" else "right")
    for line in statement.merchants:
        table.add_row(line.merchant_id, f"{line.redeemed_points:,}", f"{line.issued_points:,}",
                      *(cents_text(getattr(line, k)) for k in ("reimbursement_cents", "funding_cents", "fees_cents",
                                                               "adjustments_cents", "net_cents")))  # fmt: skip
    out.print(table)
    for position in statement.interop:
        out.print(f"{position.payer} pays {position.payee} {cents_text(position.cents)} ({position.points:,} points)")
    totals = statement.totals
    out.print(f"net payable {cents_text(totals.payable_cents)}, receivable {cents_text(totals.receivable_cents)}; "
              f"statement sha256 {result.statement_sha256[:16]}…")  # fmt: skip


@settlement_app.command("export")
def export(city: City, period: Period, fmt: Annotated[str, typer.Option("--format", help="csv, json, pain001 or erp")],
           out_file: Annotated[Path, typer.Option("--out", help="File to write")], db: DbOption = None,
           data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Write a closed period's statements (csv, json), credit transfers (pain001) or ERP journal (erp)."""
    with errors():
        content, _, _ = context(db, data_dir).exports.render(city, period, fmt)
        out_file.write_bytes(content)
    out.print(f"{fmt} written to {out_file} ({len(content):,} bytes)")


@settlement_app.command("payouts")
def payouts(city: City, period: Period, pay: Annotated[bool, typer.Option(help="Also run the payout worker")] = False,
            db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Queue the closed period's payouts (Stripe Connect), and with --pay advance this city's due payouts."""
    with errors():
        ctx = context(db, data_dir)
        queued = ctx.payouts.queue(city, period, _actor())
        out.print(f"{queued.queued} payouts queued; without a Stripe account: {', '.join(queued.without_account) or 'none'}")
        if pay:
            steps = ctx.payouts.run(city)
            out.print(f"{city}: {steps['advanced']} payout steps made, {steps['retry_later']} to retry later, "
                      f"{steps['failed']} failed")  # fmt: skip


@settlement_app.command("reconcile")
def reconcile(city: City, period: Period, bank_file: Annotated[Path | None, typer.Option("--bank-file")] = None,
              db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Match statements, payouts and the bank file (the period's pain.001); exit 1 if anything differs."""
    with errors():
        document = None
        if bank_file is not None:
            with bank_file.open("rb") as file:
                document = file.read(MAX_BANK_FILE_BYTES + 1)  # one byte more: too large is refused, never read whole
        report = context(db, data_dir).payouts.reconcile(city, period, document)
    out.print_json(msgspec.json.encode(report).decode())
    if report.differences:
        raise typer.Exit(1)


@expiry_app.command("run")
def expiry_run(db: DbOption = None, data_dir: DataDirOption = None,
               city: Annotated[list[str] | None, typer.Option("--city", help="Only these cities")] = None) -> None:  # fmt: skip
    """Move points unused past each program's expiry period to breakage (idempotent per day)."""
    with errors():
        report = context(db, data_dir).expiry.run(city or None, _actor())
    for name, moved in report.items():
        out.print(f"{name}: {moved['points']:,} points expired from {moved['accounts']:,} wallets"
                  + (f", {moved['refused']} deferred" if moved["refused"] else ""))  # fmt: skip


@opendata_app.command("export")
def opendata_export(city: City, period: Period, fmt: Annotated[str, typer.Option("--format")] = "csv",
                    out_file: Annotated[Path | None, typer.Option("--out")] = None, db: DbOption = None,
                    data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Anonymous monthly aggregates (cells under 10 residents suppressed), as CSV or JSON."""
    with errors():
        if fmt not in ("csv", "json"):
            raise ValueError("--format is csv or json")
        data = context(db, data_dir).reports.open_data(city, period)
        text = open_data_csv(data) if fmt == "csv" else json.dumps(msgspec.to_builtins(data), indent=2) + "\n"
        if out_file is None:
            typer.echo(text, nl=False)
        else:
            out_file.write_text(text, encoding="utf-8")
