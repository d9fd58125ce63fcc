"""The recurring jobs of `entraide serve`: one run per due job across servers, a crashed runner's job
taken over after its lease, a failing job visible to staff and retried with backoff while the
others go on, and `entraide jobs`. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.bootstrap import Settings, open_context
from api.cli import app as cli
from api.http.app import create_app
from ledger.adapters.tables import AuditRow, CheckpointRow
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.keys import now_us
from operations.domain.schedule import MIN_BACKOFF_CAP_SECONDS, Job, retry_delay_seconds
from operations.service_layer.jobs import recurring_jobs, scheduler
from operations.service_layer.scheduler import Scheduler
from tests.stripe_server import StripeServer
from tests.test_finance import JAN, end_of_january, january_activity, payout_world
from tests.world import World, standard_world

TICK_SECONDS = 0.02
WAIT_SECONDS = 60
DAY_S = 86_400


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(TICK_SECONDS)


def rows(ctx) -> dict[str, dict]:
    return {job.name: job for job in scheduler(ctx).status()}


def settled(ctx) -> bool:
    """Every job has run at least once and none is running."""
    return all(j.runs >= 1 and not j.running for j in rows(ctx).values())


def busy_world(ctx, clock) -> World:
    """Work for every job: points past their expiry period (Delson), a quiet city's hold past its
    expiry (Magog, whose points do not expire yet), entries without a checkpoint (both)."""
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("delson", expiry_days=1)
    world.city("magog")
    world.resident("alice", "delson", points=500)
    wallet = world.resident("bob", "magog", points=300).wallet
    ctx.ledger.transfer(TransferRequest("magog", "h", "redeem", "pending", wallet, "services:revenue", 200, None, 60))
    clock.advance(2 * DAY_S)
    return world


def count(ctx, query) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(query).scalar_one()


def expiry_runs_audited(ctx) -> int:
    return count(ctx, select(func.count()).select_from(AuditRow).where(AuditRow.action == "expiry.run"))


def served(stack: ExitStack, ctx, owner: str, **kw) -> TestClient:
    schedule = scheduler(ctx, owner=owner, tick_seconds=TICK_SECONDS, **kw)
    return stack.enter_context(TestClient(create_app(ctx, jobs=schedule)))


# --- once across servers ------------------------------------------------------------------------


def test_two_servers_run_each_due_job_once_between_them(ctx, clock, settings) -> None:
    world = busy_world(ctx, clock)
    other = open_context(settings, clock=clock)  # a second server process's context on the same database
    with ExitStack() as stack:
        served(stack, ctx, "server-a")
        served(stack, other, "server-b")
        wait_for(lambda: settled(ctx), "every job to run")
        time.sleep(20 * TICK_SECONDS)  # both servers keep looking; the clock stands still, so nothing is due again
        jobs = rows(ctx)
    other.engine.dispose()
    assert {name: j.runs for name, j in jobs.items()} == dict.fromkeys(jobs, 1)
    assert all(j.last_outcome == "ok" and j.next_run_us == j.last_finished_us + j.interval_seconds * 1_000_000
               for j in jobs.values())  # fmt: skip
    assert expiry_runs_audited(ctx) == 2  # one points-expiry run, which audits each of the two cities
    assert jobs["points_expiry"].last_result == {"cities": 2, "points": 500, "accounts": 1, "deferred": 0}
    assert jobs["expire_holds"].last_result == {"expired": 1}
    assert (world.available("alice"), world.available("bob")) == (0, 300)
    assert jobs["checkpoints"].last_result == {"ledgers": 2, "signed": 2}
    assert count(ctx, select(func.count()).select_from(CheckpointRow)) == 2


def test_runners_racing_for_a_due_job_run_it_once_per_interval(ctx, clock) -> None:
    runs: list[str] = []

    def probe() -> dict:
        runs.append(threading.current_thread().name)
        time.sleep(0.2)  # still running while the other runners try their claims
        return {"n": len(runs)}

    runners = [Scheduler(ctx.engine, [Job("probe", 60, 120, "test", probe)], clock, owner=f"r{n}") for n in range(6)]
    runners[0].register()
    for round_ in range(1, 4):
        barrier = threading.Barrier(len(runners))

        def race(runner: Scheduler, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            runner.run_due()

        threads = [threading.Thread(target=race, args=(r,)) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(runs) == round_  # exactly one of the six, each round
        clock.advance(60)


# --- a crashed runner ---------------------------------------------------------------------------


def test_a_crashed_runners_job_is_taken_over_when_its_lease_ends(ctx, clock) -> None:
    stuck, release = threading.Event(), threading.Event()

    def hangs() -> dict:
        stuck.set()
        release.wait(WAIT_SECONDS)  # a runner that died mid-run never records anything either
        return {"late": 1}

    done: list[int] = []
    crashed = Scheduler(
        ctx.engine, [Job("probe", 3_600, 300, "test", hangs)], clock, owner="crashed", tick_seconds=TICK_SECONDS
    )
    healthy = Scheduler(ctx.engine, [Job("probe", 3_600, 300, "test", lambda: done.append(1) or {"ok": 1})], clock,
                        owner="healthy")  # fmt: skip
    crashed.start()
    try:
        assert stuck.wait(WAIT_SECONDS)
        assert healthy.run_due() == [] and not done  # the lease is live
        clock.advance(299)
        assert healthy.run_due() == [] and not done
        clock.advance(2)  # the lease has run out: the job is taken over (it was due all along)
        (outcome,) = healthy.run_due()
        assert outcome.ran and outcome.result == {"ok": 1} and done == [1]
    finally:
        release.set()
        crashed.stop()
    (row,) = healthy.status()
    assert (
        row.runs == 1 and row.last_result == {"ok": 1} and row.lease_owner is None
    )  # the late runner's record was refused


# --- a failing job ------------------------------------------------------------------------------


def test_a_failing_job_shows_its_error_to_staff_is_retried_with_backoff_and_stops_no_other(
    ctx, clock, settings
) -> None:
    world = busy_world(ctx, clock)
    world.grant("auditor", "auditor", "delson", "a1")
    world.grant("finance", "finance", "magog", "f1")
    # A server deployed without the secrets mount: everything that signs fails there. Staff ask
    # another server (each answers from the shared jobs table).
    keyless = open_context(
        Settings(settings.data_dir, settings.database_url, settings.data_dir / "no-keys"), clock=clock
    )
    with ExitStack() as stack:
        served(stack, keyless, "keyless")
        world.client = stack.enter_context(TestClient(create_app(ctx)))
        wait_for(lambda: settled(ctx), "every job to run")
        body = world.bearer("staff-delson", "GET", "/v1/health/jobs").json()
        jobs = {j["name"]: j for j in body["jobs"]}
        assert body["status"] == "degraded"
        for name in ("checkpoints", "expire_holds", "points_expiry"):  # they sign entries or checkpoints
            assert jobs[name]["last_outcome"] == "error" and jobs[name]["last_result"] is None
            assert re.fullmatch(r"KeyStoreError: signing key \w+ is not in .*no-keys", jobs[name]["last_error"])
            assert jobs[name]["next_run_us"] == jobs[name]["last_finished_us"] + 30 * 1_000_000  # first retry: 30 s
        for name in ("search_outbox", "search_outbox_prune", "abandoned_redemptions"):
            assert jobs[name]["last_outcome"] == "ok" and jobs[name]["last_error"] is None, jobs[name]
        assert {k: jobs["checkpoints"][k] for k in ("runs", "failures_in_a_row", "running")} == {
            "runs": 1,
            "failures_in_a_row": 1,
            "running": False,
        }

        clock.advance(30)
        wait_for(lambda: rows(ctx)["checkpoints"].runs == 2, "the first retry")
        again = rows(ctx)["checkpoints"]
        assert again.failures_in_a_row == 2 and again.next_run_us == again.last_finished_us + 60 * 1_000_000  # doubled
        # The others keep their own schedule meanwhile (a tick runs the due jobs one after another).
        wait_for(lambda: rows(ctx)["search_outbox"].runs == 2, "the outbox's own second run")
    keyless.engine.dispose()

    # The key is back (a server with the mount): the next run succeeds and the job is healthy again.
    with ExitStack() as stack:
        world.client = served(stack, ctx, "with-keys")
        clock.advance(60)
        wait_for(lambda: rows(ctx)["checkpoints"].runs == 3, "the retry on a server with keys")
        for who in ("auditor", "finance"):
            body = world.bearer(who, "GET", "/v1/health/jobs").json()
            assert {j["name"]: j["last_outcome"] for j in body["jobs"]}["checkpoints"] == "ok"
    assert rows(ctx)["checkpoints"].failures_in_a_row == 0 and rows(ctx)["checkpoints"].last_error is None


def test_health_detail_is_for_staff_and_plain_health_stays_as_it_was(ctx, clock) -> None:
    with TestClient(create_app(ctx)) as client:
        world = World(ctx, client)
        world.city("delson")
        world.resident("alice", "delson")
        assert client.get("/v1/health").json() == {"status": "ok"}
        assert client.get("/v1/health/jobs").status_code == 401
        assert world.bearer("alice", "GET", "/v1/health/jobs").status_code == 403
        world.organization("o1", "delson")
        world.grant("org", "org", "delson", "o1", org_id="o1")
        assert world.bearer("org", "GET", "/v1/health/jobs").status_code == 403
        body = world.bearer("staff-delson", "GET", "/v1/health/jobs").json()
    # Nothing ran it (this app runs no jobs): the stated schedule, not yet scheduled anywhere.
    assert [j["name"] for j in body["jobs"]] == [j.name for j in recurring_jobs(ctx, payouts_enabled=False)]
    assert all(j["next_run_us"] is None and j["runs"] == 0 and j["last_outcome"] is None for j in body["jobs"])


# --- the payout worker --------------------------------------------------------------------------


def test_the_payout_worker_is_scheduled_when_stripe_is_configured(ctx, clock) -> None:
    assert "payouts" not in scheduler(ctx).jobs  # payouts are off without a Stripe key
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        world = standard_world(ctx, client)
        clock.advance(DAY_S)
        january_activity(world)
    end_of_january(clock)
    ctx.settlement.close("brossard", JAN, "finance:test")
    with StripeServer() as server:
        payout_world(world, server)
        ctx.payouts.queue("brossard", JAN, "finance:test")
        schedule = scheduler(ctx)
        assert schedule.jobs["payouts"].interval_seconds == 60
        outcomes = {o.name: o for o in schedule.run_due()}
        assert outcomes["payouts"].result == {"advanced": 2, "retry_later": 0, "failed": 0}
        assert [t["destination"] for t in server.made("transfer")] == ["acct_librairie"]
        assert len(server.made("payout")) == 1


# --- the schedule itself ------------------------------------------------------------------------


@given(interval=st.integers(1, 7 * DAY_S), failures=st.integers(1, 80))
def test_retries_back_off_within_bounds(interval: int, failures: int) -> None:
    delay = retry_delay_seconds(interval, failures)
    assert min(interval, 30) <= delay <= max(interval, MIN_BACKOFF_CAP_SECONDS)
    assert delay >= retry_delay_seconds(interval, max(1, failures - 1))  # never shorter after another failure
    if failures > 40:
        assert delay == max(interval, MIN_BACKOFF_CAP_SECONDS)  # a job that keeps failing waits the longest


def test_the_documented_schedule_is_the_schedule() -> None:
    """docs/operations.md states the schedule as a table: every job, with its interval."""
    doc = (Path(__file__).parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", doc, flags=re.MULTILINE))
    for job in recurring_jobs(None, payouts_enabled=True):  # type: ignore[arg-type]  # listed, never run
        assert job.name in documented, f"{job.name} is missing from docs/operations.md"
        assert _seconds(documented[job.name]) == job.interval_seconds, job.name


def _seconds(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+) (s|min|h|day)\b.*", text.strip()).groups()
    return int(number) * {"s": 1, "min": 60, "h": 3_600, "day": DAY_S}[unit]


# --- entraide jobs ------------------------------------------------------------------------------


def test_jobs_lists_and_runs_one_now_and_waits_for_a_runner_that_holds_it(ctx, clock, settings) -> None:
    runner = CliRunner()
    common = ["--db", settings.database_url, "--data-dir", str(settings.data_dir)]
    clock.now_us = now_us()  # the command runs on the real clock
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("delson")
    world.city("magog")
    listed = runner.invoke(cli, ["jobs", *common])
    assert listed.exit_code == 0 and all(name in listed.output for name in scheduler(ctx).jobs), listed.output
    ran = runner.invoke(cli, ["jobs", "run", "checkpoints", *common])
    assert ran.exit_code == 0 and "checkpoints: ledgers 2, signed 2" in ran.output, ran.output
    assert rows(ctx)["checkpoints"].runs == 1 and rows(ctx)["checkpoints"].lease_owner is None
    assert runner.invoke(cli, ["jobs", "run", "nosuch", *common]).exit_code == 2

    release = threading.Event()
    holder = Scheduler(ctx.engine, [Job("checkpoints", 300, 600, "test", lambda: release.wait(WAIT_SECONDS) and {})],
                       clock, owner="serve:elsewhere", tick_seconds=TICK_SECONDS)  # fmt: skip
    clock.now_us = now_us() + 301 * 1_000_000  # due again for a server whose clock runs a little ahead
    holder.start()
    try:
        wait_for(lambda: rows(ctx)["checkpoints"].running, "the other runner to take the job")
        refused = runner.invoke(cli, ["jobs", "run", "checkpoints", *common])
        assert refused.exit_code == 1 and "being run by serve:elsewhere" in refused.output, refused.output
    finally:
        release.set()
        holder.stop()


@pytest.fixture(autouse=True)
def _no_leftover_job_threads():
    yield
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("entraide-job")], "job threads to end")
