"""Running the schedule: once across every server, each job under a lease in the `jobs` table.

Each `entraide serve` process runs a Scheduler. Every `tick_seconds` it reads the job rows and, for
each job that is due and whose lease is free, tries to claim it (a compare-and-set, see
`operations.adapters.store`); the one process that wins runs the job in a thread of its own, so a
slow job never delays the others, and records the outcome: the summary, or the error, then the next
run (the interval after a success, a growing backoff after failures in a row). A runner that
crashes mid-run leaves its lease to expire; the next process to look takes the job over. A runner
that outlives its lease finds its record refused (the takeover's stands) and says so in the log.

Leases compare times from each process's clock: servers must keep their clocks in step (NTP),
within much less than the shortest lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import msgspec
from sqlalchemy import Engine

from ledger.domain.errors import InvalidRequest
from operations.adapters import store
from operations.domain.schedule import US_PER_SECOND, Job, RunOutcome, next_run_us
from operations.schemas import JobsReport, JobStatus

log = logging.getLogger("entraide.jobs")
MAX_JOBS = 32
STOP_WAIT_SECONDS = 30  # at shutdown, how long running jobs may take to finish (their leases cover the rest)


def runner_name(kind: str = "serve") -> str:
    """A name no other runner has (host, process, a random part), ≤ 64 characters, for the lease."""
    return f"{kind}:{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class UnknownJob(InvalidRequest):
    pass


class Scheduler:
    def __init__(self, engine: Engine, jobs: Sequence[Job], clock: Callable[[], int], owner: str | None = None,
                 tick_seconds: float = 1.0) -> None:  # fmt: skip
        assert len(jobs) <= MAX_JOBS and len({j.name for j in jobs}) == len(jobs), "job names must be unique"
        self.engine, self.clock, self.tick_seconds = engine, clock, tick_seconds
        self.jobs = {job.name: job for job in jobs}
        self.owner = owner or runner_name()
        self._stop = threading.Event()
        self._loop_thread: threading.Thread | None = None
        self._running: dict[str, threading.Thread] = {}

    # --- what the API and the CLI call ----------------------------------------------------------

    def status(self) -> list[JobStatus]:
        """Every job of the schedule with its row: last run, next run, outcome. Reads only."""
        now = self.clock()
        with self.engine.connect() as conn:
            found = store.rows(conn, list(self.jobs))
        return [_status(job, found.get(name), now) for name, job in self.jobs.items()]

    def report(self) -> JobsReport:
        """`status()` with its summary: `degraded` while any job's last run failed."""
        listed = self.status()
        return JobsReport(status="degraded" if any(j.last_outcome == "error" for j in listed) else "ok", jobs=listed)

    def run_now(self, name: str) -> RunOutcome:
        """Run one job here and now, due or not (`entraide jobs run NAME`); not while another runner holds it."""
        job = self.jobs.get(name)
        if job is None:
            raise UnknownJob(f"no job {name!r}; the jobs are {', '.join(self.jobs)}")
        self.register()
        failures = self._claim(job, due_only=False)
        if failures is None:
            with self.engine.connect() as conn:
                row = store.rows(conn, [name])[name]
            return RunOutcome(name, ran=False, holder=row["lease_owner"], lease_until_us=row["lease_until_us"])
        return self._execute(job, failures)

    def run_due(self) -> list[RunOutcome]:
        """Claim every due job whose lease is free and run them here, one after another (a job
        never scheduled before is due now)."""
        self.register()
        return [self._execute(job, failures) for job, failures in self._claim_due()]

    def register(self) -> None:
        """Add the jobs this schedule has and the table has not (due now); idempotent."""
        now = self.clock()
        with self.engine.begin() as conn:
            for job in self.jobs.values():
                store.register(conn, job.name, now, job.interval_seconds * US_PER_SECOND)

    # --- in the background of `entraide serve` --------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._loop_thread = threading.Thread(target=self._loop, name="entraide-jobs", daemon=True)
        self._loop_thread.start()

    def stop(self) -> None:
        """Stop claiming, and give running jobs a while to finish (a job cut off is run again
        elsewhere once its lease runs out)."""
        self._stop.set()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        if self._loop_thread is not None:
            self._loop_thread.join(timeout=STOP_WAIT_SECONDS)
        for thread in list(self._running.values()):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        registered = False
        while not self._stop.is_set():
            try:
                if not registered:
                    self.register()
                    registered = True
                self._start_due()
            except Exception as exc:  # noqa: BLE001 — the database may be down: look again next tick, quietly
                log.warning(
                    "jobs: cannot read the schedule: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:200]
                )
            self._stop.wait(self.tick_seconds)

    def _start_due(self) -> None:
        busy = {name for name, thread in self._running.items() if thread.is_alive()}
        for job, failures in self._claim_due(skip=busy):
            thread = threading.Thread(
                target=self._execute, args=(job, failures), name=f"entraide-job-{job.name}", daemon=True
            )
            self._running[job.name] = thread
            thread.start()

    # --- one run --------------------------------------------------------------------------------

    def _claim_due(self, skip: AbstractSet[str] = frozenset()) -> list[tuple[Job, int]]:
        now = self.clock()
        with self.engine.connect() as conn:
            found = store.rows(conn, list(self.jobs))
        due = [job for name, job in self.jobs.items()
               if name not in skip and name in found and found[name]["next_run_us"] <= now and found[name]["lease_until_us"] <= now]  # fmt: skip
        claimed = [(job, self._claim(job, due_only=True)) for job in due]
        return [(job, failures) for job, failures in claimed if failures is not None]

    def _claim(self, job: Job, due_only: bool) -> int | None:
        now = self.clock()
        with self.engine.begin() as conn:
            return store.claim(conn, job.name, self.owner, now, now + job.lease_seconds * US_PER_SECOND, due_only)

    def _execute(self, job: Job, failures_before: int) -> RunOutcome:
        """Run a claimed job and record how it ended; an error is the job's outcome, never the caller's."""
        try:
            result, error = msgspec.convert(job.run(), dict[str, int]), None
        except Exception as exc:  # a job must never stop the others: its error is recorded and it is retried
            result, error = None, f"{type(exc).__name__}: {exc}"[: store.MAX_ERROR_CHARS]
            if failures_before == 0:  # one traceback per streak of failures, whichever server runs them
                log.exception("job %s failed; retried with backoff until it succeeds", job.name)
            else:
                log.warning("job %s failed again (%d in a row): %s", job.name, failures_before + 1, error)
        else:
            if failures_before:
                log.warning("job %s recovered after %d failures", job.name, failures_before)
        failures = 0 if error is None else failures_before + 1
        finished = self.clock()
        upcoming = next_run_us(job, finished, failures)
        encoded = None if result is None else msgspec.json.encode(result).decode()
        try:
            with self.engine.begin() as conn:
                kept = store.finish(conn, job.name, self.owner, finished, upcoming, encoded, error)
        except Exception as exc:  # noqa: BLE001 — the lease then runs out and another runner (or this one) runs it again
            log.warning("job %s ran but its outcome could not be recorded: %s", job.name, exc)
            kept = False
        if not kept:
            log.warning("job %s outlived its lease of %d s; the runner that took it over keeps the record",
                        job.name, job.lease_seconds)  # fmt: skip
        return RunOutcome(job.name, ran=True, result=result, error=error, next_run_us=upcoming)


def _status(job: Job, row: dict[str, Any] | None, now_us: int) -> JobStatus:
    row = row or {}
    result = row.get("last_result")
    runs = row.get("runs") or 0
    error = row.get("last_error")
    lease_until = row.get("lease_until_us")
    return JobStatus(
        name=job.name, description=job.description, interval_seconds=job.interval_seconds,
        lease_seconds=job.lease_seconds, next_run_us=row.get("next_run_us"),
        running=row.get("lease_owner") is not None and (lease_until or 0) > now_us, lease_owner=row.get("lease_owner"),
        lease_until_us=lease_until, last_started_us=row.get("last_started_us"),
        last_finished_us=row.get("last_finished_us"),
        last_outcome=None if not runs else ("error" if error else "ok"),
        last_result=None if result is None else msgspec.json.decode(result, type=dict[str, int]), last_error=error,
        runs=runs, failures_in_a_row=row.get("failures") or 0,
    )  # fmt: skip
