"""What a recurring job is and when it runs next. Pure: times are integers (µs) the caller hands in."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

US_PER_SECOND = 1_000_000
MAX_INTERVAL_SECONDS = 7 * 86_400
MAX_LEASE_SECONDS = 86_400
FIRST_RETRY_SECONDS = 30  # a failed job is tried again this soon, or at its next run if that is sooner
MIN_BACKOFF_CAP_SECONDS = 600  # retries back off up to the interval, or to this for frequent jobs
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

Summary = dict[str, int]  # what a run did, in counts (holds expired, points moved, …)


@dataclass(frozen=True)
class Job:
    """A job of the schedule. `run` is bounded work that is safe to repeat (each job's service
    makes it idempotent), so a run cut short by a crash is simply run again by whoever takes over."""

    name: str
    interval_seconds: int
    lease_seconds: int  # longer than a run may take: a crashed runner's job is taken over after it
    description: str
    run: Callable[[], Summary]

    def __post_init__(self) -> None:
        assert NAME.fullmatch(self.name), f"job name {self.name!r}"
        assert 1 <= self.interval_seconds <= MAX_INTERVAL_SECONDS, f"{self.name}: interval {self.interval_seconds} s"
        assert 1 <= self.lease_seconds <= MAX_LEASE_SECONDS, f"{self.name}: lease {self.lease_seconds} s"


def retry_delay_seconds(interval_seconds: int, failures: int) -> int:
    """The wait after the `failures`-th failure in a row: the sooner of 30 s and the interval at
    first, doubling with each further failure, up to the interval or 10 minutes, whichever is longer
    (a daily job that failed is retried within the minute, not tomorrow; a job that keeps failing
    does not hammer what is down)."""
    assert failures >= 1 and interval_seconds >= 1
    first = min(interval_seconds, FIRST_RETRY_SECONDS)
    cap = max(interval_seconds, MIN_BACKOFF_CAP_SECONDS)
    return min(first << min(failures - 1, 32), cap)


def next_run_us(job: Job, finished_us: int, failures: int) -> int:
    """When a job runs again after a run that ended at `finished_us` (failures: in a row, 0 if it succeeded)."""
    seconds = job.interval_seconds if failures == 0 else retry_delay_seconds(job.interval_seconds, failures)
    return finished_us + seconds * US_PER_SECOND


class RunOutcome(msgspec.Struct, frozen=True):
    """One run: what it did or the error it ended with, and when the job runs next. `ran` is False
    when another runner holds the job's lease (`holder`, until `lease_until_us`)."""

    name: str
    ran: bool
    result: Summary | None = None
    error: str | None = None
    next_run_us: int | None = None
    holder: str | None = None
    lease_until_us: int | None = None
