"""A monitor: follow a deployment's public logs through their tiles and check everything they sign.

Knowing only the base URL, it reads the ledgers (`/v1/transparency/checkpoints`) and the keys
(`/v1/transparency/keys`, trusted on first use, then only allowed to grow forward), then per ledger:
the checkpoint note (signature, key validity, witnesses' cosignatures), consistency with the last
verified checkpoint (no smaller size, no other root at a verified size, no other first entries), the
new entry bundles and hash tiles (every level-0 hash recomputed from the entries, every upper-level
hash from the level below, the root from the leaves), and the entries themselves with the Rust
chain verifier, fed the local mirror of what was verified before, then the new entries. What it
checks and the state it keeps are in docs/ledger-format.md, "Monitoring".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec
import urllib3

from ledger import core
from ledger.adapters import monitor_state
from ledger.adapters.monitor_state import LedgerState, MonitorState
from ledger.domain import checkpoint as notes
from ledger.domain import cosignature, tiles
from ledger.domain.tiles import TILE_WIDTH, TileRef
from ledger.schemas import SigningKey

HASH_BYTES = 32
EMPTY_HASH = "0" * 64
MAX_WITNESSES = 100
FETCH_WORKERS = 8
TIMEOUT_SECONDS = 60.0
MAX_CHECKPOINT_BYTES = notes.MAX_NOTE_BYTES
MAX_DOCUMENT_BYTES = 16 << 20  # keys and the latest checkpoints: a few kB per ledger
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + 0xFFFF)

T = TypeVar("T")


class MonitorError(Exception):
    """An inconsistency in what the log serves (exit 1): `code` names it, `params` fill its message."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(f"{code}: {params}")
        self.code = code
        self.params = params


class FetchError(ValueError):
    """The log could not be read (network, HTTP status, size): not a proof of anything (exit 2)."""


@dataclass(frozen=True)
class LedgerSummary:
    ledger: str
    size: int
    new_entries: int  # entries downloaded and verified in this run
    cosigned: int | None  # valid cosignatures by configured witnesses; None without --witnesses
    quorum: int | None


@dataclass
class Witnesses:
    keys: dict[str, bytes] = field(default_factory=dict)
    quorum: int = 0


# --- what the log serves --------------------------------------------------------------------------


class _Key(msgspec.Struct):
    key_id: str
    algorithm: str
    public_key: str
    valid_from_us: int
    valid_until_us: int | None = None


class _KeysDocument(msgspec.Struct):
    format: str
    keys: list[_Key]


class _PublicKeys(msgspec.Struct):
    ledger: _KeysDocument


class _Latest(msgspec.Struct):
    ledger: str


class _LatestCheckpoints(msgspec.Struct):
    checkpoints: list[_Latest]


class LogClient:
    """GETs on one log over a pooled keep-alive connection set, a few at a time. urllib3 rather than
    httpx: a GET costs its thread half the CPU (0.3-0.7 ms against 0.7-1.2 ms per tile or bundle,
    measured on loopback), and a full-log run makes one per tile and per bundle."""

    def __init__(self, base_url: str, workers: int = FETCH_WORKERS, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = urllib3.PoolManager(num_pools=1, maxsize=workers, block=True, retries=False,
                                         timeout=timeout_seconds, headers=urllib3.make_headers(accept_encoding=True))  # fmt: skip
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="monitor-fetch")

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        self._http.clear()

    def get(self, path: str, max_bytes: int) -> bytes:
        url = f"{self.base_url}{path}"
        try:
            answer = self._http.request("GET", url, preload_content=False)
            body = answer.read(max_bytes + 1)
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(f"GET {url}: {exc.__class__.__name__}: {exc}") from None
        if answer.status != 200 or len(body) > max_bytes:
            answer.close()  # the rest of a body too large is not read: the connection is not reused
            raise FetchError(f"GET {url}: HTTP {answer.status}" if answer.status != 200 else
                             f"GET {url}: larger than {max_bytes} bytes")  # fmt: skip
        answer.release_conn()
        return body

    def get_many_later(self, paths: Sequence[str], max_bytes: int) -> list[Future[bytes]]:
        """Start fetching these paths; their bodies, in order, as futures."""
        return [self._pool.submit(self.get, path, max_bytes) for path in paths]

    def document(self, path: str, kind: type[T]) -> T:
        try:
            return msgspec.json.decode(self.get(path, MAX_DOCUMENT_BYTES), type=kind)
        except msgspec.DecodeError as exc:
            raise FetchError(f"GET {self.base_url}{path}: not the expected document: {exc}") from None


