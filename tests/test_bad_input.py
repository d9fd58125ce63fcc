"""Bad input on every route is a 4xx problem, and leaves no traceback in the log: every query and
path parameter, and deeply nested JSON from any caller. The routes are read from the app itself,
so a route added later is attacked too. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.datastructures import Cookie
from litestar.testing import TestClient

from api.bootstrap import open_context
from api.http import params
from api.http.app import create_app
from community.domain.access import operator
from tests.test_api import assert_problem
from tests.world import World, standard_world
from web.auth import OFFICE, WALLET, area_of, open_session

WEBHOOK_SECRET = "whsec_bad_input"
INJECTED = {
    "ctx",
    "principal",
    "jobs",
    "request",
    "data",
    "scope",
    "key",
    "limits",
    "visitor",
}  # dependencies, the raw request, the body, a header
PATH_VALUES = {"city": "brossard", "period": "2026-01"}  # any other path parameter: an id that does not exist
DEPTH = 40_000  # far past what the decoders recurse, within the 256 KiB body limit


@dataclass(frozen=True)
class Param:
    method: str
    path: str  # the route's template, `{name:type}` included
    name: str
    kind: type  # int, float, bool or str
    in_path: bool
    raw: object  # the annotation as written in the handler
    ge: float | None
    le: float | None

    def url(self, value: str) -> str:
        def fill(match: re.Match) -> str:
            return value if match[1] == self.name else PATH_VALUES.get(match[1], "x1")

        url = re.sub(r"\{(\w+):\w+\}", fill, self.path)
        return url if self.in_path else f"{url}?{self.name}={value}"


def _kind(annotation: object) -> type:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation  # type: ignore[return-value]


def parameters(app: Litestar) -> list[Param]:
    found = []
    for route in app.routes:
        if route.path.startswith(("/schema", "/static")):
            continue  # litestar's OpenAPI pages and static files (tested below for odd names)
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                for name, field in handler.parsed_fn_signature.parameters.items():
                    if name in INJECTED:
                        continue
                    kwarg = field.kwarg_definition
                    found.append(Param(method, route.path, name, _kind(field.annotation), name in route.path_parameters,
                                       field.raw, getattr(kwarg, "ge", None), getattr(kwarg, "le", None)))  # fmt: skip
    return found


def body_routes(app: Litestar) -> list[tuple[str, str]]:
    """Routes that read a body: a JSON `data`, or the raw request (the webhooks)."""
    return sorted({(method, route.path) for route in app.routes for handler in getattr(route, "route_handlers", [])
                   for method in handler.http_methods & {"POST", "PUT", "PATCH"}
                   if {"data", "request"} & set(handler.parsed_fn_signature.parameters)})  # fmt: skip


OWNER = "owner-boulangerie"  # a merchant owner's token (the /v1/merchants routes of owners)


def caller(path: str) -> str | None:
    """Whose credentials reach this route's handler (None: a public route)."""
    prefixes = {"/v1/merchants/pairing-codes": OWNER, "/v1/merchants/terminals": OWNER, "/v1/merchants/activity": OWNER,
                "/v1/pos": "pos", "/v1/merchants": "pos", "/v1/wallet": "alice", "/v1/catalog": "alice",
                "/v1/orgs": "entraide-jeunesse", "/v1/finance": "finance-brossard", "/v1/admin": "staff-brossard"}  # fmt: skip
    return next((who for prefix, who in prefixes.items() if path.startswith(prefix)), None)


def is_page(path: str) -> bool:
    return not path.startswith("/v1/")


def refused(response, status: int, code: str, path: str) -> str:
    """The refusal's detail: a problem document from the API, an error page (same code) from the pages."""
    if not is_page(path):
        return assert_problem(response, status, code)["detail"]
    assert response.status_code == status and response.headers["content-type"].startswith("text/html"), response.text
    assert f"<code>{code}</code>" in response.text
    return response.text


