"""The sign-in services without a browser: activation codes (shape, single use, replacement,
expiry, keyed hashes, audit) and what passkeys refuse (community/service_layer/activation.py,
passkeys.py). The pages and a real authenticator: tests/test_web_signin.py."""

from __future__ import annotations

import pytest

from community.domain.errors import (
    ActivationCodeExpired,
    ActivationCodeInvalid,
    ActivationCodeUsed,
    PasskeyRefused,
    ResidentErased,
    UnknownPasskey,
    UnknownResident,
    WrongTenant,
)
from community.service_layer.activation import ALPHABET, VALID_SECONDS, grouped, normalized
from tests.world import World


@pytest.fixture
def cities(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.city("magog", name="Magog")
    world.resident("alice", "brossard")
    world.resident("zoe", "magog")
    return world


def test_codes_are_typed_loosely_but_only_ours_are_read() -> None:
    assert set(ALPHABET).isdisjoint("01IO") and len(set(ALPHABET)) == 32
    assert normalized(" 7kqd-m2xa 9prt ") == "7KQDM2XA9PRT" and grouped("7KQDM2XA9PRT") == "7KQD-M2XA-9PRT"
    for typed in ("", "7KQD-M2XA-9PR", "7KQD-M2XA-9PRTT", "0KQD-M2XA-9PRT", "7KQD_M2XA_9PRT"):
        assert normalized(typed) is None, typed


def test_a_code_works_once_a_new_one_replaces_it_and_each_expires(ctx, clock, cities) -> None:
    alice = cities.residents["alice"].id
    first = ctx.activation.issue(alice, "brossard", "staff:test", key="k1")
    assert ctx.activation.issue(alice, "brossard", "staff:test", key="k1") == first  # a retry: the same code
    assert first.expires_at_us == clock() + VALID_SECONDS * 1_000_000
    second = ctx.activation.issue(alice, "brossard", "staff:test", key="k2")
    assert second.code != first.code
    with pytest.raises(ActivationCodeUsed):
        ctx.activation.redeem(first.code)  # replaced
    assert ctx.activation.redeem(second.code.lower()) == (alice, "brossard")
    with pytest.raises(ActivationCodeUsed):
        ctx.activation.redeem(second.code)
    third = ctx.activation.issue(alice, "brossard", "staff:test", key="k3")
    clock.advance(VALID_SECONDS)
    with pytest.raises(ActivationCodeExpired):
        ctx.activation.redeem(third.code)
    with pytest.raises(ActivationCodeInvalid):
        ctx.activation.redeem("2222-2222-2222")


def test_codes_are_only_for_a_citys_own_live_residents(ctx, cities) -> None:
    alice, zoe = cities.residents["alice"].id, cities.residents["zoe"].id
    with pytest.raises(WrongTenant):
        ctx.activation.issue(zoe, "brossard", "staff:test", key="k")  # Brossard's staff, Magog's resident
    with pytest.raises(UnknownResident):
        ctx.activation.issue("r-nobody", "brossard", "staff:test", key="k")
    code = ctx.activation.issue(alice, "brossard", "staff:test", key="k").code
    ctx.residents.erase(alice, "staff:test", "brossard")
    with pytest.raises(ResidentErased):
        ctx.activation.redeem(code)
    with pytest.raises(ResidentErased):
        ctx.activation.issue(alice, "brossard", "staff:test", key="k2")


def test_passkeys_refuse_what_they_cannot_verify_and_removing_is_per_resident(ctx, cities) -> None:
    alice = cities.residents["alice"].id
    options, challenge = ctx.passkeys.registration_options(alice, "brossard", "entraide.example")
    assert '"rp": {"name": "Entraide", "id": "entraide.example"}' in options and len(challenge) >= 32
    with pytest.raises(PasskeyRefused):
        ctx.passkeys.register(alice, "brossard", "resident:x", '{"id": "AAAA"}', challenge, "https://entraide.example",
                              "entraide.example")  # fmt: skip
    with pytest.raises(PasskeyRefused):
        ctx.passkeys.authenticate("not json", challenge, "https://entraide.example", "entraide.example")
    with pytest.raises(UnknownPasskey):
        ctx.passkeys.remove(alice, "brossard", "resident:x", "AAAA")
    assert ctx.passkeys.list(alice) == []
