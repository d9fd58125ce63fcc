"""Run the simulator against a ledger service (used by `entraide ledger simulate` and the demo)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.adapters.keystore import KeyStore
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.keys import rotate
from ledger.service_layer.transfers import LedgerService
from ledger.simulate import Simulator

Progress = Callable[[int], None]


@dataclass
class SimulationStats:
    transfers: int = 0
    committed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    expired_holds: int = 0
    rotated_keys: list[str] = field(default_factory=list)


def run(service: LedgerService, sim: Simulator, transfers: int, batch_size: int = 1000,
        progress: Progress = lambda _: None, keystore: KeyStore | None = None, fund: bool = True) -> SimulationStats:  # fmt: skip
    """Create the ledgers, fund them (unless their programs already were), then play `transfers`
    transfers in batches.

    With a keystore, the signing key is rotated halfway, as a city would on schedule, so that every
    simulated journal exercises verification across a key rotation.
    """
    stats = SimulationStats()
    for name in sim.ledgers():
        service.create_ledger(name)
    if fund:
        _submit(service, sim, sim.funding(), stats)
    rotate_at = transfers // 2 if keystore is not None else -1
    for batch in sim.batches(transfers, batch_size):
        if keystore is not None and 0 <= rotate_at <= stats.transfers:
            stats.rotated_keys.append(rotate(service.engine, keystore, sim.clock())[1])
            rotate_at = -1
        done = _submit(service, sim, batch, stats)
        progress(done)
    stats.expired_holds += service.expire_holds()
    return stats


def _submit(service: LedgerService, sim: Simulator, batch: list[list[TransferRequest]], stats: SimulationStats) -> int:
    outcomes = service.submit(batch)
    sim.observe(batch, outcomes)
    size = 0
    for group, outcome in zip(batch, outcomes, strict=True):
        size += len(group)
        if outcome.error is None:
            stats.committed += len(group)
        else:
            stats.rejected[outcome.error.code] += len(group)
    stats.transfers += size
    return size
