"""`entraide settlement …`, `entraide expiry run` and `entraide opendata`: finance staff's commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from api.cli.i18n import _
from api.cli.support import City, DataDirOption, DbOption, actor, context, errors, out, plain

if TYPE_CHECKING:
    from finance.service_layer.exports import ExportFormat

settlement_app = typer.Typer(help="Close periods, export statements and bank files, pay merchants, reconcile.",
                             no_args_is_help=True)  # fmt: skip
expiry_app = typer.Typer(help="Expire unused points to breakage, oldest lot first.", no_args_is_help=True)
opendata_app = typer.Typer(help="Anonymous monthly aggregates for open data.", no_args_is_help=True)

Period = Annotated[str, typer.Option("--period", help="Month, YYYY-MM")]


@settlement_app.command("close")
def close(city: City, period: Period, db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Close a month: statements and settlement transfers written into the ledger, once."""
    from finance.domain.settlement import cents_text

    with errors():
        result = plain(context(db, data_dir).settlement.close(city, period, actor()))
    statement = result["statement"]
    table = Table(title=f"{city} {period}" + (_(" (already closed)") if result["replayed"] else ""))
    columns = (_("merchant"), _("redeemed"), _("issued"), _("reimbursement"), _("funding"), _("fees"), _("adjustments"),
               _("net"))  # fmt: skip
    for n, column in enumerate(columns):
        table.add_column(column, justify="right" if n else "left")
    for line in statement["merchants"]:
        table.add_row(line["merchant_id"], f"{line['redeemed_points']:,}", f"{line['issued_points']:,}",
                      *(cents_text(line[k]) for k in ("reimbursement_cents", "funding_cents", "fees_cents",
                                                      "adjustments_cents", "net_cents")))  # fmt: skip
    out.print(table)
    for position in statement["interop"]:
        out.print(
            _("{payer} pays {payee} {amount} ({points:,} points)").format(
                amount=cents_text(position["cents"]), **position
            )
        )
    totals = statement["totals"]
    out.print(_("net payable {payable}, receivable {receivable}; statement sha256 {sha}…")
              .format(payable=cents_text(totals["payable_cents"]), receivable=cents_text(totals["receivable_cents"]),
                      sha=result["statement_sha256"][:16]))  # fmt: skip


