"""The OpenAPI document a client can be built from, and the offline pages that show it.

litestar writes the document from the handlers (paths, parameters, msgspec schemas, `summary=`,
`operation_id=`, docstrings); `finish` then adds what litestar cannot know from a signature, from
what each handler declares and depends on:

- security: `bearerAuth` where the route depends on `bearer_principal`, `terminalSignature` where
  it depends on `terminal_principal`, none elsewhere; the Stripe webhooks document `Stripe-Signature`;
- errors: every status an operation can answer, each as `application/problem+json` with the one
  `Problem` schema and, per status, the `code` values possible there: the handler's
  `opt["problems"]` plus the generic ones its shape implies (authentication, a path parameter, a
  body, an Idempotency-Key); litestar's own `{status_code, detail, extra}` error schema is removed;
- `Idempotency-Key` required wherever the handler takes it (the server refuses without it, after
  authentication: the parameter stays optional for litestar so that a stranger gets a 401 first);
- real media types from `opt["media_types"]` (responses) and `opt["request_media_types"]` (bodies);
- tags with descriptions (each router module's docstring), and the links of `LINKS`.

The document is built once per app, on first request, and served at `/schema/openapi.json`; Swagger
UI at `/schema/swagger` is served from the `swagger-ui-py` package's files, never a CDN.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router

from api.http import routes
from api.http.auth import bearer_principal, terminal_principal
from api.problems import PROBLEMS, problem_type

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_PATTERN = r"^[\x21-\x7e]{1,128}$"
# Path parameters whose form the service checks (a 400 `invalid_period` otherwise): the document says it.
PATH_PARAMETER_PATTERNS = {"period": r"^\d{4}-(0[1-9]|1[0-2])$"}
# Fields whose form the service checks beyond their schema (a 400 `invalid_request`): the document says it.
FIELD_PATTERNS = {("TerminalBody", "public_key_pem"):
                  r"^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----\s*$"}  # fmt: skip
STRIPE_WEBHOOKS = ("/v1/payments/stripe/webhook", "/v1/finance/stripe/webhook")

BEARER, SIGNATURE = "bearerAuth", "terminalSignature"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "A JWT in `Authorization: Bearer <token>`: from the built-in issuer (staff, finance, auditor, admin and "
            "organization tokens, granted with `POST /v1/admin/tokens/{city}`; its key is in "
            "`/v1/transparency/keys`), or a resident's token from the city's identity provider. A revoked token, or "
            "one whose principal was withdrawn, is refused from the next request on."
        ),
    },
    SIGNATURE: {
        "type": "apiKey",
        "in": "header",
        "name": "Signature",
        "description": (
            "An RFC 9421 HTTP Message Signature by the terminal's Ed25519 key, in the `Signature` header with its "
            "`Signature-Input` (exactly one signature, any label). Covered components, each a plain item: "
            '`"@method"`, `"@path"`, `"@query"` whenever the request target has a query string (the query byte for '
            'byte as sent), and `"content-digest"` always, also for an empty body (a `Content-Digest: sha-256=:…:` '
            "field of the body, RFC 9530, checked against the body received). `@authority` and `@scheme` are not "
            "covered. Parameters: `keyid` (required, the terminal's key id), `created` (required, integer seconds, "
            "at most 300 s old and 30 s ahead), `nonce` (required, 8–128 of `A–Z a–z 0–9 - _`, never seen before "
            "for that key), `alg` (optional, `ed25519` only), `expires` (optional, not past); anything else is "
            "refused. A signed request refused for any reason writes nothing. See docs/security-model.md."
        ),
    },
}

# Operation id -> {link name: (target operation id, {target parameter: runtime expression})}.
# `tests/test_openapi.py` fails if a link names an operation, parameter or response field that does not exist.
LINKS: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "pos_create_hold": {
        "capture": ("pos_capture_hold", {"hold_id": "$response.body#/hold_id"}),
        "void": ("pos_void_hold", {"hold_id": "$response.body#/hold_id"}),
    },
    "wallet_redeem_item": {
        "get": ("wallet_get_redemption", {"redemption_id": "$response.body#/id"}),
        "cancel": ("wallet_cancel_redemption", {"redemption_id": "$response.body#/id"}),
    },
    "merchants_create_offer": {
        "get": ("merchants_get_offer", {"item_id": "$response.body#/id"}),
        "update": ("merchants_update_offer", {"item_id": "$response.body#/id"}),
    },
    "admin_enrol_resident": {
        "get": ("admin_get_resident", {"city": "$request.path.city", "resident_id": "$response.body#/id"}),
    },
}

# Tag -> the module whose docstring describes it ("/v1/pos: signed requests ..." -> "signed requests ...").
TAG_MODULES = {"pos": routes.pos, "merchants": routes.merchants, "wallet": routes.wallet, "catalog": routes.catalog,
               "orgs": routes.orgs, "admin": routes.admin, "finance": routes.finance, "payments": routes.payments,
               "transparency": routes.transparency, "meta": routes.health}  # fmt: skip

# What authentication itself can answer, per scheme.
AUTH_PROBLEMS = {
    BEARER: (
        "unauthorized",
        "token_expired",
        "token_revoked",
        "forbidden",
        "wrong_tenant",
        "rate_limited",
        "identity_provider_unavailable",
    ),
    SIGNATURE: (
        "invalid_signature",
        "signature_expired",
        "replayed_request",
        "unknown_key",
        "merchant_not_approved",
        "rate_limited",
    ),
}
ALWAYS = ("method_not_allowed", "internal_error", "database_unavailable")
WITH_BODY = ("validation_error", "malformed_json", "body_too_large", "unsupported_media_type")
WITH_PARAMETERS = ("validation_error",)
WITH_PATH_PARAMETERS = ("not_found",)
WITH_IDEMPOTENCY_KEY = ("idempotency_key_required", "idempotency_conflict")
WEBHOOK_PROBLEMS = ("invalid_webhook", "payments_disabled")  # a bad Stripe-Signature; Stripe not configured
RETRY_AFTER_STATUSES = (429, 503)

# Extension members the problems carry (the parameters of their details), with their types.
PROBLEM_EXTENSIONS: dict[str, dict[str, Any]] = {
    "message": {"type": "string", "description": "what exactly was refused (a field, a reason), in English"},
    "available_points": {"type": "integer", "description": "points the account can spend now"},
    "requested_points": {"type": "integer", "description": "points the request asked for"},
    "remaining_points": {"type": "integer", "description": "points left of the original transfer or budget"},
    "floor_limit_points": {"type": "integer", "description": "the offline floor limit, in points"},
    "retry_after_seconds": {
        "type": "integer",
        "description": "seconds to wait before trying again (also in Retry-After)",
    },
    "max_bytes": {"type": "integer", "description": "the largest body accepted, in bytes (413 only)"},
    "transfer_id": {"type": "string", "description": "the transfer (or hold) concerned"},
    "item_id": {"type": "string", "description": "the catalog item concerned"},
    "key_id": {"type": "string", "description": "the terminal key id the request claimed"},
    "reason": {"type": "string", "description": "a stable word saying why a signature or request was refused"},
}


def problem_schema() -> dict[str, Any]:
    """RFC 9457's members, our `code`, and the extension members some problems carry."""
    return {
        "type": "object",
        "title": "Problem",
        "description": (
            "An RFC 9457 problem document, worded in the language negotiated from Accept-Language (fr, en, es; "
            "Content-Language says which). Branch on `code` (or the equivalent `type`), never on the wording. "
            "Parameters of the detail are repeated as extension members."
        ),
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {
                "type": "string",
                "description": "a tag URI naming the problem, e.g. " + problem_type("insufficient_funds"),
            },
            "title": {"type": "string", "description": "a short, localized summary of the problem type"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "the HTTP status code"},
            "detail": {"type": "string", "description": "a localized explanation of this occurrence"},
            "instance": {"type": "string", "description": "the request path that was refused"},
            "code": {"type": "string", "enum": sorted(PROBLEMS), "description": "the stable error code"},
            **PROBLEM_EXTENSIONS,
        },
        "additionalProperties": True,
    }


