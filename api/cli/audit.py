"""`entraide audit`: export and verify the audit trail (who did what, chained and signed per city)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from api.cli.support import DataDirOption, DbOption, context, errors, fail, out
from ledger.service_layer import audit_trail

audit_app = typer.Typer(help="The audit trail of admin and finance actions: export, verify.", no_args_is_help=True)

CityOption = Annotated[str | None, typer.Option("--city", help="One city (ledger) id [default: every city]")]


@audit_app.command("export")
def export(out_file: Annotated[Path, typer.Option("--out", help="JSON Lines file to write")], city: CityOption = None,
           db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Write the trail as JSON Lines, (city, seq) order, with each record's hash chain and signature."""
    with errors():
        written = audit_trail.export(context(db, data_dir).engine, out_file, city)
    out.print(f"{written:,} audit records written to {out_file}")


@audit_app.command("verify")
def verify(city: CityOption = None, db: DbOption = None, data_dir: DataDirOption = None,
           export_file: Annotated[Path | None, typer.Option("--export", help="Verify an exported trail instead")] = None,
           keys_file: Annotated[Path | None, typer.Option("--keys", help="Public keys file (with --export)")] = None) -> None:  # fmt: skip
    """Check every record's hash chain and signature; exit 1 naming the first bad record."""
    with errors():
        if export_file is not None:
            if keys_file is None:
                raise ValueError("--export needs --keys (the public keys file of `entraide ledger export --keys-out`)")
            report, source = audit_trail.verify_export(export_file, keys_file), str(export_file)
        else:
            report, source = audit_trail.verify_database(context(db, data_dir).engine, city), "database"
    if not report["ok"]:
        e = report["error"]
        raise fail(f"{source}: audit trail of {e['city']}, record {e['seq']}: {e['code']}: {e['detail']}", code=1)
    table = Table(title=f"{source}: audit trail intact")
    for column in ("city", "records", "head", "unsigned (before 0005)"):
        table.add_column(column, justify="left" if column == "city" else "right")
    for name, chain in report["cities"].items():
        table.add_row(name, f"{chain['records']:,}", chain["head_hash"][:16], str(chain["unsigned_legacy"]))
    out.print(table)
    out.print(f"{report['records']:,} records verified: sequence, hash chain, signatures.")
