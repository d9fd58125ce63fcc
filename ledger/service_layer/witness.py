"""The witness (c2sp.org/tlog-witness): cosign a log's checkpoint only when it is consistent with the
last one cosigned for that log, and keep the evidence when a validly signed one is not.

`Witness.add_checkpoint(body)` is the whole of `POST /add-checkpoint`: checks that need no state
first (body, origin, signatures), then, under the state directory's lock, the old size against the
held one, the consistency proof, and the persisting of the new checkpoint before answering.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import msgspec

from ledger.adapters.witness_state import WitnessState
from ledger.domain import checkpoint as notes
from ledger.domain import cosignature
from ledger.domain.witness import (
    InconsistentCheckpoint,
    MalformedSubmission,
    SizeConflict,
    TrustedLogs,
    UnknownLog,
    UntrustedCheckpoint,
    WitnessKey,
    check_consistency,
    parse_submission,
)
from ledger.schemas import Result

log = logging.getLogger("entraide.witness")


class Evidence(Result, frozen=True):
    """Two checkpoints of one log, both validly signed by its keys, that cannot both be true."""

    origin: Annotated[str, msgspec.Meta(description="the log's origin line")]
    kind: Annotated[str, msgspec.Meta(description="fork (one size, two roots), inconsistent (the consistency proof "
                                      "from the held checkpoint fails) or rollback (a smaller tree signed later)")]  # fmt: skip
    tree_size: Annotated[int, msgspec.Meta(ge=0, description="the size of the submitted checkpoint")]
    held_note: Annotated[str, msgspec.Meta(description="the checkpoint the witness had cosigned (signed note)")]
    submitted_note: Annotated[str, msgspec.Meta(description="the conflicting checkpoint it was sent (signed note)")]
    proof: Annotated[list[str], msgspec.Meta(description="the consistency proof sent with it, base64 hashes")]
    recorded_at_s: Annotated[
        int, msgspec.Meta(ge=0, description="when the witness recorded it, seconds since the epoch")
    ]


class EvidenceList(Result, frozen=True):
    """Every conflict this witness has seen, oldest first."""

    evidence: list[Evidence]


def _now_s() -> int:
    return int(time.time())


@dataclass
class Witness:
    key: WitnessKey
    logs: TrustedLogs
    state: WitnessState
    clock_s: Callable[[], int] = _now_s

    def add_checkpoint(self, body: bytes) -> list[str]:
        """The cosignature line(s) of a submission, or the LedgerError (ledger/domain/witness.py) saying why not."""
        submission = parse_submission(body)
        try:
            parsed = notes.parse_note(submission.note)
        except notes.NoteError as exc:
            raise MalformedSubmission(str(exc), field="checkpoint", reason="malformed_note") from None
        origin = parsed.text.partition("\n")[0]
        keys = self.logs.get(origin)
        if keys is None:
            raise UnknownLog(f"this witness does not follow {origin!r}", origin=origin)
        try:
            _, size, _, _ = notes.parse_body(parsed.text)
        except notes.NoteError as exc:
            raise MalformedSubmission(str(exc), field="checkpoint", reason="malformed_note") from None
        if submission.old_size > size:
            raise MalformedSubmission(f"old size {submission.old_size} is larger than the checkpoint's {size}",
                                      field="old", reason="old_above_size")  # fmt: skip
        try:
            cp = notes.open_note(submission.note, keys)
        except notes.NoteError as exc:
            raise UntrustedCheckpoint(str(exc), origin=origin) from None
        # What is kept and served: the text, the log's signatures the witness verified, its own.
        verified = [notes.signature_line(s.name, s.key_hash + s.signature) for s in parsed.signatures
                    if s.name == origin and s.key_hash.hex() in keys]  # fmt: skip
        signed = f"{cp.text}\n{''.join(verified)}"
        with self.state.locked():
            held_note = self.state.latest(origin)
            held = None if held_note is None else notes.parse_body(notes.parse_note(held_note).text)
            held_size = 0 if held is None else held[1]
            self._keep_evidence(origin, cp, signed, submission.proof, held_note)
            if submission.old_size != held_size:
                raise SizeConflict(f"the witness holds size {held_size} of {origin}", tree_size=held_size)
            try:
                check_consistency(held_size, None if held is None else held[2], size, cp.root, submission.proof)
            except InconsistentCheckpoint as exc:
                if held_note is not None and exc.context.get("reason") == "bad_proof":
                    self._record(origin, "inconsistent", cp, signed, submission.proof, held_note)
                raise
            lines = [cosignature.cosign(cp.text, self.key.name, self.key.seed, self.clock_s())]
            self.state.save(origin, size, cosignature.add(signed, lines))
        return lines

    def _keep_evidence(self, origin: str, cp: notes.Checkpoint, signed: str, proof: tuple[bytes, ...],
                       held_note: str | None) -> None:  # fmt: skip
        """A validly signed checkpoint that contradicts one this witness cosigned is a fork of the log:
        same size and another root, or a smaller tree signed later than the larger one held."""
        earlier = self.state.cosigned(origin, cp.tree_size)
        if earlier is not None and notes.parse_body(notes.parse_note(earlier).text)[2] != cp.root:
            self._record(origin, "fork", cp, signed, proof, earlier)
        elif held_note is not None:
            _, held_size, _, held_time_us = notes.parse_body(notes.parse_note(held_note).text)
            if cp.tree_size < held_size and cp.time_us > held_time_us:
                self._record(origin, "rollback", cp, signed, proof, held_note)

    def _record(self, origin: str, kind: str, cp: notes.Checkpoint, signed: str, proof: tuple[bytes, ...],
                held_note: str) -> None:  # fmt: skip
        record = Evidence(origin=origin, kind=kind, tree_size=cp.tree_size, held_note=held_note, submitted_note=signed,
                          proof=[base64.b64encode(p).decode() for p in proof], recorded_at_s=self.clock_s())  # fmt: skip
        if self.state.add_evidence(origin, cp.tree_size, kind, msgspec.to_builtins(record)):
            log.warning("witness: %s evidence for %s at size %d: two validly signed checkpoints disagree (kept in %s)",
                        kind, origin, cp.tree_size, self.state.directory / "evidence")  # fmt: skip

    def latest(self, hashed_origin: str) -> str | None:
        """The latest cosigned checkpoint of the log whose origin hashes to this (tlog-witness monitoring)."""
        return self.state.latest_by_hash(hashed_origin)

    def evidence(self) -> EvidenceList:
        return EvidenceList(evidence=[msgspec.convert(r, Evidence) for r in self.state.evidence()])
