"""Group commit for callers that arrive one at a time (API workers, terminals).

Many threads hand single linked groups to one writer thread per process, which drains whatever has
queued up into one `LedgerService.submit` call: while a transaction commits, the next batch fills.
Under load N concurrent requests cost one transaction instead of N; alone, a request waits for no
timer. The queue is bounded: when it is full the caller is told to back off instead of piling up.
"""

from __future__ import annotations

import asyncio
import copy
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

from ledger.domain.errors import LedgerError
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.transfers import Outcome, TransferResult

MAX_BATCH_GROUPS = 1_000
MAX_QUEUED_GROUPS = 20_000


class Overloaded(LedgerError):
    code = "overloaded"


def _late(timeout_seconds: float) -> Overloaded:
    # The batch may still commit: a retry with the same idempotency key then returns its result.
    return Overloaded(f"the ledger did not answer within {timeout_seconds:g} s; retry with the same idempotency key")


def _for_one_caller(exc: Exception) -> Exception:
    """The batch's error, copied for one of its callers, each of whom raises it in their own thread:
    a single object raised in all of them would have its traceback grown by every one (and raced
    on), so that one logged failure carried the frames of a thousand requests. The copy keeps the
    type (the API maps a database outage by it), arguments, cause and the writer's traceback."""
    try:
        mine = copy.copy(exc)
    except Exception:  # noqa: BLE001  (one that cannot be rebuilt from its arguments: shared, as it was)
        return exc
    mine.__cause__, mine.__context__, mine.__suppress_context__ = (
        exc.__cause__,
        exc.__context__,
        exc.__suppress_context__,
    )
    return mine.with_traceback(exc.__traceback__)


class BatchSubmitter(Protocol):
    """What the committer needs of the ledger service: one transaction per batch of groups."""

    def submit(self, groups: Sequence[Sequence[TransferRequest]]) -> list[Outcome]: ...


class GroupCommitter:
    def __init__(
        self, service: BatchSubmitter, max_batch_groups: int = MAX_BATCH_GROUPS, max_queued: int = MAX_QUEUED_GROUPS
    ) -> None:
        self.service = service
        self.max_batch_groups = max_batch_groups
        self._queue: queue.Queue[tuple[list[TransferRequest], Future[Outcome]] | None] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
        self.batches_committed = 0
        self._thread.start()

    def submit(self, group: Sequence[TransferRequest]) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        try:
            self._queue.put_nowait((list(group), future))
        except queue.Full:
            raise Overloaded("the ledger is busy; retry with the same idempotency key") from None
        return future

    def transfer(self, *requests: TransferRequest, timeout_seconds: float = 30) -> tuple[TransferResult, ...]:
        try:
            outcome = self.submit(requests).result(timeout=timeout_seconds)
        except TimeoutError:
            raise _late(timeout_seconds) from None
        if outcome.error is not None:
            raise outcome.error
        return outcome.transfers

    async def transfer_async(
        self, *requests: TransferRequest, timeout_seconds: float = 30
    ) -> tuple[TransferResult, ...]:
        """As `transfer`, awaited: an API handler waits for its batch without holding a thread."""
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(self.submit(requests)), timeout_seconds)
        except TimeoutError:
            raise _late(timeout_seconds) from None
        if outcome.error is not None:
            raise outcome.error
        return outcome.transfers

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch_groups:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            # A caller that gave up (timed out) cancelled its future; the others cannot be
            # cancelled any more, so that setting their results below never fails.
            batch = [(group, future) for group, future in batch if future.set_running_or_notify_cancel()]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[list[TransferRequest], Future[Outcome]]]) -> None:
        try:
            outcomes = self.service.submit([group for group, _ in batch])
        except Exception as exc:  # noqa: BLE001  the transaction failed as a whole (the database is down): every caller learns it
            for _, future in batch:
                future.set_exception(_for_one_caller(exc))
            return
        self.batches_committed += 1
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.set_result(outcome)