@dataclass(frozen=True)
class Facts:
    """What the document needs to know of one handler beyond what litestar wrote."""

    handler: HTTPRouteHandler
    path: str

    @property
    def opt(self) -> dict[str, Any]:
        return self.handler.opt

    @property
    def scheme(self) -> str | None:
        provider = self.handler.resolve_dependencies().get("principal")
        dependency = getattr(provider, "dependency", None)
        schemes: dict[object, str] = {bearer_principal: BEARER, terminal_principal: SIGNATURE}
        return schemes.get(dependency)


def _handlers(app: Litestar) -> Iterator[tuple[str, str, Facts]]:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            for method in handler.http_methods:
                yield route.path_format or "/", method.lower(), Facts(handler, route.path_format)


def operation_id(handler: HTTPRouteHandler, _method: str, path_components: list) -> str:
    """A fallback id, `<prefix>_<function>`, for handlers without an explicit `operation_id=`."""
    path = "/".join(str(c) for c in path_components)
    prefix = re.sub(r"^/?v1/", "", path).split("/")[0] or "root"
    return f"{prefix}_{handler.handler_name}".replace("-", "_")


def _is_default_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return set(schema.get("properties", {})) >= {"status_code", "detail"}


# A resident's routes look the resident up on every call: once erased (or unknown), each answers so.
RESIDENT_PREFIXES = ("/v1/wallet", "/v1/catalog")
RESIDENT_PROBLEMS = ("unknown_resident", "resident_erased")


