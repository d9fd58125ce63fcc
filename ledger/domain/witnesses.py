"""The witnesses a log submits its checkpoints to, and when a checkpoint counts as witnessed.

A witnesses file (`ENTRAIDE_WITNESSES`) has one witness a line, `<verifier key> <submission prefix>`:
the signed-note verifier key of its cosignature key (type 0x04, c2sp.org/tlog-cosignature), then the
URL prefix its `add-checkpoint` is under (c2sp.org/tlog-witness). Blank lines and lines starting
with `#` are ignored. A checkpoint is witnessed once `quorum` distinct configured witnesses have
cosigned it; with no witness configured, witnessing is off and no checkpoint is witnessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ledger.domain.checkpoint import NoteError, parse_vkey
from ledger.domain.cosignature import COSIGNATURE_V1

MAX_WITNESSES = 64  # a consortium of cities, with room: each is one request per checkpoint


@dataclass(frozen=True)
class Witness:
    name: str
    public_key: bytes  # raw Ed25519 public key of its cosignatures
    url: str  # the submission prefix: the request goes to `<url>/add-checkpoint`

    @property
    def add_checkpoint_url(self) -> str:
        return self.url.rstrip("/") + "/add-checkpoint"


@dataclass(frozen=True)
class WitnessConfig:
    witnesses: tuple[Witness, ...] = ()
    quorum: int = 0

    def __post_init__(self) -> None:
        assert len({w.name for w in self.witnesses}) == len(self.witnesses), "witness names are unique"
        assert (self.quorum == 0) == (not self.witnesses), "a quorum exactly when witnesses are configured"
        assert 0 <= self.quorum <= len(self.witnesses), "a quorum no larger than the witnesses"

    @property
    def enabled(self) -> bool:
        return bool(self.witnesses)

    @property
    def keys(self) -> dict[str, bytes]:
        return {w.name: w.public_key for w in self.witnesses}

    def is_witnessed(self, cosigners: Iterable[str]) -> bool:
        """Whether cosignatures by these witnesses reach the quorum (never, with witnessing off)."""
        configured = {w.name for w in self.witnesses}
        return self.enabled and len(configured.intersection(cosigners)) >= self.quorum


def parse_witnesses(text: str, source: str = "the witnesses file") -> tuple[Witness, ...]:
    """The witnesses of a witnesses file; ValueError naming the line of the first mistake."""
    witnesses: list[Witness] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{source}, line {number}: expected `<verifier key> <submission URL>`")
        try:
            name, public_key = parse_vkey(fields[0], COSIGNATURE_V1)
        except NoteError as exc:
            raise ValueError(f"{source}, line {number}: {exc}") from None
        url = urlsplit(fields[1])
        if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
            raise ValueError(f"{source}, line {number}: {fields[1]!r} is not an http(s) submission prefix")
        if any(w.name == name for w in witnesses):
            raise ValueError(f"{source}, line {number}: witness {name!r} is listed twice")
        witnesses.append(Witness(name, public_key, fields[1]))
    if len(witnesses) > MAX_WITNESSES:
        raise ValueError(f"{source}: at most {MAX_WITNESSES} witnesses")
    return tuple(witnesses)


def config(witnesses: tuple[Witness, ...], quorum: int | None) -> WitnessConfig:
    """The witnesses with their quorum: by default a majority of them; ValueError if out of range."""
    if not witnesses:
        if quorum:
            raise ValueError("ENTRAIDE_WITNESS_QUORUM needs witnesses (ENTRAIDE_WITNESSES)")
        return WitnessConfig()
    chosen = len(witnesses) // 2 + 1 if quorum is None else quorum
    if not 1 <= chosen <= len(witnesses):
        raise ValueError(f"ENTRAIDE_WITNESS_QUORUM must be between 1 and {len(witnesses)}, the witnesses configured")
    return WitnessConfig(witnesses, chosen)
