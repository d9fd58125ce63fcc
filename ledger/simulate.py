"""Deterministic multi-city activity for demos, tests and benchmarks.

The simulator plays residents, merchants and organizations of the communities of the source
document: city-funded and merchant-funded earning, holds captured in full or in part, voided or left
to expire, refunds, municipal services, donations, and cross-city redemptions as linked groups on
two ledgers. Transfer ids derive from idempotency keys, so the simulator knows the id of a hold it
asked for before the result comes back; it keeps only bounded state, so a million transfers run in
constant memory. The same seed gives the same requests and, with the same start time, the same
journal, hash for hash.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from ledger.domain import accounts
from ledger.domain.transfers import Phase, TransferRequest

DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Community:
    id: str
    name: str
    population: int


# The ten cities and the Huron-Wendat Nation of the Smart Cities Challenge application (seeds/003).
COMMUNITIES = (
    Community("brossard", "Brossard", 85_721),
    Community("chateauguay", "Châteauguay", 47_906),
    Community("saint-constant", "Saint-Constant", 27_359),
    Community("saint-lambert", "Saint-Lambert", 21_861),
    Community("delson", "Delson", 7_457),
    Community("sainte-catherine", "Sainte-Catherine", 17_047),
    Community("saint-basile-le-grand", "Saint-Basile-le-Grand", 17_059),
    Community("beaconsfield", "Beaconsfield", 19_324),
    Community("magog", "Magog", 26_669),
    Community("la-prairie", "La Prairie", 24_110),
    Community("wendake", "Wendake", 2_134),
)

BUDGET_POINTS_PER_RESIDENT = 400
PURCHASE_POINTS_PER_DOLLAR = 2
MAX_SCHEDULED_HOLDS = 2_000
ABANDONED_HOLDS_PERCENT = 5  # terminals that never come back: the ledger expires those holds
MAX_RESOLUTION_DELAY_STEPS = 20
MAX_REFUNDABLE = 500

# (action, weight): the mix of a typical month.
ACTIONS = (
    ("earn_purchase", 38), ("earn_civic", 9), ("earn_volunteer", 5), ("hold", 16),
    ("service", 6), ("refund", 3), ("donation", 2), ("cross_city", 4),
)  # fmt: skip


@dataclass(frozen=True)
class Members:
    """The ids of a city's residents, merchants and organizations, when they exist outside the ledger
    (the demo enrols real ones); without them the simulator makes up `r<n>`, `m<n>` and `o<n>`."""

    residents: tuple[str, ...]
    merchants: tuple[str, ...]
    orgs: tuple[str, ...]


@dataclass
class _City:
    community: Community
    residents: int
    merchants: int
    orgs: int
    members: Members | None = None
    wallets: dict[int, int] = field(default_factory=dict)  # resident -> points the simulator believes available
    refundable: deque = field(default_factory=deque)  # (transfer_id, debit, credit, amount)
    _index: dict[str, int] = field(default_factory=dict)

    def wallet(self, resident: int) -> str:
        return accounts.wallet(self.members.residents[resident] if self.members else f"r{resident}")

    def merchant(self, merchant: int, side: str) -> str:
        merchant_id = self.members.merchants[merchant] if self.members else f"m{merchant}"
        return accounts.merchant_redeemed(merchant_id) if side == "redeemed" else accounts.merchant_issued(merchant_id)

    def org(self, org: int) -> str:
        return accounts.org(self.members.orgs[org] if self.members else f"o{org}")

    def resident_of(self, wallet: str) -> int:
        name = accounts.parse_account(wallet).owner
        assert name is not None, f"{wallet} is a resident's wallet"
        if self.members is None:
            return int(name[1:])
        if not self._index:
            self._index.update({rid: i for i, rid in enumerate(self.members.residents)})
        return self._index[name]


class Simulator:
    def __init__(self, seed: int, start_us: int, days: int = 120, scale: int = 1,
                 members: dict[str, Members] | None = None) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.seed = seed
        self.start_us = start_us
        self.span_us = days * DAY_US
        self.now_us = start_us
        self.step_us = DAY_US
        self.batch_span_us = DAY_US
        self.counter = 0
        self.cities = [
            _City(c, residents=max(20, scale * c.population // 200), merchants=max(5, scale * c.population // 2500),
                  orgs=max(2, c.population // 10_000))
            if members is None else
            _City(c, len(members[c.id].residents), len(members[c.id].merchants), len(members[c.id].orgs), members[c.id])
            for c in COMMUNITIES
        ]  # fmt: skip
        self._weights = [c.population for c in COMMUNITIES]
        self._actions = [a for a, _ in ACTIONS]
        self._action_weights = [w for _, w in ACTIONS]
        self._steps = 0
        self._scheduled: list[tuple[int, int, _City, tuple]] = []  # (due step, order, city, hold)

    def clock(self) -> int:
        return self.now_us

    def _key(self) -> str:
        self.counter += 1
        return f"sim-{self.seed}-{self.counter}"

    def ledgers(self) -> list[str]:
        return [c.community.id for c in self.cities]

    def funding(self) -> list[list[TransferRequest]]:
        """Each city funds its yearly program budget."""
        return [
            [TransferRequest(c.community.id, self._key(), "budget_funding", "single", accounts.PROGRAM_FUNDING, accounts.PROGRAM_BUDGET,
                             c.community.population * BUDGET_POINTS_PER_RESIDENT)]
            for c in self.cities
        ]  # fmt: skip

    def batches(self, transfers: int, batch_size: int) -> Iterator[list[list[TransferRequest]]]:
        """Groups of requests, about `transfers` transfers in all, the clock advancing across the span."""
        self.step_us = step_us = max(1, self.span_us // max(1, transfers))
        self.batch_span_us = batch_size * step_us
        made = 0
        while made < transfers:
            batch: list[list[TransferRequest]] = []
            while len(batch) < batch_size and made < transfers:
                group = self._next_group()
                if group:
                    batch.append(group)
                    made += len(group)
                self.now_us = min(self.now_us + step_us, self.start_us + self.span_us)  # never past the span's end
                self._steps += 1
            yield batch

    def observe(self, groups: list[list[TransferRequest]], outcomes: list) -> None:
        """Correct the simulator's beliefs with what the ledger refused."""
        for group, outcome in zip(groups, outcomes, strict=True):
            if outcome.error is None:
                continue
            for request in group:
                city = self._city(request.ledger)
                if request.phase == "pending" and city is not None:
                    assert request.amount_points is not None, "a hold has an amount"
                    self._credit(city, city.resident_of(request.debit_account), request.amount_points)

    # --- the actions --------------------------------------------------------------------------

    def _city(self, ledger: str) -> _City | None:
        return next((c for c in self.cities if c.community.id == ledger), None)

    def _next_group(self) -> list[TransferRequest] | None:
        if self._scheduled and self._scheduled[0][0] <= self._steps:
            _, _, city, hold = heapq.heappop(self._scheduled)
            return self._resolve_hold(city, *hold)
        city = self.rng.choices(self.cities, self._weights)[0]
        action = self.rng.choices(self._actions, self._action_weights)[0]
        return getattr(self, f"_{action}")(city)

    def _req(
        self, city: _City, kind: str, phase: Phase, debit: str, credit: str, amount: int | None, **kw
    ) -> TransferRequest:
        return TransferRequest(city.community.id, self._key(), kind, phase, debit, credit, amount, **kw)

    def _resident(self, city: _City) -> int:
        return self.rng.randrange(city.residents)

    def _credit(self, city: _City, resident: int, points: int) -> None:
        city.wallets[resident] = city.wallets.get(resident, 0) + points

    def _spend(self, city: _City, resident: int, wanted: int) -> int:
        """How much the resident can spend of `wanted` as far as the simulator knows (0: skip)."""
        available = city.wallets.get(resident, 0)
        points = min(wanted, available)
        if points <= 0:
            return 0
        city.wallets[resident] = available - points
        return points

    def _remember(self, city: _City, transfer_id: str, debit: str, credit: str, points: int) -> None:
        city.refundable.append((transfer_id, debit, credit, points))
        if len(city.refundable) > MAX_REFUNDABLE:
            city.refundable.popleft()

    def _earn_purchase(self, city: _City) -> list[TransferRequest]:
        resident, merchant = self._resident(city), self.rng.randrange(city.merchants)
        dollars = self.rng.choice((4, 9, 12, 18, 25, 40, 65, 120, 250))
        points = dollars * PURCHASE_POINTS_PER_DOLLAR
        self._credit(city, resident, points)
        request = self._req(
            city, "earn_purchase", "single", city.merchant(merchant, "issued"), city.wallet(resident), points
        )
        self._remember(city, request.transfer_id, request.debit_account, request.credit_account, points)
        return [request]

    def _earn_civic(self, city: _City) -> list[TransferRequest]:
        resident = self._resident(city)
        points = self.rng.choice((50, 100, 150, 250, 500))
        self._credit(city, resident, points)
        return [self._req(city, "earn_civic", "single", accounts.PROGRAM_BUDGET, city.wallet(resident), points)]

    def _earn_volunteer(self, city: _City) -> list[TransferRequest]:
        resident = self._resident(city)
        points = 100 * self.rng.randint(1, 6)
        self._credit(city, resident, points)
        return [self._req(city, "earn_volunteer", "single", accounts.PROGRAM_BUDGET, city.wallet(resident), points)]

    def _hold(self, city: _City) -> list[TransferRequest] | None:
        resident, merchant = self._resident(city), self.rng.randrange(city.merchants)
        points = self._spend(city, resident, self.rng.choice((100, 200, 300, 500, 800, 1500)))
        if not points:
            return None
        # A terminal resolves its hold within minutes. A batch commits at one instant, and the
        # simulated clock may run coarser than minutes: holds then last past the next batch.
        coarse_us = self.batch_span_us + 2 * MAX_RESOLUTION_DELAY_STEPS * self.step_us
        timeout = max(self.rng.choice((300, 900, 1800)), coarse_us // 1_000_000)
        request = self._req(city, "redeem", "pending", city.wallet(resident), city.merchant(merchant, "redeemed"),
                            points, timeout_seconds=timeout)  # fmt: skip
        if self.rng.randrange(100) < ABANDONED_HOLDS_PERCENT or len(self._scheduled) >= MAX_SCHEDULED_HOLDS:
            self._credit(city, resident, points)  # the believed balance returns when the ledger expires it
        else:
            due = self._steps + self.rng.randint(1, MAX_RESOLUTION_DELAY_STEPS)
            heapq.heappush(
                self._scheduled, (due, self.counter, city, (request.transfer_id, resident, merchant, points))
            )
        return [request]

    def _resolve_hold(
        self, city: _City, hold_id: str, resident: int, merchant: int, points: int
    ) -> list[TransferRequest]:
        roll = self.rng.random()
        if roll < 0.2:
            self._credit(city, resident, points)
            return [self._req(city, "redeem", "void", "", "", None, ref=hold_id)]
        captured = points if roll < 0.85 else max(1, points * self.rng.randint(1, 9) // 10)
        self._credit(city, resident, points - captured)
        request = self._req(city, "redeem", "post", "", "", captured, ref=hold_id)
        self._remember(city, request.transfer_id, city.wallet(resident), city.merchant(merchant, "redeemed"), captured)
        return [request]

    def _service(self, city: _City) -> list[TransferRequest] | None:
        resident = self._resident(city)
        points = self._spend(city, resident, self.rng.choice((300, 500, 1200, 2500)))
        if not points:
            return None
        return [self._req(city, "service", "single", city.wallet(resident), accounts.SERVICES_REVENUE, points)]

    def _donation(self, city: _City) -> list[TransferRequest] | None:
        resident = self._resident(city)
        points = self._spend(city, resident, self.rng.choice((50, 100, 200)))
        if not points:
            return None
        org = self.rng.randrange(city.orgs)
        return [self._req(city, "donation", "single", city.wallet(resident), city.org(org), points)]

    def _refund(self, city: _City) -> list[TransferRequest] | None:
        if not city.refundable:
            return None
        original, debit, credit, amount = city.refundable[self.rng.randrange(len(city.refundable))]
        refund = max(1, amount // self.rng.choice((1, 2, 4)))
        if accounts.is_issued(debit):  # a purchase returned: the points it earned go back
            if self._spend(city, city.resident_of(credit), refund) < refund:
                return None
        else:  # a redemption refunded: the points return to the wallet
            self._credit(city, city.resident_of(debit), refund)
        return [self._req(city, "refund", "single", credit, debit, refund, ref=original)]

    def _cross_city(self, city: _City) -> list[TransferRequest] | None:
        other = self.rng.choice([c for c in self.cities if c is not city])
        resident = self._resident(city)
        points = self._spend(city, resident, self.rng.choice((100, 250, 400)))
        if not points:
            return None
        merchant = self.rng.randrange(other.merchants)
        home, away = city.community.id, other.community.id
        return [
            self._req(city, "interop_redeem", "single", city.wallet(resident), accounts.interop(away), points),
            TransferRequest(away, self._key(), "interop_redeem", "single", accounts.interop(home),
                            other.merchant(merchant, "redeemed"), points),
        ]  # fmt: skip
