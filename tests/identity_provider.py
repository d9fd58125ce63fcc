"""A local OpenID Connect identity provider: it publishes its JWKS over real HTTP and signs tokens.

Our code fetches the key set with its own HTTP client, here. The provider counts every fetch and
how many were in flight at once, and can misbehave on demand: hang (answer nothing until
released), fail (HTTP 503), or rotate its key.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Self

from joserfc import jwt
from joserfc.jwk import OKPKey

from tests.local_server import LocalServer

ISSUER = "https://idp.example"
AUDIENCE = "entraide"
HANG_LIMIT_SECONDS = 60  # a hung fetch is released at the latest then, or when the provider closes


def _closed(connection: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and not connection.recv(1, socket.MSG_PEEK)
    except (OSError, ValueError):  # already closed on our side
        return True


def _hang(handler: BaseHTTPRequestHandler, released: threading.Event) -> None:
    """Answer nothing until released or until the client gives up (its socket closes)."""
    deadline = time.monotonic() + HANG_LIMIT_SECONDS
    while not released.wait(0.05) and time.monotonic() < deadline:
        if _closed(handler.connection):
            return


def new_key(kid: str) -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid})


def sign(key: OKPKey, claims: dict, alg: str = "Ed25519") -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])


class IdentityProvider:
    def __init__(self) -> None:
        self.key = new_key("idp-1")
        self.published = [self.key]
        self.mode = "serve"  # serve | hang | fail
        self.fetches = 0  # requests received
        self.max_in_flight = 0  # the most connections that were ever waiting for an answer at once
        self._open: set[socket.socket] = set()
        self.fetch_times: list[float] = []  # time.monotonic() at each request
        self.released = threading.Event()
        self._changed = threading.Condition()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                provider._arrived(self.connection)
                try:
                    provider._answer(self)
                finally:
                    provider._left(self.connection)

        self.httpd = LocalServer(Handler)
        self.jwks_url = f"{self.httpd.url}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    # --- what a test does ------------------------------------------------------------------------

    def token(self, now_s: int, key: OKPKey | None = None, **changes) -> str:
        """A resident token for `alice@idp` valid five minutes; `changes` set claims (None removes one)."""
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@idp", "iat": now_s, "exp": now_s + 300} | changes
        return sign(key or self.key, {k: v for k, v in claims.items() if v is not None})

    def rotate(self) -> OKPKey:
        """A new signing key replaces the old one in the published set."""
        self.key = new_key(f"idp-{len(self.fetch_times)}-{time.monotonic_ns()}")
        self.published = [self.key]
        return self.key

    def wait_for(self, predicate, timeout_seconds: float = 30) -> bool:
        """Wait until `predicate(self)` holds (checked after each fetch), or give up."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout_seconds)

    # --- serving ---------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._open)

    def _arrived(self, connection: socket.socket) -> None:
        with self._changed:
            # A client that gave up has closed its socket before it came back: the kernel knows at
            # once, however late the thread holding that request notices.
            self._open = {c for c in self._open if not _closed(c)} | {connection}
            self.fetches += 1
            self.max_in_flight = max(self.max_in_flight, len(self._open))
            self.fetch_times.append(time.monotonic())
            self._changed.notify_all()

    def _left(self, connection: socket.socket) -> None:
        with self._changed:
            self._open.discard(connection)
            self._changed.notify_all()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        if self.mode == "hang":
            _hang(handler, self.released)
            return
        if self.mode == "fail":
            handler.send_error(503)
            return
        document = json.dumps({"keys": [k.as_dict(private=False) for k in self.published]}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(document)))
        handler.end_headers()
        handler.wfile.write(document)
