"""Getting each ledger's latest checkpoint cosigned by the configured witnesses (c2sp.org/tlog-witness).

After the checkpoints job signs, `Witnessing.submit_latest` sends every ledger's latest checkpoint to
each configured witness that has not cosigned it, outside any database transaction, in parallel
(one thread per submission, each with a timeout), so a slow witness holds no lock and delays no
other. A witness needs only the latest checkpoint, so one that was down is simply sent the latest
at the next run. What each witness has cosigned is remembered per ledger (`witness_state`): the
first submission says `old 0`, a 409 tells the witness's size, and the one retry of that run sends
the consistency proof from it. Each returned cosignature is verified with the witness's key before
it is stored; lines by other keys are ignored.

A witness that reports a size larger than ours, or refuses our proof (422), is reporting a fork or
a rollback of our log: that is logged as an error, counted in the job's summary, and shown in
`/v1/health/jobs`; the witness is not sent that checkpoint again (the next checkpoint gets one new
attempt, which settles the question if the witness's state was stale).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

from ledger import core
from ledger.adapters import cosignatures, journal, witness_client
from ledger.adapters.witness_client import Answer, WitnessUnavailable
from ledger.domain import cosignature
from ledger.domain.checkpoint import NoteError
from ledger.domain.witnesses import Witness, WitnessConfig
from ledger.schemas import WitnessingStatus, WitnessState

log = logging.getLogger("entraide.witnessing")
TIMEOUT_SECONDS = 10.0  # per request; a run waits at most twice this (the retry after a 409)
MAX_PARALLEL = 16  # submissions in flight at once


@dataclass(frozen=True)
class _Submission:
    ledger: str
    tree_size: int
    note: str  # the log's signed note
    leaves: bytes  # the entries' hashes up to tree_size: any consistency proof comes from them
    witness: Witness
    old_size: int  # what we believe the witness has cosigned


@dataclass(frozen=True)
class _Outcome:
    submission: _Submission
    state: str  # ok | failed | fork
    witness_size: int
    detail: str | None = None
    line: str | None = None
    timestamp: int | None = None


@dataclass(frozen=True)
class WitnessReport:
    """One run's submissions, in counts (the checkpoints job's summary)."""

    submitted: int = 0
    cosigned: int = 0
    failed: int = 0
    forks: int = 0
    witnessed: int = 0  # ledgers whose latest checkpoint the quorum has cosigned, after this run

    def summary(self) -> dict[str, int]:
        return {"submitted": self.submitted, "cosigned": self.cosigned, "failed": self.failed, "forks": self.forks,
                "witnessed": self.witnessed}  # fmt: skip


class Witnessing:
    def __init__(self, engine: Engine, config: WitnessConfig, clock: Callable[[], int],
                 timeout_seconds: float = TIMEOUT_SECONDS) -> None:  # fmt: skip
        self.engine, self.config, self.clock, self.timeout_seconds = engine, config, clock, timeout_seconds

    def submit_latest(self) -> WitnessReport:
        """Submit each ledger's latest checkpoint to the witnesses that have not cosigned it; store
        their verified cosignatures. Nothing to do with witnessing off."""
        if not self.config.enabled:
            return WitnessReport()
        submissions, cosigned = self._pending()
        if submissions:
            with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(submissions)),
                                    thread_name_prefix="entraide-witness") as pool:  # fmt: skip
                outcomes = list(pool.map(self._submit, submissions))
            self._record(outcomes)
        else:
            outcomes = []
        for o in outcomes:
            if o.state == "ok":
                cosigned[(o.submission.ledger, o.submission.tree_size)].add(o.submission.witness.name)
        return WitnessReport(
            submitted=len(outcomes), cosigned=sum(o.state == "ok" for o in outcomes),
            failed=sum(o.state == "failed" for o in outcomes), forks=sum(o.state == "fork" for o in outcomes),
            witnessed=sum(self.config.is_witnessed(names) for names in cosigned.values()),
        )  # fmt: skip

    def status(self) -> WitnessingStatus:
        """The configuration and each configured witness's last answer per ledger (`/v1/health/jobs`)."""
        names = [w.name for w in self.config.witnesses]
        with self.engine.connect() as conn:
            rows = [row for (_, witness), row in cosignatures.states(conn).items() if witness in names]
        states = [WitnessState(**{k: r[k] for k in ("ledger", "witness", "size", "state", "tried_size", "detail", "updated_us")})
                  for r in rows]  # fmt: skip
        return WitnessingStatus(enabled=self.config.enabled, quorum=self.config.quorum, witnesses=names,
                                forks=sum(s.state == "fork" for s in states),
                                failing=sum(s.state == "failed" for s in states), states=states)  # fmt: skip

    # --- one run --------------------------------------------------------------------------------

    def _pending(self) -> tuple[list[_Submission], dict[tuple[str, int], set[str]]]:
        """What to send (read in one short transaction), and who has cosigned each latest checkpoint."""
        submissions = []
        with self.engine.connect() as conn:
            latest = journal.latest_checkpoints(conn)
            have = cosignatures.lines(conn, [(c["ledger"], c["tree_size"]) for c in latest])
            states = cosignatures.states(conn)
            for cp in latest:
                ledger, size = cp["ledger"], cp["tree_size"]
                due = []
                for witness in self.config.witnesses:
                    state = states.get((ledger, witness.name))
                    if witness.name in have[(ledger, size)]:
                        continue
                    if state is not None and state["state"] == "fork" and state["tried_size"] == size:
                        continue  # it reported a fork on this very checkpoint: it gets the next one
                    # A size beyond ours would be refused (400): start over at 0, and its 409 tells.
                    known = state["size"] if state is not None and state["size"] <= size else 0
                    due.append((witness, known))
                if due:
                    leaves = journal.leaf_hashes(conn, ledger, size)
                    submissions += [_Submission(ledger, size, cp["note"], leaves, w, known) for w, known in due]
        return submissions, {pair: set(lines) for pair, lines in have.items()}

    def _send(self, s: _Submission, old_size: int) -> Answer:
        proof = core.consistency_proof(s.leaves, old_size) if 0 < old_size < s.tree_size else []
        return witness_client.submit(s.witness.url, s.note, old_size, proof, self.timeout_seconds)

    def _submit(self, s: _Submission) -> _Outcome:
        """One witness, one checkpoint: at most two requests (the second after a 409 told its size)."""
        old = s.old_size
        try:
            answer = self._send(s, old)
            if answer.status == 409 and answer.size is not None and answer.size <= s.tree_size and answer.size != old:
                old = answer.size
                answer = self._send(s, old)
        except WitnessUnavailable as exc:
            return _Outcome(s, "failed", old, f"unreachable: {exc}")
        return _judge(s, old, answer)

    def _record(self, outcomes: list[_Outcome]) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            for o in outcomes:
                s = o.submission
                if o.line is not None and o.timestamp is not None:
                    cosignatures.add(conn, s.ledger, s.tree_size, s.witness.name, o.line, o.timestamp, now)
                cosignatures.set_state(conn, s.ledger, s.witness.name, size=o.witness_size, state=o.state,
                                       tried_size=s.tree_size, detail=o.detail, now_us=now)  # fmt: skip
        for o in outcomes:
            s = o.submission
            if o.state == "fork":
                log.error("witness %s reports a FORK OR ROLLBACK of ledger %s at size %d: %s",
                          s.witness.name, s.ledger, s.tree_size, o.detail)  # fmt: skip
            elif o.state == "failed":
                log.warning("witness %s did not cosign ledger %s at size %d (retried at the next run): %s",
                            s.witness.name, s.ledger, s.tree_size, o.detail)  # fmt: skip