# --- Merkle trees from tiles ------------------------------------------------------------------------


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _perfect_root(hashes: list[bytes]) -> bytes:
    """Root of a perfect subtree (a power-of-two count of nodes of one level)."""
    while len(hashes) > 1:
        hashes = [_node(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def _tile_count(size: int, level: int) -> int:
    """Hashes at `level` of a tree of `size` leaves: one per full subtree of 256**level leaves."""
    count: int = size // TILE_WIDTH**level
    return count


class ServedTree:
    """The hash tiles a log serves for a tree size, each fetched once (in the background once planned)."""

    def __init__(self, client: LogClient, prefix: str, size: int) -> None:
        self.client, self.prefix, self.size = client, prefix, size
        self.fetches: dict[tuple[int, int], Future[bytes]] = {}

    def width(self, level: int, index: int) -> int:
        width = min(TILE_WIDTH, _tile_count(self.size, level) - index * TILE_WIDTH)
        assert width > 0, "only tiles the tree has are fetched"
        return width

    def path(self, level: int | str, index: int) -> str:
        entries = level == "entries"
        ref = TileRef(0 if entries else int(level), index, self.width(0 if entries else int(level), index), entries)
        return f"{self.prefix}/tile/{tiles.tile_path(ref)}"

    def fetch(self, wanted: Iterable[tuple[int, int]]) -> None:
        """Start fetching these tiles (those not fetched yet)."""
        missing = sorted(set(wanted) - self.fetches.keys())
        paths = [self.path(level, index) for level, index in missing]
        self.fetches.update(zip(missing, self.client.get_many_later(paths, TILE_WIDTH * HASH_BYTES), strict=True))

    def tile(self, level: int, index: int) -> bytes:
        self.fetch([(level, index)])
        body = self.fetches[(level, index)].result()
        if len(body) != self.width(level, index) * HASH_BYTES:
            raise FetchError(f"{self.path(level, index)}: {len(body)} bytes, not {self.width(level, index)} hashes")
        return body

    def hashes(self, level: int, start: int, count: int) -> list[bytes]:
        """`count` hashes of `level` from index `start`."""
        first, last = start // TILE_WIDTH, (start + count - 1) // TILE_WIDTH
        self.fetch((level, t) for t in range(first, last + 1))
        out = []
        for i in range(start, start + count):
            offset = (i % TILE_WIDTH) * HASH_BYTES
            out.append(self.tile(level, i // TILE_WIDTH)[offset : offset + HASH_BYTES])
        return out

    def root(self, size: int) -> bytes:
        """RFC 9162 root of the first `size` leaves, from the largest tiles that cover them."""
        assert 0 < size <= self.size
        subtrees, offset = [], 0
        for bit in reversed(range(size.bit_length())):
            if size >> bit & 1:
                level, height = divmod(bit, 8)  # a 2**bit subtree: 2**height hashes of `level`
                span = TILE_WIDTH**level
                subtrees.append(_perfect_root(self.hashes(level, offset // span, 1 << height)))
                offset += 1 << bit
        root = subtrees.pop()
        while subtrees:
            root = _node(subtrees.pop(), root)
        return root


# --- keys: trusted on first use, then only extended forward ------------------------------------------


def _check_keys(known: Sequence[SigningKey], served: Sequence[SigningKey], verified_us: int) -> None:
    """A key removed or changed, retired before, or added valid from before, what was verified: error."""
    now = {k.key_id: k for k in served}
    for old in known:
        new = now.get(old.key_id)
        if new is None:
            raise MonitorError("key_removed", key_id=old.key_id)
        for name in ("algorithm", "public_key", "valid_from_us"):
            if getattr(old, name) != getattr(new, name):
                raise MonitorError("key_changed", key_id=old.key_id, field=name)
        if old.valid_until_us != new.valid_until_us:
            if old.valid_until_us is not None:
                raise MonitorError("key_changed", key_id=old.key_id, field="valid_until_us")
            assert new.valid_until_us is not None
            if new.valid_until_us <= verified_us:
                raise MonitorError("key_retired_early", key_id=old.key_id, valid_until_us=new.valid_until_us,
                                   verified_us=verified_us)  # fmt: skip
    old_ids = {k.key_id for k in known}
    for new in served:
        if known and new.key_id not in old_ids and new.valid_from_us <= verified_us:
            raise MonitorError("key_added_early", key_id=new.key_id, valid_from_us=new.valid_from_us,
                               verified_us=verified_us)  # fmt: skip


def _note_keys(keys: Sequence[SigningKey]) -> dict[str, tuple[bytes, int, int | None]]:
    return {k.key_id: (bytes.fromhex(k.public_key), k.valid_from_us, k.valid_until_us) for k in keys
            if k.algorithm == "ed25519"}  # fmt: skip


def load_witnesses(path: Path, quorum: int | None) -> Witnesses:
    """The witnesses file: one `<vkey of type 0x04> [url]` per line (blank lines and # comments skipped)."""
    keys: dict[str, bytes] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, public = notes.parse_vkey(text.split()[0], cosignature.COSIGNATURE_V1)
        keys[name] = public
    if not keys or len(keys) > MAX_WITNESSES:
        raise ValueError(f"{path}: between 1 and {MAX_WITNESSES} witness keys, one per line")
    need = len(keys) if quorum is None else quorum
    if not 1 <= need <= len(keys):
        raise ValueError(f"the quorum is between 1 and the {len(keys)} witnesses of {path}")
    return Witnesses(keys, need)


# --- one ledger -------------------------------------------------------------------------------------


class _Stamp(msgspec.Struct):
    sequence: int
    time_us: int


def _bundle_lines(tree: ServedTree, index: int, body: bytes) -> bytes:
    """The entries of entry bundle `index` as export lines (each entry, then a newline)."""
    try:
        return core.bundle_jsonl(body, tree.width(0, index))
    except ValueError as exc:
        raise FetchError(f"{tree.path('entries', index)}: {exc}") from None


def _line_end(lines: bytes, count: int) -> int:
    """The offset just past the first `count` lines (few: at most a tile's)."""
    at = 0
    for _ in range(count):
        at = lines.index(b"\n", at) + 1
    return at


def _last_lines_bytes(lines: bytes, count: int) -> int:
    """The bytes of the last `count` lines (few: at most a tile's)."""
    at = len(lines)
    for _ in range(count):
        at = lines.rfind(b"\n", 0, at - 1) + 1
    return len(lines) - at


@dataclass
class _Run:
    client: LogClient
    directory: Path
    keys: list[tuple[str, bytes, int, int | None]]
    note_keys: dict[str, tuple[bytes, int, int | None]]
    witnesses: Witnesses | None


def _open_checkpoint(run: _Run, ledger: str, note: str) -> tuple[notes.Checkpoint, int | None]:
    try:
        checkpoint = notes.open_note(note, run.note_keys)
        cosigned = None if run.witnesses is None else len(cosignature.verify(note, run.witnesses.keys))
    except notes.NoteError as exc:
        raise MonitorError("bad_checkpoint", ledger=ledger, reason=str(exc)) from None
    if checkpoint.ledger != ledger:
        raise MonitorError("wrong_origin", ledger=ledger, origin=notes.origin(checkpoint.ledger))
    if run.witnesses is not None and cosigned is not None and cosigned < run.witnesses.quorum:
        raise MonitorError("not_witnessed", ledger=ledger, size=checkpoint.tree_size, cosigned=cosigned,
                           quorum=run.witnesses.quorum)  # fmt: skip
    return checkpoint, cosigned


def _check_against_verified(ledger: str, cp: notes.Checkpoint, old: LedgerState) -> None:
    if cp.tree_size < old.size:
        raise MonitorError("rollback", ledger=ledger, size=cp.tree_size, verified_size=old.size)
    if cp.tree_size == old.size and cp.root.hex() != old.root:
        raise MonitorError("fork", ledger=ledger, size=cp.tree_size, root=cp.root.hex(), verified_root=old.root)
    if cp.time_us < old.time_us:
        raise MonitorError("time_backwards", ledger=ledger, size=cp.tree_size, time_us=cp.time_us,
                           verified_size=old.size, verified_time_us=old.time_us)  # fmt: skip


@dataclass
class _Step:
    """One ledger's step in a run, checked but for its entries' chain (done for every ledger at once)."""

    ledger: str
    state: LedgerState  # the new state, once the new lines are in the mirror
    summary: LedgerSummary
    verified: core.EntryBatch  # the mirror
    new: core.EntryBatch
    new_lines: bytes
    tail_bytes: int  # bytes of the new lines in the last, partial, tile


@dataclass
class _Plan:
    """One ledger's step, its checkpoint checked and its tiles and bundles downloading."""

    ledger: str
    old: LedgerState
    note: str = ""
    checkpoint: notes.Checkpoint | None = None
    cosigned: int | None = None
    tree: ServedTree | None = None
    level0: list[tuple[int, int]] = field(default_factory=list)
    upper: list[tuple[int, int]] = field(default_factory=list)
    bundles: list[Future[bytes]] = field(default_factory=list)
    error: MonitorError | FetchError | None = None  # raised when the step is checked, in ledger order


def _plan(run: _Run, ledger: str, old: LedgerState) -> _Plan:
    """Read and check the ledger's checkpoint, then start downloading every tile and bundle its step
    needs: the level-0 tiles and bundles from the verified size on, and at each upper level the tiles
    the new hashes fall in."""
    plan = _Plan(ledger, old)
    prefix = f"/v1/transparency/{ledger}"
    try:
        plan.note = run.client.get(f"{prefix}/checkpoint", MAX_CHECKPOINT_BYTES).decode("utf-8", "replace")
        plan.checkpoint, plan.cosigned = _open_checkpoint(run, ledger, plan.note)
        _check_against_verified(ledger, plan.checkpoint, old)
    except (MonitorError, FetchError) as exc:
        plan.error = exc
        return plan
    size, base = plan.checkpoint.tree_size, old.size
    if size == base:
        return plan
    plan.tree = ServedTree(run.client, prefix, size)
    plan.level0 = [(0, t) for t in range(base // TILE_WIDTH, (size - 1) // TILE_WIDTH + 1)]
    plan.upper = [(level, t) for level in range(1, 8) if _tile_count(size, level)
                  for t in range(_tile_count(base, level) // TILE_WIDTH, (_tile_count(size, level) - 1) // TILE_WIDTH + 1)]  # fmt: skip
    plan.bundles = run.client.get_many_later([plan.tree.path("entries", t) for _, t in plan.level0], MAX_BUNDLE_BYTES)
    plan.tree.fetch(plan.level0 + plan.upper)
    return plan


def _follow(run: _Run, plan: _Plan) -> _Step:
    """Check a planned step as its downloads arrive: everything but its entries' chain."""
    if plan.error is not None:
        raise plan.error
    ledger, old, note, cp, cosigned = plan.ledger, plan.old, plan.note, plan.checkpoint, plan.cosigned
    assert cp is not None, "a plan without an error has its checkpoint"
    quorum = None if run.witnesses is None else run.witnesses.quorum
    size, base = cp.tree_size, old.size
    verified = _mirror(run, ledger, old)
    if plan.tree is None:
        state = msgspec.structs.replace(old, note=note, time_us=cp.time_us, witnessed=cosigned or 0)
        return _Step(
            ledger, state, LedgerSummary(ledger, size, 0, cosigned, quorum), verified, core.EntryBatch(), b"", 0
        )
    tree, level0, upper = plan.tree, plan.level0, plan.upper
    first_tile = base // TILE_WIDTH
    if base:
        served_root = tree.root(base)
        if served_root.hex() != old.root:
            raise MonitorError("fork_extension", ledger=ledger, size=size, verified_size=base, root=served_root.hex(),
                               verified_root=old.root)  # fmt: skip
    lines = b"".join(_bundle_lines(tree, t, body.result()) for (_, t), body in zip(level0, plan.bundles, strict=True))
    overlap = base - first_tile * TILE_WIDTH
    at = _line_end(lines, overlap)
    if overlap:
        kept = monitor_state.read_mirror_tail(run.directory, ledger, old.partial_offset, old.mirror_bytes)
        for i, (served, mine) in enumerate(zip(lines[:at].split(b"\n"), kept.split(b"\n"), strict=True)):
            if served != mine:
                raise MonitorError("fork_entry", ledger=ledger, sequence=first_tile * TILE_WIDTH + i + 1)
    new_lines = lines[at:]
    new = _parse(ledger, old, new_lines)
    all_hashes = verified.leaf_hashes(ledger) + new.leaf_hashes(ledger)
    # Every served hash must be the one the entries give: level 0 from the entry hashes, upper levels
    # from the leaves below; and the leaves must give the signed root.
    leaves = core.leaf_hashes(all_hashes[first_tile * TILE_WIDTH * HASH_BYTES :])
    for level, t in level0 + upper:
        span = TILE_WIDTH**level
        first = t * TILE_WIDTH
        if level == 0:
            expected = leaves[(t - first_tile) * TILE_WIDTH * HASH_BYTES :][: tree.width(0, t) * HASH_BYTES]
        else:
            expected = b"".join(core.merkle_root(all_hashes[i * span * HASH_BYTES : (i + 1) * span * HASH_BYTES])
                                for i in range(first, first + tree.width(level, t)))  # fmt: skip
        _compare_tile(ledger, tree, level, t, expected)
    root = core.merkle_root(all_hashes)
    if root != cp.root:
        raise MonitorError("bad_root", ledger=ledger, size=size, root=cp.root.hex(), computed=root.hex())
    _check_times(ledger, cp, old, new_lines[: new_lines.index(b"\n")],
                 new_lines[new_lines.rfind(b"\n", 0, len(new_lines) - 1) + 1 : -1])  # fmt: skip
    state = LedgerState(size=size, root=root.hex(), time_us=cp.time_us, note=note, head_hash=all_hashes[-HASH_BYTES:].hex(),
                        mirror_bytes=0, partial_offset=0, witnessed=cosigned or 0)  # fmt: skip
    summary = LedgerSummary(ledger, size, size - base, cosigned, quorum)
    tail_bytes = _last_lines_bytes(lines, size % TILE_WIDTH)  # the entries of the partial tile, if any
    return _Step(ledger, state, summary, verified, new, new_lines, tail_bytes)


def _compare_tile(ledger: str, tree: ServedTree, level: int, index: int, expected: bytes) -> None:
    served = tree.tile(level, index)
    if expected == served:
        return
    at = next(
        i for i in range(0, len(expected), HASH_BYTES) if expected[i : i + HASH_BYTES] != served[i : i + HASH_BYTES]
    )
    raise MonitorError("rewritten_tile", ledger=ledger, tile=tree.path(level, index).rpartition("/tile/")[2],
                       index=index * TILE_WIDTH + at // HASH_BYTES, served=served[at : at + HASH_BYTES].hex(),
                       expected=expected[at : at + HASH_BYTES].hex())  # fmt: skip


def _mirror(run: _Run, ledger: str, old: LedgerState) -> core.EntryBatch:
    """The verified entries kept from earlier runs (checked again with the new ones)."""
    if not old.size:
        return core.EntryBatch()
    verified = core.EntryBatch.from_jsonl(str(monitor_state.mirror_path(run.directory, ledger)))
    hashes = verified.leaf_hashes(ledger)
    if len(verified) != old.size or len(hashes) != old.size * HASH_BYTES or hashes[-HASH_BYTES:].hex() != old.head_hash:
        raise monitor_state.StateError(f"{ledger}: the state's mirror does not end at the verified head")
    return verified


def _parse(ledger: str, old: LedgerState, new_lines: bytes) -> core.EntryBatch:
    """The new entries in Rust memory (parsed there: no per-entry Python work)."""
    try:
        new = core.EntryBatch.from_jsonl_bytes(new_lines)
    except ValueError as exc:
        raise MonitorError("malformed_entry", ledger=ledger, after=old.size, reason=str(exc)) from None
    if len(new.leaf_hashes(ledger)) != len(new) * HASH_BYTES:
        raise MonitorError("foreign_entry", ledger=ledger, after=old.size)
    return new


def _feed(verifier: core.ChainVerifier, step: _Step) -> None:
    verifier.feed_batch(step.verified)
    verifier.feed_batch(step.new)


def _follow_and_verify(run: _Run, listed: Sequence[str], state: MonitorState) -> tuple[int, list[_Step]]:
    """Follow each ledger, in export order, while one chain verifier checks the ledgers already
    fetched: every ledger's mirror then its new entries (cross-ledger rules hold). The verifier runs
    in Rust without the GIL, and the next ledger's tiles and bundles download while this one is
    checked, so the server, the checks and the verifier keep busy together. Returns the entries
    checked and the steps."""
    verifier = core.ChainVerifier(run.keys)
    steps: list[_Step] = []
    with ThreadPoolExecutor(1) as feeder:  # one thread: the batches reach the verifier in order
        fed: list[Future[None]] = []
        try:
            plans = (_plan(run, ledger, state.ledgers.get(ledger, EMPTY)) for ledger in listed)
            ahead = next(plans, None)
            while ahead is not None:
                current, ahead = ahead, next(plans, None)  # the next ledger downloads while this one is checked
                step = _follow(run, current)
                steps.append(step)
                fed.append(feeder.submit(_feed, verifier, step))
        finally:
            for done in fed:
                done.result()
    report = verifier.finish()
    error = report["error"]
    if error is not None:
        raise MonitorError("bad_entry", ledger=error["ledger"], sequence=error["sequence"], check=error["code"],
                           detail=error["detail"])  # fmt: skip
    for step in steps:
        assert report["ledgers"].get(step.ledger, {"entries": 0})["entries"] == step.state.size, "fed whole"
    return report["entries"], steps


def _check_times(ledger: str, cp: notes.Checkpoint, old: LedgerState, first: bytes, last: bytes) -> None:
    """Entries after a checkpoint are no older than it; a checkpoint is no older than its last entry."""
    after = msgspec.json.decode(first, type=_Stamp)
    if old.size and after.time_us < old.time_us:
        raise MonitorError("entry_before_checkpoint", ledger=ledger, sequence=after.sequence, time_us=after.time_us,
                           verified_size=old.size, checkpoint_time_us=old.time_us)  # fmt: skip
    final = msgspec.json.decode(last, type=_Stamp)
    if final.time_us > cp.time_us:
        raise MonitorError("entry_after_checkpoint", ledger=ledger, sequence=final.sequence, time_us=final.time_us,
                           size=cp.tree_size, checkpoint_time_us=cp.time_us)  # fmt: skip


# --- a run ------------------------------------------------------------------------------------------

EMPTY = LedgerState(size=0, root=hashlib.sha256(b"").hexdigest(), time_us=0, note="", head_hash=EMPTY_HASH,
                    mirror_bytes=0, partial_offset=0)  # fmt: skip


def monitor(base_url: str, directory: Path, witnesses: Witnesses | None = None,
            on_ledger: Callable[[LedgerSummary], None] = lambda _: None) -> tuple[int, list[LedgerSummary]]:  # fmt: skip
    """One run: verify what the log at `base_url` added since the state in `directory`, then save it;
    (entries the chain verifier checked, a summary per ledger).

    MonitorError on an inconsistency (the state is left as it was: the next run sees it again),
    FetchError when the log cannot be read, StateError for an unusable state directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    state = monitor_state.load(directory)
    client = LogClient(base_url)
    try:
        if state is not None and state.url != client.base_url:
            raise monitor_state.StateError(f"{directory} follows {state.url}, not {client.base_url}")
        served = client.document("/v1/transparency/keys", _PublicKeys).ledger
        keys = [SigningKey(key_id=k.key_id, algorithm=k.algorithm, public_key=k.public_key,
                           valid_from_us=k.valid_from_us, valid_until_us=k.valid_until_us) for k in served.keys]  # fmt: skip
        if state is None:
            state = MonitorState(format=monitor_state.STATE_FORMAT, url=client.base_url, keys=keys)
        _check_keys(state.keys, keys, state.verified_time_us)
        listed = sorted(
            {c.ledger for c in client.document("/v1/transparency/checkpoints", _LatestCheckpoints).checkpoints}
        )
        for gone in sorted(state.ledgers.keys() - set(listed)):
            raise MonitorError("ledger_gone", ledger=gone, verified_size=state.ledgers[gone].size)
        note_keys = _note_keys(keys)
        run = _Run(client, directory, [(kid, pub, start, end) for kid, (pub, start, end) in note_keys.items()],
                   note_keys, witnesses)  # fmt: skip
        checked, steps = _follow_and_verify(run, listed, state)
        ledgers = {}
        for step in steps:
            mirror_bytes = monitor_state.append_mirror(directory, step.ledger, step.new_lines) if step.new_lines else (
                step.state.mirror_bytes)  # fmt: skip
            partial = step.state.partial_offset if not step.new_lines else mirror_bytes - step.tail_bytes
            ledgers[step.ledger] = msgspec.structs.replace(
                step.state, mirror_bytes=mirror_bytes, partial_offset=partial
            )
            on_ledger(step.summary)
        state.keys, state.ledgers = keys, ledgers
        state.verified_time_us = max([state.verified_time_us, *(s.time_us for s in ledgers.values())])
        monitor_state.save(directory, state)
        return checked, [step.summary for step in steps]
    finally:
        client.close()
