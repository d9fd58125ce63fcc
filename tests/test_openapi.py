"""The OpenAPI document (api/http/openapi.py) against the handlers it describes, and the HTTP edge
cases a client built from it meets: 405 with Allow, OPTIONS, 413 only with max_bytes, and a
stranger's malformed body refused for its credentials first."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.bootstrap import Settings, open_context
from api.http import openapi
from api.http.app import MAX_BODY_BYTES, create_app
from api.problems import PROBLEMS
from tests.world import World, standard_world

PROBLEM = "application/problem+json"
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")
SECURITY_BY_PREFIX = {
    "/v1/merchants/pairing-codes": "bearerAuth", "/v1/merchants/terminals": "bearerAuth",  # the owner's (a token)
    "/v1/merchants/activity": "bearerAuth",
    "/v1/pos": "terminalSignature", "/v1/merchants": "terminalSignature",
    "/v1/wallet": "bearerAuth", "/v1/catalog": "bearerAuth", "/v1/orgs": "bearerAuth", "/v1/admin": "bearerAuth",
    "/v1/finance/stripe": None, "/v1/finance": "bearerAuth", "/v1/health/jobs": "bearerAuth",
    "/v1/payments": None, "/v1/transparency": None, "/v1/health": None, "/v1/pairing": None,
}  # fmt: skip
IDEMPOTENT = {("/v1/pos/awards", "post"), ("/v1/pos/holds", "post"), ("/v1/pos/holds/{hold_id}/capture", "post"),
              ("/v1/pos/holds/{hold_id}/void", "post"), ("/v1/pos/refunds", "post"), ("/v1/orgs/attestations", "post"),
              ("/v1/wallet/redemptions", "post"), ("/v1/admin/programs/{city}/budget", "post")}  # fmt: skip


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    """The app on a throwaway SQLite database: the document does not depend on the backend."""
    data = tmp_path_factory.mktemp("openapi")
    ctx = open_context(
        Settings(data_dir=data, database_url=str(data / "entraide.db"), keys_dir=data / "keys"), create=True
    )
    yield create_app(ctx)
    ctx.engine.dispose()


@pytest.fixture(scope="module")
def document(app) -> dict:
    with TestClient(app) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def handlers(app) -> dict[tuple[str, str], object]:
    return {(path, method): facts.handler for path, method, facts in openapi._handlers(app)}


# --- the document -----------------------------------------------------------------------------


def test_every_operation_has_a_unique_snake_case_id_a_tag_and_a_summary(document: dict) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(SNAKE.match(i) for i in ids), [i for i in ids if not SNAKE.match(i)]
    tags = {tag["name"]: tag for tag in document["tags"]}
    for path, method, op in operations(document):
        assert op.get("summary"), (path, method)
        assert op["tags"] and all(tags[t]["description"] for t in op["tags"]), (path, method)


def test_every_operation_has_its_own_summary_description_and_id(app) -> None:
    """The handlers' own summary=, docstring and operation_id=, not litestar's generated ones."""
    gaps = []
    for (path, method), handler in sorted(handlers(app).items()):
        missing = [name for name, value in (("summary", handler.summary), ("description", openapi.docstring(handler)),
                                            ("operation_id", handler.operation_id)) if not value]  # fmt: skip
        if missing:
            gaps.append(f"{method.upper()} {path}: {', '.join(missing)}")
    assert not gaps, f"{len(gaps)} operations lack their own metadata:\n" + "\n".join(gaps)


def test_each_operation_requires_the_credential_its_router_checks(document: dict) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == schemes["bearerAuth"] | {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    signature = schemes["terminalSignature"]
    assert signature["type"] == "apiKey" and signature["in"] == "header" and signature["name"] == "Signature"
    for covered in ('"@method"', '"@path"', '"@query"', '"content-digest"', "Signature-Input", "nonce", "created"):
        assert covered in signature["description"]
    for path, method, op in operations(document):
        prefix = next(p for p in SECURITY_BY_PREFIX if path == p or path.startswith(p + "/"))
        expected = SECURITY_BY_PREFIX[prefix]
        assert op.get("security") == ([{expected: []}] if expected else None), (path, method)
    for path in openapi.STRIPE_WEBHOOKS:
        assert any(p["name"] == "Stripe-Signature" for p in document["paths"][path]["post"]["parameters"])


def test_every_error_is_a_problem_document_with_its_possible_codes(app, document: dict) -> None:
    assert "status_code" not in json.dumps(document)  # litestar's default error schema is gone
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "code"} <= set(problem["properties"])
    assert set(problem["properties"]["code"]["enum"]) == set(PROBLEMS)
    by_handler = handlers(app)
    for path, method, op in operations(document):
        codes: dict[str, int] = {}
        for status, response in op["responses"].items():
            if status.startswith("2"):
                continue
            assert list(response["content"]) == [PROBLEM], (path, method, status)
            schema = response["content"][PROBLEM]["schema"]
            assert schema["allOf"] == [{"$ref": "#/components/schemas/Problem"}]
            assert response["headers"]["Content-Language"]["required"] is True
            for code in schema["properties"]["code"]["enum"]:
                assert PROBLEMS[code] == int(status), (path, method, code)
                codes[code] = int(status)
        expected = {"method_not_allowed", "internal_error", "database_unavailable",
                    *by_handler[(path, method)].opt.get("problems", ())}  # fmt: skip
        if op.get("security"):
            expected |= {"rate_limited"}
            expected |= (
                {"unauthorized", "forbidden"} if op["security"] == [{"bearerAuth": []}] else {"invalid_signature"}
            )
        if any(p["in"] == "path" for p in op.get("parameters", [])):
            expected |= {"not_found", "validation_error"}
        if "requestBody" in op:
            expected |= {"validation_error", "malformed_json", "body_too_large", "unsupported_media_type"}
        assert expected <= set(codes), (path, method, expected - set(codes))


def test_the_idempotency_key_is_required_exactly_where_the_handler_takes_it(document: dict) -> None:
    taking = set()
    for path, method, op in operations(document):
        keys = [p for p in op.get("parameters", []) if p["name"] == "Idempotency-Key"]
        if keys:
            taking.add((path, method))
            assert keys[0]["in"] == "header" and keys[0]["required"] is True
            codes = op["responses"]["400"]["content"][PROBLEM]["schema"]["properties"]["code"]["enum"]
            assert "idempotency_key_required" in codes
            assert (
                "idempotency_conflict"
                in op["responses"]["409"]["content"][PROBLEM]["schema"]["properties"]["code"]["enum"]
            )
    assert taking >= IDEMPOTENT


def test_request_schemas_are_as_strict_as_the_server(document: dict) -> None:
    schemas = document["components"]["schemas"]
    for name in ("HoldBody", "CaptureBody", "RefundBody", "OfflineBatch", "OfflineItem", "EnrolBody", "PersonalData",
                 "TokenBody", "RedeemBody", "TerminalBody", "AdjustmentBody", "PayoutAccountBody"):  # fmt: skip
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["OfflineItem"]["description"].startswith("A redemption")
    assert schemas["TerminalBody"]["properties"]["public_key_pem"]["pattern"].startswith("^-----BEGIN PUBLIC KEY-----")
    assert re.fullmatch(schemas["AdjustmentBody"]["properties"]["ref_period"]["pattern"], "2026-03")
    period = next(p for p in document["paths"]["/v1/finance/{city}/periods/{period}/close"]["post"]["parameters"]
                  if p["name"] == "period")  # fmt: skip
    assert re.search(period["schema"]["pattern"], "2026-03") and not re.search(period["schema"]["pattern"], "2026-13")


def test_non_json_responses_have_their_media_types(app, document: dict) -> None:
    qr = document["paths"]["/v1/wallet/card/qr.svg"]["get"]["responses"]["200"]["content"]
    assert list(qr) == ["image/svg+xml"]
    for (path, method), handler in handlers(app).items():
        op = document["paths"][path][method]
        if media_types := handler.opt.get("media_types"):
            success = next(r for s, r in op["responses"].items() if s.startswith("2"))
            assert set(success["content"]) == set(media_types), (path, method)
        if request_media_types := handler.opt.get("request_media_types"):
            assert set(op["requestBody"]["content"]) == set(request_media_types), (path, method)


def test_links_name_operations_parameters_and_fields_that_exist(app, document: dict) -> None:
    by_id = {op["operationId"]: (path, op) for path, _, op in operations(document)}
    schemas = document["components"]["schemas"]
    for source, links in openapi.LINKS.items():
        assert source in by_id, source
        op = by_id[source][1]
        success = next(r for s, r in sorted(op["responses"].items()) if s.startswith("2"))
        assert set(success["links"]) == set(links), source
        body = success["content"]["application/json"]["schema"]
        body = schemas[body["$ref"].rsplit("/", 1)[1]] if "$ref" in body else body
        for name, (target, parameters) in links.items():
            assert target in by_id, (source, name, target)
            target_parameters = {p["name"] for p in by_id[target][1].get("parameters", []) if p["in"] == "path"}
            assert set(parameters) <= target_parameters, (source, name)
            for expression in parameters.values():
                if expression.startswith("$response.body#/"):
                    assert expression.removeprefix("$response.body#/") in body.get("properties", {}), (
                        source,
                        expression,
                    )
                else:
                    assert expression.removeprefix("$request.path.") in {p["name"] for p in op.get("parameters", [])}


def test_the_document_is_also_served_as_yaml(app) -> None:
    with TestClient(app) as client:
        response = client.get("/schema/openapi.yaml")
    assert response.status_code == 200 and b"openapi:" in response.content


def test_the_docs_pages_load_only_local_assets_under_a_strict_csp(app) -> None:
    with TestClient(app) as client:
        page = client.get("/schema/swagger")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert "<script>" not in page.text and "http" not in page.text  # no inline script, no other host
        for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert response.headers["content-security-policy"] == csp


# --- HTTP edge cases ------------------------------------------------------------------------------


@pytest.fixture
def world(ctx) -> Iterator[World]:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)


def test_a_405_lists_every_method_of_the_path_in_allow(world: World) -> None:
    response = world.client.delete("/v1/merchants/offers")
    assert response.status_code == 405 and response.headers["content-type"].startswith(PROBLEM)
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST", "OPTIONS"}
    assert "max_bytes" not in response.json()


def test_options_lists_the_methods_of_every_handler_of_the_path(world: World) -> None:
    for path, methods in (("/v1/merchants/offers", {"GET", "POST"}), ("/v1/wallet/redemptions", {"GET", "POST"}),
                          ("/v1/merchants/shop", {"GET", "PUT"}), ("/v1/pos/holds", {"POST"})):  # fmt: skip
        response = world.client.options(path)
        assert response.status_code == 204, path
        assert {m.strip() for m in response.headers["allow"].split(",")} == methods | {"OPTIONS"}, path


def test_max_bytes_appears_only_in_a_413(world: World) -> None:
    assert "max_bytes" not in world.client.get("/v1/nothing-here").json()
    too_large = world.bearer("alice", "POST", "/v1/wallet/opt-ins", {"city": "x" * MAX_BODY_BYTES})
    assert too_large.status_code == 413 and too_large.json()["max_bytes"] == MAX_BODY_BYTES
    malformed = world.client.post("/v1/wallet/opt-ins", content=b"{", headers={
        "Authorization": f"Bearer {world.residents['alice'].token}", "Content-Type": "application/json"})  # fmt: skip
    assert malformed.status_code == 400 and malformed.json()["code"] == "malformed_json"
    assert "max_bytes" not in malformed.json()


def test_a_strangers_malformed_body_is_refused_for_its_credentials_first(world: World) -> None:
    headers = {"Content-Type": "application/json"}
    for path in ("/v1/wallet/opt-ins", "/v1/admin/residents/brossard", "/v1/orgs/attestations"):
        response = world.client.post(path, content=b"{not json", headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "unauthorized", path
    response = world.client.post("/v1/pos/holds", content=b"{not json", headers=headers | {"Idempotency-Key": "k1"})
    assert response.status_code == 401 and response.json()["code"] == "invalid_signature"
    # A terminal whose signature holds learns that its body is malformed.
    raw = b"{not json"
    signed = world.signed_headers("boulangerie", "POST", "/v1/pos/holds", raw, key="k2")
    response = world.client.post("/v1/pos/holds", content=raw, headers=signed)
    assert response.status_code == 400 and response.json()["code"] == "malformed_json"


def test_the_schema_path_is_not_mistaken_for_an_api_path(tmp_path: Path) -> None:
    """/schema answers HTML docs, never a problem document about a missing route."""
    ctx = open_context(
        Settings(data_dir=tmp_path, database_url=str(tmp_path / "e.db"), keys_dir=tmp_path / "k"), create=True
    )
    with TestClient(create_app(ctx)) as client:
        assert client.get("/schema").headers["content-type"].startswith("text/html")
    ctx.engine.dispose()
