"""`entraide search`: rebuild the catalog index, deliver the search outbox, and sweep abandoned redemptions."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from api.cli.i18n import _
from api.cli.support import DataDirOption, DbOption, context, errors, out, progress

search_app = typer.Typer(help="Catalog search: reindex, outbox delivery, marketplace upkeep.", no_args_is_help=True)
MAX_WATCH_SECONDS = 7 * 86_400


@search_app.command()
def reindex(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Rebuild the search index from the database and swap it in (searches never see it half-built)."""
    with errors():
        ctx = context(db, data_dir)
        total = ctx.search_indexer.count_items()
        with progress(_("reindexing"), total) as advance:
            report = ctx.search_indexer.reindex(advance)
    out.print(_("{indexed:,} items indexed in {backend} ({total:,} read); {settled:,} pending changes settled by the "
                "rebuild, {replayed:,} made meanwhile replayed").format(total=total, **report))  # fmt: skip


@search_app.command()
def deliver(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    watch: Annotated[bool, typer.Option(help="Keep delivering as changes come (until interrupted)")] = False,
    interval_seconds: Annotated[float, typer.Option(min=0.1, max=3600, help="Pause between rounds with --watch")] = 2.0,
    max_seconds: Annotated[
        int, typer.Option(min=1, max=MAX_WATCH_SECONDS, help="Stop watching after this long")
    ] = MAX_WATCH_SECONDS,
) -> None:
    """Send due catalog changes to the search backend (once until nothing is due, or --watch)."""
    with errors():
        ctx = context(db, data_dir)
        deadline = time.monotonic() + max_seconds
        while True:
            report = ctx.search_indexer.deliver()
            status = ctx.search_indexer.status()
            out.print(_("{delivered:,} changes delivered ({sent:,} documents), {failed:,} to retry; {pending:,} pending "
                        "in the outbox ({backend})").format(delivered=report.delivered, sent=report.sent,
                                                            failed=report.failed, **status))  # fmt: skip
            if not watch or time.monotonic() >= deadline:
                break
            time.sleep(interval_seconds)
    if report.failed:
        raise typer.Exit(1)


@search_app.command()
def status(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """How far behind the search index is: pending outbox rows, the oldest, the most retried."""
    with errors():
        found = context(db, data_dir).search_indexer.status()
    out.print(_("backend {backend}: {pending:,} pending, most attempts {max_attempts}, oldest pending at {oldest} µs")
              .format(oldest=found["oldest_pending_us"] or "-", **found))  # fmt: skip


@search_app.command()
def sweep(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Finish or undo redemptions a crash or an unpaid card payment left behind (void holds, give stock back)."""
    with errors():
        counts = context(db, data_dir).redemptions.recover()
    out.print(
        _("{reserved:,} abandoned reservations and {awaiting_payment:,} unpaid card payments settled").format(**counts)
    )
