"""Card payments for the cash part of municipal services: the real `stripe` library against localstripe
(a Stripe emulator from PyPI, started here), whose own signed webhooks are relayed to our endpoint;
and one test against a local HTTP server that checks exactly what the library sends."""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
import stripe
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from litestar.testing import TestClient

from api.bootstrap import Settings
from api.http.app import create_app
from ledger.adapters import journal
from ledger.domain.errors import LedgerError
from ledger.domain.transfers import TransferRequest
from ledger.service_layer.audit import verify_database
from marketplace.adapters import store
from marketplace.adapters.payments_stripe import StripeCardPayments
from marketplace.schemas import DisputeList, Item, Redemption, WebhookAck
from marketplace.service_layer.redemptions import PAYMENT_HOLD_SECONDS, RESERVED_GRACE_SECONDS, redemption_id_for
from tests.local_server import LocalServer
from tests.stripe_server import Link, signed_event
from tests.test_api import assert_problem, entry_count
from tests.test_cli import run as run_cli
from tests.test_marketplace_api import decoded
from tests.test_marketplace_recovery import NOTHING, Crash, crash_once
from tests.world import World, free_port, standard_world

SECRET = "whsec_entraide_test"
API_KEY = "sk_test_entraide"
VISA, DECLINED = "4242424242424242", "4000000000000341"
POOL = {
    "title": {"fr": "Abonnement piscine", "en": "Pool pass"},
    "category": "sports",
    "price_points": 400,
    "cash_cents": 1_500,
}
RACERS = 8
# Interleavings per run, of 20 steps each. The machine's rules run one after another, so what the
# backends add to each other is their SQL, which 20 examples (some 400 steps, each rule many times)
# exercise on PostgreSQL; SQLite tries 40, for the combinations of steps.
INTERLEAVINGS = {"sqlite": 40, "postgresql": 20}


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

        self.server = LocalServer(Handler).start()
        self.url = f"{self.server.url}/hook"

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
    # --from-scratch: without it localstripe loads /tmp/localstripe.pickle, which every localstripe on the
    # machine rewrites on each change; read half-written, it kills the emulator at startup.
    process = subprocess.Popen([sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
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


@pytest.fixture(scope="module")
def stripe_link(localstripe) -> Iterator[Link]:
    """Our server's line to Stripe, which a test can cut (an outage) while residents still reach Stripe."""
    link = Link(int(localstripe[0].rsplit(":", 1)[1]))
    yield link
    link.down()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, stripe_link: Link) -> Settings:
    stripe_link.up()
    return Settings(data_dir=tmp_path, database_url=db_url, keys_dir=tmp_path / "keys", stripe_api_key=API_KEY,
                    stripe_api_base=stripe_link.url, stripe_webhook_secret=SECRET)  # fmt: skip


@pytest.fixture
def world(ctx) -> Iterator[World]:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        yield standard_world(ctx, client)


@pytest.fixture
def client(localstripe) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe[0]})


def service(world: World, **changes) -> Item:
    created = world.bearer(
        "staff-brossard", "POST", "/v1/admin/catalog/brossard/services", POOL | changes, key=uuid.uuid4().hex
    )
    return decoded(created, Item, 201)


def redeem(world: World, who: str, item_id: str, key: str) -> Redemption:
    return decoded(world.bearer(who, "POST", "/v1/wallet/redemptions", {"item_id": item_id}, key=key), Redemption, 201)