def _codes(facts: Facts, operation: dict[str, Any]) -> set[str]:
    codes = set(ALWAYS) | set(facts.opt.get("problems", ()))
    if facts.path.startswith(RESIDENT_PREFIXES):
        codes |= set(RESIDENT_PROBLEMS)
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        codes |= set(WITH_PARAMETERS)
    if "requestBody" in operation or facts.scheme == SIGNATURE:  # a terminal's request is read whole to check it
        codes |= set(WITH_BODY)
    if any(p["in"] == "path" for p in parameters):
        codes |= set(WITH_PATH_PARAMETERS)
    if any(p["name"] == IDEMPOTENCY_HEADER for p in parameters):
        codes |= set(WITH_IDEMPOTENCY_KEY)
    if facts.scheme is not None:
        codes |= set(AUTH_PROBLEMS[facts.scheme])
    unknown = codes - set(PROBLEMS)
    assert not unknown, f"{facts.path}: unknown problem codes {sorted(unknown)}"
    return codes


def _problem_responses(codes: set[str]) -> dict[str, dict[str, Any]]:
    by_status: dict[int, list[str]] = {}
    for code in sorted(codes):
        by_status.setdefault(PROBLEMS[code], []).append(code)
    responses = {}
    for status, listed in sorted(by_status.items()):
        headers: dict[str, Any] = {
            "Content-Language": {
                "required": True,
                "schema": {"type": "string", "enum": ["fr", "en", "es"]},
                "description": "the language of the title and detail",
            },
        }
        if status in RETRY_AFTER_STATUSES:
            headers["Retry-After"] = {"schema": {"type": "string", "pattern": r"^\d+$"},
                                      "description": "seconds to wait before trying again"}  # fmt: skip
        schema = {"allOf": [{"$ref": PROBLEM_REF}],
                  "properties": {"status": {"type": "integer", "enum": [status]}, "code": {"type": "string", "enum": listed}}}  # fmt: skip
        responses[str(status)] = {
            "description": ", ".join(f"`{code}`" for code in listed),
            "headers": headers,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
        }
    return responses


def _media_types(operation: dict[str, Any], facts: Facts) -> None:
    if media_types := facts.opt.get("media_types"):
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                response["content"] = {m: {"schema": _schema_for(m, response)} for m in media_types}
    if request_media_types := facts.opt.get("request_media_types"):
        operation["requestBody"] = {
            "required": False,
            "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in request_media_types},
        }


def _schema_for(media_type: str, response: dict[str, Any]) -> dict[str, Any]:
    if media_type == "application/json":
        return response.get("content", {}).get("application/json", {}).get("schema", {"type": "object"})
    return {"type": "string"}


def _parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == IDEMPOTENCY_HEADER and parameter["in"] == "header":
            parameter["required"] = True
            parameter["schema"] = {"type": "string", "pattern": IDEMPOTENCY_PATTERN}
            parameter["description"] = ("Required: the same key with the same body answers the first result again; "
                                        "with another body, 409 `idempotency_conflict`.")  # fmt: skip
        elif parameter["in"] == "path" and parameter["name"] in PATH_PARAMETER_PATTERNS:
            parameter["schema"] = {"type": "string", "pattern": PATH_PARAMETER_PATTERNS[parameter["name"]]}


_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum",
           "min_length": "minLength", "max_length": "maxLength", "pattern": "pattern"}  # fmt: skip


