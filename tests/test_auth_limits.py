"""Failed authentication is limited per client address and per claimed credential, and a signed
request refused at admission writes nothing (not even its nonce). On SQLite and PostgreSQL.

Addresses differ only behind a proxy, so those tests run the app in a real uvicorn server that
trusts X-Forwarded-For from 127.0.0.1, as `entraide serve` does behind the city's TLS proxy.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from sqlalchemy import text

from api.http.app import create_app
from api.http.auth import FailureLimits, RateLimited, RateLimiter
from community.domain.errors import Unauthorized
from tests.test_api import assert_problem
from tests.world import World, free_port, standard_world

ADDRESS_FAILURES = 5  # per minute, for the tests: small enough to reach, distinct from the next
CREDENTIAL_FAILURES = 8
IDENTIFY = "/v1/pos/identify"


@contextmanager
def served(app) -> Iterator[str]:
    """The app in a real uvicorn server on a thread (same process: the test's clock and context)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=True,
                            forwarded_allow_ips="127.0.0.1")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def world(ctx) -> Iterator[World]:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000,
                     address_failures_per_minute=ADDRESS_FAILURES, credential_failures_per_minute=CREDENTIAL_FAILURES)  # fmt: skip
    with served(app) as base, httpx.Client(base_url=base) as client:
        yield standard_world(ctx, client)


def at(world: World, address: str) -> World:
    """The same credentials, sent from another client address (through the trusted proxy)."""
    client = httpx.Client(base_url=world.client.base_url, headers={"X-Forwarded-For": address})
    return dataclasses.replace(world, client=client)


def identify(world: World, terminal: str = "boulangerie") -> httpx.Response:
    return world.pos(terminal, "POST", IDENTIFY, {"card": world.residents["alice"].card})


def bad_token(world: World, token: str) -> httpx.Response:
    return world.client.get("/v1/wallet/balance", headers={"Authorization": f"Bearer {token}"})


def tampered(token: str) -> str:
    return token[:-2] + ("AA" if not token.endswith("AA") else "BB")


# --- per client address ---------------------------------------------------------------------------


def test_failures_from_one_address_throttle_that_address_and_no_other(world: World, clock) -> None:
    a, b = at(world, "203.0.113.7"), at(world, "198.51.100.9")
    for n in range(ADDRESS_FAILURES):
        assert_problem(bad_token(a, f"garbage-{n}"), 401, "unauthorized")  # each a different credential

    limited = a.bearer("alice", "GET", "/v1/wallet/balance")  # a valid token, from the throttled address
    assert_problem(limited, 429, "rate_limited")
    retry_after_s = int(limited.headers["retry-after"])
    assert retry_after_s == 60 // ADDRESS_FAILURES  # one more failure allowed per 60/N seconds
    # A signed request from there is refused before its signature is even parsed: junk gets a 429 too.
    assert_problem(a.client.post(IDENTIFY, content=b"{}", headers={"Signature": "junk"}), 429, "rate_limited")
    assert_problem(identify(a), 429, "rate_limited")

    assert b.bearer("alice", "GET", "/v1/wallet/balance").status_code == 200
    assert identify(b).status_code == 200

    clock.advance(retry_after_s)
    assert a.bearer("alice", "GET", "/v1/wallet/balance").status_code == 200  # successes cost nothing
    assert_problem(bad_token(a, "garbage-again"), 401, "unauthorized")
    assert_problem(a.bearer("alice", "GET", "/v1/wallet/balance"), 429, "rate_limited")


def test_signature_failures_count_against_the_address(world: World) -> None:
    a = at(world, "203.0.113.8")
    body = json.dumps({"card": world.residents["alice"].card}).encode()
    for n in range(ADDRESS_FAILURES):
        # One failure per terminal key (two keys): only the address can have run out.
        headers = a.signed_headers(["boulangerie", "boulangerie#1"][n % 2], "POST", IDENTIFY, body)
        refused = a.client.post(IDENTIFY, content=body + b" ", headers=headers)
        assert_problem(refused, 401, "invalid_signature")
    assert_problem(identify(a, "librairie"), 429, "rate_limited")
    assert identify(at(world, "203.0.113.9"), "librairie").status_code == 200


def test_an_ipv6_client_counts_by_its_64_prefix(world: World) -> None:
    for n in range(ADDRESS_FAILURES):
        assert_problem(bad_token(at(world, f"2001:db8:5:7::{n + 1:x}"), f"garbage-{n}"), 401, "unauthorized")
    assert_problem(at(world, "2001:db8:5:7:ffff::1").bearer("alice", "GET", "/v1/wallet/balance"), 429, "rate_limited")
    assert at(world, "2001:db8:5:8::1").bearer("alice", "GET", "/v1/wallet/balance").status_code == 200


# --- per claimed credential -----------------------------------------------------------------------


