"""Keeping the search index in step with the catalog: the outbox worker and the full reindex.

A catalog change writes its outbox row (item id, version, document or deletion) in the change's own
transaction, so the change and the promise to index it commit together. The worker then:

1. leases due rows (oldest first; `FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers share the queue);
2. keeps the newest version per item (older pending versions are superseded, not sent);
3. sends the batch to the backend, which skips any document older than the one it holds;
4. marks the rows delivered, or, if the backend failed, schedules a retry with exponential
   backoff (1 s, 2 s, 4 s … capped at 5 minutes). Rows are never dropped: an outage only delays.

Delivery is idempotent by (id, version): a batch the backend applied but did not acknowledge is sent
again and changes nothing. The ledger is never touched here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from marketplace.adapters import store
from marketplace.domain.catalog import Item, search_document
from marketplace.domain.search import SearchBackend

BATCH_ROWS = 200
LEASE_SECONDS = 60
FIRST_RETRY_SECONDS = 1
MAX_RETRY_SECONDS = 300
MAX_BATCHES_PER_RUN = 1_000
REINDEX_PAGE = 500
KEEP_DELIVERED_SECONDS = 7 * 86_400
MAX_SETTLED_BY_REINDEX = 100_000  # beyond, pending rows are simply delivered as usual
log = logging.getLogger("entraide.search")


def retry_delay_seconds(attempts: int) -> int:
    """Exponential backoff, bounded: the n-th failure waits 2^(n-1) s, at most MAX_RETRY_SECONDS."""
    assert attempts >= 1
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS << min(attempts - 1, 20))


@dataclass
class DeliveryReport:
    delivered: int = 0  # outbox rows settled (sent, or superseded by a newer version)
    sent: int = 0  # documents and deletions the backend received
    failed: int = 0  # rows rescheduled after a backend failure
    batches: int = 0

    def add(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.sent += other.sent
        self.failed += other.failed
        self.batches += other.batches


class SearchIndexer:
    def __init__(self, engine: Engine, backend: SearchBackend, clock: Callable[[], int]) -> None:
        self.engine, self.backend, self.clock = engine, backend, clock

    def deliver_once(self, limit: int = BATCH_ROWS) -> DeliveryReport:
        now = self.clock()
        with self.engine.begin() as conn:
            rows = store.claim_outbox(conn, now, now + LEASE_SECONDS * 1_000_000, min(limit, BATCH_ROWS))
        if not rows:
            return DeliveryReport()
        newest: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["version"] >= newest.get(row["item_id"], row)["version"]:
                newest[row["item_id"]] = row
        upserts = [json.loads(r["document"]) for r in newest.values() if r["document"] is not None]
        deletes = [(r["item_id"], r["version"]) for r in newest.values() if r["document"] is None]
        try:
            self.backend.apply(upserts, deletes)
        except Exception as exc:  # noqa: BLE001 — any backend failure (network, HTTP, lock): the rows wait for a retry
            log.warning("search backend %s failed on %d documents: %s", self.backend.name, len(newest), exc)
            with self.engine.begin() as conn:
                for row in rows:
                    attempts = row["attempts"] + 1
                    later = now + retry_delay_seconds(attempts) * 1_000_000
                    store.outbox_failed(conn, row["id"], attempts, later, f"{type(exc).__name__}: {exc}")
            return DeliveryReport(failed=len(rows), batches=1)
        with self.engine.begin() as conn:
            store.outbox_delivered(conn, [r["id"] for r in rows], self.clock())
        return DeliveryReport(delivered=len(rows), sent=len(newest), batches=1)

    def deliver(self, max_batches: int = MAX_BATCHES_PER_RUN) -> DeliveryReport:
        """Deliver what is due until nothing is, a batch fails, or `max_batches` were sent."""
        total = DeliveryReport()
        for _ in range(max_batches):
            report = self.deliver_once()
            total.add(report)
            if report.batches == 0 or report.failed:
                break
        return total

    def deliver_quietly(self) -> None:
        """Right after a change: index it now if the backend answers; the outbox keeps it otherwise."""
        try:
            self.deliver(max_batches=1)
        except Exception:  # the change is committed and its outbox row durable: never fail the caller
            log.exception("inline search delivery failed; the outbox will retry")

    def status(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return store.outbox_stats(conn) | {"backend": self.backend.name}

    def forget_delivered(self) -> int:
        with self.engine.begin() as conn:
            return store.forget_delivered(conn, self.clock() - KEEP_DELIVERED_SECONDS * 1_000_000)

    # --- full reindex -------------------------------------------------------------------------

    def count_items(self) -> int:
        with self.engine.connect() as conn:
            return store.count_all_items(conn)

    def _documents(self, progress: Callable[[int], None]) -> Iterator[list[dict[str, Any]]]:
        after = ""
        while True:
            with self.engine.connect() as conn:
                rows = store.items(conn, after_id=after, limit=REINDEX_PAGE)
                shops = {m: store.shop(conn, m) for m in {r["merchant_id"] for r in rows if r["merchant_id"]}}
            if not rows:
                return
            after = rows[-1]["id"]
            items = [Item.from_row(r) for r in rows]
            yield [search_document(i, shops.get(i.merchant_id)) for i in items if i.indexable]
            progress(len(rows))

    def reindex(self, progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
        """Rebuild the index from the database and swap it in; then settle and replay the outbox around it.

        Rows pending when the rebuild starts are visible to it, so they are settled by it. Rows delivered
        while it ran may have reached the index it replaced, so they are delivered again (idempotent).
        """
        started_us = self.clock()
        with self.engine.connect() as conn:
            pending = store.pending_outbox_ids(conn, MAX_SETTLED_BY_REINDEX)
        indexed = self.backend.rebuild(self._documents(progress))
        with self.engine.begin() as conn:
            replayed = store.requeue_outbox(conn, started_us, self.clock())
            store.settle_outbox(conn, pending, self.clock())
        self.deliver()
        return {"indexed": indexed, "settled": len(pending), "replayed": replayed, "backend": self.backend.name}
