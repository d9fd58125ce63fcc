"""`entraide jobs`: the recurring jobs that `entraide serve` runs. List them, or run one now."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from api.cli.i18n import _
from api.cli.support import DataDirOption, DbOption, context, errors, fail, out

if TYPE_CHECKING:
    from operations.domain.schedule import Summary
    from operations.service_layer.scheduler import Scheduler

jobs_app = typer.Typer(help="The recurring jobs `entraide serve` runs (once across servers): list, run one now.")

# No default here: it is the jobs' own (operations.service_layer.jobs), which --help must not import.
CheckpointOption = Annotated[int | None, typer.Option("--checkpoint-seconds", envvar="ENTRAIDE_CHECKPOINT_SECONDS", min=10,
                                                      max=86_400, help="How often ledgers with new entries get a checkpoint "
                                                      "[default: every five minutes]")]  # fmt: skip


def checkpoint_interval(seconds: int | None) -> int:
    from operations.service_layer.jobs import CHECKPOINT_SECONDS

    return CHECKPOINT_SECONDS if seconds is None else seconds


def _scheduler(db: str | None, data_dir: Path | None, checkpoint_seconds: int | None, **kw) -> Scheduler:
    from operations.service_layer.jobs import scheduler

    return scheduler(context(db, data_dir), checkpoint_interval(checkpoint_seconds), **kw)


def _when(time_us: int | None) -> str:
    if time_us is None:
        return "-"
    return dt.datetime.fromtimestamp(time_us / 1_000_000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(result: Summary | None) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in (result or {}).items()) or "-"


@jobs_app.callback(invoke_without_command=True)
def jobs(typer_ctx: typer.Context, db: DbOption = None, data_dir: DataDirOption = None,
         checkpoint_seconds: CheckpointOption = None) -> None:  # fmt: skip
    """List the jobs: schedule, last run, next run, last outcome or error (docs/operations.md says what each does)."""
    if typer_ctx.invoked_subcommand is not None:
        return
    with errors():
        listed = _scheduler(db, data_dir, checkpoint_seconds).status()
    table = Table(title=_("recurring jobs"))
    for n, column in enumerate((_("job"), _("every"), _("last run"), _("outcome"), _("next run"), _("runs"))):
        table.add_column(column, justify="right" if n in (1, 5) else "left")
    for job in listed:
        outcome = job.last_error if job.last_outcome == "error" else _summary(job.last_result)
        state = _("running") if job.running else _when(job.next_run_us)
        table.add_row(
            job.name, f"{job.interval_seconds:,} s", _when(job.last_finished_us), outcome, state, str(job.runs)
        )
    out.print(table)


@jobs_app.command("run")
def run(name: Annotated[str, typer.Argument(help="A job of `entraide jobs`")], db: DbOption = None,
        data_dir: DataDirOption = None, checkpoint_seconds: CheckpointOption = None) -> None:  # fmt: skip
    """Run one job now, here, due or not, and record it as the servers would; not while another runner holds it."""
    with errors():
        from operations.service_layer.scheduler import runner_name

        outcome = _scheduler(db, data_dir, checkpoint_seconds, owner=runner_name("cli")).run_now(name)
    if not outcome.ran:
        raise fail(_("job {name} is being run by {holder} (lease until {until}); try again once it is done")
                   .format(name=name, holder=outcome.holder, until=_when(outcome.lease_until_us)), code=1)  # fmt: skip
    if outcome.error is not None:
        raise fail(_("job {name} failed: {error} (next try {next})").format(name=name, error=outcome.error,
                                                                          next=_when(outcome.next_run_us)), code=1)  # fmt: skip
    out.print(_("{name}: {summary}; next run {next}").format(name=name, summary=_summary(outcome.result),
                                                            next=_when(outcome.next_run_us)))  # fmt: skip
