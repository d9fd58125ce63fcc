"""`entraide demo` (seeding and credentials) and `entraide admin`, end to end, on both databases."""

from __future__ import annotations

import base64
import getpass
import json
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from litestar.testing import TestClient

from api.bootstrap import Settings, open_context
from api.http.app import create_app
from api.http.signatures import sign_request
from community.domain.errors import ActivationCodeUsed
from tests.test_cli import run


def test_demo_seeds_members_and_writes_credentials_that_work(db_url, tmp_path):
    creds_file = tmp_path / "creds.json"
    args = ("demo", "--db", db_url, "--data-dir", str(tmp_path), "--no-serve", "--transfers", "3000", "--days", "60")
    output = run(*args, "--credentials-out", str(creds_file))
    assert "entries verified" in output and "credentials of" in output
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    creds = json.loads(creds_file.read_text())
    assert len({m["city"] for m in creds["merchants"]}) == 11 and len({r["city"] for r in creds["residents"]}) == 11
    assert all({"city", "terminal_key_id", "private_key_pem"} <= set(m) for m in creds["merchants"])
    assert all({"city", "token", "card"} <= set(r) for r in creds["residents"])

    ctx = open_context(Settings.load(db_url, tmp_path))
    resident = max(
        creds["residents"], key=lambda r: ctx.ledger.balance(r["city"], f"citizen:{r['resident_id']}:wallet").available
    )
    merchant = next(m for m in creds["merchants"] if m["city"] == resident["city"])
    with TestClient(create_app(ctx)) as client:
        balance = client.get("/v1/wallet/balance", headers={"Authorization": f"Bearer {resident['token']}"}).json()
        assert balance["available"] > 0
        body = json.dumps({"card": resident["card"], "points": 1}).encode()
        headers = sign_request("POST", "/v1/pos/holds", body, merchant["terminal_key_id"], merchant["private_key_pem"])
        hold = client.post(
            "/v1/pos/holds",
            content=body,
            headers=headers | {"Idempotency-Key": "demo-1", "Content-Type": "application/json"},
        )
        assert hold.status_code == 201, hold.text
        history = client.get("/v1/wallet/history", headers={"Authorization": f"Bearer {resident['token']}"})
        assert history.status_code == 200, history.text
        history = history.json()
        assert history["entries"][0]["entry"]["transfer_id"] == hold.json()["hold_id"] and len(history["entries"]) > 1
        # The printed pairing code makes a browser (here: a key) a terminal of the portal's demo merchant.
        raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        pairing = creds["terminal_pairing"]
        paired = client.post(
            "/v1/pairing", json={"code": pairing["code"], "public_key": base64.b64encode(raw).decode()}
        )
        assert paired.status_code == 201 and paired.json()["merchant_id"] == pairing["merchant_id"], paired.text
    ctx.engine.dispose()

    again = run(*args, "--credentials-out", str(tmp_path / "again.json"))
    assert "already seeded" in again

    # The same accounts, with fresh tokens and activation codes (each start grants them from the real clock).
    def accounts(c: dict) -> dict:
        fresh = ("token", "activation_code")
        return {k: [{f: v for f, v in e.items() if f not in fresh} for e in rows] for k, rows in c.items()
                if k != "terminal_pairing"}  # fmt: skip

    renewed = json.loads((tmp_path / "again.json").read_text())
    assert accounts(renewed) == accounts(creds) and renewed["staff"][0]["token"] != creds["staff"][0]["token"]
    assert renewed["terminal_pairing"]["code"] != creds["terminal_pairing"]["code"]  # a new one for each start
    first, fresh = creds["residents"][0], renewed["residents"][0]
    assert first["activation_code"] != fresh["activation_code"]
    ctx = open_context(Settings.load(db_url, tmp_path))
    assert ctx.activation.redeem(fresh["activation_code"]) == (
        fresh["resident_id"],
        fresh["city"],
    )  # signs in on the web
    with pytest.raises(ActivationCodeUsed):  # the first start's code was replaced by this one's
        ctx.activation.redeem(first["activation_code"])
    ctx.engine.dispose()
    assert {"admins", "staff", "finance", "auditors", "organizations"} <= renewed.keys()


def test_admin_commands_configure_a_city_and_are_audited(db_url, tmp_path):
    base = ("--db", db_url, "--data-dir", str(tmp_path))
    program = {"city": "magog", "merchant_points_per_dollar": 3, "daily_cap_points": 400}
    (tmp_path / "program.json").write_text(json.dumps(program))
    run("init", *base)
    assert "version 1" in run(
        "admin", "program-set", "--city", "magog", "--file", str(tmp_path / "program.json"), *base
    )
    shown = json.loads(run("admin", "program-show", "--city", "magog", *base))
    assert shown["merchant_points_per_dollar"] == 3 and shown["expiry_days"] == 730
    funded = json.loads(run("admin", "fund-budget", "--city", "magog", "--points", "5000", "--key", "2026", *base))
    assert funded["points"] == 5000 and not funded["replayed"]
    resident = json.loads(run("admin", "enrol", "--city", "magog", "--name", "Zoé", "--level", "verified", *base))
    assert resident["level"] == "verified" and resident["card"].count(".") == 2
    signs_in = json.loads(run("admin", "enrol", "--city", "magog", "--name", "Léa", "--subject", "idp|lea", *base))
    assert signs_in["id"] != resident["id"]
    assert "Traceback" not in run(
        "admin", "enrol", "--city", "magog", "--name", "Léo", "--subject", "idp|lea", *base, code=2
    )
    assert json.loads(run("admin", "merchant-add", "--city", "magog", "--id", "velo", "--name", "Vélo", "--category", "sports",
                          "--approve", *base))["status"] == "approved"  # fmt: skip
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "terminal.pem").write_bytes(public)
    assert run(
        "admin",
        "terminal-add",
        "--city",
        "magog",
        "--merchant",
        "velo",
        "--public-key",
        str(tmp_path / "terminal.pem"),
        *base,
    ).startswith("t-")
    pairing = json.loads(
        run("admin", "terminal-pairing-code", "--city", "magog", "--merchant", "velo", "--name", "Caisse", *base)
    )
    assert (pairing["merchant_id"], pairing["name"], len(pairing["code"])) == (
        "velo",
        "Caisse",
        9,
    )  # web/routes/terminal.py pairs with it
    run("admin", "org-add", "--city", "magog", "--id", "club", "--name", "Club", "--approve", *base)
    assert (
        run("admin", "grant", "--city", "magog", "--role", "org", "--subject", "x", "--org", "club", *base).count(".")
        == 2
    )

    audit_file = tmp_path / "audit.jsonl"
    run("audit", "export", "--city", "magog", "--out", str(audit_file), *base)
    entries = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert {"program.configure", "program.fund_budget", "resident.enroll", "merchant.add", "merchant.set_status",
            "terminal.register", "organization.add"} <= {e["action"] for e in entries}  # fmt: skip
    assert {e["actor"] for e in entries} == {f"cli:{getpass.getuser()}"}

    (tmp_path / "bad.json").write_text(json.dumps(program | {"funding_rate_percent": 150}))
    output = run("admin", "program-set", "--city", "magog", "--file", str(tmp_path / "bad.json"), *base, code=2)
    assert "funding_rate_percent" in output and "Traceback" not in output
    output = run("admin", "enrol", "--city", "atlantis", "--name", "X", *base, code=2)
    assert output.startswith("error: Unknown program") and "atlantis" in output  # the API's wording, one line
