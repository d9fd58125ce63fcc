"""A city identity provider, attacked through HTTP as a resident's client meets it, on SQLite and
PostgreSQL (security review, findings 6, 7 and 8).

6. Issuer and audience are required with a key set URL (every command refuses to start without
   them); `iss`, `aud`, `nbf`, `iat`, `exp` are checked with a one-minute leeway, for the built-in
   issuer too; claims of the wrong type are a 401, never a 500.
7. A provider's subject names a resident only if the city enrolled the resident with it, in one city.
8. The key set is cached and refreshed in the background: garbage tokens cost the provider nothing,
   a hanging provider slows no request, a rotated key is picked up, 503 only before any key set.

The provider is tests/identity_provider.py, a real HTTP server that counts every fetch.
"""

from __future__ import annotations

import itertools
import secrets
import string
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from typer.testing import CliRunner

from api.bootstrap import open_context
from api.cli import app as cli
from api.http.app import create_app
from community.adapters.secrets import CLOCK_LEEWAY_SECONDS as LEEWAY
from community.domain.access import MAX_TTL_SECONDS
from community.service_layer.residents import ERASURE_DELAY_DAYS
from ledger.service_layer.keys import now_us
from tests.identity_provider import AUDIENCE, ISSUER, IdentityProvider, new_key, sign
from tests.world import World, server_process

PROBLEM = "application/problem+json"
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
OIDC_VARIABLES = ("ENTRAIDE_OIDC_JWKS_URL", "ENTRAIDE_OIDC_ISSUER", "ENTRAIDE_OIDC_AUDIENCE")


@pytest.fixture
def provider():
    with IdentityProvider() as running:
        yield running
    assert running.max_in_flight <= 1  # never two fetches at once, whatever a test did


@pytest.fixture
def city_idp(settings, clock, provider, request):
    """Brossard and Delson, whose identity provider is the local one; alice is enrolled without a
    subject (as the demo's residents are). An `indirect` parameter may set the key set's refresh
    interval (`refresh_seconds`) and how the provider behaves when the app starts (`mode`)."""
    options = {"refresh_seconds": 300, "mode": "serve"} | getattr(request, "param", {})
    refresh_seconds, provider.mode = options["refresh_seconds"], options["mode"]
    configured = replace(settings, oidc_jwks_url=provider.jwks_url, oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                         oidc_jwks_refresh_seconds=refresh_seconds)  # fmt: skip
    ctx = open_context(configured, clock=clock, key_from_us=clock(), create=True)
    with TestClient(
        create_app(
            ctx,
            resident_rate_per_second=10_000,
            address_failures_per_minute=100_000,
            credential_failures_per_minute=100_000,
        )
    ) as client:
        assert options["mode"] != "serve" or eventually(lambda: ctx.tokens.external.loaded)  # started with the app
        world = World(ctx, client)
        world.city("brossard")
        world.city("delson")
        world.resident("alice", "brossard", points=100)
        yield world
    assert not [t for t in threading.enumerate() if t.name == "entraide-jwks" and t.is_alive()]  # stopped with the app
    ctx.engine.dispose()


def call(world: World, token: str, path: str = "/v1/wallet/balance", method: str = "GET", body: dict | None = None):
    return world.client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code
    return response.json()


def enrol(world: World, city: str, subject: str | None, name: str = "Résidente") -> httpx.Response:
    body = {"personal": {"name": name}, "level": "basic"} | ({"subject": subject} if subject is not None else {})
    headers = {"Authorization": f"Bearer {world.tokens[f'staff-{city}']}", "Idempotency-Key": secrets.token_hex(8)}
    return world.client.post(f"/v1/admin/residents/{city}", json=body, headers=headers)


def eventually(check, timeout_seconds: float = 30) -> bool:
    """Poll an outcome until it holds: the refresher works in the background, on its own time."""
    deadline = time.monotonic() + timeout_seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- 6. settings: issuer and audience are required ------------------------------------------------