@settlement_app.command("export")
def export(city: City, period: Period, fmt: Annotated[str, typer.Option("--format", help="csv, json, pain001 or erp")],
           out_file: Annotated[Path, typer.Option("--out", help="File to write")], db: DbOption = None,
           data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Write a closed period's statements (csv, json), credit transfers (pain001) or ERP journal (erp)."""
    with errors():
        # Typer takes any string; render refuses one that is not a format, with the problem listing them.
        content = context(db, data_dir).exports.render(city, period, cast("ExportFormat", fmt))[0]
        out_file.write_bytes(content)
    out.print(_("{format} written to {file} ({size:,} bytes)").format(format=fmt, file=out_file, size=len(content)))


@settlement_app.command("payouts")
def payouts(city: City, period: Period, pay: Annotated[bool, typer.Option(help="Also run the payout worker")] = False,
            db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Queue the closed period's payouts (Stripe Connect), and with --pay advance this city's due payouts."""
    with errors():
        ctx = context(db, data_dir)
        queued = plain(ctx.payouts.queue(city, period, actor()))
        out.print(_("{queued} payouts queued; without a Stripe account: {without}")
                  .format(queued=queued["queued"], without=", ".join(queued["without_account"]) or _("none")))  # fmt: skip
        if pay:
            steps = plain(ctx.payouts.run(city))
            out.print(_("{city}: {advanced} payout steps made, {retry_later} to retry later, {failed} failed")
                      .format(city=city, **steps))  # fmt: skip


@settlement_app.command("disputes")
def disputes(city: City, db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """List the city's card payment disputes (chargebacks), newest first, with their redemption and merchant."""
    from finance.domain.settlement import cents_text

    with errors():
        listed = plain(context(db, data_dir).payment_events.disputes(city))
    # A line each, not a table: the ids stay whole to copy, whatever the terminal's width.
    out.print(_("{city}: {count} card payment disputes").format(city=city, count=len(listed["disputes"])))
    for d in listed["disputes"]:
        opened = datetime.fromtimestamp(d["created_at_us"] / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M UTC")
        status = d["status"] + (_(" (funds withdrawn)") if d["funds_withdrawn"] else "")
        out.print(_("{id} {status}: {amount} {currency}, {reason}, opened {opened}; redemption {redemption}, "
                    "merchant {merchant}").format(id=d["id"], status=status, amount=cents_text(d["amount_cents"]),
                                                  currency=d["currency"].upper(), reason=d["reason"], opened=opened,
                                                  redemption=d["redemption_id"] or "-", merchant=d["merchant_id"] or "-"),
                  soft_wrap=True)  # fmt: skip


@settlement_app.command("reconcile")
def reconcile(city: City, period: Period, bank_file: Annotated[Path | None, typer.Option("--bank-file")] = None,
              db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Match statements, payouts and the bank file (the period's pain.001); exit 1 if anything differs."""
    from finance.adapters.exports import MAX_BANK_FILE_BYTES

    with errors():
        document = None
        if bank_file is not None:
            with bank_file.open("rb") as file:
                document = file.read(MAX_BANK_FILE_BYTES + 1)  # one byte more: too large is refused, never read whole
        report = plain(context(db, data_dir).payouts.reconcile(city, period, document))
    out.print_json(json.dumps(report))
    if report["differences"]:
        raise typer.Exit(1)


def _differences_table(title: str, lines: list[dict]) -> Table:
    from finance.domain.settlement import cents_text

    table = Table(title=title)
    for n, column in enumerate((_("status"), _("merchant"), _("expected"), _("bank"), _("booked"))):
        table.add_column(column, justify="right" if n in (2, 3) else "left", no_wrap=n < 2)
    for line in lines:
        if line["status"] != "matched":
            amounts = ("" if line.get(k) is None else cents_text(line[k]) for k in ("expected_cents", "bank_cents"))
            who = f"{line['period']} {line['merchant_id']}" if line.get("merchant_id") else line.get("remittance") or ""
            table.add_row(line["status"], who, *amounts, line.get("booking_date") or "")
    return table


@settlement_app.command("bank-import")
def bank_import(file: Annotated[Path, typer.Argument(help="The bank's camt.053.001.08 statement (XML)")], city: City,
                db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Import the bank's camt.053 statement and match it to payouts and collections; exit 1 if anything differs."""
    from finance.adapters.bank_statements import MAX_STATEMENT_BYTES

    with errors():
        with file.open("rb") as stream:
            document = stream.read(MAX_STATEMENT_BYTES + 1)  # one byte more: too large is refused, never read whole
        ctx = context(db, data_dir)
        imported = plain(ctx.bank_reconciliation.import_statement(city, document, actor()))
        lines = plain(ctx.bank_reconciliation.results(city, imported["id"]))["results"]
    out.print(_("{id}: statement {message_id}, {entries} entries, {matched} matched, {differences} differences")
              .format(**imported) + (_(" (already imported)") if imported["replayed"] else ""))  # fmt: skip
    if imported["differences"]:
        out.print(_differences_table(imported["message_id"], lines))
        raise typer.Exit(1)


@settlement_app.command("bank-results")
def bank_results(city: City,
                 statement_id: Annotated[str | None, typer.Argument(help="An import's id; none: list the imports")] = None,
                 fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
                 db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """List the city's imported bank statements, or one import's reconciliation lines (table, csv, json)."""
    with errors():
        service = context(db, data_dir).bank_reconciliation
        if statement_id is None:
            for row in plain(service.list(city))["statements"]:
                out.print(_("{id}: statement {message_id}, {entries} entries, {matched} matched, "
                            "{differences} differences").format(**row))  # fmt: skip
            return
        if fmt not in ("table", "csv", "json"):
            raise ValueError(_("--format is table, csv or json"))
        if fmt != "table":
            typer.echo(service.export(city, statement_id, fmt)[0].decode(), nl=False)  # type: ignore[arg-type]
            return
        report = plain(service.results(city, statement_id))
    out.print(_differences_table(report["statement"]["message_id"], report["results"]))


@expiry_app.command("run")
def expiry_run(db: DbOption = None, data_dir: DataDirOption = None,
               city: Annotated[list[str] | None, typer.Option("--city", help="Only these cities")] = None) -> None:  # fmt: skip
    """Move points unused past each program's expiry period to breakage (idempotent per day)."""
    with errors():
        report = plain(context(db, data_dir).expiry.run(city or None, actor()))
    for name, moved in report.items():
        message = (
            _("{points:,} points expired from {accounts:,} wallets, {refused} deferred")
            if moved["refused"]
            else _("{points:,} points expired from {accounts:,} wallets")
        )
        out.print(f"{name}: " + message.format(**moved))


@opendata_app.command("export")
def opendata_export(city: City, period: Period, fmt: Annotated[str, typer.Option("--format")] = "csv",
                    out_file: Annotated[Path | None, typer.Option("--out")] = None, db: DbOption = None,
                    data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Anonymous monthly aggregates (cells under 10 residents suppressed), as CSV or JSON."""
    from finance.service_layer.reporting import open_data_csv

    with errors():
        if fmt not in ("csv", "json"):
            raise ValueError(_("--format is csv or json"))
        data = context(db, data_dir).reports.open_data(city, period)
        text = open_data_csv(data) if fmt == "csv" else json.dumps(plain(data), indent=2) + "\n"
        if out_file is None:
            typer.echo(text, nl=False)
        else:
            out_file.write_text(text, encoding="utf-8")