def _judge(s: _Submission, old: int, answer: Answer) -> _Outcome:
    """What a witness's answer to a submission from `old` means for our log."""
    if answer.status == 200:
        return _cosigned(s, old, answer.lines)
    if answer.status == 409:
        assert answer.size is not None, "a 409 carries the witness's size"
        if answer.size > s.tree_size:
            return _Outcome(s, "fork", answer.size, f"the witness has cosigned size {answer.size}, larger than "
                                                    f"our {s.tree_size}: our log was rolled back or forked")  # fmt: skip
        return _Outcome(s, "failed", answer.size, f"the witness's size moved to {answer.size} meanwhile")
    if answer.status == 422:
        return _Outcome(s, "fork", old, f"the witness refused our consistency proof from size {old} (422): "
                                        f"the history it cosigned is not a prefix of ours ({answer.detail})")  # fmt: skip
    meaning = {400: "a malformed submission", 403: "the witness does not trust the log's key",
               404: "the witness does not know this log"}[answer.status]  # fmt: skip
    return _Outcome(s, "failed", old, f"{answer.status}, {meaning}: {answer.detail}")


def _cosigned(s: _Submission, old: int, lines: tuple[str, ...]) -> _Outcome:
    """The witness's own cosignature among the lines, verified with its key; others are ignored."""
    keys = {s.witness.name: s.witness.public_key}
    for line in lines:
        try:
            stamps = cosignature.verify(s.note + line, keys)
        except NoteError as exc:
            return _Outcome(s, "failed", old, f"a cosignature that does not verify: {exc}")
        if s.witness.name in stamps:
            return _Outcome(s, "ok", s.tree_size, None, line, stamps[s.witness.name])
    return _Outcome(s, "failed", old, "the answer carries no cosignature by the witness's key")
