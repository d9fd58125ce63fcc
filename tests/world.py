"""A small world for API tests: two cities, merchants with terminals, residents with cards, an organization.

Built through the services (the admin endpoints have their own tests); requests then go through
HTTP: every POS call is signed with RFC 9421 by the terminal's own key, every other call carries a
bearer token.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from litestar.testing import TestClient

from api.bootstrap import Context
from api.http.signatures import sign_request
from community.domain.access import MAX_TTL_SECONDS, operator
from community.domain.program import Program
from finance.schemas import PayoutAccountChange
from ledger.domain.transfers import TransferRequest


@dataclass
class TerminalCreds:
    merchant_id: str
    city: str
    key_id: str
    private_key_pem: bytes


@dataclass
class ResidentCreds:
    id: str
    city: str
    token: str
    card: str

    @property
    def wallet(self) -> str:
        return f"citizen:{self.id}:wallet"


@dataclass
class World:
    ctx: Context
    client: httpx.Client | TestClient
    terminals: dict[str, TerminalCreds] = field(default_factory=dict)
    residents: dict[str, ResidentCreds] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # staff and organization tokens by name
    _grants: itertools.count = field(default_factory=itertools.count)  # each grant its own Idempotency-Key

    def now_s(self) -> int:
        return self.ctx.clock() // 1_000_000

    def signed_headers(self, terminal: str, method: str, path: str, body: bytes, key: str | None = None) -> dict:
        t = self.terminals[terminal]
        headers = sign_request(method, path, body, t.key_id, t.private_key_pem, created=self.now_s())
        headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def pos(self, terminal: str, method: str, path: str, body: dict | None = None, key: str | None = None,
            lang: str | None = None) -> httpx.Response:  # fmt: skip
        raw = b"" if body is None else json.dumps(body).encode()
        headers = self.signed_headers(terminal, method, path, raw, key)
        if lang:
            headers["Accept-Language"] = lang
        return self.client.request(method, path, content=raw, headers=headers)

    def bearer(self, who: str, method: str, path: str, body: dict | None = None, key: str | None = None,
               lang: str | None = None) -> httpx.Response:  # fmt: skip
        token = self.residents[who].token if who in self.residents else self.tokens[who]
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        if lang:
            headers["Accept-Language"] = lang
        return self.client.request(method, path, json=body, headers=headers)

    def available(self, resident: str) -> int:
        r = self.residents[resident]
        return self.ctx.ledger.balance(r.city, r.wallet).available

    # --- building ------------------------------------------------------------------------------

    def city(self, city: str, budget_points: int = 1_000_000, **program) -> None:
        self.ctx.programs.configure(Program(city=city, **program), "staff:test")
        self.ctx.programs.fund_budget(city, budget_points, f"fund-{city}", "staff:test")
        self.grant(f"staff-{city}", "staff", city, f"s-{city}")

    def merchant(self, name: str, city: str, category: str = "food", terminals: int = 1) -> None:
        self.ctx.merchants.add(city, name, f"Commerce {name}", "staff:test", key=f"add-{name}", category=category)
        self.ctx.merchants.set_status(name, "approved", "staff:test", city)
        for n in range(terminals):
            private = Ed25519PrivateKey.generate()
            public_pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
            key_id = self.ctx.terminals.register(
                name, public_pem, "staff:test", city, key=f"{name}#{n}"
            ).terminal_key_id
            pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            self.terminals[name if n == 0 else f"{name}#{n}"] = TerminalCreds(name, city, key_id, pem)

    def resident(self, name: str, city: str, points: int = 0, level: str = "basic") -> ResidentCreds:
        row = self.ctx.residents.enroll(
            city, {"name": name.title(), "email": f"{name}@example.org"}, level, "staff:test", key=f"enrol-{name}"
        )
        token = self.ctx.access.issue_resident(row.id, city, MAX_TTL_SECONDS, "cli:test")
        card = self.ctx.residents.current_card(row.id)["token"]
        self.residents[name] = creds = ResidentCreds(row.id, city, token, card)
        if points:
            self.ctx.ledger.transfer(
                TransferRequest(city, f"seed-{name}", "earn_civic", "single", "program:budget", creds.wallet, points)
            )
        return creds

    def organization(self, org_id: str, city: str) -> None:
        self.ctx.organizations.add(city, org_id, f"Organisme {org_id}", "staff:test", key=f"add-{org_id}")
        self.ctx.organizations.set_status(org_id, "approved", "staff:test", city)
        self.grant(org_id, "org", city, f"coordo-{org_id}", org_id=org_id)

    def payout_account(self, city: str, merchant: str, account: dict) -> PayoutAccountChange:
        """A merchant's payout account, proposed by one finance officer and confirmed by another."""
        change = self.ctx.payouts.propose_account(
            city, merchant, account, "finance:test-proposer", key=secrets.token_hex(8)
        )
        return self.ctx.payouts.decide_account(city, change.id, "confirm", "finance:test-confirmer")

    def grant(self, name: str, role: str, city: str, subject: str, org_id: str | None = None,
              merchant_id: str | None = None) -> str:  # fmt: skip
        """A staff, finance, auditor, admin or organization token, kept under `name`. Tests make
        every such token here, so that how tokens are granted is written in one place."""
        granted = self.ctx.access.grant(
            operator("test"),
            city,
            role,
            subject,
            org_id,
            MAX_TTL_SECONDS,
            key=f"{name}:{next(self._grants)}",
            merchant_id=merchant_id,
        )
        self.tokens[name] = token = granted.token
        return token


def standard_world(ctx: Context, client) -> World:
    world = World(ctx, client)
    world.city("brossard", daily_cap_points=300, monthly_cap_points=1_000)
    world.city("delson")
    world.merchant("boulangerie", "brossard", "food", terminals=2)
    world.merchant("librairie", "brossard", "retail")
    world.merchant("cafe-delson", "delson", "food")
    world.resident("alice", "brossard", points=1_000)
    world.resident("bob", "brossard", points=50)
    world.resident("carole", "delson", points=500)
    world.organization("entraide-jeunesse", "brossard")
    world.grant("finance-brossard", "finance", "brossard", "f1")
    return world


# --- a real server process, for crash and concurrency tests -------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server_process(db_url: str, data_dir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`entraide serve` in its own process; yields its base URL and the process (tests may kill it)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "api.cli",
        "serve",
        "--db",
        db_url,
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    base = f"http://127.0.0.1:{port}"
    with process_serving(command, f"{base}/v1/health") as process:
        yield base, process


@contextmanager
def process_serving(command: list[str], ready_url: str) -> Iterator[subprocess.Popen]:
    """A command in its own process, once `ready_url` answers 200; terminated afterwards."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                # Killed first: reading the stderr of a process still running waits for its end, forever.
                process.kill()
                _, stderr = process.communicate(timeout=30)
                raise RuntimeError(f"server did not start: {stderr.decode()[-2000:]}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
