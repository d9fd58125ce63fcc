"""The public log in the C2SP tlog-tiles layout: tile arithmetic against RFC 6962's definitions, and a
city's whole log fetched through tiles only from a real `entraide serve`, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, select

from api.http.app import create_app
from ledger.adapters import log_tiles
from ledger.domain import tiles
from ledger.domain.checkpoint import key_hash
from ledger.domain.tiles import TilePathError, TileRef
from ledger.service_layer import audit, entry_lines, simulation
from ledger.simulate import Simulator
from tests.test_auth_limits import served
from tests.world import server_process

CITY = "brossard"
IMMUTABLE = "public, max-age=31536000, immutable"
PROBLEM = "application/problem+json"


# --- RFC 6962 from its definition, to check our tiles against -------------------------------------


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle Tree Hash of raw leaves (our leaves: raw entry hashes)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below n
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def expected_tile(leaves: list[bytes], level: int, index: int, width: int) -> bytes:
    """The n-th tile of level l as tlog-tiles defines it: MTH(D[(n*256+i)*256**l : (n*256+i+1)*256**l])."""
    span = 256**level
    return b"".join(mth(leaves[(index * 256 + i) * span : (index * 256 + i + 1) * span]) for i in range(width))


def grown(sizes: list[int], raw: bytes) -> dict[tuple[int, int], bytes]:
    """Tiles stored as `record` stores them: grown checkpoint by checkpoint, each tile replaced as it widens."""
    store: dict[tuple[int, int], bytes] = {}
    size = 0
    for new in sizes:
        old_edge = {r.level: store[(r.level, r.index)][: r.width * 32] for r in tiles.edge(size)}
        for tile in tiles.grow(size, new, raw[size * 32 : new * 32], old_edge):
            previous = store.get((tile.level, tile.index), b"")
            assert tile.hashes.startswith(previous), "a tile only ever grows"
            store[(tile.level, tile.index)] = tile.hashes
        size = new
    return store


def test_tiles_of_the_specs_example_tree_match_rfc_6962_at_every_step() -> None:
    """tlog-tiles: a tree of 70,000 has 273 full level-0 tiles, a partial one of width 112, one full
    level-1 tile, a partial one of width 17 and a partial level-2 tile of width 1."""
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(70_000)]
    raw = b"".join(leaves)
    sizes = [1, 255, 256, 257, 1_000, 65_535, 65_536, 65_537, 70_000]
    store = grown(sizes, raw)
    assert tiles.edge(70_000) == [TileRef(0, 273, 112), TileRef(1, 1, 17), TileRef(2, 0, 1)]
    full = sorted(key for key, hashes in store.items() if len(hashes) == tiles.FULL_TILE_BYTES)
    assert full == [(0, n) for n in range(273)] + [(1, 0)]
    assert {key: len(h) // 32 for key, h in store.items() if len(h) < tiles.FULL_TILE_BYTES} == {
        (0, 273): 112, (1, 1): 17, (2, 0): 1
    }  # fmt: skip
    for level, index in [(0, 0), (0, 272), (1, 0)]:
        assert store[(level, index)] == expected_tile(leaves, level, index, 256)
    for ref in tiles.edge(70_000):
        assert store[(ref.level, ref.index)] == expected_tile(leaves, ref.level, ref.index, ref.width)
    for size in [0, 1, 2, 255, 256, 257, 511, 65_536, 65_537, 70_000]:
        edge = {r.level: expected_tile(leaves, r.level, r.index, r.width) for r in tiles.edge(size)}
        assert tiles.root_from_edge(size, edge) == mth(leaves[:size]), size


@pytest.mark.parametrize(("path", "ref"), [
    ("0/000", TileRef(0, 0, 256)),
    ("/1/067.p/3", TileRef(1, 67, 3)),
    ("0/x001/x234/067", TileRef(0, 1_234_067, 256)),
    ("2/x001/000.p/255", TileRef(2, 1_000, 255)),
    ("63/x999/x999/x999/x999/x999/x999/999", TileRef(63, 999_999_999_999_999_999_999, 256)),
])  # fmt: skip
def test_tile_paths_parse_and_encode_as_the_spec_writes_them(path: str, ref: TileRef) -> None:
    assert tiles.parse_tile_path(path, entries=False) == ref
    assert tiles.tile_path(ref) == path.removeprefix("/")
    index_path = path.removeprefix("/").split("/", 1)[1]
    bundle = tiles.parse_tile_path(index_path, entries=True)
    assert (bundle.index, bundle.width, bundle.entries) == (ref.index, ref.width, True)
    assert tiles.tile_path(bundle) == "entries/" + index_path


@pytest.mark.parametrize("path", [
    "00/000", "64/000", "-1/000", "0/0", "0/0000", "0/x000/001", "0/001/002", "0/x1/002", "0/000.p/0",
    "0/000.p/256", "0/000.p/07", "0/000.p/", "0/000/", "0/", "0", "", "0/000.p/3/4", "a/000", "0/x001",
])  # fmt: skip
def test_tile_paths_outside_the_encoding_are_refused(path: str) -> None:
    with pytest.raises(TilePathError):
        tiles.parse_tile_path(path, entries=False)


def test_an_entry_bundle_is_uint16_length_prefixed_entries() -> None:
    entries = [b"", b"{}", "é".encode() * 300]
    data = tiles.bundle(entries)
    assert data[:2] == b"\x00\x00" and data[2:4] == b"\x00\x02" and data[6:8] == (600).to_bytes(2, "big")
    assert list(tiles.unbundle(data)) == entries
    with pytest.raises(ValueError, match="truncated"):
        list(tiles.unbundle(data[:-1]))


def test_an_entrys_line_is_what_json_dumps_writes_for_every_code_point() -> None:
    """Bundles and exports encode entries with msgspec; the document promises json.dumps' bytes."""
    text = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    row = ("brossard", 2**63 - 1, text, "earn_purchase", "single", "a", "b", 1, None, text[::-1], -5, 0, "0" * 64,
           "f" * 64, "k", "s")  # fmt: skip
    expected = json.dumps(entry_lines.entry_object(row), ensure_ascii=False, separators=(",", ":")).encode()
    assert entry_lines.entry_json(row) == expected
    assert list(json.loads(expected)) == [*entry_lines.ENTRY_KEYS, "v"]


