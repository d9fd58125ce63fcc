"""The server against its own OpenAPI document, with schemathesis: every operation, positive and
negative data, every check (server errors, status codes, content types, headers, response schemas,
data rejection and acceptance, ignored auth, Allow headers, resources after delete), and the
stateful links; against a real uvicorn server holding a small world (two cities, merchants with
terminals, residents with cards and points, staff, finance and organization tokens).

Requests carry the credential their operation's security asks for: a bearer token of the role its
prefix serves, or an RFC 9421 signature by a terminal's key, made by the same signer the other tests
use (`api.http.signatures.sign_request`) over the bytes actually sent. The number of examples per
operation is bounded and derandomized, so the run is repeatable and short: under ~90 s on SQLite,
fewer examples on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from api.http.app import create_app
from api.http.signatures import sign_request
from tests.smtp_server import smtp_server
from tests.test_auth_limits import served
from tests.world import World, standard_world

# schemathesis is optional: without it the module is skipped, so its names are imported after the check.
schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import CHECKS, load_all_checks  # noqa: E402

SIGN_ME = "entraide-contract-sign-me"  # a placeholder Signature: the session signs it for real
EXAMPLES = {"sqlite": int(os.environ.get("ENTRAIDE_CONTRACT_EXAMPLES", "6")), "postgresql": 3}
# Stripe's webhooks need Stripe's signature and configuration: tests/test_payments.py and test_finance.py;
# Stripe Connect's onboarding needs Stripe (503 payments_disabled here): tests/test_connect.py.
UNTESTED = ("/v1/payments/stripe/webhook", "/v1/finance/stripe/webhook", "/v1/merchants/payout-onboarding")
# What a resident does once (their token stops working): each example acts as a new resident.
ONCE = ("/v1/wallet/erasure", "/v1/wallet/sign-out-everywhere")
ERASE = "/v1/admin/residents/{city}/{resident_id}/erase"  # staff erase whoever a link names
OWNER = "owner-boulangerie"  # a merchant owner's token: its /v1/merchants routes take one
# Which bearer token serves which prefix (the first that matches).
BEARERS = (("/v1/merchants", OWNER), ("/v1/wallet", "alice"), ("/v1/catalog", "alice"), ("/v1/orgs", "entraide-jeunesse"),
           ("/v1/finance", "finance-brossard"), ("/v1/admin", "staff-brossard"), ("/v1/health/jobs", "staff-brossard"))  # fmt: skip


class Signer(requests.auth.AuthBase):
    """Signs the prepared request (final path, query and body bytes) when it carries the placeholder;
    a request whose Signature was removed or replaced (schemathesis' ignored_auth probes) goes as it is."""

    def __init__(self, world: World, terminal: str) -> None:
        self.world, self.terminal = world, world.terminals[terminal]

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.headers.get("Signature") != SIGN_ME:
            return request
        del request.headers["Signature"]
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        target = urlsplit(request.url)
        path = target.path + (f"?{target.query}" if target.query else "")
        signed = sign_request(request.method, path, body, self.terminal.key_id, self.terminal.private_key_pem,
                              created=self.world.now_s())  # fmt: skip
        request.headers.update(signed)
        return request


def authorize(world: World, case) -> None:
    spared = {resident.id for resident in world.residents.values()}
    if case.operation.path == ERASE and (case.path_parameters or {}).get("resident_id") in spared:
        # a link from an answer that names a resident (a correction's) would erase the residents
        # whose tokens the other calls use: erase a new one instead
        case.path_parameters["resident_id"] = world.resident(f"erased-{len(world.residents)}", "brossard").id
    security = case.operation.definition.raw.get("security") or []
    schemes = {name for requirement in security for name in requirement}
    headers = case.headers if case.headers is not None else {}
    if "terminalSignature" in schemes:
        headers["Signature"] = SIGN_ME
    elif "bearerAuth" in schemes:
        who = next(name for prefix, name in BEARERS if case.operation.path.startswith(prefix))
        if case.operation.path in ONCE:  # each example erases, or signs out everywhere, a new resident
            who = f"erased-{len(world.residents)}"
            world.resident(who, "brossard")
        token = world.residents[who].token if who in world.residents else world.tokens[who]
        headers["Authorization"] = f"Bearer {token}"
    case.headers = headers
    # Ours, not generated: schemathesis' ignored_auth then probes without them, and expects a 401.
    case._has_explicit_auth = True


@pytest.fixture
def contract(ctx, db_url) -> Iterator[tuple[World, str, object]]:
    with smtp_server() as (smtp_url, _received):  # staff may e-mail an activation code
        ctx.settings = dataclasses.replace(ctx.settings, smtp_url=smtp_url)
        yield from _contract(ctx)


def _contract(ctx) -> Iterator[tuple[World, str, object]]:
    app = create_app(ctx, terminal_rate_per_second=10_000, resident_rate_per_second=10_000,
                     address_failures_per_minute=100_000, credential_failures_per_minute=100_000)  # fmt: skip
    world = standard_world(ctx, None)
    world.grant(OWNER, "merchant", "brossard", "marie", merchant_id="boulangerie")
    with served(app) as base:
        yield world, base, app


def _failure(label: str, mode: str, exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"{label} [{mode}]: {text[:1500]}"


def test_the_server_keeps_its_openapi_contract(contract, db_url: str) -> None:
    world, base, _app = contract
    backend = "sqlite" if "://" not in db_url else "postgresql"
    load_all_checks()
    # positive_data_acceptance wants every schema-valid request served; a service's own rules (a
    # category that exists, lat with lng, an org token naming its org) refuse some with 400/422 by
    # design. `_accepted_by_the_schema_checks` asks what the contract means: the schema checks pass.
    checks = [check for check in CHECKS.get_all() if check.__name__ != "positive_data_acceptance"]
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json")
    session = requests.Session()
    session.auth = Signer(world, "boulangerie")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in UNTESTED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES[backend], derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])  # fmt: skip
            def exercise(case) -> None:
                authorize(world, case)
                case.body = _integral(case.body)
                response = case.call(base_url=base, session=session)
                case.validate_response(response, checks=checks)
                if mode is GenerationMode.POSITIVE:  # noqa: B023 (called within this iteration)
                    _accepted_by_the_schema_checks(response)

            try:
                exercise()
            except Unsatisfiable:  # no parameter, no body: nothing can be made invalid
                continue
            except BaseException as exc:  # schemathesis' FailureGroup: each operation's, collected, then all reported
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append(_failure(operation.label, mode.value, exc))
    for exc in _stateful(schema, world, base, session, checks, EXAMPLES[backend]):
        failures.append(_failure("stateful", "links", exc))
    assert not failures, f"{len(failures)} contract failures:\n\n" + "\n\n".join(failures)


