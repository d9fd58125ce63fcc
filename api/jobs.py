"""The recurring jobs (`operations/`) wired to the composition root's services: what `entraide
serve` runs in the background, `entraide jobs` lists and runs, and `/v1/health/jobs` reports."""

from __future__ import annotations

from api.bootstrap import Context
from operations.service_layer.jobs import CHECKPOINT_SECONDS, recurring_jobs
from operations.service_layer.scheduler import Scheduler


def scheduler(ctx: Context, checkpoint_seconds: int = CHECKPOINT_SECONDS, owner: str | None = None,
              tick_seconds: float = 1.0) -> Scheduler:  # fmt: skip
    jobs = recurring_jobs(ctx, payouts_enabled=ctx.settings.stripe_api_key is not None, checkpoint_seconds=checkpoint_seconds)
    return Scheduler(ctx.engine, jobs, ctx.clock, owner, tick_seconds)
