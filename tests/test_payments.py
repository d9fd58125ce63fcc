"""Card payments for the cash part of municipal services: the real `stripe` library against localstripe
(a Stripe emulator from PyPI, started here), whose own signed webhooks are relayed to our endpoint;
and one test against a local HTTP server that checks exactly what the library sends."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import stripe
from litestar.testing import TestClient

from api.app import create_app
from api.bootstrap import Settings
from ledger.service_layer.audit import verify_database
from marketplace.adapters.payments_stripe import StripeCardPayments
from marketplace.service_layer.redemptions import PAYMENT_HOLD_SECONDS
from tests.test_api import assert_problem
from tests.world import World, free_port, standard_world

SECRET = "whsec_entraide_test"
API_KEY = "sk_test_entraide"
VISA, DECLINED = "4242424242424242", "4000000000000341"
POOL = {"title": {"fr": "Abonnement piscine", "en": "Pool pass"}, "category": "sports", "price_points": 400, "cash_cents": 1_500}


class Hooks:
    """Receives localstripe's webhook deliveries, raw body and signature header as sent."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[bytes, str]] = queue.Queue()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.received.put((body, self.headers["Stripe-Signature"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, event_type: str, intent_id: str, timeout_seconds: float = 15) -> tuple[bytes, str]:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                body, signature = self.received.get(timeout=0.2)
            except queue.Empty:
                continue
            event = json.loads(body)
            if event["type"] == event_type and event["data"]["object"]["id"] == intent_id:
                return body, signature
        raise AssertionError(f"no {event_type} webhook for {intent_id}")


@pytest.fixture(scope="module")
def localstripe() -> Iterator[tuple[str, Hooks]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "localstripe", "--port", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/v1/customers", auth=(API_KEY, ""), timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)
        hooks = Hooks()
        httpx.post(f"{base}/_config/webhooks/entraide", data={"url": hooks.url, "secret": SECRET}).raise_for_status()
        yield base, hooks
        hooks.server.shutdown()
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def settings(db_url: str, tmp_path: Path, localstripe) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db_url, keys_dir=tmp_path / "keys", stripe_api_key=API_KEY,
                    stripe_api_base=localstripe[0], stripe_webhook_secret=SECRET)  # fmt: skip


@pytest.fixture
def world(ctx) -> Iterator[World]:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)


@pytest.fixture
def client(localstripe) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe[0]})


def service(world: World, **changes) -> dict:
    created = world.bearer("staff-brossard", "POST", "/v1/admin/catalog/brossard/services", POOL | changes)
    assert created.status_code == 201, created.text
    return created.json()


def redeem(world: World, who: str, item_id: str, key: str) -> dict:
    response = world.bearer(who, "POST", "/v1/wallet/redemptions", {"item_id": item_id}, key=key)
    assert response.status_code == 201, response.text
    return response.json()


