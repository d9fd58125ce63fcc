"""Background upkeep in `entraide serve`: what must happen even when no request arrives.

Every `interval_seconds`: release holds past their expiry (appends only sweep the chains they
touch, so a quiet city's holds would otherwise wait), deliver the search outbox (its retries after
an outage), and settle redemptions a crash or an unpaid card payment left behind. Each task is
idempotent and runs in its own transactions; a failure is logged and retried next round. Several
servers may run it at once: the ledger locks its chains, the outbox leases its rows, and the sweep
compares and sets.
"""

from __future__ import annotations

import logging
import threading

from api.bootstrap import Context

log = logging.getLogger("entraide.maintenance")


class Maintenance:
    def __init__(self, ctx: Context, interval_seconds: float) -> None:
        self.ctx, self.interval_seconds = ctx, interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, object]:
        """One round of every task; what each did, or the error that stopped it this round."""
        tasks = {
            "expired_holds": self.ctx.ledger.expire_holds,
            "search_delivered": lambda: self.ctx.search_indexer.deliver().delivered,
            "redemptions_settled": self.ctx.redemptions.recover,
        }
        done: dict[str, object] = {}
        for name, task in tasks.items():
            try:
                done[name] = task()
            except Exception as exc:  # upkeep must outlive a bad round: log it, try again next time
                log.exception("maintenance task %s failed", name)
                done[name] = f"error: {exc.__class__.__name__}"
        return done

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="entraide-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.run_once()