def _parameter_bounds(operation: dict[str, Any], facts: Facts) -> None:
    """Each parameter's bounds as the handler declares them, in the schema of every non-null branch:
    litestar drops a bound of 0 and writes 2**63 - 1 as a float (which rounds up to 2**63)."""
    fields = {getattr(f.kwarg_definition, "name", None) or getattr(f.kwarg_definition, "header", None) or name: f
              for name, f in facts.handler.parsed_fn_signature.parameters.items()}  # fmt: skip
    for parameter in operation.get("parameters", []):
        field = fields.get(parameter["name"])
        definition = getattr(field, "kwarg_definition", None)
        if definition is None or parameter["name"] == IDEMPOTENCY_HEADER:
            continue
        bounds = {key: getattr(definition, attribute) for attribute, key in _BOUNDS.items()
                  if getattr(definition, attribute, None) is not None}  # fmt: skip
        schema = parameter["schema"]
        for branch in schema.get("oneOf") or schema.get("anyOf") or [schema]:
            if branch.get("type") != "null":
                branch.update(bounds)


def _first_line(text: str | None) -> str | None:
    lines = inspect.cleandoc(text or "").splitlines()
    return lines[0].rstrip(".") if lines and lines[0] else None


def docstring(handler: HTTPRouteHandler) -> str | None:
    """The handler function's own docstring (a sync handler run on a thread is wrapped once registered)."""
    return getattr(handler.fn, "func", handler.fn).__doc__


def _operation(path: str, operation: dict[str, Any], facts: Facts) -> None:
    handler = facts.handler
    if handler.summary is None and (line := _first_line(docstring(handler))):
        operation["summary"] = line
    operation["responses"] = {s: r for s, r in operation.get("responses", {}).items() if not _is_default_error(r)}
    _parameter_bounds(operation, facts)
    _parameters(operation)
    _media_types(operation, facts)
    if facts.scheme is not None:
        operation["security"] = [{facts.scheme: []}]
    if path in STRIPE_WEBHOOKS:
        operation.setdefault("parameters", []).append({
            "name": "Stripe-Signature", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 4096},
            "description": "Stripe's signature of the raw body (`t=…,v1=…`); a missing or wrong one is 400 `invalid_webhook`.",
        })  # fmt: skip
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    codes = _codes(facts, operation) | (set(WEBHOOK_PROBLEMS) if path in STRIPE_WEBHOOKS else set())
    operation["responses"].update(_problem_responses(codes))


def _links(document: dict[str, Any]) -> None:
    operations = {op.get("operationId"): op for item in document["paths"].values() for op in item.values()}
    for source, links in LINKS.items():
        if source not in operations:
            continue
        success = next((r for s, r in sorted(operations[source]["responses"].items()) if s.startswith("2")), None)
        declared = {name: {"operationId": target, "parameters": parameters}
                    for name, (target, parameters) in links.items() if target in operations}  # fmt: skip
        if success is not None and declared:
            success["links"] = declared


def _tags(document: dict[str, Any]) -> None:
    used = {tag for item in document["paths"].values() for op in item.values() for tag in op.get("tags", ())}
    document["tags"] = [
        {"name": tag, "description": re.sub(r"^/\S+: ", "", _first_line(module.__doc__) or tag)}
        for tag, module in TAG_MODULES.items() if tag in used
    ]  # fmt: skip


def _structs(app: Litestar) -> dict[str, type]:
    """The msgspec structs the handlers take (request bodies) and return, by the name litestar gave them."""
    import msgspec

    found: dict[str, type] = {}
    for _path, _method, facts in _handlers(app):
        signature = facts.handler.parsed_fn_signature
        annotations = [p.annotation for p in signature.parameters.values()] + [signature.return_type.annotation]
        for annotation in annotations:
            for struct in _struct_types(annotation):
                if issubclass(struct, msgspec.Struct):
                    found.setdefault(struct.__name__, struct)
    return found


def _struct_types(annotation: Any) -> Iterator[type]:
    if isinstance(annotation, type):
        yield annotation
    for argument in getattr(annotation, "__args__", ()) or ():
        yield from _struct_types(argument)


def _msgspec_schemas(document: dict[str, Any], app: Litestar) -> None:
    """Each struct's schema as msgspec itself writes it: the server decodes with msgspec, so its
    schema is exactly as strict (additionalProperties: false for forbid_unknown_fields, bounds inside
    each branch of a nullable field, minProperties, the docstring as description), which litestar's
    translation is not."""
    import msgspec

    components = document.setdefault("components", {}).setdefault("schemas", {})
    structs = [struct for name, struct in _structs(app).items() if name in components]
    if not structs:
        return
    _, definitions = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    for name, schema in definitions.items():
        if name != "Problem":
            components[name] = schema


_CONSTRAINTS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
                "format", "minItems", "maxItems", "enum")  # fmt: skip


