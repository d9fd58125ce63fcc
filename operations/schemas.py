"""What the operations services answer: liveness, and the recurring jobs' status for staff."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ledger.schemas import Result, TimeUs, WitnessingStatus

OptionalTimeUs = Annotated[TimeUs | None, msgspec.Meta(description="microseconds since the Unix epoch (UTC), or null")]


class Health(Result, frozen=True):
    """The server answers: liveness only, no dependency is checked."""

    status: Annotated[Literal["ok"], msgspec.Meta(description="always `ok` when the server answers")]


class JobStatus(Result, kw_only=True, frozen=True):
    """A recurring job as staff see it in `/v1/health/jobs` and `entraide jobs`."""

    name: Annotated[str, msgspec.Meta(description="the job's name")]
    description: Annotated[str, msgspec.Meta(description="what the job does")]
    interval_seconds: Annotated[int, msgspec.Meta(ge=1, description="how often it runs after a success")]
    lease_seconds: Annotated[
        int, msgspec.Meta(ge=1, description="how long a runner holds it: a crashed runner's job is taken over after it")
    ]
    next_run_us: Annotated[
        OptionalTimeUs, msgspec.Meta(description="when it runs next; null: no server has scheduled it yet")
    ] = None
    running: Annotated[bool, msgspec.Meta(description="true while a runner holds its lease")]
    lease_owner: Annotated[str | None, msgspec.Meta(description="the runner holding or last holding it")] = None
    lease_until_us: OptionalTimeUs = None
    last_started_us: OptionalTimeUs = None
    last_finished_us: OptionalTimeUs = None
    last_outcome: Annotated[Literal["ok", "error"] | None, msgspec.Meta(description="null before the first run")] = None
    last_result: Annotated[
        dict[str, int] | None, msgspec.Meta(description="what the last successful run did, in counts")
    ] = None
    last_error: Annotated[str | None, msgspec.Meta(description="the last run's error, if it failed")] = None
    runs: Annotated[int, msgspec.Meta(ge=0, description="runs so far")]
    failures_in_a_row: Annotated[int, msgspec.Meta(ge=0, description="failed runs since the last success")]


class JobsReport(Result, frozen=True):
    """Every recurring job of the program (not one city's), and `degraded` while any job's last run failed."""

    status: Annotated[Literal["ok", "degraded"], msgspec.Meta(description="`degraded` while any job's last run failed")]
    jobs: list[JobStatus]
    witnessing: Annotated[
        WitnessingStatus | None,
        msgspec.Meta(
            description="the checkpoints' witnesses and their last answers (a fork also makes the status `degraded`)"
        ),
    ] = None