def pay(client: stripe.StripeClient, intent_id: str, card_number: str) -> None:
    """What the resident's browser does with Stripe.js: attach a card and confirm."""
    card = {"number": card_number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    method = client.v1.payment_methods.create(params={"type": "card", "card": card})
    client.v1.payment_intents.update(intent_id, params={"payment_method": method.id})
    try:
        client.v1.payment_intents.confirm(intent_id)
    except stripe.CardError:
        pass  # declined: Stripe says so by webhook too


def relay(world: World, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": signature} if signature else {})
    return world.client.post("/v1/payments/stripe/webhook", content=body, headers=headers)


def status(world: World, who: str, redemption_id: str) -> str:
    return world.bearer(who, "GET", f"/v1/wallet/redemptions/{redemption_id}").json()["status"]


def test_a_partial_payment_is_captured_only_after_a_verified_success(world: World, localstripe, client) -> None:
    hooks = localstripe[1]
    pool = service(world)
    started = redeem(world, "alice", pool["id"], "pool-1")
    assert started["status"] == "awaiting_payment" and started["points"] == 400 and started["cash_cents"] == 1_500
    intent_id = started["payment"]["payment_intent_id"]
    assert started["payment"]["client_secret"].startswith(intent_id + "_secret_")
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert (intent.amount, intent.currency, intent.metadata["redemption_id"]) == (1_500, "cad", started["id"])
    ledger = world.ctx.ledger
    assert world.available("alice") == 600 and ledger.balance("brossard", "services:revenue").posted == 0

    # A forged "succeeded" (signed with another secret), an unsigned one, a tampered one: refused, nothing moves.
    forged = json.dumps({"id": "evt_forged", "type": "payment_intent.succeeded",
                         "data": {"object": {"id": intent_id, "amount": 1_500}}}).encode()  # fmt: skip
    stamp = int(time.time())
    bad = stripe.WebhookSignature._compute_signature(f"{stamp}.{forged.decode()}", "whsec_not_ours")
    assert_problem(relay(world, forged, f"t={stamp},v1={bad}"), 400, "invalid_webhook")
    assert_problem(relay(world, forged, None), 400, "invalid_webhook")
    good = stripe.WebhookSignature._compute_signature(f"{stamp}.{forged.decode()}", SECRET)
    assert_problem(relay(world, forged.replace(b"1500", b"1501"), f"t={stamp},v1={good}"), 400, "invalid_webhook")
    assert status(world, "alice", started["id"]) == "awaiting_payment"
    assert ledger.balance("brossard", "services:revenue").posted == 0

    pay(client, intent_id, VISA)
    body, signature = hooks.wait("payment_intent.succeeded", intent_id)  # signed by localstripe
    done = relay(world, body, signature)
    assert done.status_code == 200 and done.json()["outcome"] == "completed", done.text
    assert status(world, "alice", started["id"]) == "completed"
    assert ledger.balance("brossard", "services:revenue").posted == 400
    assert world.available("alice") == 600 and ledger.balance("brossard", world.residents["alice"].wallet).posted == 600
    again = relay(world, body, signature)  # Stripe redelivers
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert ledger.balance("brossard", "services:revenue").posted == 400
    assert verify_database(world.ctx.engine)["ok"]


def test_a_failed_payment_voids_the_hold_and_frees_the_seat(world: World, localstripe, client) -> None:
    hooks = localstripe[1]
    pool = service(world, quantity=1)
    started = redeem(world, "alice", pool["id"], "pool-2")
    intent_id = started["payment"]["payment_intent_id"]
    held = world.bearer("bob", "POST", "/v1/wallet/redemptions", {"item_id": pool["id"]}, key="bob-1")
    assert_problem(held, 409, "sold_out")  # the only seat is held while alice pays

    pay(client, intent_id, DECLINED)
    body, signature = hooks.wait("payment_intent.payment_failed", intent_id)
    failed = relay(world, body, signature)
    assert failed.status_code == 200 and failed.json()["outcome"] == "cancelled", failed.text
    assert status(world, "alice", started["id"]) == "cancelled"
    assert world.available("alice") == 1_000
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 0
    assert client.v1.payment_intents.retrieve(intent_id).status == "canceled"  # it cannot succeed later
    world.bearer("carole", "POST", "/v1/wallet/opt-ins", {"city": "brossard"})
    assert redeem(world, "carole", pool["id"], "carole-1")["status"] == "awaiting_payment"  # the seat is back


def test_cancelled_and_abandoned_payments_release_everything(world: World, clock, client) -> None:
    pool = service(world, quantity=5)
    first = redeem(world, "alice", pool["id"], "pool-3")
    cancelled = world.bearer("alice", "POST", f"/v1/wallet/redemptions/{first['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_problem(world.bearer("alice", "POST", f"/v1/wallet/redemptions/{first['id']}/cancel"), 409, "redemption_not_pending")
    assert client.v1.payment_intents.retrieve(first["payment"]["payment_intent_id"]).status == "canceled"
    assert world.available("alice") == 1_000

    second = redeem(world, "alice", pool["id"], "pool-4")
    assert world.ctx.redemptions.recover() == {"reserved": 0, "awaiting_payment": 0}  # not yet abandoned
    clock.advance(PAYMENT_HOLD_SECONDS + 1)
    assert world.ctx.redemptions.recover() == {"reserved": 0, "awaiting_payment": 1}
    assert status(world, "alice", second["id"]) == "cancelled" and world.available("alice") == 1_000
    assert world.bearer("staff-brossard", "GET", "/v1/admin/catalog/brossard/items").json()["items"][0]["remaining"] == 5


def test_a_payment_that_succeeds_after_the_hold_expired_is_refunded(world: World, localstripe, clock, client) -> None:
    hooks = localstripe[1]
    pool = service(world, quantity=3)
    started = redeem(world, "alice", pool["id"], "pool-5")
    intent_id = started["payment"]["payment_intent_id"]
    clock.advance(PAYMENT_HOLD_SECONDS + 1)  # the ledger hold lapses before the resident pays
    pay(client, intent_id, VISA)
    body, signature = hooks.wait("payment_intent.succeeded", intent_id)
    late = relay(world, body, signature)
    assert late.status_code == 200 and late.json()["outcome"] == "refunded", late.text
    assert status(world, "alice", started["id"]) == "refunded"
    assert world.available("alice") == 1_000 and world.ctx.ledger.balance("brossard", "services:revenue").posted == 0
    refunds = [r for r in client.v1.refunds.list().data if r.payment_intent == intent_id]
    assert [r.amount for r in refunds] == [1_500]
    assert world.bearer("staff-brossard", "GET", "/v1/admin/catalog/brossard/items").json()["items"][0]["remaining"] == 3


def test_the_library_sends_amount_metadata_and_idempotency_key() -> None:
    """A local server that checks exactly what the stripe library sent, and answers as Stripe does."""
    seen: list[tuple[str, str, dict, dict]] = []

    class Stripe(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode(), strict_parsing=True)
            seen.append((self.command, self.path, {k: v for k, v in form.items()}, dict(self.headers)))
            answer = json.dumps({"id": "pi_123", "object": "payment_intent", "amount": 1_500, "currency": "cad",
                                 "client_secret": "pi_123_secret_x", "status": "requires_payment_method"}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        payments = StripeCardPayments("sk_test_checked", None, f"http://127.0.0.1:{server.server_address[1]}")
        intent = payments.create_intent(1_500, "entraide-redemption-abc", {"redemption_id": "abc", "city": "brossard"})
    finally:
        server.shutdown()
    assert (intent.id, intent.client_secret, intent.amount_cents) == ("pi_123", "pi_123_secret_x", 1_500)
    ((method, path, form, headers),) = seen
    assert (method, path) == ("POST", "/v1/payment_intents")
    assert form == {"amount": ["1500"], "currency": ["cad"], "metadata[redemption_id]": ["abc"],
                    "metadata[city]": ["brossard"], "payment_method_types[0]": ["card"]}  # fmt: skip
    assert headers["Idempotency-Key"] == "entraide-redemption-abc"
    assert headers["Authorization"] == "Bearer sk_test_checked"
