"""Staff corrections: a wrong attestation reversed, a municipal service or event seat refunded, a wallet
corrected — always as a new compensating transfer (the journal is never edited), with a reason, audited
in the same transaction, and linked to what it corrects by this service's `corrections` row.

The journal's `ref` is kept for merchants' refunds (REFUNDABLE_KINDS, checked by the verifier), so a
correction is a `single` of kind `correction` without one; "never more than is left" is counted here,
over the corrections of the same target. Above the program's `correction_approval_points` a
correction stays `pending` until a second principal — another staff officer or a city administrator,
never the proposer under another token — approves it; the transfer is written only then.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine

from community.adapters import store
from community.domain.access import SecondPrincipalRequired, identity
from community.domain.errors import CorrectionNotPending, UnknownCorrection, UnknownCorrectionTarget
from community.schemas import Correction, Corrections, CorrectionTransfer
from community.service_layer.programs import Programs
from ledger.adapters import idempotency, journal
from ledger.domain import accounts
from ledger.domain.errors import ExceedsOriginal, InvalidRequest
from ledger.domain.transfers import MAX_AMOUNT_POINTS, TransferRequest, linked_transfers
from ledger.service_layer.audit_trail import AuditTrail
from ledger.service_layer.transfers import LedgerService
from marketplace.adapters import store as marketplace_store
from marketplace.service_layer.redemptions import give_back_units

KINDS = ("attestation", "redemption", "wallet")
DIRECTIONS = ("credit", "debit")
MAX_REASON_CHARS = 500
MAX_PAGE = 100
TRANSFER_KIND = "correction"
ATTESTED_KINDS = ("earn_civic", "earn_volunteer")  # what an organization's attestation writes
REFUNDED_ITEM_KINDS = ("service", "event")  # a merchant's offer is refunded at its till (POST /v1/pos/refunds)


def _view(row: dict[str, Any], replayed: bool = False) -> Correction:
    posted = json.loads(row["transfer_ids"]) if row["transfer_ids"] else []
    fields = {k: v for k, v in row.items() if k != "transfer_ids"}
    transfers = [CorrectionTransfer(ledger=ledger, transfer_id=tid) for ledger, tid in posted]
    return Correction(**fields, transfers=transfers, replayed=replayed)


class Target:
    """What a correction corrects, as found in the city: whose wallet, which way, and how much at most."""

    def __init__(self, resident_id: str, home_city: str, direction: str, most_points: int | None,
                 redemption: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.resident_id, self.home_city, self.direction = resident_id, home_city, direction
        self.most_points, self.redemption = most_points, redemption


class CorrectionsService:
    def __init__(self, engine: Engine, ledger: LedgerService, programs: Programs, audit: AuditTrail,
                 clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.ledger, self.programs, self.audit, self.clock = engine, ledger, programs, audit, clock

    def propose(self, city: str, kind: str, target: str, points: int, reason: str, actor: str, *, key: str,
                direction: str | None = None) -> Correction:  # fmt: skip
        """Propose a correction; at or below the program's threshold it posts at once. A retry with the
        same Idempotency-Key (per city and person) answers the first correction and writes nothing."""
        _check(kind, target, points, reason, direction)
        self.programs.get(city)
        now = self.clock()
        request = {"kind": kind, "target": target, "points": points, "reason": reason, "direction": direction}
        made: list[Correction] = []

        def produce() -> Correction:
            made.append(self._propose(conn, city, kind, target, points, reason, actor, direction, now))
            return made[0]

        with self.engine.begin() as conn:
            first = idempotency.once(conn, f"{city}:{identity(actor)}:corrections.propose", key, request, Correction,
                                     produce, now)  # fmt: skip
        return first if made else msgspec.structs.replace(first, replayed=True)

    def _propose(self, conn: Connection, city: str, kind: str, target: str, points: int, reason: str, actor: str,
                 direction: str | None, now: int) -> Correction:  # fmt: skip
        found = self._target(conn, city, kind, target, direction)
        self._check_left(conn, city, kind, target, found, points, ("pending", "posted"))
        row = {"id": "co" + secrets.token_hex(10), "city": city, "kind": kind, "target": target,
               "resident_id": found.resident_id, "direction": found.direction, "points": points, "reason": reason.strip(),
               "status": "pending", "proposed_by": actor, "proposed_at_us": now, "decided_by": None,
               "decided_at_us": None, "transfer_ids": None}  # fmt: skip
        store.add_correction(conn, **row)
        self.audit.record(conn, actor=actor, action="correction.propose", city=city, target=f"{kind}:{target}",
                          before=None, after=_audited(row), now_us=now)  # fmt: skip
        if points <= self.programs.get(city, conn).correction_approval_points:
            return self._post(conn, row, found, actor, now)
        return _view(row)

    def decide(self, city: str, correction_id: str, decision: str, actor: str) -> Correction:
        """Approve (a principal other than the proposer) or reject (anyone allowed, the proposer too) a
        pending correction; approving writes its transfer, or refuses and leaves it pending."""
        assert decision in ("approve", "reject")
        now = self.clock()
        with self.engine.begin() as conn:
            row = store.correction(conn, correction_id, for_update=True) if isinstance(correction_id, str) else None
            if row is None or row["city"] != city:
                raise UnknownCorrection("no such correction in this city")
            if row["status"] != "pending":
                raise CorrectionNotPending("this correction was already decided", status=row["status"])
            if decision == "reject":
                if not store.decide_correction(
                    conn, correction_id, status="rejected", decided_by=actor, decided_at_us=now
                ):
                    raise CorrectionNotPending("this correction was decided meanwhile", status="decided")
                self.audit.record(conn, actor=actor, action="correction.reject", city=city, target=f"{row['kind']}:{row['target']}",
                                  before={"status": "pending"}, after={"id": correction_id, "status": "rejected"}, now_us=now)  # fmt: skip
                return _view(store.correction(conn, correction_id))  # type: ignore[arg-type]
            if identity(actor) == identity(row["proposed_by"]):
                raise SecondPrincipalRequired("the proposer cannot approve their own correction")
            found = self._target(conn, city, row["kind"], row["target"], row["direction"])
            self._check_left(conn, city, row["kind"], row["target"], found, row["points"], ("posted",))
            return self._post(conn, row, found, actor, now)

    def get(self, city: str, correction_id: str) -> Correction:
        with self.engine.connect() as conn:
            row = store.correction(conn, correction_id) if isinstance(correction_id, str) else None
        if row is None or row["city"] != city:
            raise UnknownCorrection("no such correction in this city")
        return _view(row)

    def list(self, city: str, status: str | None = "pending", before_us: int | None = None,
             limit: int = MAX_PAGE) -> Corrections:  # fmt: skip
        """The city's corrections in `status` (None: all), newest first, a page at a time."""
        limit = max(1, min(limit, MAX_PAGE))
        with self.engine.connect() as conn:
            rows = store.corrections(conn, city, status, before_us, limit + 1)
        more = len(rows) > limit
        page = [_view(row) for row in rows[:limit]]
        return Corrections(corrections=page, next_before_us=page[-1].proposed_at_us if more else None)

    # --- finding the target and writing the transfer ---------------------------------------------

    def _target(self, conn: Connection, city: str, kind: str, target: str, direction: str | None) -> Target:
        """The target in this city, or UnknownCorrectionTarget: another city's looks the same as none."""
        if kind == "attestation":
            entry = journal.transfers(conn, [(city, target)]).get((city, target))
            if entry is None or entry["kind"] not in ATTESTED_KINDS or entry["phase"] != "single":
                raise UnknownCorrectionTarget("no attestation by that transfer id in this city", kind=kind)
            wallet = accounts.parse_account(entry["credit_account"])
            assert wallet.owner is not None, "an attestation credits a wallet"
            return Target(wallet.owner, city, "debit", entry["amount"])
        if kind == "redemption":
            redemption = marketplace_store.redemption(conn, target)
            item = marketplace_store.item(conn, redemption["item_id"]) if redemption else None
            if (redemption is None or item is None or redemption["city"] != city or redemption["status"] != "completed"
                    or item["kind"] not in REFUNDED_ITEM_KINDS):  # fmt: skip
                raise UnknownCorrectionTarget("no completed service or event redemption by that id here", kind=kind)
            return Target(
                redemption["resident_id"], redemption["home_city"], "credit", redemption["points"], redemption
            )
        resident = store.resident(conn, target)
        if resident is None or resident["city"] != city:
            raise UnknownCorrectionTarget("no resident by that id in this city", kind=kind)
        assert direction in DIRECTIONS, "_check requires the direction of a wallet correction"
        return Target(target, city, direction, None)

    def _check_left(self, conn: Connection, city: str, kind: str, target: str, found: Target, points: int,
                    counted: tuple[str, ...]) -> None:  # fmt: skip
        if found.most_points is None:
            return
        # Counting under the chains' locks (which the append takes anyway, in the same order) keeps two
        # concurrent corrections of one target from both passing the count.
        journal.lock_ledgers(conn, {city, found.home_city})
        left = found.most_points - store.corrected_points(conn, city, kind, target, counted)
        if points > left:
            raise ExceedsOriginal(f"only {max(left, 0)} points of {target} are left to correct", ref=target)

    def _post(self, conn: Connection, row: dict[str, Any], found: Target, actor: str, now: int) -> Correction:
        key = f"correction:{row['id']}"
        wallet = accounts.wallet(found.resident_id)
        if row["kind"] == "redemption":
            requests = linked_transfers(key, TRANSFER_KIND, "single", row["city"], accounts.SERVICES_REVENUE,
                                        found.home_city, wallet, row["points"])  # fmt: skip
        elif found.direction == "debit":
            requests = [
                TransferRequest(
                    row["city"], key, TRANSFER_KIND, "single", wallet, accounts.PROGRAM_BUDGET, row["points"]
                )
            ]
        else:
            requests = [
                TransferRequest(
                    row["city"], key, TRANSFER_KIND, "single", accounts.PROGRAM_BUDGET, wallet, row["points"]
                )
            ]
        (outcome,) = self.ledger.submit([requests], conn)
        if outcome.error is not None:
            raise outcome.error  # the caller's transaction rolls back: nothing of this correction is kept
        transfer_ids = json.dumps([[t.ledger, t.transfer_id] for t in outcome.transfers])
        moved = store.decide_correction(conn, row["id"], status="posted", decided_by=actor, decided_at_us=now,
                                        transfer_ids=transfer_ids)  # fmt: skip
        if not moved:
            raise CorrectionNotPending("this correction was decided meanwhile", status="decided")
        redemption = found.redemption
        if redemption is not None and row["points"] == self._left_of(conn, row, redemption["points"]):
            # the whole redemption is refunded: its seat or unit goes back on sale, and its voucher is no
            # longer good at the counter
            give_back_units(conn, redemption, now)  # the search outbox worker delivers the change
            moved = marketplace_store.move_redemption(conn, redemption["id"], ("completed",), now, status="refunded")
            assert moved, redemption["id"]  # the target is read under the chains' lock, completed
        posted = store.correction(conn, row["id"])
        assert posted is not None
        self.audit.record(conn, actor=actor, action="correction.post", city=row["city"], target=f"{row['kind']}:{row['target']}",
                          before={"status": "pending"}, after=_audited(posted), now_us=now)  # fmt: skip
        return _view(posted)

    def _left_of(self, conn: Connection, row: dict[str, Any], most_points: int) -> int:
        """What was left of the target before this correction posted (it is counted as posted now)."""
        posted = store.corrected_points(conn, row["city"], row["kind"], row["target"], ("posted",))
        return most_points - posted + int(row["points"])