# --- a city's log over HTTP ---------------------------------------------------------------------------


def simulate(ctx, transfers: int, seed: int) -> None:
    simulation.run(ctx.ledger, Simulator(seed, ctx.clock(), days=30), transfers, fund=seed == 1)
    audit.make_checkpoints(ctx.engine, ctx.signer)


def stored_bundles(ctx) -> dict[str, dict[int, bytes]]:
    """Every ledger's stored bundles by index, and (checked) that they are the journal's entries as
    exported, up to the latest checkpoint."""
    with ctx.engine.connect() as conn:
        stored: dict[str, dict[int, bytes]] = {}
        for ledger, index, entries in conn.execute(select(log_tiles.B)):
            stored.setdefault(ledger, {})[index] = entries
        for ledger, bundles in stored.items():
            size = log_tiles.latest_checkpoint(conn, ledger)["tree_size"]
            lines = [entry_lines.entry_json(row) for row in log_tiles.entries(conn, ledger, 0, size)]
            assert bundles == dict(tiles.bundles(0, lines)), ledger
    return stored


def test_bundles_are_stored_with_each_checkpoint_and_a_ledger_tiled_before_them_gets_them(ctx) -> None:
    simulate(ctx, 1_500, seed=1)
    first = stored_bundles(ctx)
    last = max(first[CITY])
    assert last > 0 and tiles.bundle_width(first[CITY][last]) < 256, "full bundles and a partial one"
    simulate(ctx, 600, seed=2)  # the partial bundle is written again, wider; the full ones are kept
    grown = stored_bundles(ctx)
    assert grown[CITY][last].startswith(first[CITY][last]) and len(grown[CITY][last]) > len(first[CITY][last])
    assert {i: grown[CITY][i] for i in first[CITY] if i != last} == {i: b for i, b in first[CITY].items() if i != last}
    with ctx.engine.begin() as conn:  # a deployment migrated from revision 0011: tiles, no bundles
        conn.execute(delete(log_tiles.B))
    audit.make_checkpoints(ctx.engine, ctx.signer)
    assert stored_bundles(ctx) == grown