SCHEMA_REFUSALS = ("validation_error", "malformed_json")


def _accepted_by_the_schema_checks(response) -> None:
    """A request the document says is valid passes the server's own schema checks."""
    content_type = response.headers.get("content-type") or [""]  # schemathesis keeps every value of a header
    if (content_type[0] if isinstance(content_type, list) else content_type).startswith("application/problem+json"):
        code = response.json().get("code")
        assert code not in SCHEMA_REFUSALS, f"a schema-valid request was refused as {code}: {response.text[:500]}"


def _integral(value):
    """Integral floats as integers. JSON Schema counts 5.0 as an integer and schemathesis sends some;
    the server decodes bodies strictly (`check_body_strictly`: a money field takes no 5.0, as it takes
    no "5"), a refusal JSON Schema cannot express."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def _stateful(schema, world: World, base: str, session: requests.Session, checks, examples: int) -> list[BaseException]:
    """Sequences along the links (hold -> capture/void, redeem -> get/cancel, offer -> get/update,
    enrol -> get; they name the handlers' explicit operation ids) and those schemathesis infers."""

    class Workflow(schema.as_state_machine()):
        def before_call(self, case) -> None:
            authorize(world, case)

        def get_call_kwargs(self, case) -> dict:
            return {"base_url": base, "session": session}

        def validate_response(self, response, case, **kwargs) -> None:
            case.validate_response(response, checks=checks)

    try:
        Workflow.run(settings=settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                                       suppress_health_check=list(HealthCheck), stateful_step_count=6))  # fmt: skip
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return [exc]
    return []
