"""/v1/health: liveness, and the recurring jobs for staff."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency, Provide

from api.http.auth import bearer_principal
from api.http.params import Ctx, Who
from operations.schemas import Health, JobsReport
from operations.service_layer.scheduler import Scheduler

ALIVE = Health(status="ok")


@get(
    "/v1/health", sync_to_thread=False, tags=["meta"], summary="Check liveness", operation_id="health_get", problems=()
)
def health() -> Health:
    """Liveness: the server answers (no dependency is checked); also the trivial endpoint that benchmarks
    compare against. Public."""
    return ALIVE


HEALTH_DETAIL_ROLES = ("staff", "finance", "auditor", "admin")


@get("/v1/health/jobs", sync_to_thread=True, tags=["meta"], dependencies={"principal": Provide(bearer_principal)},
     summary="Get the recurring jobs' status", operation_id="health_get_jobs", problems=())  # fmt: skip
def health_jobs(principal: Who, jobs: NamedDependency[Scheduler], ctx: Ctx) -> JobsReport:
    """The recurring jobs, for staff, finance, auditors and administrators: last run, next run, last outcome
    or error, and `degraded` while any job's last run failed or a witness reports a fork of a ledger. The
    schedule is the whole program's, not one city's. `witnessing` says whether checkpoints are submitted to
    witnesses (`enabled` false: witnessing is off) and how each witness last answered."""
    principal.require(*HEALTH_DETAIL_ROLES)
    report, witnessing = jobs.report(), ctx.witnessing.status()
    status = "degraded" if witnessing.forks else report.status
    return msgspec.structs.replace(report, status=status, witnessing=witnessing)


ROUTERS = [health, health_jobs]
