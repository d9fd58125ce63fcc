"""A local HTTP server that answers the `stripe` library like Stripe does, and records exactly what it sent;
and a relay that cuts the line to a Stripe server on demand (an outage).

It is not a fake of our code: our code calls the real `stripe` library, which makes real HTTP
requests here. The server checks the API key and the form body, requires an `Idempotency-Key` on
every POST and, like Stripe, answers a repeated key with the object it already made. It can hold a
request for a while before answering (to let a client time out or a worker be killed mid-call).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Self

from tests.local_server import LocalServer
from tests.world import free_port

API_KEY = "sk_test_entraide"
WEBHOOK_SECRET = "whsec_entraide_test"
OBJECTS = {"/v1/transfers": ("transfer", "tr"), "/v1/payouts": ("payout", "po")}


class StripeServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []  # every POST as received: path, form, headers
        self.created: dict[str, dict] = {}  # idempotency key -> object
        self.accounts: dict[str, dict] = {}  # connected accounts by id (a test sets what Stripe would verify)
        self.links: list[dict] = []  # account links made, as answered
        self.delay_seconds = 0.0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.answer(*server.read(self.path, dict(self.headers)))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                self.answer(*server.handle(self.path, dict(self.headers), urllib.parse.parse_qs(body)))

            def answer(self, status: int, answer: dict) -> None:
                if server.delay_seconds:
                    time.sleep(server.delay_seconds)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = LocalServer(Handler)
        self.url = self.httpd.url
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, path: str, headers: dict, form: dict[str, list[str]]) -> tuple[int, dict]:
        with self._lock:
            self.requests.append({"path": path, "form": {k: v[0] for k, v in form.items()}, "headers": headers})
            if headers.get("Authorization") != f"Bearer {API_KEY}":
                return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
            if path == "/v1/account_links":  # Stripe needs no idempotency key here; each call is a new link
                return self._account_link({k: v[0] for k, v in form.items()})
            key = headers.get("Idempotency-Key")
            if key and path == "/v1/accounts":
                return 200, self.created.setdefault(key, self._account(form))
            if path not in OBJECTS or not key:
                return 400, {"error": {"type": "invalid_request_error", "message": f"unexpected {path} / missing key"}}
            if key in self.created:
                return 200, self.created[key]
            kind, prefix = OBJECTS[path]
            obj = {"id": f"{prefix}_{len(self.created) + 1:06d}", "object": kind, "amount": int(form["amount"][0]),
                   "currency": form["currency"][0], "livemode": False,
                   "metadata": {k[9:-1]: v[0] for k, v in form.items() if k.startswith("metadata[")}}  # fmt: skip
            if kind == "transfer":
                obj["destination"] = form["destination"][0]
            else:
                obj["status"] = "pending"
                obj["stripe_account"] = headers.get("Stripe-Account")
            self.created[key] = obj
            return 200, obj

    def read(self, path: str, headers: dict) -> tuple[int, dict]:
        """GET /v1/accounts/<id>, as Stripe answers it."""
        with self._lock:
            self.requests.append({"path": path, "form": {}, "headers": headers, "method": "GET"})
            if headers.get("Authorization") != f"Bearer {API_KEY}":
                return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
            account = self.accounts.get(path.removeprefix("/v1/accounts/"))
            if not path.startswith("/v1/accounts/") or account is None:
                return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": path}}
            return 200, account

    def _account(self, form: dict[str, list[str]]) -> dict:
        account = {"id": f"acct_{len(self.accounts) + 1:016d}", "object": "account", "type": form["type"][0],
                   "country": form["country"][0], "details_submitted": False, "payouts_enabled": False,
                   "charges_enabled": False, "capabilities": {"transfers": "inactive"},
                   "metadata": {k[9:-1]: v[0] for k, v in form.items() if k.startswith("metadata[")}}  # fmt: skip
        self.accounts[account["id"]] = account
        return account

    def _account_link(self, form: dict[str, str]) -> tuple[int, dict]:
        if form.get("account") not in self.accounts or form.get("type") != "account_onboarding":
            return 400, {"error": {"type": "invalid_request_error", "message": "no such account / bad type"}}
        if not all(form.get(k, "").startswith(("http://", "https://")) for k in ("refresh_url", "return_url")):
            return 400, {"error": {"type": "invalid_request_error", "message": "refresh_url and return_url are URLs"}}
        created = int(time.time())
        link = {"object": "account_link", "created": created, "expires_at": created + 300,
                "url": f"https://connect.stripe.com/setup/e/{form['account']}/{len(self.links) + 1}"}  # fmt: skip
        self.links.append(link | {"form": form})
        return 200, link

    def made(self, kind: str) -> list[dict]:
        return [o for o in self.created.values() if o["object"] == kind]


def signed_event(event: dict, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    """A webhook body and its `Stripe-Signature` header, made the way Stripe makes them."""
    payload = json.dumps(event).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={signature}"


class Link:
    """A TCP relay between our code and a Stripe server that can be cut like a network outage.

    While cut, new connections are refused and open ones (the library keeps connections alive) are
    dropped, so the `stripe` library meets exactly what it meets when Stripe is unreachable. The
    relay listens on one fixed port for its whole life, so the settings never change.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: a bare close would leave it listening
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @property
    def is_down(self) -> bool:
        return self._listener is None

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        self.down()
        try:
            yield
        finally:
            self.up()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)  # idle keep-alive connections stay open, as Stripe's do
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._open |= {client, upstream}
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        """Copy one direction; when either side closes, the connection ends (HTTP never half-closes)."""
        with contextlib.suppress(OSError):
            while chunk := source.recv(65_536):
                target.sendall(chunk)
        with self._lock:
            self._open -= {source, target}
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
