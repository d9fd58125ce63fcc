"""Earning points: one transaction locks the city's chain, reads the resident's cap usage, computes
the award, appends its journal entry and keeps its explanation, so caps hold under concurrency and a
retried request returns exactly the first answer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Engine

from community.adapters import store
from community.domain.program import Award, Program, usage_buckets
from community.service_layer.programs import Programs
from community.service_layer.residents import CardHolder
from ledger.adapters import journal
from ledger.domain.errors import IdempotencyConflict
from ledger.domain.transfers import TransferRequest, linked_transfers, transfer_id_for
from ledger.service_layer.receipts import receipt_builtins
from ledger.service_layer.transfers import LedgerService


def body_hash(body: object) -> str:
    """Fingerprint of what the caller asked (not of what we computed), for idempotent retries."""
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()


@dataclass(frozen=True)
class AwardRequest:
    city: str  # the ledger that pays: the merchant's or the organization's city
    holder: CardHolder
    source: str  # purchase | civic
    actor_id: str
    idempotency_key: str  # already scoped to the actor
    kind: str
    debit_account: str
    body_hash: str
    compute: Callable[[Program, dict[str, int], int], Award]  # (program, usage, now_us) -> award
    purchase_cents: int | None = None  # a purchase's amount, kept in the answer for receipts and statements


class Awards:
    def __init__(self, engine: Engine, ledger: LedgerService, programs: Programs, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.ledger = ledger
        self.programs = programs
        self.clock = clock

    def grant(self, request: AwardRequest) -> dict[str, Any]:
        holder, city = request.holder, request.city
        transfer_id = transfer_id_for(city, request.idempotency_key)
        with self.engine.begin() as conn:
            # Serializes cap checks, as appends already are; both chains, in the ledger's lock order.
            journal.lock_ledgers(conn, {city, holder.city})
            previous = store.award(conn, city, transfer_id)
            if previous is not None:
                if previous["body_hash"] != request.body_hash:
                    raise IdempotencyConflict(
                        "idempotency key was used for another request", key=request.idempotency_key
                    )
                answer: dict[str, Any] = msgspec.json.decode(previous["response"])
                return answer | {"replayed": True}
            program = self.programs.get(city, conn)
            now = self.clock()
            day_bucket, month_bucket = usage_buckets(program, program.local_day(now))
            buckets = [day_bucket, month_bucket] + [f"campaign:{c.id}" for c in program.campaigns]
            award = request.compute(program, store.usage(conn, holder.resident_id, buckets), now)
            entry, receipt = None, None
            if award.points > 0:
                # Points earned in another city are paid by that city's ledger to the resident's wallet
                # at home through the interop accounts, both halves linked.
                group = self._transfers(request, award.points)
                (outcome,) = self.ledger.submit([group], conn)
                if outcome.error is not None:
                    raise outcome.error
                entry, receipt = outcome.transfers[-1], receipt_builtins(outcome.transfers)
                store.add_usage(conn, holder.resident_id, award.usage)
            response = {
                "transfer_id": transfer_id, "city": city, "points": award.points, "card_id": holder.card_id,
                "lines": [msgspec.to_builtins(line) for line in award.lines], "time_us": entry.time_us if entry else now,
                "replayed": False, "receipt": receipt,
            }  # fmt: skip
            if request.purchase_cents is not None:
                response["purchase_cents"] = request.purchase_cents
            store.add_award(conn, ledger=city, transfer_id=transfer_id, source=request.source, actor_id=request.actor_id,
                            resident_id=holder.resident_id, body_hash=request.body_hash,
                            response=msgspec.json.encode(response).decode(), time_us=now)  # fmt: skip
            return response

    @staticmethod
    def _transfers(request: AwardRequest, points: int) -> list[TransferRequest]:
        holder, city, key = request.holder, request.city, request.idempotency_key
        return linked_transfers(
            key, request.kind, "single", city, request.debit_account, holder.city, holder.wallet, points
        )
