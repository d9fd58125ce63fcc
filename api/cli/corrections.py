"""`entraide admin correction`: staff corrections (propose, list, show, approve, reject), calling the same
service as `/v1/admin/corrections/{city}`, audited as `cli:<user>`."""

from __future__ import annotations

import json
import secrets
from typing import Annotated

import typer

from api.cli.support import City, actor, errors, plain
from api.cli.support import DataDirOption as DataDir
from api.cli.support import DbOption as Db
from api.cli.support import context as _ctx

correction_app = typer.Typer(help="Corrections: compensating transfers with a reason; a second principal above the "
                                  "program's correction_approval_points.", no_args_is_help=True)  # fmt: skip

CorrectionId = Annotated[str, typer.Option("--id", help="The correction's id")]


def _print(value: object) -> None:
    typer.echo(json.dumps(plain(value), indent=2, ensure_ascii=False, sort_keys=True))


@correction_app.command("propose")
def propose(city: City, kind: Annotated[str, typer.Option(help="attestation, redemption or wallet")],
            target: Annotated[str, typer.Option(help="The attestation's transfer id, the redemption id, or the resident id")],
            points: Annotated[int, typer.Option(min=1)], reason: Annotated[str, typer.Option(help="Why (1 to 500 characters)")],
            direction: Annotated[str | None, typer.Option(help="wallet only: credit or debit")] = None,
            key: Annotated[str | None, typer.Option(help="Idempotency key (default: a new one)")] = None, db: Db = None,
            data_dir: DataDir = None) -> None:  # fmt: skip
    """Propose a correction; at or below the threshold it posts at once, above it waits for approval."""
    with errors():
        _print(_ctx(db, data_dir).corrections.propose(city, kind, target, points, reason, actor(),
                                                      key=key or secrets.token_hex(8), direction=direction))  # fmt: skip


@correction_app.command("list")
def list_(city: City, status: Annotated[str | None, typer.Option(help="pending (default), posted, rejected")] = "pending",
          all_statuses: Annotated[bool, typer.Option("--all", help="Every status")] = False, db: Db = None,
          data_dir: DataDir = None) -> None:  # fmt: skip
    """The city's corrections, newest first (pending ones by default)."""
    with errors():
        _print(_ctx(db, data_dir).corrections.list(city, None if all_statuses else status))


@correction_app.command("show")
def show(city: City, correction_id: CorrectionId, db: Db = None, data_dir: DataDir = None) -> None:
    """One correction, with its transfers once posted."""
    with errors():
        _print(_ctx(db, data_dir).corrections.get(city, correction_id))


@correction_app.command("approve")
def approve(city: City, correction_id: CorrectionId, db: Db = None, data_dir: DataDir = None) -> None:
    """Approve a pending correction (not the proposer's own): its transfer is written."""
    with errors():
        _print(_ctx(db, data_dir).corrections.decide(city, correction_id, "approve", actor()))


@correction_app.command("reject")
def reject(city: City, correction_id: CorrectionId, db: Db = None, data_dir: DataDir = None) -> None:
    """Reject a pending correction: nothing is written to the ledger."""
    with errors():
        _print(_ctx(db, data_dir).corrections.decide(city, correction_id, "reject", actor()))