def area_session(world: World, url: str) -> Cookie:
    """A session of the page's area: a resident's in the wallet, a staff officer's in the office, the
    first merchant's owner in the portal (the same principal each time: its key replays)."""
    area = area_of(urlsplit(url).path)
    if area is WALLET:
        return open_session(world.ctx, world.residents["alice"].id, "brossard", "test:bad-input")
    role, merchant = ("staff", None) if area is OFFICE else ("merchant", "boulangerie")
    holder = world.ctx.activation.issue_principal(operator("test"), "brossard", role, f"bad-input-{role}",
                                                  key=f"bad-input-{role}", merchant_id=merchant).principal_id  # fmt: skip
    return open_session(world.ctx, holder, "brossard", "test:bad-input", area)


def send(world: World, method: str, url: str, body: bytes = b"", who: str | None = "route") -> object:
    who = caller(url) if who == "route" else who
    if is_page(url):  # a signed-in browser of the page's area (the session cookie, by hand: the client speaks http)
        cookie = area_session(world, url)
        headers = {"Cookie": f"{cookie.key}={cookie.value}", "Accept": "text/html"}
        return world.client.request(method, url, content=body, headers=headers)
    if who == "pos":
        headers = world.signed_headers("boulangerie", method, url, body, key="bad-input")
    else:
        token = world.residents[who].token if who in world.residents else world.tokens.get(who or "")
        headers = {"Content-Type": "application/json", "Idempotency-Key": "bad-input"}
        headers |= {"Authorization": f"Bearer {token}"} if token else {}
    return world.client.request(method, url, content=body, headers=headers)


@pytest.fixture
def world(settings, clock) -> Iterator[World]:
    # Stripe on (against nothing: no call leaves), so that both webhooks check their signatures.
    settings = dataclasses.replace(settings, stripe_api_key="sk_test_bad_input", stripe_api_base="http://127.0.0.1:9",
                                   stripe_webhook_secret=WEBHOOK_SECRET, stripe_connect_webhook_secret=WEBHOOK_SECRET)  # fmt: skip
    ctx = open_context(settings, clock=clock, key_from_us=clock(), create=True)
    app = create_app(ctx, terminal_rate_per_second=100_000, resident_rate_per_second=100_000,
                     address_failures_per_minute=100_000)  # fmt: skip
    with TestClient(app) as client:
        world = standard_world(ctx, client)
        world.grant(OWNER, "merchant", "brossard", "marie", merchant_id="boulangerie")  # the owner's routes
        yield world
    ctx.engine.dispose()


@pytest.fixture
def quiet_log(caplog) -> Iterator[None]:
    """Fails the test if anything logged an error or a traceback meanwhile."""
    caplog.set_level(logging.INFO)
    yield
    loud = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not loud, [f"{r.name}: {r.getMessage()}" for r in loud]


# --- declared bounds ------------------------------------------------------------------------------


def test_every_parameter_has_a_type_from_api_params(world: World) -> None:
    shared = {id(value) for value in vars(params).values()}
    found = parameters(world.client.app)
    assert len({(p.path, p.name) for p in found}) > 50  # the walk found the routes
    assert [f"{p.method} {p.path} {p.name}" for p in found if id(p.raw) not in shared] == []
    numbers = [p for p in found if p.kind in (int, float)]
    assert [p.name for p in numbers if p.ge is None or p.le is None or p.le > params.BIGINT_MAX] == []


