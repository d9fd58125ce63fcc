"""Idempotency-Keys of creating requests (ledger/adapters/idempotency.py), on both databases."""

from __future__ import annotations

import threading

import msgspec
import pytest
from sqlalchemy import func, select

from api.bootstrap import Context
from ledger.adapters import idempotency
from ledger.adapters.tables import RequestKeyRow
from ledger.domain.errors import IdempotencyConflict


class Made(msgspec.Struct, frozen=True):
    id: str
    n: int


def _create(ctx: Context, key: str, request: dict, made: list[str], fail: bool = False) -> Made:
    with ctx.engine.begin() as conn:

        def produce() -> Made:
            made.append(key)
            if fail:
                raise RuntimeError("the creation failed")
            return Made(id=f"thing-{len(made)}", n=len(made))

        return idempotency.once(conn, "brossard:staff:tests", key, request, Made, produce, 1)


def _keys(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(RequestKeyRow)).scalar_one()


def test_a_retry_replays_the_result_and_a_different_request_is_refused(ctx: Context) -> None:
    made: list[str] = []
    first = _create(ctx, "k1", {"name": "Pool"}, made)
    assert _create(ctx, "k1", {"name": "Pool"}, made) == first and made == ["k1"]
    with pytest.raises(IdempotencyConflict):
        _create(ctx, "k1", {"name": "Library"}, made)
    assert _create(ctx, "k2", {"name": "Pool"}, made) != first and made == ["k1", "k2"]


def test_a_failed_creation_leaves_no_claim_and_its_retry_runs_again(ctx: Context) -> None:
    made: list[str] = []
    with pytest.raises(RuntimeError):
        _create(ctx, "k1", {"name": "Pool"}, made, fail=True)
    assert _keys(ctx) == 0
    assert _create(ctx, "k1", {"name": "Pool"}, made).n == 2 and _keys(ctx) == 1


def test_scopes_keep_callers_apart(ctx: Context) -> None:
    with ctx.engine.begin() as conn:
        a = idempotency.once(conn, "a", "k", {}, Made, lambda: Made(id="a", n=1), 1)
        b = idempotency.once(conn, "b", "k", {"other": 1}, Made, lambda: Made(id="b", n=1), 1)
    assert (a.id, b.id) == ("a", "b")


def test_concurrent_first_uses_create_once(ctx: Context) -> None:
    made: list[str] = []
    results: list[Made] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        try:
            results.append(_create(ctx, "same", {"name": "Pool"}, made))
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(made) == 1 and len(results) == 4 and len(set(results)) == 1


def test_keys_older_than_a_day_are_forgotten_by_their_job(ctx: Context) -> None:
    from operations.service_layer.jobs import scheduler

    made: list[str] = []
    with ctx.engine.begin() as conn:
        idempotency.once(conn, "s", "old", {}, Made, lambda: Made(id="old", n=1), ctx.clock() - 86_401 * 1_000_000)
        idempotency.once(conn, "s", "new", {}, Made, lambda: Made(id="new", n=1), ctx.clock() - 3_600 * 1_000_000)
    assert scheduler(ctx).run_now("request_keys_prune").result == {"forgotten": 1}
    assert _keys(ctx) == 1
    with ctx.engine.begin() as conn:  # still honoured: a replay, nothing made
        assert idempotency.once(conn, "s", "new", {}, Made, lambda: Made(id=str(made.append("x")), n=2), 1).id == "new"
    assert made == []
