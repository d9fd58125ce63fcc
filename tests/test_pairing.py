"""Pairing a device as a terminal with a one-time code, and the offline sales' `occurred_at_us`
(SQLite and PostgreSQL): the staff issues a code (API and CLI), the device registers its own key
with it, signs at once, the code works once and only for 15 minutes, and every refusal is a 401 that
changes nothing; an offline batch's items say when each sale happened, bounded, shown in the statement.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from litestar.testing import TestClient

from api.http.app import create_app
from ledger.service_layer import audit_trail
from merchants.service_layer.pairing import VALID_SECONDS
from merchants.service_layer.pos import OCCURRED_AT_MAX_AGE_US, terminal_key_id
from tests.world import TerminalCreds, World


def _device() -> tuple[Ed25519PrivateKey, bytes]:
    private = Ed25519PrivateKey.generate()
    return private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_a_device_pairs_with_a_code_once_then_signs_and_dates_its_offline_sales(ctx, clock, settings) -> None:
    with TestClient(create_app(ctx)) as client:
        world = World(ctx, client)
        world.city("brossard")
        world.merchant("boulangerie", "brossard", terminals=0)
        alice = world.resident("alice", "brossard", points=1_000)

        issued = world.bearer("staff-brossard", "POST", "/v1/admin/merchants/brossard/boulangerie/pairing-codes",
                              {"name": "Caisse 1"}, key="pc-1")  # fmt: skip
        assert issued.status_code == 201, issued.text
        code = issued.json()
        assert len(code["code"]) == 9 and code["code"][4] == "-" and code["name"] == "Caisse 1"
        assert code["expires_at_us"] == clock() + VALID_SECONDS * 1_000_000
        again = world.bearer("staff-brossard", "POST", "/v1/admin/merchants/brossard/boulangerie/pairing-codes",
                             {"name": "Caisse 1"}, key="pc-1")  # fmt: skip
        assert again.json()["code"] == code["code"]  # a retried issue shows the same code

        private, raw = _device()
        body = {
            "code": code["code"].lower().replace("-", " "),
            "public_key": base64.b64encode(raw).decode(),
            "name": "Till",
        }
        paired = client.post("/v1/pairing", json=body)
        assert paired.status_code == 201, paired.text
        assert paired.json() == {"terminal_key_id": terminal_key_id(raw), "merchant_id": "boulangerie"}
        pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        world.terminals["till"] = TerminalCreds("boulangerie", "brossard", terminal_key_id(raw), pem)
        assert world.pos("till", "POST", "/v1/pos/identify", {"card": alice.card}).json()["available_points"] == 1_000

        # Once only; a stranger's code and an expired one: 401, in the caller's language, nothing written.
        _, other = _device()
        reused = client.post("/v1/pairing", json=body | {"public_key": base64.b64encode(other).decode()},
                             headers={"Accept-Language": "en"})  # fmt: skip
        assert (reused.status_code, reused.json()["code"], reused.json()["title"]) == (
            401, "pairing_code_used", "Pairing code already used")  # fmt: skip
        wrong = client.post("/v1/pairing", json=body | {"code": "2345-6789"})
        assert (wrong.status_code, wrong.json()["code"]) == (401, "pairing_code_invalid")
        assert wrong.json()["title"] == "Code d’appairage inconnu"
        soon = world.bearer(
            "staff-brossard", "POST", "/v1/admin/merchants/brossard/boulangerie/pairing-codes", key="pc-2"
        )
        clock.advance(VALID_SECONDS)
        expired = client.post(
            "/v1/pairing", json=body | {"code": soon.json()["code"], "public_key": base64.b64encode(other).decode()}
        )
        assert (expired.status_code, expired.json()["code"]) == (401, "pairing_code_expired")
        assert [t["key_id"] for t in ctx.terminals.list("boulangerie")] == [terminal_key_id(raw)]
        late = world.bearer(
            "staff-brossard", "POST", "/v1/admin/merchants/brossard/boulangerie/pairing-codes", key="pc-3"
        )
        later = client.post(
            "/v1/pairing", json={"code": late.json()["code"], "public_key": base64.b64encode(other).decode()}
        )
        assert later.json()["terminal_key_id"] == terminal_key_id(other)
        actions = [e.action for e in audit_trail.page(ctx.engine, "brossard", 0, 200).entries]
        assert actions.count("terminal.pairing_code") == 3 and actions.count("terminal.register") == 2
        assert actions.count("terminal.pairing_use") == 2

        # Offline: each item says when the sale happened; the statement shows it beside the commit time.
        sold_at = clock() - 3_600 * 1_000_000
        batch = {"items": [
            {"idempotency_key": "o1", "card": alice.card, "points": 200, "occurred_at_us": sold_at},
            {"idempotency_key": "o2", "card": alice.card, "purchase_cents": 1_500, "occurred_at_us": sold_at + 1},
            {"idempotency_key": "o3", "card": alice.card, "points": 10, "occurred_at_us": clock() + 60_000_000},
            {"idempotency_key": "o4", "card": alice.card, "points": 10, "occurred_at_us": clock() - OCCURRED_AT_MAX_AGE_US - 1},
        ]}  # fmt: skip
        results = world.pos("till", "POST", "/v1/pos/offline", batch).json()["results"]
        assert [r["status"] for r in results] == ["accepted", "accepted", "refused", "refused"]
        assert {r["code"] for r in results[2:]} == {"invalid_request"}
        lines = world.pos("till", "GET", "/v1/pos/statement?limit=10").json()["entries"]
        assert {(line["what"], line["occurred_at_us"]) for line in lines} == {
            ("redemption", sold_at), ("purchase_award", sold_at + 1)}  # fmt: skip
        assert all(line["time_us"] == clock() for line in lines)
        replay = world.pos("till", "POST", "/v1/pos/offline", {"items": batch["items"][:1]}).json()["results"]
        assert replay[0]["status"] == "replayed"