# --- integers -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("quiet_log")
def test_integers_out_of_bounds_or_not_integers_are_validation_errors(world: World) -> None:
    integers = [p for p in parameters(world.client.app) if p.kind is int]
    assert {p.name for p in integers} >= {"since_us", "until_us", "before_sequence", "after_seq", "before_us", "limit"}
    for param in integers:
        assert param.ge is not None and param.le is not None
        empty = [] if param.in_path else [""]  # an empty path segment is another URL, which no route answers
        for value in (2**64, 2**63, int(param.le) + 1, -1, int(param.ge) - 1, "x", "1.5", *empty):
            response = send(world, param.method, param.url(str(value)))
            detail = refused(response, 400, "validation_error", param.path)
            assert param.name in detail, (param, value)
        for value in (param.ge, param.le):  # the bounds themselves are served
            assert send(world, param.method, param.url(str(int(value)))).status_code < 500, (param, value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_an_integer_is_served_exactly_when_within_its_bounds(world: World, data: st.DataObject) -> None:
    integers = [p for p in parameters(world.client.app) if p.kind is int]
    param = data.draw(st.sampled_from(integers))
    value = data.draw(st.integers(-(2**70), 2**70) | st.integers(int(param.ge) - 3, int(param.ge) + 3)  # type: ignore[arg-type]
                      | st.integers(int(param.le) - 3, int(param.le) + 3))  # type: ignore[arg-type]  # fmt: skip
    response = send(world, param.method, param.url(str(value)))
    if param.ge <= value <= param.le:  # type: ignore[operator]
        assert response.status_code < 500 and "validation_error" not in response.text, (param, value)
    else:
        refused(response, 400, "validation_error", param.path)


# --- every other parameter ------------------------------------------------------------------------

ODD_VALUES = ["%00", "a%00b", "x" * 5_000, "%ff%fe", "%C3%A9t%C3%A9", "%20", "nan", "inf", "-0", "1e400", "%2F"]


@pytest.mark.usefixtures("quiet_log")
def test_odd_values_in_any_parameter_are_refused_or_harmless(world: World) -> None:
    for param in parameters(world.client.app):
        for value in ODD_VALUES:
            response = send(world, param.method, param.url(value))
            assert response.status_code < 500, (param.method, param.url(value)[:100], response.text[:300])


@pytest.mark.usefixtures("quiet_log")
def test_odd_file_names_under_static_are_not_found(world: World) -> None:
    for value in [*ODD_VALUES, "..%2Fpages.py", "css/..%2F..%2Fpages.py", "leaflet/..%2F..%2Fcss%2Fsite.css"]:
        response = world.client.get(f"/static/{value}")
        assert response.status_code == 404, (value, response.status_code)
    assert world.client.get("/static/css/site.css").status_code == 200


# --- deeply nested JSON ---------------------------------------------------------------------------

DEEP_BODIES = {
    "arrays": b"[" * DEPTH + b"]" * DEPTH,
    "objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "in-a-field": b'{"card":' + b"[" * DEPTH + b"]" * DEPTH + b"}",
}


def stripe_signature(payload: bytes) -> str:
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_deeply_nested_json_is_a_client_error_for_every_caller(world: World, body: bytes) -> None:
    routes = body_routes(world.client.app)
    assert len(routes) > 30 and ("POST", "/v1/payments/stripe/webhook") in routes
    for method, path in routes:
        url = Param(method, path, "", str, True, None, None, None).url("")
        if path.endswith("/reconciliation"):
            continue  # a bank file, not JSON: its own finding (issue 12, 13 second half)
        for who in ("route", None):  # with the route's own credentials, and anonymous
            response = send(world, method, url, body, who)
            assert 400 <= response.status_code < 500, (method, url, who, response.text[:300])
            if response.status_code == 400:
                assert response.json()["code"] in ("malformed_json", "validation_error", "invalid_webhook"), (url, who)


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("path", ["/v1/payments/stripe/webhook", "/v1/finance/stripe/webhook"])
def test_a_deeply_nested_webhook_with_a_valid_signature_is_malformed_json(world: World, path: str) -> None:
    body = b'{"a":' * 5_000 + b"1" + b"}" * 5_000  # deep enough, and below the webhooks' own size limit
    assert_problem(world.client.post(path, content=body, headers={"Stripe-Signature": stripe_signature(body)}), 400,
                   "malformed_json")  # fmt: skip
    assert_problem(
        world.client.post(path, content=body, headers={"Stripe-Signature": "t=1,v1=00"}), 400, "invalid_webhook"
    )
