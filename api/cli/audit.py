"""`entraide audit`: export and verify the audit trail (who did what, chained and signed per city)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from api.cli.i18n import _
from api.cli.support import DataDirOption, DbOption, context, errors, fail, out

audit_app = typer.Typer(help="The audit trail of admin and finance actions: export, verify.", no_args_is_help=True)

CityOption = Annotated[str | None, typer.Option("--city", help="One city (ledger) id [default: every city]")]


@audit_app.command("export")
def export(out_file: Annotated[Path, typer.Option("--out", help="JSON Lines file to write")], city: CityOption = None,
           db: DbOption = None, data_dir: DataDirOption = None) -> None:  # fmt: skip
    """Write the trail as JSON Lines, (city, seq) order, with each record's hash chain and signature."""
    from ledger.service_layer import audit_trail

    with errors():
        written = audit_trail.export(context(db, data_dir).engine, out_file, city)
    out.print(_("{written:,} audit records written to {file}").format(written=written, file=out_file))


@audit_app.command("verify")
def verify(city: CityOption = None, db: DbOption = None, data_dir: DataDirOption = None,
           export_file: Annotated[Path | None, typer.Option("--export", help="Verify an exported trail instead")] = None,
           keys_file: Annotated[Path | None, typer.Option("--keys", help="Public keys file (with --export)")] = None) -> None:  # fmt: skip
    """Check every record's hash chain and signature; exit 1 naming the first bad record."""
    from ledger.service_layer import audit_trail

    with errors():
        if export_file is not None:
            if keys_file is None:
                raise ValueError(
                    _("--export needs --keys (the public keys file of `entraide ledger export --keys-out`)")
                )
            report, source = audit_trail.verify_export(export_file, keys_file), str(export_file)
        else:
            report, source = audit_trail.verify_database(context(db, data_dir).engine, city), _("database")
    if not report["ok"]:
        e = report["error"]
        assert e is not None  # a report that is not ok names its error
        raise fail(
            _("{source}: audit trail of {city}, record {seq}: {code}: {detail}").format(source=source, **e), code=1
        )
    table = Table(title=_("{source}: audit trail intact").format(source=source))
    for n, column in enumerate((_("city"), _("records"), _("head"), _("unsigned (before 0005)"))):
        table.add_column(column, justify="right" if n else "left")
    for name, chain in report["cities"].items():
        table.add_row(name, f"{chain['records']:,}", chain["head_hash"][:16], str(chain["unsigned_legacy"]))
    out.print(table)
    out.print(_("{records:,} records verified: sequence, hash chain, signatures.").format(records=report["records"]))