def _audited(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "kind", "target", "resident_id", "direction", "points", "reason", "status",
                                "transfer_ids")}  # fmt: skip


def _check(kind: str, target: str, points: int, reason: str, direction: str | None) -> None:
    if kind not in KINDS:
        raise InvalidRequest(
            f"kind must be one of {KINDS}", field="kind", reason="not_one_of", allowed=", ".join(KINDS)
        )
    if not isinstance(target, str) or not 1 <= len(target) <= 64:
        raise InvalidRequest("target must have 1 to 64 characters", field="target", reason="length", min_chars=1,
                             max_chars=64)  # fmt: skip
    if type(points) is not int or not 0 < points <= MAX_AMOUNT_POINTS:
        raise InvalidRequest("points must be a positive integer", field="points", reason="out_of_range", min_value=1,
                             max_value=MAX_AMOUNT_POINTS)  # fmt: skip
    if not isinstance(reason, str) or not 1 <= len(reason.strip()) <= MAX_REASON_CHARS:
        raise InvalidRequest(f"a reason of 1 to {MAX_REASON_CHARS} characters is required", field="reason",
                             reason="length", min_chars=1, max_chars=MAX_REASON_CHARS)  # fmt: skip
    if (kind == "wallet") != (direction in DIRECTIONS) or (kind != "wallet" and direction is not None):
        raise InvalidRequest("a wallet correction, and only one, has a direction: credit or debit", field="direction",
                             reason="not_one_of", allowed=", ".join(DIRECTIONS))  # fmt: skip