def note_body(note: str) -> tuple[str, int, bytes, str]:
    """(origin, size, root) of a checkpoint note, read as tlog-checkpoint defines it, and its signatures."""
    body, _, signatures = note.partition("\n\n")
    origin, size, root = body.split("\n")[:3]
    return origin, int(size), base64.b64decode(root), signatures


def fetch_log(client: httpx.Client, city: str) -> tuple[str, int, list[bytes], dict[str, bytes]]:
    """A city's whole log through the public endpoints only: the checkpoint, its size, every entry
    line, and every tile and bundle by path. Checks the note's signature, every bundle against level 0, every
    level-1 tile against level 0, and the root against the note."""
    checkpoint = client.get(f"/{city}/checkpoint")
    assert checkpoint.status_code == 200 and checkpoint.headers["content-type"] == "text/plain; charset=utf-8"
    assert checkpoint.headers["cache-control"] == "public, max-age=5"
    origin, size, root, signatures = note_body(checkpoint.text)
    keys = client.get(f"/{city}/keys").json()
    assert origin == keys["origin"] == f"entraide/{city}"
    publics = [bytes.fromhex(k["public_key"]) for k in keys["keys"]]
    body = checkpoint.text.partition("\n\n")[0].encode() + b"\n"
    blobs = [base64.b64decode(line.rsplit(" ", 1)[1]) for line in signatures.splitlines()]
    assert any(_verifies(pub, blob[4:], body) for pub in publics for blob in blobs)

    by_path: dict[str, bytes] = {}

    def get(path: str) -> bytes:
        response = client.get(f"/{city}/tile/{path}")
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["cache-control"] == IMMUTABLE
        by_path[path] = response.content
        return response.content

    lines: list[bytes] = []
    level0 = b""
    for n in range(-(-size // 256)):
        width = min(256, size - n * 256)
        ref = TileRef(0, n, width)
        entries = list(tiles.unbundle(get(tiles.tile_path(TileRef(0, n, width, entries=True)))))
        assert len(entries) == width
        leaves = b"".join(bytes.fromhex(json.loads(e)["hash"]) for e in entries)
        tile = get(tiles.tile_path(ref))
        assert tile == tiles.leaf_hashes(leaves)
        lines += entries
        level0 += tile
    level1 = b""
    for n in range(-(-(size // 256) // 256)):
        width = min(256, size // 256 - n * 256)
        tile = get(tiles.tile_path(TileRef(1, n, width)))
        assert tile == b"".join(tiles.subtree_root(level0[(n * 256 + i) * 8192 : (n * 256 + i + 1) * 8192])
                                for i in range(width))  # fmt: skip
        level1 += tile
    edge = {0: level0[size // 256 * 8192 :], 1: level1[size // 65536 * 8192 :]}
    assert tiles.root_from_edge(size, {r.level: edge[r.level] for r in tiles.edge(size)}) == root
    assert mth([bytes.fromhex(json.loads(e)["hash"]) for e in lines]) == root
    assert [json.loads(e)["sequence"] for e in lines] == list(range(1, size + 1))
    return checkpoint.text, size, lines, by_path


def _verifies(public: bytes, signature: bytes, body: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, body)
    except InvalidSignature:
        return False
    return True


def test_a_citys_whole_log_is_fetched_verified_and_immutable_through_tiles(ctx, db_url: str, tmp_path: Path) -> None:
    """A real uvicorn server on loopback, without the recurring jobs: the log changes only when the test
    appends (the `entraide serve` process is in the next test)."""
    simulate(ctx, 2_000, seed=1)
    export = tmp_path / "export.jsonl"
    audit.export(ctx.engine, export, None)
    exported = [line.encode() for line in export.read_text(encoding="utf-8").splitlines()]
    with served(create_app(ctx)) as base, httpx.Client(base_url=f"{base}/v1/transparency") as client:
        _, size, lines, fetched = fetch_log(client, CITY)
        assert size > 256, "the log has full tiles and a partial level-1 tile"
        assert lines == [line for line in exported if json.loads(line)["ledger"] == CITY]  # byte for byte
        for line in lines:
            assert json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":")).encode() == line

        beyond = [f"0/{tiles.encode_index(size // 256 + 1)}", f"0/{tiles.encode_index(size // 256)}.p/{size % 256 + 1}",
                  f"entries/{tiles.encode_index(size // 256 + 1)}", f"entries/{tiles.encode_index(size // 256)}",
                  "1/000", "2/000.p/1", "0/x000/000", "00/000", "0/000.p/256", "entries/000.p/0"]  # fmt: skip
        for path in beyond:
            response = client.get(f"/{CITY}/tile/{path}")
            assert response.status_code == 404 and response.json()["code"] == "not_in_log", path
            assert response.headers["content-type"].startswith(PROBLEM) and "immutable" not in response.headers.get(
                "cache-control", ""
            )
        assert client.get("/atlantis/tile/0/000").json()["code"] == "unknown_ledger"
        assert client.get("/atlantis/checkpoint").status_code == 404

        simulate(ctx, 600, seed=2)
        note, new_size, _, again = fetch_log(client, CITY)
        assert new_size > size
        for path, content in fetched.items():  # a tile once served is the same tile forever
            response = client.get(f"/{CITY}/tile/{path}")
            assert response.status_code == 200 and response.content == content, path
        common = fetched.keys() & again.keys()
        assert {p: again[p] for p in common} == {p: fetched[p] for p in common}

        first = client.get(f"/{CITY}/checkpoints", params={"limit": 1}).json()
        assert [c["tree_size"] for c in first["checkpoints"]] == [size] and first["next_after_size"] == size
        rest = client.get(f"/{CITY}/checkpoints", params={"after_size": size}).json()
        assert [c["tree_size"] for c in rest["checkpoints"]] == [new_size] and rest["next_after_size"] is None
        history = first["checkpoints"] + rest["checkpoints"]
        assert client.get(f"/{CITY}/checkpoints", params={"limit": 2}).json()["checkpoints"] == history
        assert history[-1]["note"] == note and history[-1]["ledger"] == CITY
        assert all(note_body(c["note"])[1:3] == (c["tree_size"], bytes.fromhex(c["root_hash"])) for c in history)
        assert client.get("/atlantis/checkpoints").json()["code"] == "unknown_ledger"


def test_the_logs_keys_are_signed_note_verifier_keys_with_their_validity(ctx, db_url: str, tmp_path: Path) -> None:
    """Served by `entraide serve` itself, in its own process."""
    simulate(ctx, 50, seed=1)
    with server_process(db_url, tmp_path) as (base, _):
        keys = httpx.get(f"{base}/v1/transparency/{CITY}/keys").json()
    published = audit.public_keys(ctx.engine).keys
    assert keys["origin"] == f"entraide/{CITY}" and len(keys["keys"]) == len(published) >= 1
    for key, signing in zip(keys["keys"], published, strict=True):
        public = bytes.fromhex(key["public_key"])
        name, hash_hex, encoded = key["vkey"].split("+", 2)  # base64 may hold a "+" too
        assert (name, bytes.fromhex(hash_hex)) == (f"entraide/{CITY}", key_hash(f"entraide/{CITY}", public))
        assert base64.b64decode(encoded) == b"\x01" + public
        assert (key["key_id"], key["public_key"], key["valid_from_us"], key["valid_until_us"]) == (
            signing.key_id, signing.public_key, signing.valid_from_us, signing.valid_until_us
        )  # fmt: skip
