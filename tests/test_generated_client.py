"""A client generated from the served OpenAPI document (openapi-python-client) works: a terminal holds
points and captures the hold, its requests signed through an httpx event hook, and a resident reads
the balance, through nothing but the generated functions and models."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.bootstrap import Settings, open_context
from api.http.app import create_app
from api.http.signatures import sign_request
from tests.test_auth_limits import served
from tests.world import World, standard_world

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "entraide_client"

pytestmark = pytest.mark.skipif(not GENERATOR.exists(), reason="openapi-python-client is not installed")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict]:
    """The client package, generated once from the document a served app answers with."""
    data = tmp_path_factory.mktemp("client")
    ctx = open_context(
        Settings(data_dir=data, database_url=str(data / "entraide.db"), keys_dir=data / "keys"), create=True
    )
    with served(create_app(ctx)) as base:
        document = httpx.get(f"{base}/schema/openapi.json", timeout=60).json()
    ctx.engine.dispose()
    source = data / "openapi.json"
    source.write_text(json.dumps(document))
    config = data / "config.json"
    config.write_text(json.dumps({"package_name_override": PACKAGE, "project_name_override": "entraide-client"}))
    out = data / PACKAGE
    result = subprocess.run([str(GENERATOR), "generate", "--path", str(source), "--output-path", str(out), "--meta", "none",
                             "--config", str(config)], capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Warning" not in result.stdout and "Error" not in result.stdout, result.stdout[-4000:]
    sys.path.insert(0, str(out.parent))
    try:
        package = importlib.import_module(out.name)
    finally:
        sys.path.remove(str(out.parent))
    return package, document


def _operation(package, document: dict, path: str, method: str):
    """The generated module of an operation, found by its id (the handlers' own, or the fallback)."""
    operation = document["paths"][path][method]
    return importlib.import_module(f"{package.__name__}.api.{operation['tags'][0]}.{operation['operationId']}")


def _signer(world: World, terminal: str):
    creds = world.terminals[terminal]

    def sign(request: httpx.Request) -> None:
        request.read()
        signed = sign_request(request.method, request.url.raw_path.decode(), request.content, creds.key_id,
                              creds.private_key_pem, created=world.now_s())  # fmt: skip
        request.headers.update(signed)

    return sign


@pytest.fixture
def world(ctx):
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    world = standard_world(ctx, None)
    with served(app) as base:
        world.base = base
        yield world


def test_a_generated_client_holds_captures_and_reads_a_balance(generated, world: World) -> None:
    package, document = generated
    models = importlib.import_module(f"{package.__name__}.models")
    terminal = package.Client(base_url=world.base, raise_on_unexpected_status=False,
                              httpx_args={"event_hooks": {"request": [_signer(world, "boulangerie")]}})  # fmt: skip
    alice = world.residents["alice"]

    hold = _operation(package, document, "/v1/pos/holds", "post").sync_detailed(
        client=terminal, body=models.HoldBody(card=alice.card, points=120), idempotency_key="client-hold-1"
    )
    assert hold.status_code == 201, hold.content
    held = json.loads(hold.content)
    capture = _operation(package, document, "/v1/pos/holds/{hold_id}/capture", "post").sync_detailed(
        held["hold_id"], client=terminal, body=models.CaptureBody(points=100), idempotency_key="client-capture-1"
    )
    assert capture.status_code == 200, capture.content

    refused = _operation(package, document, "/v1/pos/holds", "post").sync_detailed(
        client=terminal, body=models.HoldBody(card=alice.card, points=10**9), idempotency_key="client-hold-2"
    )
    assert refused.status_code == 422 and json.loads(refused.content)["code"] == "insufficient_funds"

    resident = package.AuthenticatedClient(base_url=world.base, token=alice.token)
    balance = _operation(package, document, "/v1/wallet/balance", "get").sync_detailed(client=resident)
    assert balance.status_code == 200
    assert json.loads(balance.content)["available"] == 1_000 - 100 == world.available("alice")
