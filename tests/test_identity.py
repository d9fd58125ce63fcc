"""Identity: envelope encryption of personal data, the community's key files, citizen cards,
residents' lifecycle (export, erasure, renewal, lapse, opt-in) and bearer tokens from an identity provider.

Database tests use the `ctx` fixture, so they run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat

import msgspec
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import OKPKey
from sqlalchemy import text

from community.adapters.secrets import (
    BUILTIN_ISSUER,
    CLOCK_LEEWAY_SECONDS,
    CommunityKeys,
    RemoteJwks,
    TokenRejected,
    TokenService,
    new_data_key,
    open_personal,
    seal_personal,
    sign_token,
    unwrap_key,
    wrap_key,
)
from community.domain.errors import (
    CardExpired,
    CardRevoked,
    NotOptedIn,
    ResidentErased,
    ResidentExpired,
    UnknownCard,
    UnknownProgram,
    WrongTenant,
)
from community.domain.program import Program
from community.service_layer.residents import YEAR_US
from ledger.domain import accounts
from ledger.domain.errors import InvalidRequest
from ledger.domain.transfers import TransferRequest as T
from ledger.service_layer.audit import verify_database
from tests.identity_provider import AUDIENCE, ISSUER, IdentityProvider, new_key, sign

CITY = "brossard"
ALICE = {"name": "Alice Tremblay", "email": "alice@example.org", "phone": "+1 450 555 0100", "language": "fr"}


def b64json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


# --- envelope encryption -----------------------------------------------------------------------


def test_envelope_encryption_round_trip():
    kek = AESGCM(AESGCM.generate_key(256))
    data_key = new_data_key()
    assert len(data_key) == 32
    wrapped = wrap_key(kek, data_key, "r1")
    assert data_key not in wrapped
    assert unwrap_key(kek, wrapped, "r1") == data_key
    sealed = seal_personal(data_key, ALICE, "r1")
    assert b"Alice" not in sealed and b"alice@example.org" not in sealed
    assert open_personal(data_key, sealed, "r1") == ALICE
    assert seal_personal(data_key, ALICE, "r1") != sealed  # a fresh nonce each time


def test_wrapped_key_opens_only_for_its_resident_and_its_kek():
    kek = AESGCM(AESGCM.generate_key(256))
    data_key = new_data_key()
    wrapped = wrap_key(kek, data_key, "r1")
    with pytest.raises(InvalidTag):
        unwrap_key(kek, wrapped, "r2")  # copied onto another resident's row
    with pytest.raises(InvalidTag):
        unwrap_key(AESGCM(AESGCM.generate_key(256)), wrapped, "r1")  # another city's key
    tampered = bytearray(wrapped)
    tampered[20] ^= 1
    with pytest.raises(InvalidTag):
        unwrap_key(kek, bytes(tampered), "r1")


def test_personal_data_opens_only_for_its_resident_and_its_key():
    data_key = new_data_key()
    sealed = seal_personal(data_key, ALICE, "r1")
    with pytest.raises(InvalidTag):
        open_personal(data_key, sealed, "r2")
    with pytest.raises(InvalidTag):
        open_personal(new_data_key(), sealed, "r1")


# --- key files ---------------------------------------------------------------------------------


def test_key_files_are_private_and_reused(tmp_path):
    keys = CommunityKeys(tmp_path / "keys")
    card = keys.card_key(CITY)
    kek = keys.kek(CITY)
    issuer = keys.issuer_key()
    directory = tmp_path / "keys" / "community"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = {p.name for p in directory.iterdir()}
    assert names == {f"card-{CITY}.pem", f"kek-{CITY}.key", "issuer.pem"}
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert card.kid.startswith(f"card-{CITY}") and card.kid.endswith(card.thumbprint()[:8])

    again = CommunityKeys(tmp_path / "keys")
    assert again.card_key(CITY).thumbprint() == card.thumbprint() and again.card_key(CITY).kid == card.kid
    assert again.issuer_key().thumbprint() == issuer.thumbprint()
    assert again.kek(CITY).decrypt(b"\0" * 12, kek.encrypt(b"\0" * 12, b"secret", b""), b"") == b"secret"
    assert again.card_key("longueuil").thumbprint() != card.thumbprint()  # one key per city


@pytest.mark.parametrize(("name", "load"), [(f"card-{CITY}.pem", lambda k: k.card_key(CITY)),
                                            (f"kek-{CITY}.key", lambda k: k.kek(CITY))])  # fmt: skip
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_file_readable_by_others_is_refused(tmp_path, name, load, mode):
    load(CommunityKeys(tmp_path))
    os.chmod(tmp_path / "community" / name, mode)
    with pytest.raises(PermissionError):
        load(CommunityKeys(tmp_path))


# --- citizen cards (database) ------------------------------------------------------------------


def install_card_key(keys_dir, city: str, dash_in_kid: bool) -> OKPKey:
    """Put a city's card key in place before first use, choosing whether its kid's thumbprint part holds a '-'.

    The thumbprint is base64url, so about one key in eight has a '-' in the 8 characters of the kid.
    """
    while True:
        key = OKPKey.generate_key("Ed25519")
        if ("-" in key.thumbprint()[:8]) is dash_in_kid:
            break
    directory = keys_dir / "community"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / f"card-{city}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.as_pem(private=True))
    return key


@pytest.fixture
def city(ctx):
    ctx.programs.configure(Program(city=CITY), "test:setup")
    return ctx


def enroll(ctx, personal: dict | None = None, level: str = "basic") -> dict:
    return msgspec.to_builtins(
        ctx.residents.enroll(CITY, personal or ALICE, level, "test:clerk", key=secrets.token_hex(8))
    )


def test_card_resolves_to_its_resident(city):
    alice, bob = enroll(city), enroll(city, {"name": "Bob"}, "verified")
    card = city.residents.current_card(alice["id"])
    holder = city.residents.resolve_card(card["token"])
    assert (holder.card_id, holder.resident_id, holder.city, holder.level) == (card["id"], alice["id"], CITY, "basic")
    assert holder.wallet == accounts.wallet(alice["id"]) and holder.opt_ins == ()
    bob_holder = city.residents.resolve_card(city.residents.current_card(bob["id"])["token"])
    assert (bob_holder.resident_id, bob_holder.level) == (bob["id"], "verified")


@pytest.mark.parametrize("dash_in_kid", [False, True], ids=["plain-kid", "dash-in-kid"])
@pytest.mark.parametrize("name", ["laval", "saint-jean"])
def test_card_resolves_whatever_its_key_id(ctx, name, dash_in_kid):
    """Every genuine card resolves, whatever characters the city's name and its key's thumbprint hold."""
    key = install_card_key(ctx.settings.keys_dir, name, dash_in_kid)
    ctx.programs.configure(Program(city=name), "test:setup")
    resident = msgspec.to_builtins(ctx.residents.enroll(name, {"name": "Chloé"}, "basic", "test:clerk", key="chloe"))
    card = ctx.residents.current_card(resident["id"])
    kid = b64json(card["token"].split(".")[0])["kid"]
    assert kid == ctx.keys.card_key(name).kid and kid.startswith(f"card-{name}") and kid.endswith(key.thumbprint()[:8])
    assert ctx.residents.resolve_card(card["token"]).resident_id == resident["id"]


def test_card_token_is_small_and_carries_no_personal_data(city):
    alice = enroll(city)
    card = city.residents.current_card(alice["id"])
    token = card["token"]
    assert len(token.encode()) < 400
    header, payload, signature = token.split(".")
    assert set(b64json(header)) <= {"alg", "kid", "typ"} and b64json(header)["kid"] == city.keys.card_key(CITY).kid
    claims = b64json(payload)
    assert set(claims) == {"sub", "city", "exp"}
    assert claims == {"sub": card["id"], "city": CITY, "exp": alice["valid_until_us"] // 1_000_000}
    assert alice["id"] not in token
    for value in ALICE.values():
        assert value not in json.dumps(claims)
    assert signature


def test_card_signed_by_another_key_with_the_same_kid_is_refused(city):
    card = city.residents.current_card(enroll(city)["id"])
    real = city.keys.card_key(CITY)
    impostor = OKPKey.generate_key("Ed25519", parameters={"kid": real.kid})
    forged = sign_token(impostor, b64json(card["token"].split(".")[1]))
    assert forged.split(".")[0] == card["token"].split(".")[0]  # same header: only the signature differs
    with pytest.raises(UnknownCard):
        city.residents.resolve_card(forged)


def test_altered_card_is_refused(city):
    alice, bob = enroll(city), enroll(city, {"name": "Bob"})
    token = city.residents.current_card(alice["id"])["token"]
    header, payload, signature = token.split(".")
    bob_card = city.residents.current_card(bob["id"])["id"]
    altered = [
        f"{header}.{b64(b64json(payload) | {'sub': bob_card})}.{signature}",  # someone else's card
        f"{header}.{b64(b64json(payload) | {'exp': b64json(payload)['exp'] + YEAR_US // 10**6})}.{signature}",
        f"{header}.{payload}.{signature[:10]}{'A' if signature[10] != 'A' else 'B'}{signature[11:]}",
        f"{header}.{payload}.",
        f"{b64({'alg': 'none', 'kid': b64json(header)['kid']})}.{payload}.",
        token + "x",
        "not a token",
        "",
    ]
    for bad in altered:
        with pytest.raises(UnknownCard):
            city.residents.resolve_card(bad)
    assert city.residents.resolve_card(token).resident_id == alice["id"]


def test_expired_card_is_refused(city, clock):
    alice = enroll(city)
    card = city.residents.current_card(alice["id"])
    past = sign_token(city.keys.card_key(CITY), {"sub": card["id"], "city": CITY, "exp": clock() // 10**6 - 1})
    with pytest.raises(CardExpired):
        city.residents.resolve_card(past)
    clock.advance(YEAR_US / 10**6 - 1)
    assert city.residents.resolve_card(card["token"]).resident_id == alice["id"]  # its last second
    clock.advance(1)
    with pytest.raises(CardExpired):
        city.residents.resolve_card(card["token"])


def test_revoked_card_is_refused_and_listed(city, clock):
    alice, bob = enroll(city), enroll(city, {"name": "Bob"})
    card = city.residents.current_card(alice["id"])
    assert city.residents.revocations(CITY, 0) == []
    clock.advance(60)
    city.residents.revoke_card(card["id"], "test:clerk", CITY)
    with pytest.raises(CardRevoked):
        city.residents.resolve_card(card["token"])
    revoked = city.residents.revocations(CITY, 0)
    assert [(r["id"], r["revoked_at_us"]) for r in revoked] == [(card["id"], clock())]
    assert city.residents.revocations(CITY, clock() + 1) == []
    assert city.residents.resolve_card(city.residents.current_card(bob["id"])["token"]).resident_id == bob["id"]


def test_card_of_one_city_cannot_be_revoked_by_another(city):
    city.programs.configure(Program(city="longueuil"), "test:setup")
    card = city.residents.current_card(enroll(city)["id"])
    with pytest.raises(UnknownCard):
        city.residents.revoke_card(card["id"], "test:clerk", "longueuil")
    assert city.residents.resolve_card(card["token"]).card_id == card["id"]


def test_replace_card_revokes_the_old_one(city, clock):
    alice = enroll(city)
    old = city.residents.current_card(alice["id"])
    clock.advance(5)
    new = msgspec.to_builtins(city.residents.replace_card(alice["id"], "test:clerk")) | {"id": None}
    new["id"] = new["card_id"]
    assert new["id"] != old["id"] and new["token"] != old["token"]
    with pytest.raises(CardRevoked):
        city.residents.resolve_card(old["token"])
    assert city.residents.resolve_card(new["token"]).resident_id == alice["id"]
    assert old["id"] in {r["id"] for r in city.residents.revocations(CITY, 0)}
    assert new["id"] not in {r["id"] for r in city.residents.revocations(CITY, 0)}


@pytest.mark.parametrize("stranger", ["nowhere", "longueuil", "../../etc", "Brossard", "a" * 80])
def test_card_naming_an_unconfigured_city_is_refused_without_making_a_key(city, stranger):
    city.ledger.create_ledger("longueuil")  # a ledger, but no program
    enroll(city)
    before = sorted(p.name for p in (city.settings.keys_dir / "community").iterdir())
    for kid in (f"card-{stranger}.12345678", f"card-{stranger}-12345678", f"card-{stranger}"):
        key = OKPKey.generate_key("Ed25519", parameters={"kid": kid})
        token = sign_token(key, {"sub": "c0", "city": stranger, "exp": 4_000_000_000})
        with pytest.raises(UnknownCard):
            city.residents.resolve_card(token)
    after = sorted(p.name for p in (city.settings.keys_dir / "community").iterdir())
    assert after == before and not any(stranger in name for name in after)
    assert not any((city.settings.keys_dir / "community").glob("card-*longueuil*"))


def test_card_of_one_city_signed_under_another_citys_name_is_refused(city):
    city.programs.configure(Program(city="longueuil"), "test:setup")
    card = city.residents.current_card(enroll(city)["id"])
    # A valid Brossard card id, claimed by Longueuil and signed with Longueuil's real key.
    token = sign_token(city.keys.card_key("longueuil"), {"sub": card["id"], "city": "longueuil", "exp": 4_000_000_000})
    with pytest.raises(UnknownCard):
        city.residents.resolve_card(token)


# --- residents: export, erasure, renewal, lapse, opt-in ------------------------------------------


def _earn_and_spend(ctx, resident_id: str) -> None:
    ctx.programs.fund_budget(CITY, 10_000, "y2026", "test:finance")
    wallet = accounts.wallet(resident_id)
    ctx.ledger.transfer(T(CITY, "earn-1", "earn_civic", "single", "program:budget", wallet, 300))
    ctx.ledger.transfer(T(CITY, "spend-1", "service", "single", wallet, "services:revenue", 120))


def test_export_returns_the_personal_data_and_history(city):
    alice = enroll(city)
    _earn_and_spend(city, alice["id"])
    exported = msgspec.to_builtins(city.residents.export(alice["id"]))
    assert exported["personal"] == ALICE
    assert exported["resident"] == alice
    assert [c["id"] for c in exported["cards"]] == [city.residents.current_card(alice["id"])["id"]]
    assert sorted(e["entry"]["amount"] for e in exported["history"]) == [120, 300]
    with city.engine.connect() as conn:
        stored = conn.execute(text("SELECT personal FROM residents WHERE id = :id"), {"id": alice["id"]}).scalar_one()
    assert b"Alice" not in bytes(stored) and b"example.org" not in bytes(stored)


def test_personal_data_is_checked(city):
    for personal in ({"name": "x" * 201}, {"ssn": "123"}, {"name": 5}, ["Alice"]):
        with pytest.raises(InvalidRequest):
            city.residents.enroll(CITY, personal, "basic", "test:clerk", key=secrets.token_hex(8))


def test_erase_destroys_the_key_but_not_the_ledger(city):
    alice = msgspec.to_builtins(
        city.residents.enroll(CITY, ALICE, "basic", "test:clerk", subject="alice@idp.example", key="a")
    )
    bob = msgspec.to_builtins(
        city.residents.enroll(CITY, {"name": "Bob"}, "basic", "test:clerk", subject="bob@idp.example", key="b")
    )
    token = city.residents.current_card(alice["id"])["token"]
    _earn_and_spend(city, alice["id"])
    city.residents.erase(alice["id"], "test:clerk", CITY)

    query = text("SELECT status, subject, wrapped_key, personal FROM residents WHERE id = :id")
    with city.engine.connect() as conn:
        erased = conn.execute(query, {"id": alice["id"]}).one()
        bob_row = conn.execute(query, {"id": bob["id"]}).one()
    assert tuple(erased) == ("erased", None, None, None)  # nothing left that leads to the person
    assert bob_row.status == "active" and bob_row.subject == "bob@idp.example" and None not in bob_row  # only Alice

    report = verify_database(city.engine)
    assert report["ok"], report["error"]
    # The points left went to breakage, as expired points do: nobody can spend them, the city owes them no more.
    assert city.ledger.balance(CITY, accounts.wallet(alice["id"])).posted == 0
    assert city.ledger.balance(CITY, accounts.BREAKAGE).posted == 180
    for call in (lambda: city.residents.export(alice["id"]), lambda: city.residents.get(alice["id"]),
                 lambda: city.residents.renew(alice["id"], "test:clerk", CITY),
                 lambda: city.residents.erase(alice["id"], "test:clerk")):  # fmt: skip
        with pytest.raises(ResidentErased):
            call()
    with pytest.raises((CardRevoked, ResidentErased)):
        city.residents.resolve_card(token)
    # Even a card the city signs afresh for the erased resident's card id does not resolve.
    card_id = b64json(token.split(".")[1])["sub"]
    fresh = sign_token(city.keys.card_key(CITY), {"sub": card_id, "city": CITY, "exp": 4_000_000_000})
    with pytest.raises((CardRevoked, ResidentErased)):
        city.residents.resolve_card(fresh)
    assert msgspec.to_builtins(city.residents.export(bob["id"]).personal) == {"name": "Bob"}


def test_renew_extends_validity_by_a_year_from_its_end(city, clock):
    alice = enroll(city)
    old = city.residents.current_card(alice["id"])
    clock.advance(100 * 86_400)
    renewed = city.residents.renew(alice["id"], "test:clerk", CITY)
    assert renewed.valid_until_us == alice["valid_until_us"] + YEAR_US
    new = city.residents.current_card(alice["id"])
    assert new["id"] != old["id"] and new["expires_at_us"] == renewed.valid_until_us
    with pytest.raises(CardRevoked):
        city.residents.resolve_card(old["token"])
    assert city.residents.resolve_card(new["token"]).resident_id == alice["id"]
    with pytest.raises(WrongTenant):
        city.residents.renew(alice["id"], "test:clerk", "longueuil")


def test_lapsed_resident_is_refused_but_can_be_renewed(city, clock):
    alice = enroll(city)
    card = city.residents.current_card(alice["id"])
    clock.advance(YEAR_US / 10**6 + 10 * 86_400)
    with pytest.raises(CardExpired):
        city.residents.resolve_card(card["token"])
    # A card still in date (signed by the city) of a lapsed resident: the resident check refuses it.
    late = sign_token(city.keys.card_key(CITY), {"sub": card["id"], "city": CITY, "exp": clock() // 10**6 + 86_400})
    with pytest.raises(ResidentExpired):
        city.residents.resolve_card(late)
    renewed = city.residents.renew(alice["id"], "test:clerk", CITY)
    assert renewed.valid_until_us == clock() + YEAR_US  # from today, since it lapsed
    holder = city.residents.resolve_card(city.residents.current_card(alice["id"])["token"])
    assert holder.resident_id == alice["id"]


def test_opt_in_to_an_unknown_city_is_refused(city):
    alice = enroll(city)
    with pytest.raises(UnknownProgram):
        city.residents.opt_in(alice["id"], "atlantis", "test:alice")
    city.ledger.create_ledger("bare")  # a ledger without a program is no city to opt in to
    with pytest.raises(UnknownProgram):
        city.residents.opt_in(alice["id"], "bare", "test:alice")
    assert city.residents.opt_ins(alice["id"]) == []
    city.programs.configure(Program(city="longueuil"), "test:setup")
    assert city.residents.opt_in(alice["id"], "longueuil", "test:alice").opt_ins == ["longueuil"]
    # The home city needs no opt-in.
    assert city.residents.opt_in(alice["id"], CITY, "test:alice").opt_ins == ["longueuil"]
    holder = city.residents.resolve_card(city.residents.current_card(alice["id"])["token"])
    assert holder.opt_ins == ("longueuil",)
    holder.require_city("longueuil")
    holder.require_city(CITY)
    with pytest.raises(NotOptedIn):
        holder.require_city("laval")


# --- bearer tokens from an identity provider -----------------------------------------------------
# The service alone; tests/test_identity_provider.py attacks the same rules through HTTP.

NOW = 1_767_225_600
LEEWAY = CLOCK_LEEWAY_SECONDS


@pytest.fixture
def provider():
    with IdentityProvider() as running:
        yield running


@pytest.fixture
def service(tmp_path, provider) -> TokenService:
    tokens = TokenService(
        CommunityKeys(tmp_path), RemoteJwks(provider.jwks_url), external_issuer=ISSUER, external_audience=AUDIENCE
    )
    yield tokens
    tokens.stop()


def idp_token(provider: IdentityProvider, alg: str = "Ed25519", key: OKPKey | None = None, **changes) -> str:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice-123", "city": CITY, "iat": NOW, "exp": NOW + 300} | changes
    return sign(key or provider.key, {k: v for k, v in claims.items() if v is not None}, alg)


def test_identity_provider_token_is_accepted_as_a_resident(service, provider):
    resident = {"iss": ISSUER, "sub": "alice-123", "role": "resident", "city": CITY}
    assert service.verify(idp_token(provider), NOW) == resident
    assert service.verify(idp_token(provider, aud=["other", AUDIENCE]), NOW)["sub"] == "alice-123"
    assert service.verify(idp_token(provider, exp=NOW + 1), NOW)["role"] == "resident"
    assert service.verify(idp_token(provider, city=None), NOW) == resident | {"city": None}
    assert provider.fetches == 1  # fetched once, then cached


@pytest.mark.filterwarnings("ignore::Warning")
def test_identity_provider_token_with_the_eddsa_name_is_accepted(service, provider):
    assert service.verify(idp_token(provider, alg="EdDSA"), NOW)["sub"] == "alice-123"


def test_identity_provider_cannot_vouch_for_staff(service, provider):
    claims = service.verify(idp_token(provider, role="staff", org="o1", iss=ISSUER), NOW)
    assert claims == {"iss": ISSUER, "sub": "alice-123", "role": "resident", "city": CITY}


@pytest.mark.parametrize(
    "changes",
    [dict(aud="other"), dict(aud=["other", "more"]), dict(aud=None), dict(iss="https://evil.example"), dict(iss=None),
     dict(iss="entraide"), dict(exp=None), dict(exp=str(NOW + 300)), dict(exp=float(NOW + 300)), dict(exp=True),
     dict(iat=None), dict(iat=float(NOW)), dict(iat=NOW + LEEWAY + 1), dict(nbf=NOW + LEEWAY + 1), dict(nbf=str(NOW)),
     dict(nbf=False), dict(city=[CITY]), dict(city={"name": CITY}), dict(city=5), dict(sub=123), dict(sub=None), dict(sub=""),
     dict(sub=["alice-123"]), dict(sub="x" * 256)],
    ids=["wrong-aud", "wrong-aud-list", "no-aud", "wrong-iss", "no-iss", "builtin-iss", "no-exp", "str-exp", "float-exp",
         "bool-exp", "no-iat", "float-iat", "future-iat", "future-nbf", "str-nbf", "bool-nbf", "list-city", "object-city",
         "int-city", "int-sub", "no-sub", "empty-sub", "list-sub", "long-sub"],
)  # fmt: skip
def test_identity_provider_token_with_wrong_claims_is_rejected(service, provider, changes):
    with pytest.raises(TokenRejected) as rejected:
        service.verify(idp_token(provider, **changes), NOW)
    assert rejected.value.reason == "invalid"


@pytest.mark.parametrize("exp", [NOW - LEEWAY, NOW - LEEWAY - 1, NOW - 86_400])
def test_expired_identity_provider_token_is_rejected(service, provider, exp):
    with pytest.raises(TokenRejected) as rejected:
        service.verify(idp_token(provider, exp=exp, iat=exp - 300), NOW)
    assert rejected.value.reason == "expired"


def test_the_clock_leeway_is_a_minute_either_way(service, provider):
    """A token from a clock up to a minute ahead, or expired less than a minute ago, still passes."""
    for claims in (dict(iat=NOW + LEEWAY), dict(nbf=NOW + LEEWAY), dict(exp=NOW - LEEWAY + 1, iat=NOW - 300)):
        assert service.verify(idp_token(provider, **claims), NOW)["sub"] == "alice-123"


def test_token_signed_by_an_unknown_key_is_rejected(service, provider):
    strangers = [new_key("idp-2"), new_key("idp-1")]  # an unpublished kid, and the published kid on another key
    for stranger in strangers:
        with pytest.raises(TokenRejected):
            service.verify(idp_token(provider, key=stranger), NOW)
    header, payload, signature = idp_token(provider).split(".")
    unsigned = f"{b64({'alg': 'none', 'kid': 'idp-1'})}.{payload}."
    with pytest.raises(TokenRejected):
        service.verify(unsigned, NOW)
    swapped = f"{header}.{b64(b64json(payload) | {'sub': 'mallory'})}.{signature}"
    with pytest.raises(TokenRejected):
        service.verify(swapped, NOW)
    assert service.verify(idp_token(provider), NOW)["sub"] == "alice-123"


def test_builtin_tokens_still_verify_beside_the_identity_provider(service, provider):
    token = service.issue({"sub": "clerk-1", "role": "staff", "city": CITY, "jti": "j1"}, 600, NOW)
    claims = service.verify(token, NOW)
    assert claims == {"iss": BUILTIN_ISSUER, "sub": "clerk-1", "role": "staff", "city": CITY, "jti": "j1", "iat": NOW,
                      "nbf": NOW, "exp": NOW + 600}  # fmt: skip
    assert service.verify(token, NOW + 600 + LEEWAY - 1)["sub"] == "clerk-1"
    with pytest.raises(TokenRejected) as rejected:
        service.verify(token, NOW + 600 + LEEWAY)
    assert rejected.value.reason == "expired"
    for early in (NOW - LEEWAY - 1, NOW - 3_600):  # not valid yet: issued (and nbf) beyond the leeway ahead of us
        with pytest.raises(TokenRejected) as rejected:
            service.verify(token, early)
        assert rejected.value.reason == "invalid"
    assert service.verify(token, NOW - LEEWAY)["sub"] == "clerk-1"
    # A token the IdP signs cannot pose as a built-in one: built-in keys are the community's own.
    with pytest.raises(TokenRejected):
        service.verify(idp_token(provider, iss="entraide", role="staff"), NOW)
    assert provider.fetches == 1  # built-in tokens never ask the provider


@pytest.mark.parametrize("claims", [{"city": [CITY]}, {"role": ["staff"]}, {"org": 5}, {"sub": 7}, {"jti": {"a": 1}},
                                    {"iat": None}, {"iat": float(NOW)}, {"exp": float(NOW + 600)}, {"nbf": True}])  # fmt: skip
def test_builtin_tokens_with_claims_of_the_wrong_type_are_rejected(tmp_path, claims):
    service = TokenService(CommunityKeys(tmp_path))
    base = {"iss": BUILTIN_ISSUER, "sub": "clerk-1", "role": "staff", "city": CITY, "iat": NOW, "exp": NOW + 600}
    token = sign_token(service.keys.issuer_key(), {k: v for k, v in (base | claims).items() if v is not None})
    with pytest.raises(TokenRejected) as rejected:
        service.verify(token, NOW)
    assert rejected.value.reason == "invalid"


def test_without_an_identity_provider_its_tokens_are_rejected(tmp_path, provider):
    service = TokenService(CommunityKeys(tmp_path))
    with pytest.raises(TokenRejected):
        service.verify(idp_token(provider), NOW)
    assert service.verify(service.issue({"sub": "r1", "role": "resident"}, 60, NOW), NOW)["sub"] == "r1"
    assert provider.fetches == 0
