"""Community organizations, and the members a city approves (organizations and merchants alike)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, Table

from community.adapters import store
from community.adapters.tables import OrganizationRow
from community.domain.access import identity
from community.domain.errors import Conflict, OrganizationNotApproved, UnknownOrganization, WrongTenant
from community.domain.program import civic_award
from community.schemas import Member, Organizations
from community.service_layer.awards import AwardRequest, Awards, body_hash
from community.service_layer.residents import Residents
from ledger.adapters import idempotency, journal
from ledger.domain import accounts
from ledger.domain.errors import InvalidRequest, LedgerError, UnknownLedger
from ledger.service_layer.audit_trail import AuditTrail
from merchants.schemas import AwardResult  # one award result, for purchases and civic activity alike

MEMBER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
STATUSES = ("pending", "approved", "suspended")


class Members:
    """Organizations or merchants of a city: enrolled pending, approved or suspended by city staff, audited."""

    def __init__(self, engine: Engine, table: Table, kind: str, unknown: type[LedgerError], not_approved: type[LedgerError],
                 audit: AuditTrail, clock: Callable[[], int]) -> None:  # fmt: skip
        self.engine, self.table, self.kind, self.audit, self.clock = engine, table, kind, audit, clock
        self.unknown, self.not_approved = unknown, not_approved

    def add(self, city: str, member_id: str, name: str, actor: str, *, key: str, **extra: object) -> Member:
        """Enrol a member, pending until staff approve it. A retry with the same `key` (per city and
        actor) returns the first record; another member under that key is an idempotency conflict."""
        if not isinstance(member_id, str) or not MEMBER_ID.fullmatch(member_id):
            raise InvalidRequest(f"invalid {self.kind} id {member_id!r}", field="id", reason="invalid_value")
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            raise InvalidRequest(
                "name must have 1 to 200 characters", field="name", reason="length", min_chars=1, max_chars=200
            )
        now = self.clock()
        request = {"id": member_id, "name": name, **extra}
        with self.engine.begin() as conn:
            scope = f"{city}:{identity(actor)}:{self.kind}s.add"
            return idempotency.once(conn, scope, key, request, Member, lambda: self._add(conn, city, member_id, name, actor, now, extra),
                                    now)  # fmt: skip

    def _add(
        self, conn: Connection, city: str, member_id: str, name: str, actor: str, now: int, extra: dict[str, object]
    ) -> Member:
        if city not in journal.heads(conn):
            raise UnknownLedger(f"no ledger named {city!r}", ledger=city)
        if store.member(conn, self.table, member_id) is not None:
            raise Conflict(f"{self.kind} {member_id} already exists", field="id", reason="already_exists")
        store.add_member(
            conn, self.table, id=member_id, city=city, name=name, status="pending", created_at_us=now, **extra
        )
        self.audit.record(conn, actor=actor, action=f"{self.kind}.add", city=city, target=member_id, before=None,
                          after={"name": name, **extra}, now_us=now)  # fmt: skip
        return Member(**store.member(conn, self.table, member_id))  # type: ignore[arg-type]

    def set_status(self, member_id: str, status: str, actor: str, city: str) -> Member:
        """Approve, suspend or reinstate a member of the city."""
        if status not in STATUSES:
            raise InvalidRequest(
                f"status must be one of {STATUSES}", field="status", reason="not_one_of", allowed=", ".join(STATUSES)
            )
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._in_city(conn, member_id, city)
            store.set_member_status(conn, self.table, member_id, status)
            self.audit.record(conn, actor=actor, action=f"{self.kind}.set_status", city=city, target=member_id,
                        before={"status": row["status"]}, after={"status": status}, now_us=now)  # fmt: skip
            return Member(**store.member(conn, self.table, member_id))  # type: ignore[arg-type]

    def get(self, member_id: str, city: str | None = None) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return self._in_city(conn, member_id, city)

    def approved(self, member_id: str) -> dict[str, Any]:
        row = self.get(member_id)
        if row["status"] != "approved":
            raise self.not_approved(f"{self.kind} {member_id} is not approved")
        return row

    def list(self, city: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return store.members(conn, self.table, city)

    def listing(self, city: str) -> Organizations:
        """The city's members, by id (the organizations' listing; merchants add their terminals)."""
        return Organizations(organizations=[Member(**row) for row in self.list(city)])

    def _in_city(self, conn: Connection, member_id: str, city: str | None) -> dict[str, Any]:
        row = store.member(conn, self.table, member_id) if isinstance(member_id, str) else None
        if row is None:
            raise self.unknown(f"no {self.kind} {member_id!r}")
        if city is not None and row["city"] != city:
            raise WrongTenant(f"the {self.kind} belongs to another city")
        return row


def organizations(engine: Engine, audit: AuditTrail, clock: Callable[[], int]) -> Members:
    return Members(
        engine, OrganizationRow.__table__, "organization", UnknownOrganization, OrganizationNotApproved, audit, clock
    )


class Attestations:
    """An approved organization attests a civic activity; the city's budget pays the points."""

    def __init__(self, orgs: Members, residents: Residents, awards: Awards) -> None:
        self.orgs, self.residents, self.awards = orgs, residents, awards

    def attest(self, org_id: str, idempotency_key: str, card: str, activity: str, units: int) -> AwardResult:
        org = self.orgs.approved(org_id)
        holder = self.residents.resolve_card(card)
        holder.require_city(org["city"])
        body = {"card": card, "activity": activity, "units": units}
        return msgspec.convert(self.awards.grant(AwardRequest(
            city=org["city"], holder=holder, source="civic", actor_id=org_id, idempotency_key=f"org:{org_id}:{idempotency_key}",
            kind="earn_civic", debit_account=accounts.PROGRAM_BUDGET, body_hash=body_hash(body),
            compute=lambda program, usage, now: civic_award(program, activity=activity, units=units, level=holder.level,
                                                            time_us=now, usage=usage),
        )), AwardResult)  # fmt: skip
