"""Checkpoint notes as C2SP says (signed-note, tlog-checkpoint, tlog-cosignature), and key
validity across rotations: every proof the project makes verifies with the published keys."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import core
from ledger.domain import checkpoint as notes
from ledger.domain import cosignature
from ledger.domain.checkpoint import NoteError
from ledger.service_layer import audit, keys, simulation
from ledger.simulate import Simulator

START_US = 1_767_225_600_000_000
SEED = bytes(range(32))
PUBLIC = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
KID = "k1"
KEYS = {KID: (PUBLIC, 0, None)}
ROOT = bytes(range(32, 64))


def note(time_us: int = 5) -> str:
    return notes.sign("brossard", 7, ROOT, time_us, SEED)


def test_the_key_name_is_the_origin_and_the_key_id_follows_signed_note():
    text = note()
    assert text.splitlines()[-1].startswith("\u2014 entraide/brossard ")
    blob = base64.b64decode(text.splitlines()[-1].split(" ")[2])
    assert blob[:4] == notes.key_hash("entraide/brossard", PUBLIC)
    opened = notes.open_note(text, KEYS)
    assert (opened.ledger, opened.tree_size, opened.root, opened.time_us) == ("brossard", 7, ROOT, 5)
    assert opened.key_id == KID
    vkey = notes.vkey("entraide/brossard", PUBLIC)
    assert notes.parse_vkey(vkey) == ("entraide/brossard", PUBLIC)
    with pytest.raises(NoteError, match="does not match"):
        notes.parse_vkey(vkey.replace("entraide/brossard", "entraide/delson", 1))


def test_extension_lines_other_than_time_us_are_allowed_and_signed():
    text = notes.body("brossard", 7, ROOT, 5) + "mirror example.org/brossard\n"
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    blob = notes.key_hash("entraide/brossard", PUBLIC) + private.sign(text.encode())
    opened = notes.open_note(f"{text}\n{notes.signature_line('entraide/brossard', blob)}", KEYS)
    assert opened.tree_size == 7 and opened.time_us == 5
    without_time = "entraide/brossard\n7\n" + base64.b64encode(ROOT).decode() + "\n"
    blob = notes.key_hash("entraide/brossard", PUBLIC) + private.sign(without_time.encode())
    with pytest.raises(NoteError, match="time_us"):
        notes.open_note(f"{without_time}\n{notes.signature_line('entraide/brossard', blob)}", KEYS)


def test_an_invalid_signature_by_a_known_key_rejects_the_whole_note():
    good = note()
    last = good.splitlines()[-1]
    blob = bytearray(base64.b64decode(last.split(" ")[2]))
    blob[10] ^= 1
    forged = notes.signature_line("entraide/brossard", bytes(blob))
    with pytest.raises(NoteError, match="does not verify"):
        notes.open_note(good + forged, KEYS)  # a good signature does not save it
    unknown = notes.signature_line("entraide/brossard", b"\xff\xff\xff\xff" + bytes(64))
    assert notes.open_note(good + unknown, KEYS).key_id == KID  # unknown keys are ignored
    with pytest.raises(NoteError, match="no valid signature"):
        notes.open_note(good, {"other": (bytes(32), 0, None)})


@pytest.mark.parametrize(
    "bad",
    [
        "entraide/brossard\n07\n{root}\ntime_us 5\n",  # a leading zero
        "entraide/brossard\n7\n{root}\n",  # no time_us
        "entraide/brossard\n7\n{root}\ntime_us 5\ntime_us 6\n",  # two
        "entraide/brossard\n7\n{root}\n\ntime_us 5\n",  # an empty extension line ends the text early
        "brossard\n7\n{root}\ntime_us 5\n",  # not our origin
        "entraide/brossard\n7\nAAAA\ntime_us 5\n",  # a short root
        "entraide/brossard\n7\n{root}\ntime_us 5\x07\n",  # a control character
    ],
)
def test_malformed_checkpoints_are_refused(bad):
    text = bad.format(root=base64.b64encode(ROOT).decode())
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    blob = notes.key_hash("entraide/brossard", PUBLIC) + private.sign(text.encode())
    with pytest.raises(NoteError):
        notes.open_note(f"{text}\n{notes.signature_line('entraide/brossard', blob)}", KEYS)


def test_a_key_outside_its_validity_is_refused():
    with pytest.raises(NoteError, match="not valid at"):
        notes.open_note(note(time_us=5), {KID: (PUBLIC, 6, None)})
    with pytest.raises(NoteError, match="not valid at"):
        notes.open_note(note(time_us=5), {KID: (PUBLIC, 0, 5)})


def test_cosignatures_verify_and_a_bad_one_by_a_known_witness_rejects_the_note():
    witness = bytes(range(100, 132))
    public = Ed25519PrivateKey.from_private_bytes(witness).public_key().public_bytes_raw()
    text = note()
    opened = notes.open_note(text, KEYS)
    line = cosignature.cosign(opened.text, "witness.delson.example/w1", witness, 1_767_225_600)
    cosigned = cosignature.add(text, [line, line])
    assert cosigned.count(line) == 1
    witnesses = {"witness.delson.example/w1": public}
    assert cosignature.verify(cosigned, witnesses) == {"witness.delson.example/w1": 1_767_225_600}
    assert notes.open_note(cosigned, KEYS).tree_size == 7  # the log's check ignores cosignatures
    message = cosignature.message(opened.text, 1_767_225_600)
    assert message.startswith(b"cosignature/v1\ntime 1767225600\nentraide/brossard\n7\n")
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[-1] ^= 1
    with pytest.raises(NoteError, match="does not verify"):
        cosignature.verify(text + notes.signature_line("witness.delson.example/w1", bytes(blob)),
                           {"witness.delson.example/w1": public})  # fmt: skip
    assert cosignature.verify(cosigned, {"witness.other.example/w9": public}) == {}


def test_proofs_verify_across_key_rotations(ctx, clock):
    """A simulation rotates its key at a simulated time, earlier than the checkpoints signed at the
    wall clock: the rotation must still come after every checkpoint the old key signed."""
    sim = Simulator(3, START_US, days=30)
    ctx.ledger.clock = sim.clock
    simulation.run(ctx.ledger, sim, 400, batch_size=100)
    clock.advance(40 * 86_400)  # checkpoints are signed "now", after the simulated month
    first = {c["ledger"]: c for c in audit.make_checkpoints(ctx.engine, ctx.signer, clock)}
    old_key, new_key = keys.rotate(ctx.engine, ctx.keystore, sim.clock())  # a time before those checkpoints
    simulation.run(ctx.ledger, sim, 300, batch_size=100, fund=False)
    clock.advance(60)
    second = {c["ledger"]: c for c in audit.make_checkpoints(ctx.engine, ctx.signer, clock)}
    published = audit.keys_document(ctx.engine)
    retired = next(k for k in published["keys"] if k["key_id"] == old_key)
    assert retired["valid_until_us"] > max(c["time_us"] for c in first.values())
    grown = [name for name in first if second[name]["tree_size"] > first[name]["tree_size"]]
    assert grown
    for name in grown:
        proof = audit.prove_consistency(ctx.engine, name, first[name]["tree_size"], second[name]["tree_size"])
        assert "append-only" in audit.verify_proof(proof, published)
        inclusion = audit.prove_inclusion(ctx.engine, name, second[name]["tree_size"])
        assert f"signed by {new_key}" in audit.verify_proof(inclusion, published)
    with ctx.engine.begin() as conn:
        from ledger.adapters import journal

        for name in grown:  # no entry after a checkpoint carries an earlier time than it
            later = journal.entry(conn, name, first[name]["tree_size"] + 1)
            assert later is not None and later[11] >= first[name]["time_us"]
    assert audit.verify_database(ctx.engine)["ok"]
    assert core.FORMAT_VERSION == 1
