"""A ledger's Merkle tree as C2SP tlog-tiles: tile paths, tile arithmetic, entry bundles (no I/O).

A tile is 256 consecutive hashes of one level of the RFC 9162 tree: level 0 holds the leaf hashes
`SHA-256(0x00 || entry_hash)`, level L+1 the roots of the full tiles of level L. A tree of size s
has, at each level, full tiles and at most one partial tile on its right edge (docs/ledger-format.md,
"Public log (tiles)").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # hashes in a full tile
HASH_BYTES = 32
FULL_TILE_BYTES = TILE_WIDTH * HASH_BYTES
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF  # an entry bundle prefixes each entry with a big-endian uint16 length
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_SEGMENT = re.compile(r"x[0-9]{3}")
_LAST_SEGMENT = re.compile(r"[0-9]{3}")


class TilePathError(ValueError):
    """A path that names no tile: not in the tlog-tiles encoding."""


@dataclass(frozen=True)
class TileRef:
    """A tile by path: its level, index and width (256 when full); an entry bundle is `entries`, at level 0."""

    level: int
    index: int
    width: int
    entries: bool = False

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    def end(self) -> int:
        """The tree size from which this tile, at this width, exists."""
        return (self.index * TILE_WIDTH + self.width) << (TILE_HEIGHT * self.level)


@dataclass(frozen=True)
class Tile:
    """A tile's content: `len(hashes) // 32` hashes of `level`, from hash `index * 256`."""

    level: int
    index: int
    hashes: bytes

    @property
    def width(self) -> int:
        return len(self.hashes) // HASH_BYTES


# --- paths ------------------------------------------------------------------------------------------


def encode_index(index: int) -> str:
    """`1234067` -> `x001/x234/067`: 3-digit elements, every one but the last prefixed with x."""
    assert index >= 0
    digits = str(index)
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def tile_path(ref: TileRef) -> str:
    """The path under `<prefix>/tile/`: `<L>/<N>[.p/<W>]`, or `entries/<N>[.p/<W>]`."""
    assert 0 < ref.width <= TILE_WIDTH
    suffix = "" if ref.width == TILE_WIDTH else f".p/{ref.width}"
    return f"{'entries' if ref.entries else ref.level}/{encode_index(ref.index)}{suffix}"


def parse_tile_path(path: str, *, entries: bool) -> TileRef:
    """`<L>/<N>[.p/<W>]` (or `<N>[.p/<W>]` when `entries`), exactly as tlog-tiles encodes it: no
    leading zeroes in L and W, no superfluous `x000` element in N. TilePathError otherwise."""
    parts = path.removeprefix("/").split("/")  # a path parameter may keep its leading slash
    level = 0
    if not entries:
        if not parts or not _LEVEL.fullmatch(parts[0]) or int(parts[0]) > MAX_LEVEL:
            raise TilePathError(f"bad tile level in {path!r}")
        level, parts = int(parts[0]), parts[1:]
    width = TILE_WIDTH
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        if not _WIDTH.fullmatch(parts[-1]) or int(parts[-1]) >= TILE_WIDTH:
            raise TilePathError(f"bad partial tile width in {path!r}")
        width, parts = int(parts[-1]), [*parts[:-2], parts[-2][:-2]]
    if not parts or not _LAST_SEGMENT.fullmatch(parts[-1]) or not all(_SEGMENT.fullmatch(p) for p in parts[:-1]):
        raise TilePathError(f"bad tile index in {path!r}")
    index = int("".join(p.lstrip("x") for p in parts))
    if encode_index(index) != "/".join(parts):
        raise TilePathError(f"tile index in {path!r} is not in its shortest encoding")
    return TileRef(level, index, width, entries)


# --- hashes -----------------------------------------------------------------------------------------


