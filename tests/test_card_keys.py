"""Card keys rotate like ledger keys: cards signed by the old key verify until they expire, new cards
are signed by the new key, terminals fetch every valid key, and the rotation is audited.

Through HTTP (the POS signs its requests, the public key set is fetched), and `entraide admin
card-keys`, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar.testing import TestClient
from typer.testing import CliRunner

from api.bootstrap import Settings, open_context
from api.cli import app, i18n
from api.http.app import create_app
from community.adapters.secrets import sign_token, token_key_id
from community.domain.program import Program
from community.service_layer.residents import YEAR_US
from ledger.service_layer.audit_trail import page
from tests.test_api import assert_problem
from tests.world import World, standard_world

CITY = "brossard"


@pytest.fixture
def world(ctx) -> World:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)


def published(world: World, city: str = CITY) -> dict[str, dict]:
    """The city's card keys as the public key set lists them, by kid; the POS endpoint must agree."""
    public = world.client.get("/v1/transparency/keys")
    assert public.status_code == 200, public.text
    pos = world.pos("boulangerie", "GET", "/v1/pos/cards/keys")
    assert pos.status_code == 200, pos.text
    assert pos.json()["keys"] == public.json()["cards"]["keys"]
    return {k["kid"]: k for k in public.json()["cards"]["keys"] if k["kid"].startswith(f"card-{city}.")}


def hold(world: World, card: str, key: str, points: int = 10):
    return world.pos("boulangerie", "POST", "/v1/pos/holds", {"card": card, "points": points}, key=key, lang="en")


def test_cards_from_before_a_rotation_keep_working_and_new_cards_use_the_new_key(world: World) -> None:
    old_card = world.residents["alice"].card
    (old_kid,) = published(world)
    assert token_key_id(old_card) == old_kid and "exp" not in published(world)[old_kid]

    rotation = world.ctx.residents.card_keyring.rotate(CITY, "staff:test")
    new_kid = rotation.active.kid
    assert rotation.retired.kid == old_kid and new_kid != old_kid and new_kid.startswith(f"card-{CITY}.")
    # The old key verifies until the last card of the city valid at the rotation expires: a year after enrolment.
    last_card_exp_s = (world.ctx.clock() + YEAR_US) // 1_000_000
    assert rotation.retired.status == "retiring" and rotation.retired.accepted_until_s == last_card_exp_s

    keys = published(world)
    assert set(keys) == {old_kid, new_kid}  # both during the overlap, each with its validity
    assert keys[old_kid]["exp"] == last_card_exp_s and "exp" not in keys[new_kid]
    assert keys[new_kid]["nbf"] == world.now_s() and keys[new_kid]["alg"] == "Ed25519"
    other_city = world.client.get("/v1/transparency/keys").json()["cards"]["keys"]
    assert [k["kid"] for k in other_city if k["kid"].startswith("card-delson.")] != []  # other cities untouched

    # A terminal checks the old card offline, picking the key by the card's kid among those fetched.
    fetched = KeySet.import_key_set(world.pos("boulangerie", "GET", "/v1/pos/cards/keys").json())
    assert jwt.decode(old_card, fetched, algorithms=["Ed25519"]).claims["city"] == CITY
    # ... and the server agrees: a real hold on the card issued before the rotation.
    held = hold(world, old_card, "before-rotation")
    assert held.status_code == 201, held.text

    fresh = world.ctx.residents.current_card(world.residents["alice"].id)["token"]
    assert token_key_id(fresh) == new_kid
    newcomer = world.resident("dominique", CITY, points=100)
    assert token_key_id(newcomer.card) == new_kid
    held = hold(world, newcomer.card, "after-rotation")
    assert held.status_code == 201, held.text


