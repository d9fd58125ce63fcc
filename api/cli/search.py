"""`entraide search`: rebuild the catalog index, deliver the search outbox, and sweep abandoned redemptions."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli.support import DataDirOption, DbOption, context, err, errors, out

search_app = typer.Typer(help="Catalog search: reindex, outbox delivery, marketplace upkeep.", no_args_is_help=True)
MAX_WATCH_SECONDS = 7 * 86_400


@search_app.command()
def reindex(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Rebuild the search index from the database and swap it in (searches never see it half-built)."""
    with errors():
        ctx = context(db, data_dir)
        total = ctx.search_indexer.count_items()
        columns = [TextColumn("[bold]reindexing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("items", total=total)
            report = ctx.search_indexer.reindex(lambda n: bar.advance(task, n))
    out.print(f"{report['indexed']:,} items indexed in {report['backend']} ({total:,} read); {report['settled']:,} pending "
              f"changes settled by the rebuild, {report['replayed']:,} made meanwhile replayed")  # fmt: skip


@search_app.command()
def deliver(
    db: DbOption = None,
    data_dir: DataDirOption = None,
    watch: Annotated[bool, typer.Option(help="Keep delivering as changes come (until interrupted)")] = False,
    interval_seconds: Annotated[float, typer.Option(min=0.1, max=3600, help="Pause between rounds with --watch")] = 2.0,
    max_seconds: Annotated[int, typer.Option(min=1, max=MAX_WATCH_SECONDS, help="Stop watching after this long")] = MAX_WATCH_SECONDS,
) -> None:
    """Send due catalog changes to the search backend (once until nothing is due, or --watch)."""
    with errors():
        ctx = context(db, data_dir)
        deadline = time.monotonic() + max_seconds
        while True:
            report = ctx.search_indexer.deliver()
            status = ctx.search_indexer.status()
            out.print(f"{report.delivered:,} changes delivered ({report.sent:,} documents), {report.failed:,} to retry; "
                      f"{status['pending']:,} pending in the outbox ({status['backend']})")  # fmt: skip
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
    out.print(f"backend {found['backend']}: {found['pending']:,} pending, most attempts {found['max_attempts']}, "
              f"oldest pending at {found['oldest_pending_us'] or '-'} µs")  # fmt: skip


@search_app.command()
def sweep(db: DbOption = None, data_dir: DataDirOption = None) -> None:
    """Finish or undo redemptions a crash or an unpaid card payment left behind (void holds, give stock back)."""
    with errors():
        counts = context(db, data_dir).redemptions.recover()
    out.print(f"{counts['reserved']:,} abandoned reservations and {counts['awaiting_payment']:,} unpaid card payments settled")
