"""`entraide jobs`: the recurring jobs that `entraide serve` runs. List them, or run one now."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from api.cli.support import DataDirOption, DbOption, context, errors, fail, out
from operations.domain.schedule import Summary
from operations.service_layer.jobs import CHECKPOINT_SECONDS, scheduler
from operations.service_layer.scheduler import runner_name

jobs_app = typer.Typer(help="The recurring jobs `entraide serve` runs (once across servers): list, run one now.")

CheckpointOption = Annotated[int, typer.Option("--checkpoint-seconds", envvar="ENTRAIDE_CHECKPOINT_SECONDS", min=10,
                                               max=86_400, help="How often ledgers with new entries get a checkpoint")]  # fmt: skip


def _when(time_us: int | None) -> str:
    if time_us is None:
        return "-"
    return dt.datetime.fromtimestamp(time_us / 1_000_000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(result: Summary | None) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in (result or {}).items()) or "-"


@jobs_app.callback(invoke_without_command=True)
def jobs(typer_ctx: typer.Context, db: DbOption = None, data_dir: DataDirOption = None,
         checkpoint_seconds: CheckpointOption = CHECKPOINT_SECONDS) -> None:  # fmt: skip
    """List the jobs: schedule, last run, next run, last outcome or error (docs/operations.md says what each does)."""
    if typer_ctx.invoked_subcommand is not None:
        return
    with errors():
        listed = scheduler(context(db, data_dir), checkpoint_seconds).status()
    table = Table(title="recurring jobs")
    for column in ("job", "every", "last run", "outcome", "next run", "runs"):
        table.add_column(column, justify="right" if column in ("every", "runs") else "left")
    for job in listed:
        outcome = job.last_error if job.last_outcome == "error" else _summary(job.last_result)
        state = "running" if job.running else _when(job.next_run_us)
        table.add_row(job.name, f"{job.interval_seconds:,} s", _when(job.last_finished_us), outcome, state, str(job.runs))
    out.print(table)


@jobs_app.command("run")
def run(name: Annotated[str, typer.Argument(help="A job of `entraide jobs`")], db: DbOption = None,
        data_dir: DataDirOption = None, checkpoint_seconds: CheckpointOption = CHECKPOINT_SECONDS) -> None:  # fmt: skip
    """Run one job now, here, due or not, and record it as the servers would; not while another runner holds it."""
    with errors():
        outcome = scheduler(context(db, data_dir), checkpoint_seconds, owner=runner_name("cli")).run_now(name)
    if not outcome.ran:
        raise fail(f"job {name} is being run by {outcome.holder} (lease until {_when(outcome.lease_until_us)}); "
                   "try again once it is done", code=1)  # fmt: skip
    if outcome.error is not None:
        raise fail(f"job {name} failed: {outcome.error} (next try {_when(outcome.next_run_us)})", code=1)
    out.print(f"{name}: {_summary(outcome.result)}; next run {_when(outcome.next_run_us)}")