def leaf_hashes(entry_hashes: bytes) -> bytes:
    """RFC 9162 leaf hashes of concatenated raw 32-byte entry hashes (our leaves)."""
    assert len(entry_hashes) % HASH_BYTES == 0
    sha256 = hashlib.sha256
    return b"".join(
        sha256(b"\x00" + entry_hashes[i : i + HASH_BYTES]).digest() for i in range(0, len(entry_hashes), HASH_BYTES)
    )


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def subtree_root(hashes: bytes) -> bytes:
    """The root of the perfect subtree over 2^k concatenated node hashes."""
    count = len(hashes) // HASH_BYTES
    assert count > 0 and count & (count - 1) == 0 and len(hashes) == count * HASH_BYTES
    level = [hashes[i : i + HASH_BYTES] for i in range(0, len(hashes), HASH_BYTES)]
    while len(level) > 1:
        level = [node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def edge(tree_size: int) -> list[TileRef]:
    """The right edge of a tree: its partial tile at each level that has one, lowest level first."""
    refs = []
    level = 0
    while tree_size // TILE_WIDTH**level:
        width = tree_size // TILE_WIDTH**level % TILE_WIDTH
        if width:
            refs.append(TileRef(level, tree_size // TILE_WIDTH ** (level + 1), width))
        level += 1
    return refs


def grow(old_size: int, new_size: int, new_entry_hashes: bytes, old_edge: dict[int, bytes]) -> list[Tile]:
    """The tiles that change when a tree of `old_size` grows to `new_size`: every tile that becomes
    full and the new right-edge tiles, at every level.

    `new_entry_hashes` are the raw hashes of entries old_size+1..new_size; `old_edge[level]` the
    hashes of the old tree's partial tile at that level (see `edge`). The work is proportional to
    the new entries, never to the whole tree.
    """
    assert 0 <= old_size <= new_size and len(new_entry_hashes) == (new_size - old_size) * HASH_BYTES
    changed: list[Tile] = []
    level, fresh = 0, leaf_hashes(new_entry_hashes)  # hashes new at this level, in order
    while fresh:
        start = old_size // TILE_WIDTH**level  # the index of the first fresh hash at this level
        first_tile = start // TILE_WIDTH
        row = old_edge.get(level, b"") + fresh  # this level's hashes from tile `first_tile` on
        assert len(row) == (new_size // TILE_WIDTH**level - first_tile * TILE_WIDTH) * HASH_BYTES
        completed = []
        for offset in range(0, len(row), FULL_TILE_BYTES):
            hashes = row[offset : offset + FULL_TILE_BYTES]
            changed.append(Tile(level, first_tile + offset // FULL_TILE_BYTES, hashes))
            if len(hashes) == FULL_TILE_BYTES:
                completed.append(subtree_root(hashes))
        level, fresh = level + 1, b"".join(completed)
    return changed


def root_from_edge(tree_size: int, edge_tiles: dict[int, bytes]) -> bytes:
    """The tree's RFC 9162 root from its right-edge tiles alone: the perfect subtrees of its
    binary decomposition are runs of 2^r hashes of those tiles, largest (leftmost) first."""
    subtrees = []
    for ref in reversed(edge(tree_size)):
        hashes = edge_tiles[ref.level]
        assert len(hashes) == ref.width * HASH_BYTES
        offset = 0
        for bit in reversed(range(TILE_HEIGHT)):
            if ref.width >> bit & 1:
                subtrees.append(subtree_root(hashes[offset : offset + (HASH_BYTES << bit)]))
                offset += HASH_BYTES << bit
    if not subtrees:
        return EMPTY_ROOT
    root = subtrees[-1]
    for left in reversed(subtrees[:-1]):
        root = node(left, root)
    return root


# --- entry bundles ----------------------------------------------------------------------------------


def bundle(entries: Iterable[bytes]) -> bytes:
    """Entries, each prefixed with its length as a big-endian uint16."""
    out = bytearray()
    for entry in entries:
        assert len(entry) <= MAX_ENTRY_BYTES, "an entry fits a uint16 length"
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def bundles(first_index: int, entries: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """(index, bundle) of consecutive entries that start bundle `first_index`: one per 256 entries,
    the last one partial when they do not fill it."""
    return [
        (first_index + k // TILE_WIDTH, bundle(entries[k : k + TILE_WIDTH])) for k in range(0, len(entries), TILE_WIDTH)
    ]


def bundle_prefix(data: bytes, width: int) -> bytes:
    """The bundle of the first `width` entries of a bundle (a partial bundle of a wider one); ValueError
    if it has fewer."""
    offset = 0
    for _ in range(width):
        if offset + 2 > len(data):
            raise ValueError(f"an entry bundle of fewer than {width} entries")
        offset += 2 + int.from_bytes(data[offset : offset + 2], "big")
    if offset > len(data):
        raise ValueError("truncated entry bundle")
    return data[:offset]


def bundle_width(data: bytes) -> int:
    """The number of entries of a bundle; ValueError if it is truncated."""
    return sum(1 for _ in unbundle(data))


def unbundle(data: bytes) -> Iterator[bytes]:
    """The entries of a bundle; ValueError if it is truncated."""
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise ValueError("truncated entry bundle")
        size = int.from_bytes(data[offset : offset + 2], "big")
        if offset + 2 + size > len(data):
            raise ValueError("truncated entry bundle")
        yield data[offset + 2 : offset + 2 + size]
        offset += 2 + size
