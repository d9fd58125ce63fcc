"""The schedule: every recurring job of the program, what it calls, how often, and its lease.

Each job calls one service that other entry points call too (`entraide jobs run NAME` runs the same
job by hand, and most have their own command). Every one is idempotent and bounded, so running it
again, on any server, after a crash or by hand, changes nothing that was already done. The table
in docs/operations.md states this schedule; `entraide jobs` lists it with each job's last run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine

from community.service_layer.programs import Programs
from community.service_layer.residents import Residents
from finance.service_layer.expiry import Expiry
from finance.service_layer.payouts import Payouts
from ledger.adapters import idempotency, journal
from ledger.service_layer import audit
from ledger.service_layer.keys import Signer
from ledger.service_layer.transfers import LedgerService
from ledger.service_layer.witnessing import Witnessing
from marketplace.service_layer.indexing import SearchIndexer
from marketplace.service_layer.redemptions import Redemptions
from operations.domain.schedule import Job, Summary
from operations.service_layer.scheduler import Scheduler

MINUTE, HOUR, DAY = 60, 3_600, 86_400
CHECKPOINTS_JOB = "checkpoints"  # the job below; its next run is when new entries get their inclusion proofs
CHECKPOINT_SECONDS = 5 * MINUTE  # default: a checkpoint at most five minutes behind the journal


class Services(Protocol):
    """What the jobs call (the composition root's Context has these); read when a job runs, so a
    schedule can be listed without starting the services."""

    engine: Engine
    signer: Signer
    ledger: LedgerService

    @property
    def clock(self) -> Callable[[], int]: ...

    @property
    def search_indexer(self) -> SearchIndexer: ...

    @property
    def redemptions(self) -> Redemptions: ...

    @property
    def expiry(self) -> Expiry: ...

    @property
    def payouts(self) -> Payouts: ...

    @property
    def programs(self) -> Programs: ...

    @property
    def residents(self) -> Residents: ...

    @property
    def payouts_enabled(self) -> bool: ...  # a Stripe key is configured

    @property
    def witnessing(self) -> Witnessing: ...


def recurring_jobs(
    services: Services, payouts_enabled: bool, checkpoint_seconds: int = CHECKPOINT_SECONDS
) -> list[Job]:
    """The schedule. The payout worker is in it only when Stripe is configured (payouts are off otherwise)."""
    s = services
    jobs = [
        Job("expire_holds", 30, 10 * MINUTE, "release holds past their expiry (quiet cities' too)",
            lambda: {"expired": s.ledger.expire_holds()}),
        Job("search_outbox", 30, 15 * MINUTE, "deliver catalog changes the search backend has not acknowledged",
            lambda: _delivery(s.search_indexer)),
        Job("search_outbox_prune", DAY, HOUR, "forget outbox rows delivered more than a week ago",
            lambda: {"forgotten": s.search_indexer.forget_delivered()}),
        Job("request_keys_prune", HOUR, 10 * MINUTE, "forget Idempotency-Keys of creating requests older than a day",
            lambda: {"forgotten": _forget_request_keys(s.engine, s.clock)}),
        Job("abandoned_redemptions", MINUTE, 15 * MINUTE, "undo reservations a crash left and card payments never paid",
            lambda: s.redemptions.recover()),  # noqa: PLW0108  (a property: read when the job runs, see Services)
        Job("points_expiry", DAY, 2 * HOUR, "move points unused past each program's expiry period to breakage",
            lambda: _expiry(s.expiry)),
        Job("erasures", HOUR, 10 * MINUTE, "erase the residents whose erasure delay is over, their points left to breakage",
            lambda: s.residents.carry_out_erasures()),  # noqa: PLW0108  (a property: read when the job runs)
        Job("checkpoints", checkpoint_seconds, 30 * MINUTE,
            "sign a checkpoint of every ledger that has new entries, and submit the latest to the witnesses",
            lambda: _checkpoints(s.engine, s.signer, s.clock, s.witnessing)),
    ]  # fmt: skip
    if payouts_enabled:
        jobs.append(Job("payouts", MINUTE, HOUR, "advance queued payouts through Stripe Connect, with their retries",
                        lambda: _payouts(s.payouts, s.programs)))  # fmt: skip
    return jobs


def scheduler(services: Services, checkpoint_seconds: int = CHECKPOINT_SECONDS, owner: str | None = None,
              tick_seconds: float = 1.0) -> Scheduler:  # fmt: skip
    """The program's schedule over these services: what `entraide serve` runs in the background,
    `entraide jobs` lists and runs, and `/v1/health/jobs` reports."""
    jobs = recurring_jobs(services, services.payouts_enabled, checkpoint_seconds)
    return Scheduler(services.engine, jobs, services.clock, owner, tick_seconds)


def _forget_request_keys(engine: Engine, clock: Callable[[], int]) -> int:
    with engine.begin() as conn:
        return idempotency.forget(conn, clock() - idempotency.KEEP_SECONDS * 1_000_000)


def _delivery(indexer: SearchIndexer) -> Summary:
    report = indexer.deliver()
    return {"delivered": report.delivered, "sent": report.sent, "failed": report.failed}


def _expiry(expiry: Expiry) -> Summary:
    report = expiry.run(None, "system:jobs")
    return {"cities": len(report), "points": sum(r["points"] for r in report.values()),
            "accounts": sum(r["accounts"] for r in report.values()), "deferred": sum(r["refused"] for r in report.values())}  # fmt: skip


def _payouts(payouts: Payouts, programs: Programs) -> Summary:
    """Each city's due payouts, one city at a time: the worker pays only the city it is run for."""
    total: Summary = {}
    for city in programs.cities():
        for outcome, count in payouts.run(city).items():
            total[outcome] = total.get(outcome, 0) + count
    return total


def _checkpoints(engine: Engine, signer: Signer, clock: Callable[[], int], witnessing: Witnessing) -> Summary:
    """A checkpoint per ledger whose head moved since its last one (make_checkpoints skips the others),
    then, once that transaction has committed, the latest of each ledger (this run's, a period
    close's, or one a witness missed) to the witnesses that have not cosigned it."""
    with engine.connect() as conn:
        before = {c["ledger"]: c["tree_size"] for c in journal.latest_checkpoints(conn)}
    made = audit.make_checkpoints(engine, signer, clock)
    summary = {"ledgers": len(made), "signed": sum(1 for c in made if before.get(c["ledger"]) != c["tree_size"])}
    if witnessing.config.enabled:  # with witnessing off the summary stays as it was: nothing to count
        summary |= witnessing.submit_latest().summary()
    return summary


def seconds_until_checkpoint(jobs: Scheduler, now_us: int) -> int:
    """Seconds until the checkpoints job runs next (its interval when no server has scheduled it yet):
    how long a new entry waits for its inclusion proof."""
    job = next((j for j in jobs.status() if j.name == CHECKPOINTS_JOB), None)
    if job is None:
        return CHECKPOINT_SECONDS
    if job.next_run_us is None:
        return job.interval_seconds
    return max(1, -(-(job.next_run_us - now_us) // 1_000_000))