def test_failures_for_one_terminal_key_throttle_that_key_from_every_address(world: World) -> None:
    body = json.dumps({"card": world.residents["alice"].card}).encode()
    for n in range(CREDENTIAL_FAILURES):  # each from its own address: no address runs out
        w = at(world, f"192.0.2.{n + 1}")
        headers = w.signed_headers("boulangerie", "POST", IDENTIFY, body)
        assert_problem(
            w.client.post(IDENTIFY, content=body.replace(b"}", b" }"), headers=headers), 401, "invalid_signature"
        )

    fresh = at(world, "192.0.2.200")
    assert_problem(identify(fresh), 429, "rate_limited")  # correctly signed, but for that key id
    assert identify(fresh, "boulangerie#1").status_code == 200  # the merchant's other terminal
    # Refused before the key is looked up: a revoked key still gets the 429, not unknown_key.
    world.ctx.terminals.revoke(world.terminals["boulangerie"].key_id, "staff:test", "brossard")
    assert_problem(identify(at(world, "192.0.2.201")), 429, "rate_limited")


def test_failures_for_one_bearer_token_throttle_that_token_from_every_address(world: World) -> None:
    forged = tampered(world.residents["alice"].token)
    for n in range(CREDENTIAL_FAILURES):
        assert_problem(bad_token(at(world, f"198.18.0.{n + 1}"), forged), 401, "unauthorized")
    fresh = at(world, "198.18.1.1")
    assert_problem(bad_token(fresh, forged), 429, "rate_limited")
    assert fresh.bearer("alice", "GET", "/v1/wallet/balance").status_code == 200  # her real token
    assert fresh.bearer("bob", "GET", "/v1/wallet/balance").status_code == 200


# --- a refused signed request writes nothing --------------------------------------------------------


def _nonce(headers: dict) -> str:
    found = re.search(r';nonce="([^"]+)"', headers["Signature-Input"])
    assert found is not None
    return found[1]


def nonce_rows(world: World, headers: dict) -> int:
    with world.ctx.engine.connect() as conn:
        query = text("SELECT count(*) FROM request_nonces WHERE nonce = :nonce")
        return conn.execute(query, {"nonce": _nonce(headers)}).scalar_one()


def test_a_request_refused_for_its_budget_writes_no_nonce_and_may_be_sent_again(ctx, clock) -> None:
    with TestClient(create_app(ctx, terminal_rate_per_second=1, resident_rate_per_second=1_000)) as client:
        world = standard_world(ctx, client)
        for _ in range(4):  # the burst: four seconds' worth
            assert identify(world).status_code == 200
        body = json.dumps({"card": world.residents["alice"].card}).encode()
        headers = world.signed_headers("boulangerie", "POST", IDENTIFY, body)
        refused = client.post(IDENTIFY, content=body, headers=headers)
        assert_problem(refused, 429, "rate_limited")
        assert nonce_rows(world, headers) == 0

        clock.advance(int(refused.headers["retry-after"]))
        assert client.post(IDENTIFY, content=body, headers=headers).status_code == 200  # the same nonce
        assert nonce_rows(world, headers) == 1
        clock.advance(1)  # a replay spends from the budget too: it is refused once verified
        assert_problem(client.post(IDENTIFY, content=body, headers=headers), 401, "replayed_request")


def test_a_signed_request_refused_before_its_handler_writes_nothing(ctx, clock) -> None:
    with TestClient(create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)) as client:
        world = standard_world(ctx, client)
        card = world.residents["alice"].card

        def send(body: bytes, path: str = "/v1/pos/holds", sent: bytes | None = None) -> tuple[httpx.Response, dict]:
            headers = world.signed_headers("boulangerie", "POST", path, body, key=f"k-{len(body)}")
            return client.post(path, content=body if sent is None else sent, headers=headers), headers

        cases = {
            "validation_error": send(json.dumps({"card": card, "points": "10"}).encode()),
            "malformed_json": send(b'{"card": '),
            "invalid_signature": send(b"{}", sent=b"{ }"),
        }
        world.ctx.merchants.set_status("boulangerie", "suspended", "staff:test", "brossard")
        cases["merchant_not_approved"] = send(json.dumps({"card": card, "points": 10}).encode())
        for code, (response, headers) in cases.items():
            assert response.json()["code"] == code
            assert nonce_rows(world, headers) == 0, code
        assert world.available("alice") == 1_000


# --- the budgets themselves ---------------------------------------------------------------------------

Step = tuple[str, str | None, bool, float]
steps = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["k1", "k2", None]), st.booleans(),
                           st.floats(0, 20)), max_size=60)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(steps)
def test_failures_let_through_never_exceed_the_budget(history: list[Step]) -> None:
    """Whatever the order of attempts, an address (or a credential) gets at most `burst` failures at
    once plus `rate` per second after; and one that never failed is never refused."""
    now = [0.0]
    burst, per_minute = 3, 6

    def limiter() -> RateLimiter:
        return RateLimiter(per_minute / 60, burst=burst, clock_seconds=lambda: now[0])

    limits = FailureLimits(per_address=limiter(), per_credential=limiter())
    failures: dict[str, int] = {}
    for address, credential, fails, dt in history:
        now[0] += dt
        try:
            with limits.attempt(address) as attempt:
                if credential is not None:
                    attempt.claim(credential)
                if fails:
                    raise Unauthorized("refused")
        except RateLimited:
            assert failures.get(address) or failures.get(credential or ""), "refused without a failure"
        except Unauthorized:
            for name in (address, credential):
                if name is not None:
                    failures[name] = failures.get(name, 0) + 1
                    assert failures[name] <= burst + now[0] * per_minute / 60