def _nullable_constraints(node: Any) -> None:
    """litestar writes `X | None` with bounds as `{oneOf: [X, null], minimum: ...}`: bounds beside a
    oneOf apply to no type a generator picks first. Move them into the non-null branch."""
    if isinstance(node, list):
        for item in node:
            _nullable_constraints(item)
        return
    if not isinstance(node, dict):
        return
    branches = node.get("oneOf") or node.get("anyOf")
    if isinstance(branches, list) and any(key in node for key in _CONSTRAINTS):
        moved = {key: node.pop(key) for key in _CONSTRAINTS if key in node}
        for branch in branches:
            if isinstance(branch, dict) and branch.get("type") != "null":
                branch.update({k: v for k, v in moved.items() if k not in branch})
    for value in node.values():
        _nullable_constraints(value)


def finish(app: Litestar, raw: dict[str, Any]) -> dict[str, Any]:
    """The served document: litestar's, completed as the module docstring says."""
    document = copy.deepcopy(raw)
    facts = {(path, method): f for path, method, f in _handlers(app)}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if (path, method) in facts:
                _operation(path, operation, facts[(path, method)])
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = problem_schema()
    components["securitySchemes"] = SECURITY_SCHEMES
    _msgspec_schemas(document, app)
    for (name, field), pattern in FIELD_PATTERNS.items():
        document["components"]["schemas"][name]["properties"][field]["pattern"] = pattern
    _nullable_constraints(document["paths"])
    _links(document)
    _tags(document)
    return document


def document(app: Litestar) -> dict[str, Any]:
    """The finished document of `app`, built on first use and kept."""
    cached = getattr(app.state, "openapi_document", None)
    if cached is None:
        cached = app.state.openapi_document = finish(app, app.openapi_schema.to_schema())
    return cached


class _Finished(OpenAPIRenderPlugin):
    """Render the finished document rather than litestar's."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, document(request.app))  # type: ignore[safe-super]


class FinishedJson(_Finished, JsonRenderPlugin):
    pass


class FinishedYaml(_Finished, YamlRenderPlugin):
    pass


# --- Swagger UI, offline --------------------------------------------------------------------------


def _package_dir(name: str) -> Path:
    """Where an installed package's files are, found without importing it."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not an installed package"
    return Path(spec.submodule_search_locations[0])


# The `swagger-ui-py` package's copy of Swagger UI 5 (OpenAPI 3.1), found without importing its web adapters.
SWAGGER_ASSETS = _package_dir("swagger_ui") / "static"
# The pages load only our own scripts and styles: no inline script, nothing from another host.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
_SWAGGER_INIT = f"""window.addEventListener("load", () => {{
  window.ui = SwaggerUIBundle({{
    url: "{SCHEMA_PATH}/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  }});
}});
"""
_SWAGGER_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Entraide API</title>
  <link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">
  <link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{SCHEMA_PATH}/swagger-init.js"></script>
</body>
</html>
"""


def _with_docs_headers(response: Response) -> Response:
    response.headers.update({"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff",
                             "Referrer-Policy": "no-referrer"})  # fmt: skip
    return response


class OfflineSwagger(OpenAPIRenderPlugin):
    """Swagger UI from the package's files, under a CSP that forbids inline script and other hosts."""

    def __init__(self) -> None:
        super().__init__(path="/swagger")

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return _SWAGGER_PAGE.encode()

    def receive_router(self, router: Router) -> None:
        @get("/swagger-init.js", media_type="text/javascript", sync_to_thread=False, include_in_schema=False)
        def swagger_init() -> str:
            return _SWAGGER_INIT

        router.register(swagger_init)
        router.register(create_static_files_router(path="/assets", directories=[SWAGGER_ASSETS], name="docs_assets",
                                                   after_request=_with_docs_headers))  # fmt: skip


def openapi_config() -> OpenAPIConfig:
    """The app's OpenAPIConfig: the finished document in JSON and YAML, and Swagger UI, under /schema."""
    return OpenAPIConfig(
        title="Entraide",
        version="1.0.0",
        description=(
            "Rewards ledger and local commerce. Every error is an RFC 9457 `application/problem+json` document with a "
            "stable `code`; each operation lists the codes it can answer, by status."
        ),
        path=SCHEMA_PATH,
        use_handler_docstrings=True,
        operation_id_creator=operation_id,
        render_plugins=[OfflineSwagger(), FinishedJson(path="/openapi.json"), FinishedYaml(path="/openapi.yaml")],
        openapi_router=Router(
            SCHEMA_PATH, route_handlers=[], include_in_schema=False, after_request=_with_docs_headers
        ),
    )