def pay(client: stripe.StripeClient, intent_id: str, card_number: str) -> None:
    """What the resident's browser does with Stripe.js: attach a card and confirm."""
    card = {"number": card_number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    method = client.v1.payment_methods.create(params={"type": "card", "card": card})
    client.v1.payment_intents.update(intent_id, params={"payment_method": method.id})
    with contextlib.suppress(stripe.CardError):  # declined: Stripe says so by webhook too
        client.v1.payment_intents.confirm(intent_id)


def relay(world: World, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": signature} if signature else {})
    return world.client.post("/v1/payments/stripe/webhook", content=body, headers=headers)


def status(world: World, who: str, redemption_id: str) -> str:
    return decoded(world.bearer(who, "GET", f"/v1/wallet/redemptions/{redemption_id}"), Redemption).status


def outcome(response) -> str:
    return decoded(response, WebhookAck).outcome


def test_a_partial_payment_is_captured_only_after_a_verified_success(world: World, localstripe, client, db_url,
                                                                     tmp_path) -> None:  # fmt: skip
    cli_common = ["--db", db_url, "--data-dir", str(tmp_path)]
    hooks = localstripe[1]
    pool = service(world)
    started = redeem(world, "alice", pool.id, "pool-1")
    assert started.status == "awaiting_payment" and started.points == 400 and started.cash_cents == 1_500
    assert (started.kind, started.seller_name, started.payment.state, started.payment.amount_cents) == (
        "service",
        "brossard",
        "pending",
        1_500,
    )
    intent_id = started.payment.payment_intent_id
    assert started.payment.client_secret.startswith(intent_id + "_secret_")
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert (intent.amount, intent.currency, intent.metadata["redemption_id"]) == (1_500, "cad", started.id)
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
    assert status(world, "alice", started.id) == "awaiting_payment"
    assert ledger.balance("brossard", "services:revenue").posted == 0

    pay(client, intent_id, VISA)
    body, signature = hooks.wait("payment_intent.succeeded", intent_id)  # signed by localstripe
    done = relay(world, body, signature)
    assert outcome(done) == "completed", done.text
    assert status(world, "alice", started.id) == "completed"
    paid = decoded(world.bearer("alice", "GET", f"/v1/wallet/redemptions/{started.id}"), Redemption)
    assert paid.payment.state == "succeeded" and paid.payment.payment_intent_id == intent_id
    assert ledger.balance("brossard", "services:revenue").posted == 400
    assert world.available("alice") == 600 and ledger.balance("brossard", world.residents["alice"].wallet).posted == 600
    again = relay(world, body, signature)  # Stripe redelivers
    assert outcome(again) == "duplicate"
    assert ledger.balance("brossard", "services:revenue").posted == 400
    assert verify_database(world.ctx.engine)["ok"]
    dispute_the_payment(world, intent_id, started.id, cli_common)


def dispute_the_payment(world: World, intent_id: str, redemption_id: str, cli_common: list[str]) -> None:
    """The card holder disputes the paid payment: Stripe's charge.dispute.* events, signed, some twice,
    some out of order, are recorded once each, and finance sees the dispute beside its redemption."""
    t0 = int(time.time())
    dispute = {"id": "dp_1", "object": "dispute", "charge": "ch_1", "payment_intent": intent_id, "amount": 1_500,
               "currency": "cad", "reason": "fraudulent", "status": "needs_response", "created": t0,
               "evidence_details": {"due_by": t0 + 7 * 86_400}}  # fmt: skip

    def deliver(event_id: str, kind: str, created: int, **changes) -> str:
        event = {"id": event_id, "object": "event", "type": f"charge.dispute.{kind}", "created": created,
                 "data": {"object": dispute | changes}}  # fmt: skip
        return outcome(relay(world, *signed_event(event, SECRET)))

    unsigned = json.dumps({"id": "evt_dp_0", "type": "charge.dispute.created", "data": {"object": dispute}}).encode()
    assert_problem(relay(world, unsigned, None), 400, "invalid_webhook")
    assert deliver("evt_dp_1", "created", t0) == "dispute_recorded"
    assert deliver("evt_dp_1", "created", t0) == "duplicate"
    assert deliver("evt_dp_2", "funds_withdrawn", t0 + 1) == "dispute_recorded"
    assert deliver("evt_dp_4", "closed", t0 + 3, status="lost") == "dispute_recorded"
    assert deliver("evt_dp_3", "updated", t0 + 2, status="under_review") == "dispute_recorded"  # arrived late
    assert_problem(world.bearer("alice", "GET", "/v1/finance/brossard/disputes"), 403, "forbidden")
    listed = decoded(world.bearer("finance-brossard", "GET", "/v1/finance/brossard/disputes"), DisputeList)
    (row,) = listed.disputes
    assert (row.id, row.redemption_id, row.payment_intent_id, row.merchant_id) == (
        "dp_1", redemption_id, intent_id, None)  # fmt: skip  # a city's service: no merchant
    assert (row.amount_cents, row.reason, row.status, row.funds_withdrawn) == (1_500, "fraudulent", "lost", True)
    assert row.created_at_us == t0 * 1_000_000 and row.closed_at_us is not None
    assert row.evidence_due_by_us == (t0 + 7 * 86_400) * 1_000_000
    assert (
        decoded(world.bearer("finance-brossard", "GET", "/v1/finance/brossard/disputes?limit=1"), DisputeList) == listed
    )
    output = run_cli("settlement", "disputes", "--city", "brossard", *cli_common)
    assert "dp_1" in output and redemption_id in output and "15.00" in output


def test_a_failed_payment_voids_the_hold_and_frees_the_seat(world: World, localstripe, client) -> None:
    hooks = localstripe[1]
    pool = service(world, quantity=1)
    started = redeem(world, "alice", pool.id, "pool-2")
    intent_id = started.payment.payment_intent_id
    held = world.bearer("bob", "POST", "/v1/wallet/redemptions", {"item_id": pool.id}, key="bob-1")
    assert_problem(held, 409, "sold_out")  # the only seat is held while alice pays

    pay(client, intent_id, DECLINED)
    body, signature = hooks.wait("payment_intent.payment_failed", intent_id)
    failed = relay(world, body, signature)
    assert outcome(failed) == "cancelled", failed.text
    assert status(world, "alice", started.id) == "cancelled"
    assert world.available("alice") == 1_000
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 0
    assert client.v1.payment_intents.retrieve(intent_id).status == "canceled"  # it cannot succeed later
    world.bearer("carole", "POST", "/v1/wallet/opt-ins", {"city": "brossard"})
    assert redeem(world, "carole", pool.id, "carole-1").status == "awaiting_payment"  # the seat is back


def test_cancelled_and_abandoned_payments_release_everything(world: World, clock, client) -> None:
    pool = service(world, quantity=5)
    first = redeem(world, "alice", pool.id, "pool-3")
    cancelled = world.bearer("alice", "POST", f"/v1/wallet/redemptions/{first.id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_problem(
        world.bearer("alice", "POST", f"/v1/wallet/redemptions/{first.id}/cancel"), 409, "redemption_not_pending"
    )
    assert client.v1.payment_intents.retrieve(first.payment.payment_intent_id).status == "canceled"
    assert world.available("alice") == 1_000

    second = redeem(world, "alice", pool.id, "pool-4")
    assert world.ctx.redemptions.recover() == NOTHING  # not yet abandoned
    clock.advance(PAYMENT_HOLD_SECONDS + 1)
    assert world.ctx.redemptions.recover() == NOTHING | {"awaiting_payment": 1}
    assert status(world, "alice", second.id) == "cancelled" and world.available("alice") == 1_000
    assert (
        world.bearer("staff-brossard", "GET", "/v1/admin/catalog/brossard/items").json()["items"][0]["remaining"] == 5
    )


def test_a_payment_that_succeeds_after_the_hold_expired_is_refunded(world: World, localstripe, clock, client) -> None:
    hooks = localstripe[1]
    pool = service(world, quantity=3)
    started = redeem(world, "alice", pool.id, "pool-5")
    intent_id = started.payment.payment_intent_id
    clock.advance(PAYMENT_HOLD_SECONDS + 1)  # the ledger hold lapses before the resident pays
    pay(client, intent_id, VISA)
    body, signature = hooks.wait("payment_intent.succeeded", intent_id)
    late = relay(world, body, signature)
    assert outcome(late) == "refunded", late.text
    assert status(world, "alice", started.id) == "refunded"
    assert world.available("alice") == 1_000 and world.ctx.ledger.balance("brossard", "services:revenue").posted == 0
    refunds = [r for r in client.v1.refunds.list().data if r.payment_intent == intent_id]
    assert [r.amount for r in refunds] == [1_500]
    assert (
        world.bearer("staff-brossard", "GET", "/v1/admin/catalog/brossard/items").json()["items"][0]["remaining"] == 3
    )


def test_the_library_sends_amount_metadata_and_idempotency_key() -> None:
    """A local server that checks exactly what the stripe library sent, and answers as Stripe does."""
    seen: list[tuple[str, str, dict, dict]] = []

    class Stripe(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = urllib.parse.parse_qs(
                self.rfile.read(int(self.headers["Content-Length"])).decode(), strict_parsing=True
            )
            seen.append((self.command, self.path, dict(form), dict(self.headers)))
            answer = json.dumps({"id": "pi_123", "object": "payment_intent", "amount": 1_500, "currency": "cad",
                                 "client_secret": "pi_123_secret_x", "status": "requires_payment_method"}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = LocalServer(Stripe).start()
    try:
        payments = StripeCardPayments("sk_test_checked", None, server.url)
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


# --- outages of the card processor --------------------------------------------------------------


def held(world: World, who: str) -> int:
    """Points the resident's wallet has reserved by open holds."""
    resident = world.residents[who]
    return world.ctx.ledger.balance(resident.city, resident.wallet).debits_pending


def remaining(world: World, item_id: str) -> int | None:
    with world.ctx.engine.connect() as conn:
        return store.item(conn, item_id)["remaining"]


def hold_is_open(world: World, ledger: str, hold_id: str) -> bool:
    with world.ctx.engine.connect() as conn:
        return hold_id in journal.open_holds(conn, ledger) and not journal.resolutions(conn, [(ledger, hold_id)])


def test_a_redemption_during_an_outage_holds_nothing_and_its_retry_runs_again(world: World, stripe_link: Link, localstripe,
                                                                              client) -> None:  # fmt: skip
    hooks = localstripe[1]
    pool = service(world, quantity=2)
    with stripe_link.outage():
        for attempt in (0, 1):  # the resident retries while Stripe is still unreachable
            refused = world.bearer("alice", "POST", "/v1/wallet/redemptions", {"item_id": pool.id}, key="pool-out")
            assert_problem(refused, 503, "overloaded")
            assert int(refused.headers["Retry-After"]) > 0
            assert (held(world, "alice"), world.available("alice"), remaining(world, pool.id)) == (0, 1_000, 2)
            (row,) = world.bearer("alice", "GET", "/v1/wallet/redemptions").json()["redemptions"]
            assert (row["status"], row["error"], row["attempt"], row["hold_ids"]) == (
                "failed",
                "overloaded",
                attempt,
                [],
            )

    started = redeem(world, "alice", pool.id, "pool-out")  # Stripe is back: the same key runs the whole redemption
    assert (started.status, started.attempt, started.error) == ("awaiting_payment", 2, None)
    assert not started.replayed
    (hold_id,) = started.hold_ids
    assert hold_is_open(world, "brossard", hold_id)
    assert (held(world, "alice"), world.available("alice"), remaining(world, pool.id)) == (400, 600, 1)

    intent_id = started.payment.payment_intent_id
    pay(client, intent_id, VISA)
    body, signature = hooks.wait("payment_intent.succeeded", intent_id)
    assert outcome(relay(world, body, signature)) == "completed"
    assert status(world, "alice", started.id) == "completed"
    assert world.ctx.ledger.balance("brossard", "services:revenue").posted == 400
    assert (held(world, "alice"), world.ctx.ledger.balance("brossard", world.residents["alice"].wallet).posted) == (
        0,
        600,
    )
    again = redeem(world, "alice", pool.id, "pool-out")
    assert again.status == "completed" and again.replayed and again.attempt == 2
    assert [r.amount for r in client.v1.refunds.list().data if r.payment_intent == intent_id] == []
    assert verify_database(world.ctx.engine)["ok"]


def test_cancelling_during_an_outage_answers_503_and_changes_nothing(world: World, stripe_link: Link, client) -> None:
    pool = service(world, quantity=2)
    started = redeem(world, "alice", pool.id, "pool-cancel")
    intent_id = started.payment.payment_intent_id
    before = world.bearer("alice", "GET", f"/v1/wallet/redemptions/{started.id}").json()
    entries = entry_count(world)
    with stripe_link.outage():
        refused = world.bearer("alice", "POST", f"/v1/wallet/redemptions/{started.id}/cancel")
        assert_problem(refused, 503, "overloaded")
        assert int(refused.headers["Retry-After"]) > 0
    assert world.bearer("alice", "GET", f"/v1/wallet/redemptions/{started.id}").json() == before
    assert entry_count(world) == entries and hold_is_open(world, "brossard", started.hold_ids[0])
    assert (held(world, "alice"), remaining(world, pool.id)) == (400, 1)
    assert client.v1.payment_intents.retrieve(intent_id).status == "requires_payment_method"

    cancelled = world.bearer("alice", "POST", f"/v1/wallet/redemptions/{started.id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (held(world, "alice"), world.available("alice"), remaining(world, pool.id)) == (0, 1_000, 2)
    assert client.v1.payment_intents.retrieve(intent_id).status == "canceled"


def test_the_sweep_leaves_an_unpaid_payment_for_later_during_an_outage(
    world: World, stripe_link: Link, clock, client
) -> None:
    pool = service(world, quantity=2)
    started = redeem(world, "alice", pool.id, "pool-sweep")
    clock.advance(PAYMENT_HOLD_SECONDS + 1)
    with stripe_link.outage():
        assert world.ctx.redemptions.recover() == NOTHING | {"deferred": 1}
    assert status(world, "alice", started.id) == "awaiting_payment"
    assert world.ctx.redemptions.recover() == NOTHING | {"awaiting_payment": 1}
    assert status(world, "alice", started.id) == "cancelled"
    assert (held(world, "alice"), world.available("alice"), remaining(world, pool.id)) == (0, 1_000, 2)
    assert client.v1.payment_intents.retrieve(started.payment.payment_intent_id).status == "canceled"


def test_a_crash_after_an_attempt_failed_leaves_nothing_held_for_long(
    world: World, stripe_link: Link, monkeypatch
) -> None:
    """The failure is recorded before the hold is voided; a crash between the two is settled by the
    sweep, or by the retry before it runs again."""
    pool = service(world, quantity=2)
    alice = world.residents["alice"]
    for key in ("crash-1", "crash-2"):
        crash_once(monkeypatch, "_void_if_open")
        with stripe_link.outage(), pytest.raises(Crash):
            world.ctx.redemptions.redeem(alice.id, key, pool.id, 1)
    assert held(world, "alice") == 800 and remaining(world, pool.id) == 2  # two failed attempts still holding
    assert world.ctx.redemptions.recover() == NOTHING | {"failed": 2}
    assert held(world, "alice") == 0 and world.ctx.redemptions.recover() == NOTHING
    crash_once(monkeypatch, "_void_if_open")
    with stripe_link.outage(), pytest.raises(Crash):
        world.ctx.redemptions.redeem(alice.id, "crash-3", pool.id, 1)
    assert held(world, "alice") == 400
    retried = world.ctx.redemptions.redeem(alice.id, "crash-3", pool.id, 1)
    assert (retried.status, retried.attempt, held(world, "alice"), remaining(world, pool.id)) == (
        "awaiting_payment",
        1,
        400,
        1,
    )
    assert verify_database(world.ctx.engine)["ok"]


@pytest.mark.parametrize("cash_cents", [0, 1_500])
def test_retries_racing_each_other_make_one_live_attempt(world: World, stripe_link: Link, cash_cents: int) -> None:
    """Eight copies of one request at once, first with no row, then after a failed attempt."""
    pool = service(world, quantity=5, cash_cents=cash_cents)
    alice = world.residents["alice"]

    def race(key: str) -> list[Redemption]:
        start = threading.Barrier(RACERS)

        def one(_: int) -> Redemption:
            start.wait()
            return world.ctx.redemptions.redeem(alice.id, key, pool.id, 1)

        with ThreadPoolExecutor(RACERS) as threads:
            return list(threads.map(one, range(RACERS)))

    expected = "awaiting_payment" if cash_cents else "completed"
    first = race("race-1")
    assert {(r.id, r.status, r.attempt, tuple(r.hold_ids)) for r in first} == {
        (first[0].id, expected, 0, tuple(first[0].hold_ids))}  # fmt: skip
    if cash_cents:
        assert len({r.payment.payment_intent_id for r in first}) == 1
        with stripe_link.outage(), pytest.raises(LedgerError):
            world.ctx.redemptions.redeem(alice.id, "race-2", pool.id, 1)
    else:
        drain = TransferRequest("brossard", "drain", "test_move", "single", alice.wallet, "services:revenue", 600)
        world.ctx.ledger.transfer(drain)
        with pytest.raises(LedgerError):  # refused for funds: a failed attempt
            world.ctx.redemptions.redeem(alice.id, "race-2", pool.id, 1)
        world.ctx.ledger.transfer(
            TransferRequest("brossard", "refill", "test_move", "single", "program:budget", alice.wallet, 600)
        )
    second = race("race-2")
    assert {(r.status, r.attempt) for r in second} == {(expected, 1)} and len({tuple(r.hold_ids) for r in second}) == 1
    assert held(world, "alice") == (800 if cash_cents else 0)
    assert world.available("alice") == 1_000 - 800
    assert remaining(world, pool.id) == 3
    assert verify_database(world.ctx.engine)["ok"]


# --- any interleaving of outages, retries, payments, webhooks and sweeps --------------------------

EXAMPLES = itertools.count()


class Interleavings(RuleBasedStateMachine):
    """One resident and one card-paid service with three units per example, three Idempotency-Keys
    to retry with, and our line to Stripe going up and down between steps. The resident's browser
    reaches Stripe whatever our line does; webhooks may arrive, fail, and be redelivered.

    After every step: no row is left `reserved`; the wallet holds exactly the points of the
    redemptions awaiting payment, each under its own open hold; completed ones were captured; the
    stock taken is the units of live redemptions; and nothing is ever `refunded` (no hold lapses
    here, so only a dead attempt replayed as live could cause one)."""

    def __init__(self, world: World, link: Link, client: stripe.StripeClient, clock) -> None:
        super().__init__()
        n = next(EXAMPLES)
        self.world, self.link, self.client, self.clock = world, link, client, clock
        self.who = f"m{n}"
        world.resident(self.who, "brossard", points=1_000)
        self.item = service(world, quantity=3, price_points=100)
        self.keys = [f"m{n}-k{k}" for k in range(3)]
        self.ids = {key: redemption_id_for(world.residents[self.who].id, key) for key in self.keys}
        self.events: list[list] = []  # [body, signature, type, key, applied]
        # localstripe refuses a second confirm of an intent whose card was declined (400 "Bad request"),
        # where Stripe lets the browser confirm it again with another card: those intents are not
        # paid again here, so the retry after a decline is not exercised against localstripe.
        self.declined: set[str] = set()
        link.up()

    def teardown(self) -> None:
        self.link.up()

    def row(self, key: str) -> dict | None:
        found = self.world.bearer(self.who, "GET", f"/v1/wallet/redemptions/{self.ids[key]}")
        return found.json() if found.status_code == 200 else None

    def live_units(self) -> int:
        return sum(1 for key in self.keys if (self.row(key) or {}).get("status") in ("awaiting_payment", "completed"))

    @rule(cut=st.booleans())
    def line(self, cut: bool) -> None:
        self.link.down() if cut else self.link.up()

    @rule(k=st.integers(0, 2))
    def redeem(self, k: int) -> None:
        key, before = self.keys[k], self.row(self.keys[k])
        response = self.world.bearer(self.who, "POST", "/v1/wallet/redemptions", {"item_id": self.item.id}, key=key)
        if before is not None and before["status"] != "failed":
            assert response.status_code == 201 and response.json()["status"] == before["status"], response.text
        elif self.live_units() == 3 and response.status_code == 409:
            assert response.json()["code"] == "sold_out"
        elif self.link.is_down:
            assert_problem(response, 503, "overloaded")
            assert self.row(key)["attempt"] == (0 if before is None else before["attempt"] + 1)
        else:
            assert response.status_code == 201 and response.json()["status"] == "awaiting_payment", response.text
            assert response.json()["attempt"] == (0 if before is None else before["attempt"] + 1)

    def _webhook(self, key: str, event_type: str) -> list:
        intent = self.row(key)["payment"]["payment_intent_id"]
        event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": event_type,
                 "data": {"object": {"id": intent, "object": "payment_intent", "amount": 1_500}}}  # fmt: skip
        body, signature = signed_event(event, SECRET)
        self.events.append(entry := [body, signature, event_type, key, False])
        return entry

    def _deliver(self, entry: list) -> None:
        body, signature, event_type, key, applied = entry
        before = self.row(key)
        response = relay(self.world, body, signature)
        if applied:
            assert response.json()["outcome"] == "duplicate", response.text
        elif event_type == "payment_intent.succeeded":
            assert response.json()["outcome"] == (
                "completed" if before["status"] == "awaiting_payment" else "unchanged"
            )
        elif before["status"] != "awaiting_payment":
            assert response.json()["outcome"] == "unchanged", response.text
        elif self.link.is_down:  # cancelling the intent needs Stripe: Stripe will deliver it again
            assert_problem(response, 503, "overloaded")
            assert self.row(key) == before
            return
        else:
            assert response.json()["outcome"] == "cancelled", response.text
        entry[4] = True

    @rule(k=st.integers(0, 2), card=st.sampled_from((VISA, DECLINED)))
    def pay(self, k: int, card: str) -> None:
        key = self.keys[k]
        row = self.row(key)
        if row is None or row["status"] != "awaiting_payment" or key in self.declined:
            return
        pay(self.client, row["payment"]["payment_intent_id"], card)  # the browser talks to Stripe, not through our line
        if card == DECLINED:
            self.declined.add(key)
        self._deliver(
            self._webhook(key, "payment_intent.succeeded" if card == VISA else "payment_intent.payment_failed")
        )

    @precondition(lambda self: self.events)
    @rule(n=st.integers(0, 100))
    def redeliver(self, n: int) -> None:
        self._deliver(self.events[n % len(self.events)])

    @rule(k=st.integers(0, 2))
    def cancel(self, k: int) -> None:
        key = self.keys[k]
        before = self.row(key)
        if before is None:
            return
        response = self.world.bearer(self.who, "POST", f"/v1/wallet/redemptions/{before['id']}/cancel")
        if before["status"] != "awaiting_payment":
            assert_problem(response, 409, "redemption_not_pending")
        elif self.link.is_down:
            assert_problem(response, 503, "overloaded")
            assert self.row(key) == before
        else:
            assert response.status_code == 200 and response.json()["status"] == "cancelled", response.text

    @rule()
    def sweep(self) -> None:
        self.clock.advance(RESERVED_GRACE_SECONDS + 1)  # abandoned reservations are due; no hold lapses in an example
        counts = self.world.ctx.redemptions.recover()
        assert counts["reserved"] == counts["failed"] == 0, counts

    @invariant()
    def holds_stock_and_statuses_agree(self) -> None:
        rows = [r for r in map(self.row, self.keys) if r is not None]
        statuses = [r["status"] for r in rows]
        assert not {"reserved", "refunded"} & set(statuses), statuses
        awaiting = [r for r in rows if r["status"] == "awaiting_payment"]
        assert held(self.world, self.who) == 100 * len(awaiting)
        for r in awaiting:
            assert hold_is_open(self.world, "brossard", r["hold_ids"][0]), r
        for r in rows:
            if r["status"] == "failed":
                assert r["hold_ids"] == [] and r["error"], r
        completed = statuses.count("completed")
        resident = self.world.residents[self.who]
        assert self.world.ctx.ledger.balance("brossard", resident.wallet).posted == 1_000 - 100 * completed
        assert remaining(self.world, self.item.id) == 3 - len(awaiting) - completed


def test_any_interleaving_keeps_holds_stock_and_statuses_in_agreement(
    world: World, stripe_link: Link, client, clock, db_url: str
) -> None:
    world.ctx.__dict__["card_payments"] = StripeCardPayments(
        API_KEY, SECRET, stripe_link.url, network_retries=0
    )  # fast outages
    for derived in ("redemptions", "payment_events"):
        world.ctx.__dict__.pop(derived, None)
    backend = "sqlite" if "://" not in db_url else "postgresql"
    run_state_machine_as_test(lambda: Interleavings(world, stripe_link, client, clock),
                              settings=hypothesis_settings(max_examples=INTERLEAVINGS[backend], stateful_step_count=20, deadline=None,
                                                suppress_health_check=list(HealthCheck)))  # fmt: skip