def test_a_retired_key_vouches_for_no_card_issued_after_it_retired(world: World) -> None:
    old_kid = token_key_id(world.residents["alice"].card)
    assert old_kid is not None
    world.ctx.residents.card_keyring.rotate(CITY, "staff:test")
    world.ctx.clock.advance(1)  # type: ignore[attr-defined]  # the tests' Clock
    newcomer = world.resident("dominique", CITY, points=100)
    card = world.ctx.residents.current_card(newcomer.id)
    # The old key's private half signs a token for a card issued after the rotation (a stolen old key would).
    old_key = world.ctx.keys.card_key_by_kid(CITY, old_kid)
    forged = sign_token(old_key, {"sub": card["id"], "city": CITY, "exp": card["expires_at_us"] // 1_000_000})
    assert_problem(hold(world, forged, "forged"), 403, "card_key_retired")
    assert hold(world, newcomer.card, "genuine").status_code == 201


def test_a_retired_key_past_the_last_card_it_signed_is_refused_and_no_longer_published(world: World) -> None:
    alice = world.residents["alice"]
    old_kid = token_key_id(alice.card)
    rotation = world.ctx.residents.card_keyring.rotate(CITY, "staff:test")
    world.ctx.clock.advance(YEAR_US // 1_000_000 + 86_400)  # type: ignore[attr-defined]  # the tests' Clock

    body = assert_problem(hold(world, alice.card, "too-late", points=1), 403, "card_key_retired")
    assert "retired" in body["detail"]
    keys = published(world)
    assert set(keys) == {rotation.active.kid} and old_kid not in keys
    states = {s.kid: s.status for s in world.ctx.residents.card_keyring.states([CITY])}
    assert states == {old_kid: "retired", rotation.active.kid: "active"}

    # Renewed, the resident gets a card signed by the active key, which verifies.
    world.ctx.residents.renew(alice.id, "staff:test", CITY)
    renewed = world.ctx.residents.current_card(alice.id)["token"]
    assert token_key_id(renewed) == rotation.active.kid
    assert hold(world, renewed, "renewed", points=1).status_code == 201


def test_rotation_is_in_the_city_audit_trail(world: World) -> None:
    first = world.ctx.residents.card_keyring.rotate(CITY, "staff:test")
    second = world.ctx.residents.card_keyring.rotate(CITY, "staff:test")
    assert second.retired.kid == first.active.kid
    records = [r for r in page(world.ctx.engine, CITY, 0, 1_000).entries if r.action == "card_key.rotate"]
    assert [(r.target, r.actor) for r in records] == [
        (first.active.kid, "staff:test"),
        (second.active.kid, "staff:test"),
    ]
    assert records[0].before == {"active": first.retired.kid}
    assert records[0].after == {"active": first.active.kid, "retired": first.retired.kid,
                                "accepted_until_s": first.retired.accepted_until_s}  # fmt: skip
    assert not [r for r in page(world.ctx.engine, "delson", 0, 1_000).entries if r.action == "card_key.rotate"]


def test_the_cli_rotates_and_lists_card_keys_in_french_by_default(db_url: str, tmp_path: Path) -> None:
    ctx = open_context(Settings(data_dir=tmp_path, database_url=db_url, keys_dir=tmp_path / "keys"), create=True)
    ctx.programs.configure(Program(city=CITY), "staff:test")
    resident = ctx.residents.enroll(CITY, {"name": "Alice"}, "basic", "staff:test", key="enrol-alice")
    card = ctx.residents.current_card(resident.id)["token"]
    old_kid = token_key_id(card)
    runner = CliRunner()
    common = ["--db", db_url, "--data-dir", str(tmp_path)]
    french = dict.fromkeys(i18n.LANGUAGE_ENV, "")

    rotated = runner.invoke(app, ["admin", "card-keys", "--rotate", "--city", CITY, *common], env=french)
    assert rotated.exit_code == 0, rotated.output
    assert f"{CITY} : clé de carte {old_kid} retirée" in rotated.output and "clés de carte" in rotated.output
    assert "en retrait" in rotated.output and "active" in rotated.output

    (active,) = [s for s in ctx.residents.card_keyring.states([CITY]) if s.status == "active"]
    assert active.kid != old_kid and token_key_id(ctx.residents.current_card(resident.id)["token"]) == active.kid
    assert ctx.residents.resolve_card(card).resident_id == resident.id  # the card from before still verifies
    (record,) = [r for r in page(ctx.engine, CITY, 0, 100).entries if r.action == "card_key.rotate"]
    assert record.actor.startswith("cli:") and record.target == active.kid

    listed = runner.invoke(app, ["admin", "card-keys", *common, "--lang", "en"], env=french)
    assert listed.exit_code == 0, listed.output
    assert "card keys" in listed.output and "retiring" in listed.output and active.kid in listed.output

    stranger = runner.invoke(app, ["admin", "card-keys", "--city", "nowhere", *common, "--lang", "en"], env=french)
    assert stranger.exit_code == 2 and "nowhere" in stranger.output
    assert not list((tmp_path / "keys" / "community").glob("card-nowhere*"))  # no key is made for a stranger
    ctx.engine.dispose()