@pytest.mark.parametrize(
    ("given_variables", "named"),
    [({"ENTRAIDE_OIDC_JWKS_URL": "https://idp.example/jwks"}, "ENTRAIDE_OIDC_ISSUER is required"),
     ({"ENTRAIDE_OIDC_JWKS_URL": "https://idp.example/jwks", "ENTRAIDE_OIDC_ISSUER": ISSUER}, "ENTRAIDE_OIDC_AUDIENCE is required"),
     ({"ENTRAIDE_OIDC_ISSUER": ISSUER, "ENTRAIDE_OIDC_AUDIENCE": AUDIENCE}, "ENTRAIDE_OIDC_JWKS_URL is required"),
     ({"ENTRAIDE_OIDC_JWKS_URL": "http://idp.example/jwks", "ENTRAIDE_OIDC_ISSUER": ISSUER, "ENTRAIDE_OIDC_AUDIENCE": AUDIENCE},
      "ENTRAIDE_OIDC_JWKS_URL must be an https:// URL"),
     ({"ENTRAIDE_OIDC_JWKS_URL": "https://idp.example/jwks", "ENTRAIDE_OIDC_ISSUER": "entraide", "ENTRAIDE_OIDC_AUDIENCE": AUDIENCE},
      "ENTRAIDE_OIDC_ISSUER cannot be 'entraide'"),
     ({"ENTRAIDE_OIDC_JWKS_URL": "https://idp.example/jwks", "ENTRAIDE_OIDC_ISSUER": ISSUER, "ENTRAIDE_OIDC_AUDIENCE": AUDIENCE,
       "ENTRAIDE_OIDC_JWKS_REFRESH_SECONDS": "0"}, "ENTRAIDE_OIDC_JWKS_REFRESH_SECONDS must be a positive")],
    ids=["url-only", "no-audience", "no-url", "plain-http", "builtin-issuer", "zero-refresh"],
)  # fmt: skip
def test_every_command_refuses_a_half_configured_identity_provider(
    db_url, tmp_path, monkeypatch, given_variables, named
):
    for variable in (*OIDC_VARIABLES, "ENTRAIDE_OIDC_JWKS_REFRESH_SECONDS"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in given_variables.items():
        monkeypatch.setenv(variable, value)
    common = ["--db", db_url, "--data-dir", str(tmp_path / "data")]
    commands = (["ledger", "verify"], ["admin", "enrol", "--city", "brossard", "--name", "Alice"],
                ["settlement", "close", "--city", "brossard", "--period", "2026-01"])  # fmt: skip
    for command in commands:
        result = CliRunner().invoke(cli, [*command, *common])
        assert result.exit_code == 2, result.output
        assert named in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_serve_refuses_to_start_without_issuer_and_audience(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("ENTRAIDE_OIDC_JWKS_URL", "https://idp.example/jwks")
    monkeypatch.delenv("ENTRAIDE_OIDC_ISSUER", raising=False)
    monkeypatch.delenv("ENTRAIDE_OIDC_AUDIENCE", raising=False)
    command = [sys.executable, "-m", "api.cli", "serve", "--db", db_url, "--data-dir", str(tmp_path), "--port", "9"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "serving" not in done.stdout
    assert (
        done.stderr.strip().splitlines() == [done.stderr.strip()] and "ENTRAIDE_OIDC_ISSUER is required" in done.stderr
    )


# --- 6. claims: every rule, for any claims a provider key might sign -------------------------------

JUNK = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(-(2**70), 2**70), st.text(max_size=8),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))  # fmt: skip
ABSENT = st.just(None)


def _claims(now_s: int):
    seconds = st.integers(-3 * LEEWAY, 3 * LEEWAY)
    return st.fixed_dictionaries({
        "iss": st.one_of(st.just(ISSUER), st.just("entraide"), st.just("https://evil.example"), ABSENT, JUNK),
        "aud": st.one_of(st.just(AUDIENCE), st.just([AUDIENCE, "other"]), st.just("other"), ABSENT, JUNK),
        "sub": st.one_of(st.just("alice@idp"), st.just("x" * 256), st.just(""), JUNK),
        "city": st.one_of(st.just("brossard"), st.just("delson"), st.just(["brossard"]), ABSENT, JUNK),
        "iat": st.one_of(seconds.map(lambda d: now_s + d), ABSENT, JUNK),
        "nbf": st.one_of(seconds.map(lambda d: now_s + d), ABSENT, JUNK),
        "exp": st.one_of(seconds.map(lambda d: now_s + d), ABSENT, JUNK, st.just(True)),
    })  # fmt: skip


def _int(value) -> bool:
    return type(value) is int


def _accepted(claims: dict, now_s: int) -> bool:
    """The rules of finding 6, written out as a reader would check a token by hand."""
    aud = claims["aud"]
    return (claims["iss"] == ISSUER and (aud == AUDIENCE or (isinstance(aud, list) and AUDIENCE in aud))
            and claims["sub"] == "alice@idp" and claims["city"] in (None, "brossard")  # where alice@idp is enrolled
            and _int(claims["iat"]) and claims["iat"] <= now_s + LEEWAY
            and (claims["nbf"] is None or (_int(claims["nbf"]) and claims["nbf"] <= now_s + LEEWAY))
            and _int(claims["exp"]) and claims["exp"] + LEEWAY > now_s)  # fmt: skip


@pytest.fixture
def alice_at_idp(city_idp: World) -> str:
    response = enrol(city_idp, "brossard", "alice@idp", "Alice")
    assert response.status_code == 201, response.text
    return response.json()["id"]


@PROPERTY
@given(data=st.data())
def test_a_provider_token_is_accepted_only_when_every_claim_holds(city_idp, provider, alice_at_idp, data):
    now_s = city_idp.now_s()
    claims = data.draw(_claims(now_s))
    response = call(
        city_idp, sign(provider.key, {k: v for k, v in claims.items() if v is not None}), "/v1/wallet/export"
    )
    if _accepted(claims, now_s):
        assert response.status_code == 200, (claims, response.text)
        assert response.json()["resident"]["id"] == alice_at_idp
        return
    assert response.status_code == 401 and response.headers["content-type"].startswith(PROBLEM), (
        response.text
    )  # never a 500
    code = response.json()["code"]
    assert code in ("unauthorized", "token_expired")
    if code == "token_expired":
        assert _int(claims["exp"]) and claims["exp"] + LEEWAY <= now_s


@PROPERTY
@given(
    offset_s=st.one_of(
        st.integers(-3 * LEEWAY, 3 * LEEWAY), st.integers(-3 * LEEWAY, 3 * LEEWAY).map(lambda d: MAX_TTL_SECONDS + d)
    )
)
def test_a_builtin_token_is_accepted_only_from_its_iat_to_its_exp_give_or_take_the_leeway(city_idp, clock, offset_s):
    """World.resident issues a token of the longest lifetime at the clock's time; the clock then moves by offset_s."""
    issued_us = clock.now_us
    try:
        clock.now_us = issued_us + offset_s * 1_000_000
        response = call(city_idp, city_idp.residents["alice"].token)
    finally:
        clock.now_us = issued_us
    if -LEEWAY <= offset_s < MAX_TTL_SECONDS + LEEWAY:
        assert response.status_code == 200, (offset_s, response.text)
        assert response.json()["available"] == 100
    else:
        problem(response, 401, "unauthorized" if offset_s < 0 else "token_expired")


# --- 7. a provider's subject names only the resident enrolled with it -----------------------------


def test_a_provider_token_with_a_residents_id_as_subject_reads_nothing(city_idp, provider):
    """The review's attack: resident ids are public (every export names them); the demo's residents
    were enrolled without a subject, and used to get their id as one."""
    alice = city_idp.residents["alice"]
    assert call(city_idp, alice.token, "/v1/wallet/export").status_code == 200  # her own token works
    now_s = city_idp.now_s()
    for city in ("brossard", None, "delson"):
        forged = provider.token(now_s, sub=alice.id, city=city)
        for path in ("/v1/wallet/export", "/v1/wallet/balance", "/v1/wallet/history"):
            problem(call(city_idp, forged, path), 401, "unauthorized")
    with city_idp.ctx.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM residents WHERE subject IS NOT NULL").scalar() == 0


def test_a_subject_maps_to_a_resident_only_in_the_city_that_enrolled_it(city_idp, provider):
    now_s = city_idp.now_s()
    in_brossard = enrol(city_idp, "brossard", "chloe@idp").json()["id"]
    token = {city: provider.token(now_s, sub="chloe@idp", city=city) for city in ("brossard", "delson", None)}
    assert call(city_idp, token["brossard"], "/v1/wallet/export").json()["resident"]["id"] == in_brossard
    assert (
        call(city_idp, token[None], "/v1/wallet/export").json()["resident"]["id"] == in_brossard
    )  # enrolled in one city
    problem(call(city_idp, token["delson"], "/v1/wallet/export"), 401, "unauthorized")

    problem(enrol(city_idp, "brossard", "chloe@idp"), 409, "conflict")  # unique per city
    in_delson = enrol(city_idp, "delson", "chloe@idp").json()["id"]
    assert call(city_idp, token["delson"], "/v1/wallet/export").json()["resident"]["id"] == in_delson
    assert call(city_idp, token["brossard"], "/v1/wallet/export").json()["resident"]["id"] == in_brossard
    problem(call(city_idp, token[None], "/v1/wallet/export"), 401, "unauthorized")  # which one? refused

    asked = call(city_idp, token["delson"], "/v1/wallet/erasure", "POST")
    assert asked.status_code == 202 and asked.json()["status"] == "pending"  # erased when the delay is over
    city_idp.ctx.clock.advance(ERASURE_DELAY_DAYS * 86_400)
    assert city_idp.ctx.residents.carry_out_erasures() == {"erased": 1, "deferred": 0}
    token = {city: provider.token(city_idp.now_s(), sub="chloe@idp", city=city) for city in token}
    problem(call(city_idp, token["delson"], "/v1/wallet/export"), 401, "unauthorized")  # erased: the subject is gone
    assert call(city_idp, token[None], "/v1/wallet/export").json()["resident"]["id"] == in_brossard
    again = enrol(city_idp, "delson", "chloe@idp").json()["id"]  # the person may enrol again
    assert again != in_delson and call(city_idp, token["delson"], "/v1/wallet/export").json()["resident"]["id"] == again


counter = itertools.count()
SUBJECTS = st.sampled_from("abc")
ENROLMENT = st.tuples(st.just("enrol"), st.sampled_from(["brossard", "delson"]), st.one_of(st.none(), SUBJECTS))
ERASURE = st.tuples(st.just("erase"), st.integers(0, 7), st.none())


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(steps=st.lists(st.one_of(ENROLMENT, ENROLMENT, ERASURE), min_size=1, max_size=8))
def test_a_provider_token_resolves_to_the_one_resident_enrolled_with_its_subject(city_idp, provider, steps):
    """Any history of enrolments (with a subject or without) and erasures; then every token a provider
    could sign for a subject or a resident id, in each city or none, reads exactly the model's resident."""
    run = next(counter)
    residents: list[dict] = []  # the model: id, city, subject, erased
    for action, where, subject in steps:
        if action == "enrol":
            named = None if subject is None else f"{run}-{subject}"
            taken = any(r["subject"] == named and r["city"] == where and not r["erased"] for r in residents)
            response = enrol(city_idp, where, named)
            if named is not None and taken:
                problem(response, 409, "conflict")
                continue
            assert response.status_code == 201, response.text
            residents.append({"id": response.json()["id"], "city": where, "subject": named, "erased": False})
        elif residents:
            target = residents[where % len(residents)]
            erased = call(city_idp, city_idp.tokens[f"staff-{target['city']}"],
                          f"/v1/admin/residents/{target['city']}/{target['id']}/erase", "POST")  # fmt: skip
            assert erased.status_code == (410 if target["erased"] else 200), erased.text
            target["erased"] = True
    now_s = city_idp.now_s()
    names = {f"{run}-{s}" for s in "abc"} | {r["id"] for r in residents} | {city_idp.residents["alice"].id}
    for sub, city in itertools.product(sorted(names), ("brossard", "delson", "laval", None)):
        matching = [r for r in residents if r["subject"] == sub and not r["erased"] and city in (None, r["city"])]
        response = call(city_idp, provider.token(now_s, sub=sub, city=city), "/v1/wallet/export")
        if len(matching) == 1:
            assert response.status_code == 200 and response.json()["resident"]["id"] == matching[0]["id"], (sub, city)
        else:
            problem(response, 401, "unauthorized")


# --- 8. the provider's key set: cached, refreshed in the background --------------------------------


def _garbage(n: int, now_s: int, provider: IdentityProvider) -> list[str]:
    """Well-formed tokens, each signed by a key of its own under a kid the provider never published."""
    kids = ("".join(chars) for chars in itertools.product(string.ascii_lowercase, repeat=4))
    return [provider.token(now_s, key=new_key(f"forged-{next(kids)}")) for _ in range(n)]


def test_tokens_naming_unknown_keys_are_refused_without_fetching_the_key_set(city_idp, provider):
    now_s = city_idp.now_s()
    enrol(city_idp, "brossard", "alice@idp")
    assert call(city_idp, provider.token(now_s)).status_code == 200  # the key set is loaded
    loaded = provider.fetches
    for token in _garbage(150, now_s, provider):
        problem(call(city_idp, token), 401, "unauthorized")
    assert provider.fetches - loaded <= 1  # at most one early refresh, however many unknown kids


@pytest.mark.parametrize("city_idp", [{"refresh_seconds": 1}], indirect=True)
def test_a_hanging_provider_slows_no_request(city_idp, provider):
    """The provider answers once, then hangs every fetch; the refresher (every second) waits on it,
    the requests never do."""
    now_s = city_idp.now_s()
    enrol(city_idp, "brossard", "alice@idp")
    assert call(city_idp, provider.token(now_s)).status_code == 200
    provider.mode = "hang"
    assert provider.wait_for(lambda p: p.in_flight == 1)  # a refresh is stuck at the provider from here on
    for token in _garbage(60, now_s, provider):
        problem(call(city_idp, token), 401, "unauthorized")
        assert call(city_idp, city_idp.residents["alice"].token).json()["available"] == 100
        assert call(city_idp, provider.token(now_s)).status_code == 200  # the cached key still serves
    assert provider.max_in_flight == 1


@pytest.mark.parametrize("city_idp", [{"refresh_seconds": 2}], indirect=True)
def test_a_rotated_key_is_picked_up_by_the_background_refresh(city_idp, provider):
    now_s = city_idp.now_s()
    enrol(city_idp, "brossard", "alice@idp")
    old_token = provider.token(now_s)
    assert call(city_idp, old_token).status_code == 200
    before = provider.fetches
    provider.rotate()
    new_token = provider.token(now_s)
    assert eventually(lambda: call(city_idp, new_token).status_code == 200)  # no restart, no request-time fetch
    assert provider.fetches > before
    problem(call(city_idp, old_token), 401, "unauthorized")  # the retired key no longer signs


@pytest.mark.parametrize("city_idp", [{"mode": "fail"}], indirect=True)
def test_503_only_while_no_key_set_was_ever_loaded(city_idp, provider):
    now_s = city_idp.now_s()
    enrol(city_idp, "brossard", "alice@idp")
    assert provider.wait_for(lambda p: p.fetches >= 1 and p.in_flight == 0)
    for token in (provider.token(now_s), *_garbage(20, now_s, provider)):
        body = problem(call(city_idp, token), 503, "identity_provider_unavailable")
        assert body["retry_after_seconds"] >= 1
    response = call(city_idp, provider.token(now_s))
    assert int(response.headers["retry-after"]) >= 1
    assert call(city_idp, city_idp.residents["alice"].token).status_code == 200  # built-in tokens need no provider
    problem(call(city_idp, "not.a.token"), 401, "unauthorized")  # not a token at all: no key set needed to say so
    assert provider.fetches <= 3  # the backoff paces the retries, not the requests

    provider.mode = "serve"
    assert eventually(lambda: call(city_idp, provider.token(now_s)).status_code == 200)
    provider.mode = "fail"  # down again, but a key set was loaded: its keys still serve
    assert call(city_idp, provider.token(now_s)).status_code == 200
    problem(call(city_idp, _garbage(1, now_s, provider)[0]), 401, "unauthorized")


def test_the_refresher_backs_off_after_failures_however_often_it_is_nudged(provider):
    """At the adapter: after failures 1, 2, 3 … it waits 0.2, 0.4, 0.8, 0.8 … s (capped), nudged or
    not. Checked on the provider's clock, cumulatively, so one late arrival does not count twice."""
    from community.adapters.jwks import IdentityProviderUnavailable, RemoteJwks

    provider.mode = "fail"
    jwks = RemoteJwks(provider.jwks_url, first_load_wait_seconds=0, backoff_first_seconds=0.2, backoff_max_seconds=0.8)
    try:
        with pytest.raises(IdentityProviderUnavailable):
            jwks.key_set("idp-1")  # starts the refresher, then answers at once
        while provider.fetches < 6:
            with pytest.raises(IdentityProviderUnavailable):
                jwks.key_set("idp-1")  # every call also nudges
            time.sleep(0.005)
    finally:
        jwks.stop()
    elapsed = [t - provider.fetch_times[0] for t in provider.fetch_times[1:6]]
    backoff = list(itertools.accumulate((0.2, 0.4, 0.8, 0.8, 0.8)))  # without backoff: 0.2, 0.4, 0.6 …
    assert all(seen >= 0.75 * due for seen, due in zip(elapsed, backoff, strict=True)), elapsed
    assert jwks.failures >= 5


def test_an_unknown_kid_nudges_one_early_refresh_however_many_arrive(provider):
    """At the adapter: a refresh every 300 s, but a kid the set lacks asks for an early one, at most
    one per `nudge_seconds`, so a rotation is seen soon and a flood of forged kids costs little."""
    from community.adapters.jwks import RemoteJwks

    jwks = RemoteJwks(provider.jwks_url, refresh_seconds=300, nudge_seconds=0.5)
    try:
        assert jwks.key_set("idp-1") is not None and provider.fetches == 1
        rotated = provider.rotate()
        assert jwks.key_set(rotated.kid) is None  # refused at once, the refresher told
        assert eventually(lambda: jwks.key_set(rotated.kid) is not None)
        assert provider.fetches == 2
        started = time.monotonic()
        for n in range(2_000):
            assert jwks.key_set(f"forged-{n}") is None
        assert provider.fetches <= 2 + (time.monotonic() - started) / 0.5 + 1
    finally:
        jwks.stop()


# --- 8. the review's measurement, on a real server: 120 concurrent garbage tokens ---------------------


@pytest.fixture
def served_world(ctx, clock) -> World:
    clock.now_us = now_us()  # the server checks tokens against real time
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard")
    world.resident("alice", "brossard", points=100)
    return world


def test_a_provider_that_hangs_from_the_start_starves_nothing(served_world, provider, db_url, tmp_path, monkeypatch):
    """`entraide serve` with a provider whose every fetch hangs: 120 concurrent tokens that need its
    keys answer 503 without fetching per request, and a resident's balance answers meanwhile."""
    monkeypatch.setenv("ENTRAIDE_OIDC_JWKS_URL", provider.jwks_url)
    monkeypatch.setenv("ENTRAIDE_OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("ENTRAIDE_OIDC_AUDIENCE", AUDIENCE)
    provider.mode = "hang"
    garbage = _garbage(120, served_world.now_s(), provider)
    barrier = threading.Barrier(len(garbage) + 1)

    def get(base: str, token: str) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=120) as client:
            barrier.wait()
            return client.get("/v1/wallet/balance", headers={"Authorization": f"Bearer {token}"})

    with server_process(db_url, tmp_path) as (base, _), ThreadPoolExecutor(len(garbage) + 1) as pool:
        assert provider.wait_for(lambda p: p.in_flight == 1)  # the server's first fetch is stuck
        refused = [pool.submit(get, base, token) for token in garbage]
        balance = pool.submit(get, base, served_world.residents["alice"].token).result()
        answers = [future.result() for future in refused]
    assert balance.status_code == 200 and balance.json()["available"] == 100
    assert {(r.status_code, r.json()["code"]) for r in answers} == {(503, "identity_provider_unavailable")}
    assert all(int(r.headers["retry-after"]) >= 1 for r in answers)
    assert provider.fetches <= 10 and provider.max_in_flight == 1  # the refresher's attempts, not one per request


def test_concurrent_enrolments_of_one_subject_in_one_city_make_one_resident(ctx):
    """The check before the insert cannot see a concurrent enrolment; the unique index can, and its
    refusal is the same 409 as the check's."""
    from community.domain.errors import Conflict
    from community.domain.program import Program

    ctx.programs.configure(Program(city="brossard"), "test:setup")
    barrier = threading.Barrier(8)

    def enrol_once(n: int) -> str:
        barrier.wait()
        try:
            return ctx.residents.enroll(
                "brossard", {"name": f"R{n}"}, "basic", "test:clerk", subject="same@idp", key=f"r{n}"
            ).id
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(enrol_once, range(8)))
    assert sorted(outcomes).count("conflict") == 7
    with ctx.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM residents WHERE subject = 'same@idp'").scalar() == 1
