"""Stripe Checkout as far as the wallet's pages use it, on a local HTTP server: the API the `stripe`
library calls (sessions: create, retrieve, expire; refunds through a session's PaymentIntent) and
the hosted page a resident pays on, which then sends Stripe's signed `checkout.session.completed`
to our webhook and the browser back to the session's `success_url`.

localstripe has no Checkout, so this stands in for Stripe's side only: our code calls the real
`stripe` library, which makes real HTTP requests here, and every request is checked the way Stripe
checks it (the API key, an Idempotency-Key on every POST and the same object for a repeated key,
the session's parameters and their bounds), so a wrong parameter fails the test instead of passing.
"""

from __future__ import annotations

import html
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from tests.local_server import LocalServer
from tests.stripe_server import API_KEY, signed_event

MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS = 1_800, 86_400  # Stripe's bounds on a session's expires_at


class CheckoutServer:
    def __init__(self, now_s: Callable[[], int]) -> None:
        self.now_s = now_s  # the app's clock: expires_at is checked against the time the app lives in
        self.sessions: dict[str, dict] = {}
        self.by_key: dict[str, dict] = {}
        self.refunds: list[dict] = []
        self.events: list[tuple[bytes, str]] = []  # every webhook sent, body and signature
        self.webhook_url: str | None = None  # where to deliver them (None: kept for the test to deliver)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes, content_type: str, location: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if location:
                    self.send_header("Location", location)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                status, answer = server.get(self.path, dict(self.headers))
                if isinstance(answer, str):
                    self._answer(status, answer.encode(), "text/html; charset=utf-8")
                else:
                    self._answer(status, json.dumps(answer).encode(), "application/json")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                if self.path.startswith("/pay/"):  # the hosted page's "Pay" button
                    self._answer(303, b"", "text/plain", server.pay(self.path.rsplit("/", 1)[1]))
                    return
                status, answer = server.post(self.path, dict(self.headers), form)
                self._answer(status, json.dumps(answer).encode(), "application/json")

        self.httpd = LocalServer(Handler).start()
        self.url = self.httpd.url

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- the API -----------------------------------------------------------------------------------

    @staticmethod
    def _refused(message: str, status: int = 400) -> tuple[int, dict]:
        return status, {"error": {"type": "invalid_request_error", "message": message}}

    def get(self, path: str, headers: dict) -> tuple[int, dict | str]:
        if path.startswith("/pay/"):
            return self.hosted_page(path.rsplit("/", 1)[1])
        if headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._refused("Invalid API Key provided", 401)
        found = self.sessions.get(path.removeprefix("/v1/checkout/sessions/"))
        return (200, found) if found else self._refused(f"No such checkout session: {path}", 404)

    def post(self, path: str, headers: dict, form: dict[str, str]) -> tuple[int, dict]:
        if headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._refused("Invalid API Key provided", 401)
        key = headers.get("Idempotency-Key")
        if not key:
            return self._refused("every POST carries an Idempotency-Key here")
        with self._lock:
            if key in self.by_key:
                return 200, self.by_key[key]
            if path == "/v1/checkout/sessions":
                status, made = self._create(form)
            elif path.startswith("/v1/checkout/sessions/") and path.endswith("/expire"):
                status, made = self._expire(path.split("/")[4])
            elif path == "/v1/refunds":
                status, made = self._refund(form)
            else:
                return self._refused(f"unexpected {path}", 404)
            if status == 200:
                self.by_key[key] = made
            return status, made

    def _create(self, form: dict[str, str]) -> tuple[int, dict]:
        item = "line_items[0]"
        expected = {"mode": "payment", "payment_method_types[0]": "card", f"{item}[quantity]": "1",
                    f"{item}[price_data][currency]": "cad"}  # fmt: skip
        wrong = [name for name, value in expected.items() if form.get(name) != value]
        amount = form.get(f"{item}[price_data][unit_amount]", "")
        metadata = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
        expires_in = int(form.get("expires_at", "0")) - self.now_s()
        if (wrong or not amount.isdigit() or int(amount) < 50 or not form.get(f"{item}[price_data][product_data][name]")
                or form.get("locale") not in ("fr", "en", "es") or not metadata.get("redemption_id")
                or form.get("client_reference_id") != metadata["redemption_id"]
                or form.get("payment_intent_data[metadata][redemption_id]") != metadata["redemption_id"]
                or not MIN_EXPIRY_SECONDS <= expires_in <= MAX_EXPIRY_SECONDS
                or not all(form.get(u, "").startswith(("https://", "http://")) for u in ("success_url", "cancel_url"))):  # fmt: skip
            return self._refused(f"invalid checkout session: {sorted(form.items())}")
        number = len(self.sessions) + 1
        session_id = f"cs_test_{number:04d}{'a' * 60}"  # as long as Stripe's (over 64 characters)
        session = {
            "id": session_id, "object": "checkout.session", "mode": "payment", "status": "open",
            "payment_status": "unpaid", "amount_total": int(amount), "currency": "cad", "payment_intent": None,
            "metadata": metadata, "client_reference_id": form["client_reference_id"], "locale": form["locale"],
            "success_url": form["success_url"], "cancel_url": form["cancel_url"], "expires_at": int(form["expires_at"]),
            "url": f"{self.url}/pay/{session_id}", "title": form[f"{item}[price_data][product_data][name]"],
        }  # fmt: skip
        self.sessions[session_id] = session
        return 200, session

    def _expire(self, session_id: str) -> tuple[int, dict]:
        session = self.sessions.get(session_id)
        if session is None or session["status"] != "open":
            return self._refused("Only Checkout Sessions with a status of open can be expired.")
        session["status"] = "expired"
        return 200, session

    def _refund(self, form: dict[str, str]) -> tuple[int, dict]:
        paid = next((s for s in self.sessions.values() if s["payment_intent"] == form.get("payment_intent")), None)
        if paid is None or not form.get("payment_intent"):
            return self._refused(f"No such payment_intent: {form.get('payment_intent')}")
        refund = {"id": f"re_test_{len(self.refunds) + 1:04d}", "object": "refund", "status": "succeeded",
                  "payment_intent": paid["payment_intent"], "amount": paid["amount_total"]}  # fmt: skip
        self.refunds.append(refund)
        return 200, refund

    # --- the hosted page ---------------------------------------------------------------------------

    def hosted_page(self, session_id: str) -> tuple[int, str]:
        session = self.sessions.get(session_id)
        if session is None or session["status"] != "open":
            return 404, "<!doctype html><title>Expired</title><p>This checkout session is no longer open.</p>"
        amount = f"{session['amount_total'] / 100:.2f}"  # display only
        return 200, (
            f'<!doctype html><html lang="en"><title>Stripe test checkout</title><main><h1>{html.escape(session["title"])}</h1>'
            f'<p>CA${amount}</p><form method="post" action="/pay/{session_id}"><button type="submit">Pay</button></form>'
            f'<p><a href="{html.escape(session["cancel_url"])}">Back</a></p></main></html>'
        )

    def pay(self, session_id: str) -> str:
        """The card is taken: the session completes, its signed event goes out, and the browser goes back."""
        with self._lock:
            session = self.sessions[session_id]
            assert session["status"] == "open", session
            session.update(status="complete", payment_status="paid", payment_intent=f"pi_test_{session_id[8:12]}")
            event = {"id": f"evt_test_{session_id[8:12]}", "object": "event", "type": "checkout.session.completed",
                     "data": {"object": dict(session)}}  # fmt: skip
            body, signature = signed_event(event)
            self.events.append((body, signature))
        if self.webhook_url is not None:
            request = urllib.request.Request(self.webhook_url, data=body, method="POST", headers={
                "Content-Type": "application/json", "Stripe-Signature": signature})  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200, answer.read()
        return session["success_url"]
