"""The back office on the command line: every /v1/admin and /v1/finance route has its command
(api/cli/office.py ROUTE_COMMANDS, both ways), and the commands do their job through the same services,
audited as `cli:<user>`, refusals worded as the API's problems, in French by default."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

import msgspec
import pytest
import typer
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from litestar.testing import TestClient

from api.bootstrap import Settings, open_context
from api.cli import app
from api.cli.office import NOT_COMMANDS, ROUTE_COMMANDS
from api.http.app import create_app
from community.service_layer.residents import DAY_US, ERASURE_DELAY_DAYS
from ledger.service_layer import audit_trail

ROOT = typer.main.get_command(app)  # built once: typer's CliRunner builds the whole tree again at every call


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(ROOT, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_admin_and_finance_route_has_its_command(ctx):
    routes = {handler.operation_id or f"{sorted(handler.http_methods)} {route.path}" for route in create_app(ctx).routes
              for handler in getattr(route, "route_handlers", [])
              if route.path.startswith(("/v1/admin/", "/v1/finance/")) and handler.http_methods != {"OPTIONS"}}  # fmt: skip
    assert sorted(routes - ROUTE_COMMANDS.keys() - NOT_COMMANDS.keys()) == [], "add them to ROUTE_COMMANDS"
    assert sorted((ROUTE_COMMANDS.keys() | NOT_COMMANDS.keys()) - routes) == [], "routes gone: drop them"
    missing = []
    for command in set(ROUTE_COMMANDS.values()):
        found = ROOT
        for name in command.split():  # `admin correction propose`: a group's group
            found = getattr(found, "commands", {}).get(name)
        if found is None:
            missing.append(command)
    assert missing == []


def test_back_office_commands_do_each_job_through_the_services_and_are_audited(db_url, tmp_path):
    base = ("--db", db_url, "--data-dir", str(tmp_path), "--lang", "fr")  # French: what a city's staff read

    def admin(*args: str, code: int = 0) -> str:
        return run("admin", *args, "--city", "magog", *base, code=code)

    def finance(*args: str, code: int = 0) -> str:
        return run("settlement", *args, "--city", "magog", *base, code=code)

    (tmp_path / "program.json").write_text(json.dumps({"city": "magog", "merchant_points_per_dollar": 3}))
    run("init", *base)
    admin("program-set", "--file", str(tmp_path / "program.json"))
    admin("fund-budget", "--points", "5000", "--key", "b1")

    # residents: level with its evidence, renewal, card revocation, erasure with the delay, undone, then at once
    rid = json.loads(admin("resident-enrol", "--name", "Zoé"))["id"]
    assert json.loads(admin("resident-level", "--resident", rid, "--level", "verified", "--evidence",
                            "permis de conduire vu au comptoir"))["level"] == "verified"  # fmt: skip
    assert admin("resident-level", "--resident", rid, "--level", "gold", "--evidence", "x", code=2).startswith(
        "erreur : Requête invalide"
    )
    shown = json.loads(admin("resident-show", "--resident", rid))
    renewed = json.loads(admin("resident-renew", "--resident", rid))
    assert renewed["valid_until_us"] > shown["valid_until_us"] and shown["erasure_due_at_us"] is None
    ctx = open_context(Settings.load(db_url, tmp_path))
    staff = admin("grant", "--role", "staff", "--subject", "ana@magog.ca").strip()
    with TestClient(create_app(ctx)) as client:  # the route takes the same evidence
        answer = client.put(f"/v1/admin/residents/magog/{rid}/level", headers={"Authorization": f"Bearer {staff}"},
                            json={"level": "checked", "evidence": "visite à domicile"})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["level"] == "checked", answer.text
    card = ctx.residents.current_card(rid)["id"]
    assert json.loads(admin("card-show", "--card", card))["id"] == rid  # the card's resident, found exactly
    assert card in admin("card-revoke", "--card", card)
    assert card in {r["id"] for r in ctx.residents.revocations("magog", 0)}
    pending = json.loads(admin("resident-erase", "--resident", rid))
    assert (
        pending["status"] == "pending"
        and pending["due_at_us"] - pending["requested_at_us"] == ERASURE_DELAY_DAYS * DAY_US
    )
    assert json.loads(admin("resident-show", "--resident", rid))["erasure_due_at_us"] == pending["due_at_us"]
    assert json.loads(admin("resident-erase", "--resident", rid, "--cancel"))["status"] == "none"
    admin("resident-erase", "--resident", rid, "--now")
    assert "effacé" in admin("resident-show", "--resident", rid, code=2)

    # merchants, terminals, organizations, principals
    admin("merchant-add", "--id", "velo", "--name", "Vélo", "--category", "sports")
    assert json.loads(admin("merchant-status", "--id", "velo", "--status", "approved"))["status"] == "approved"
    assert "Traceback" not in admin("merchant-status", "--id", "velo", "--status", "gone", code=2)
    pem = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "t.pem").write_bytes(pem)
    key_id = admin("terminal-add", "--merchant", "velo", "--public-key", str(tmp_path / "t.pem")).strip()
    admin("terminal-revoke", "--key-id", key_id)
    (listed,) = json.loads(admin("merchant-list"))
    assert listed["status"] == "approved" and listed["terminals"][0] == listed["terminals"][0] | {
        "key_id": key_id,
        "status": "revoked",
    }
    assert listed == msgspec.to_builtins(ctx.terminals.merchants("magog").merchants[0])  # the service's answer
    admin("org-add", "--id", "club", "--name", "Club")
    assert json.loads(admin("org-status", "--id", "club", "--status", "suspended"))["status"] == "suspended"
    assert [o["status"] for o in json.loads(admin("org-list"))] == ["suspended"]
    assert [p["subject"] for p in json.loads(admin("principals"))] == ["ana@magog.ca"]

    # services and events
    spec = {"title": {"fr": "Piscine"}, "category": "sports", "price_points": 300, "cash_cents": 500}
    (tmp_path / "service.json").write_text(json.dumps(spec))
    service = json.loads(admin("service-create", "--file", str(tmp_path / "service.json")))
    event = spec | {
        "title": {"fr": "Concert"},
        "category": "culture",
        "starts_at_us": 1_900_000_000_000_000,
        "quantity": 20,
    }
    (tmp_path / "event.json").write_text(json.dumps(event))
    assert json.loads(admin("event-create", "--file", str(tmp_path / "event.json")))["kind"] == "event"
    (tmp_path / "bad.json").write_text(json.dumps(spec | {"colour": "blue"}))
    assert "bad.json" in admin("service-create", "--file", str(tmp_path / "bad.json"), code=2)
    (tmp_path / "patch.json").write_text(json.dumps({"price_points": 250}))
    assert (
        json.loads(admin("item-update", "--item", service["id"], "--file", str(tmp_path / "patch.json")))[
            "price_points"
        ]
        == 250
    )
    assert json.loads(admin("item-suspend", "--item", service["id"], "--reason", "travaux"))["suspended"]
    assert not json.loads(admin("item-suspend", "--item", service["id"], "--lift"))["suspended"]
    page = json.loads(admin("item-list", "--kind", "service"))
    assert [i["id"] for i in page["items"]] == [service["id"]] and page["items"][0]["price_points"] == 250

    # finance: reports, the last month closed and corrected, a payout account that needs a second principal
    now = datetime.now(UTC)
    last = f"{now.year - (now.month == 1)}-{(now.month - 2) % 12 + 1:02d}"
    assert json.loads(finance("budget"))["funded_points"] == 5000
    assert json.loads(finance("redemptions", "--period", last))["period"] == last
    assert "merchants" in json.loads(finance("preview", "--period", last))
    finance("statement", "--period", last, code=2)  # open: not found
    finance("close", "--period", last)
    assert json.loads(finance("statement", "--period", last))["statement_sha256"]
    adjusted = json.loads(finance("adjust", "--merchant", "velo", "--amount-cents", "-250", "--reason", "erreur de caisse",
                                  "--ref-period", last))  # fmt: skip
    assert adjusted["amount_cents"] == -250
    assert json.loads(finance("payout-list", "--period", last)) == []
    change = json.loads(finance("payout-account", "--merchant", "velo", "--institution", "815", "--transit", "12345",
                                "--account-number", "1234567"))  # fmt: skip
    assert [c["id"] for c in json.loads(finance("payout-account-changes"))] == [change["id"]]
    assert "deuxième personne" in finance(
        "payout-account-decide", "--change", change["id"], "--decision", "confirm", code=2
    )
    assert (
        json.loads(finance("payout-account-decide", "--change", change["id"], "--decision", "reject"))["status"]
        == "rejected"
    )

    # the whole trail, as the services wrote it, in the CLI user's name
    records = audit_trail.page(ctx.engine, "magog", 0, 500).entries
    cli = f"cli:{getpass.getuser()}"
    levels = [(r.actor == cli, r.after) for r in records if r.action == "resident.set_level"]
    assert levels == [(True, {"level": "verified", "evidence": "permis de conduire vu au comptoir"}),
                      (False, {"level": "checked", "evidence": "visite à domicile"})]  # fmt: skip
    actions = {r.action: r for r in records if r.actor == cli}
    assert {"resident.set_level", "resident.renew", "card.revoke", "resident.erasure_request", "resident.erasure_cancel",
            "resident.erase", "merchant.set_status", "terminal.revoke", "organization.set_status", "catalog.service.create",
            "catalog.event.create", "catalog.service.update", "catalog.suspend", "catalog.reinstate", "settlement.adjust",
            "payouts.propose_account", "payouts.reject_account"} <= actions.keys()  # fmt: skip
    assert [r.action for r in records if r.actor != cli] == ["resident.set_level"]  # the one change made on the API
    ctx.engine.dispose()
