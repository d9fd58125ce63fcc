"""/v1/health: liveness, and the recurring jobs for staff."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency, Provide

from api.http.auth import bearer_principal
from api.http.params import Who
from operations.service_layer.scheduler import Scheduler


@get("/v1/health", sync_to_thread=False, tags=["meta"])
def health() -> dict:
    """Liveness; also the trivial endpoint that benchmarks compare against."""
    return {"status": "ok"}


HEALTH_DETAIL_ROLES = ("staff", "finance", "auditor", "admin")


@get("/v1/health/jobs", sync_to_thread=True, tags=["meta"], dependencies={"principal": Provide(bearer_principal)})
def health_jobs(principal: Who, jobs: NamedDependency[Scheduler]) -> dict:
    """The recurring jobs, for the city's staff: last run, next run, last outcome or error, and
    `degraded` while any job's last run failed. The schedule is the whole program's, not one city's."""
    principal.require(*HEALTH_DETAIL_ROLES)
    listed = jobs.status()
    failing = any(job.last_outcome == "error" for job in listed)
    return {"status": "degraded" if failing else "ok", "jobs": listed}


ROUTERS = [health, health_jobs]
