"""Separation of duties (finding 4 of the security review), through the HTTP API and the CLI, on
SQLite and PostgreSQL: who may grant which role, one principal per (city, role, subject), a `jti` on
every token checked for revocation on each request, every grant and revocation audited with the
granting principal, and payout accounts that pay only once a second principal confirmed them."""

from __future__ import annotations

import getpass
import json
import secrets

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from api.bootstrap import Settings, open_context
from api.http.app import create_app
from community.domain.access import GRANTS, PRINCIPAL_ROLES, operator
from community.domain.program import Program
from finance.adapters import store
from ledger.service_layer import audit_trail
from tests.test_api import assert_problem
from tests.test_cli import run
from tests.world import World, standard_world

ACCOUNT = {"holder_name": "Boulangerie", "institution": "003", "transit": "00011", "account_number": "7654321",
           "stripe_account_id": "acct_boulangerie"}  # fmt: skip


@pytest.fixture
def world(ctx) -> World:
    app = create_app(ctx, terminal_rate_per_second=1_000, resident_rate_per_second=1_000)
    with TestClient(app) as client:
        w = standard_world(ctx, client)
        w.grant("admin-brossard", "admin", "brossard", "maire@brossard.ca")
        w.grant("auditor-brossard", "auditor", "brossard", "verif@brossard.ca")
        w.grant("finance2-brossard", "finance", "brossard", "f2")
        yield w


def grant(world: World, who: str, role: str, subject: str, city: str = "brossard", org_id: str | None = None):
    body = {"role": role, "subject": subject} | ({"org_id": org_id} if org_id else {})
    body |= {"merchant_id": "boulangerie"} if role == "merchant" else {}  # a merchant's owner names its merchant
    return world.bearer(who, "POST", f"/v1/admin/tokens/{city}", body, key=secrets.token_hex(8))


def audit_of(world: World, action: str, city: str = "brossard") -> list[dict]:
    return [
        e
        for e in msgspec.to_builtins(audit_trail.page(world.ctx.engine, city, 0, 1_000).entries)
        if e["action"] == action
    ]


def jti_of(world: World, token: str) -> str:
    return world.ctx.tokens.verify(token, world.now_s())["jti"]


def test_staff_cannot_mint_finance_or_auditor_tokens(world: World) -> None:
    """The review's attack: a staff token minted a 90-day finance token, then changed a payout account."""
    before = len(audit_of(world, "credential.grant"))
    for role in ("finance", "auditor", "admin", "staff"):
        assert_problem(grant(world, "staff-brossard", role, "mallory"), 403, "grant_not_allowed")
    for role in ("finance", "auditor", "admin", "staff", "org"):
        assert_problem(grant(world, "finance-brossard", role, "mallory", org_id="entraide-jeunesse" if role == "org" else None),
                       403, "grant_not_allowed")  # fmt: skip
    assert len(audit_of(world, "credential.grant")) == before  # refused grants leave nothing
    assert world.ctx.access.credentials(operator("t"), "brossard", subject="mallory", live_only=False).credentials == []

    made = grant(world, "admin-brossard", "finance", "f3")
    assert made.status_code == 201, made.text
    world.tokens["f3"] = made.json()["token"]
    assert world.bearer("f3", "GET", "/v1/finance/brossard/budget").status_code == 200
    record = audit_of(world, "credential.grant")[-1]
    assert record["actor"] == f"admin:maire@brossard.ca/{jti_of(world, world.tokens['admin-brossard'])}"
    assert record["target"] == "finance:f3" and record["after"]["jti"] == made.json()["jti"] == jti_of(
        world, world.tokens["f3"]
    )
    assert_problem(grant(world, "admin-brossard", "finance", "f4", city="delson"), 403, "grant_not_allowed")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attempts=st.lists(st.tuples(st.sampled_from(PRINCIPAL_ROLES), st.sampled_from(PRINCIPAL_ROLES), st.integers(0, 3)),
                         min_size=1, max_size=6))  # fmt: skip
def test_no_role_grants_what_the_table_does_not_allow(world: World, attempts) -> None:
    """Whatever principals try, with tokens they hold or obtained, a grant succeeds exactly when the
    table allows it (or it renews one's own token), and each success is audited with its grantor."""
    holders = {role: f"{role}-{n}" for n, role in enumerate(PRINCIPAL_ROLES)}
    for role, name in holders.items():
        if name not in world.tokens:
            world.grant(name, role, "brossard", f"seed-{name}", org_id="entraide-jeunesse" if role == "org" else None,
                        merchant_id="boulangerie" if role == "merchant" else None)  # fmt: skip
    for granter, role, n in attempts:
        token = world.tokens[holders[granter]]
        subject = f"{granter}-gives-{role}-{n}"
        granted = grant(world, holders[granter], role, subject, org_id="entraide-jeunesse" if role == "org" else None)
        allowed = role in GRANTS[granter]
        if not allowed:
            assert_problem(granted, 403, "grant_not_allowed")
            continue
        assert granted.status_code in (201, 409), granted.text  # 409: this subject was granted by an earlier example
        if granted.status_code == 201:
            record = [e for e in audit_of(world, "credential.grant") if e["after"]["jti"] == granted.json()["jti"]]
            assert (
                len(record) == 1 and record[0]["actor"] == f"{granter}:seed-{holders[granter]}/{jti_of(world, token)}"
            )
    # Renewing one's own token is always allowed, whatever the role.
    for role, name in holders.items():
        renewed = grant(world, name, role, f"seed-{name}", org_id="entraide-jeunesse" if role == "org" else None)
        assert renewed.status_code == 201, renewed.text


def test_one_principal_per_subject_and_role(world: World) -> None:
    """A staff member cannot mint a token under a colleague's subject; the colleague can renew theirs."""
    assert (
        grant(world, "staff-brossard", "org", "coordo-entraide-jeunesse", org_id="entraide-jeunesse").status_code == 409
    )
    assert_problem(grant(world, "admin-brossard", "finance", "f1"), 409, "subject_taken")
    assert_problem(grant(world, "admin-brossard", "staff", "s-brossard"), 409, "subject_taken")
    renewed = grant(world, "finance-brossard", "finance", "f1")
    assert renewed.status_code == 201 and renewed.json()["principal_id"]
    # The same subject may hold another role, as another principal.
    assert grant(world, "admin-brossard", "auditor", "f1").status_code == 201
    # An organization's coordinator cannot be moved to another organization by a grant.
    world.ctx.organizations.add("brossard", "club", "Club", "staff:test", key="club")
    assert_problem(grant(world, "staff-brossard", "org", "coordo-entraide-jeunesse", org_id="club"), 409, "conflict")


def test_revocation_is_checked_on_every_request_and_audited(world: World) -> None:
    token = world.tokens["finance-brossard"]
    assert world.bearer("finance-brossard", "GET", "/v1/finance/brossard/budget").status_code == 200
    jti = jti_of(world, token)
    assert_problem(
        world.bearer("staff-brossard", "POST", f"/v1/admin/tokens/brossard/{jti}/revoke"), 403, "grant_not_allowed"
    )
    revoked = world.bearer("admin-brossard", "POST", f"/v1/admin/tokens/brossard/{jti}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at_us"] is not None
    assert_problem(world.bearer("finance-brossard", "GET", "/v1/finance/brossard/budget"), 401, "token_revoked")
    record = audit_of(world, "credential.revoke")[-1]
    assert record["after"] == {"jti": jti} and record["actor"].startswith("admin:maire@brossard.ca/")

    # A holder signs out their own token; a withdrawn principal loses every token at once.
    own = jti_of(world, world.tokens["finance2-brossard"])
    assert world.bearer("finance2-brossard", "POST", f"/v1/admin/tokens/brossard/{own}/revoke").status_code == 200
    assert_problem(world.bearer("finance2-brossard", "GET", "/v1/finance/brossard/budget"), 401, "token_revoked")
    second = grant(world, "admin-brossard", "staff", "s2").json()["token"]
    world.tokens["s2"], world.tokens["s2-bis"] = second, grant(world, "admin-brossard", "staff", "s3").json()["token"]
    withdrawn = world.bearer(
        "admin-brossard", "POST", "/v1/admin/principals/brossard/revoke", {"role": "staff", "subject": "s2"}
    )
    assert (
        withdrawn.status_code == 200
        and withdrawn.json()["status"] == "revoked"
        and withdrawn.json()["tokens_revoked"] == 1
    )
    assert_problem(world.bearer("s2", "GET", "/v1/admin/programs/brossard"), 401, "token_revoked")
    assert world.bearer("s2-bis", "GET", "/v1/admin/programs/brossard").status_code == 200
    # Granted again later by someone allowed to: a new token, the old one stays dead.
    again = grant(world, "admin-brossard", "staff", "s2")
    assert again.status_code == 201 and again.json()["principal_id"] == withdrawn.json()["id"]
    assert_problem(world.bearer("s2", "GET", "/v1/admin/programs/brossard"), 401, "token_revoked")


def test_tokens_without_a_credential_are_refused(world: World) -> None:
    """A token signed by the issuer but never granted (no jti, or one not on record) does nothing."""
    now = world.now_s()
    for claims in ({"sub": "f1", "role": "finance", "city": "brossard"},
                   {"sub": "f1", "role": "finance", "city": "brossard", "jti": "0" * 32},
                   # a real credential's id, with the role changed: refused too
                   {"sub": "f1", "role": "admin", "city": "brossard", "jti": jti_of(world, world.tokens["finance-brossard"])}):  # fmt: skip
        forged = world.ctx.tokens.issue(claims, 600, now)
        response = world.client.get("/v1/finance/brossard/budget", headers={"Authorization": f"Bearer {forged}"})
        assert_problem(response, 401, "unauthorized")


def test_listing_shows_credentials_never_tokens(world: World) -> None:
    listed = world.bearer("admin-brossard", "GET", "/v1/admin/tokens/brossard").json()["credentials"]
    assert {("finance", "f1"), ("staff", "s-brossard"), ("admin", "maire@brossard.ca")} <= {
        (c["role"], c["subject"]) for c in listed
    }
    assert all("token" not in c for c in listed) and world.tokens["finance-brossard"] not in json.dumps(listed)
    assert world.bearer("auditor-brossard", "GET", "/v1/admin/tokens/brossard").json()["credentials"] == listed
    mine = world.bearer("staff-brossard", "GET", "/v1/admin/tokens/brossard").json()["credentials"]
    assert {(c["role"], c["subject"]) for c in mine} == {("staff", "s-brossard")}
    assert_problem(world.bearer("staff-brossard", "GET", "/v1/admin/principals/brossard"), 403, "forbidden")
    assert_problem(world.bearer("admin-brossard", "GET", "/v1/admin/tokens/delson"), 403, "wrong_tenant")
    assert_problem(world.bearer("alice", "GET", "/v1/admin/tokens/brossard"), 403, "forbidden")


def test_payout_account_needs_a_second_principal(world: World) -> None:
    proposed = world.bearer("finance-brossard", "PUT", "/v1/finance/brossard/merchants/boulangerie/payout-account", ACCOUNT,
                            key="p1")  # fmt: skip
    assert proposed.status_code == 202 and proposed.json()["status"] == "pending"
    change = proposed.json()
    assert change["account_number"] == "…321" and "7654321" not in proposed.text
    with world.ctx.engine.connect() as conn:  # nothing pays to it yet
        assert store.payout_accounts(conn, ["boulangerie"]) == {}
    path = f"/v1/finance/brossard/payout-account-changes/{change['id']}"
    assert_problem(world.bearer("finance-brossard", "POST", f"{path}/confirm"), 403, "second_principal_required")
    renewed = grant(world, "finance-brossard", "finance", "f1").json()["token"]  # another token of the same person
    world.tokens["f1-again"] = renewed
    assert_problem(world.bearer("f1-again", "POST", f"{path}/confirm"), 403, "second_principal_required")
    assert_problem(world.bearer("staff-brossard", "POST", f"{path}/confirm"), 403, "forbidden")
    pending = world.bearer("finance2-brossard", "GET", "/v1/finance/brossard/payout-account-changes").json()["changes"]
    assert [c["id"] for c in pending] == [change["id"]]
    confirmed = world.bearer("finance2-brossard", "POST", f"{path}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert_problem(world.bearer("admin-brossard", "POST", f"{path}/reject"), 409, "change_not_pending")
    with world.ctx.engine.connect() as conn:
        assert store.payout_accounts(conn, ["boulangerie"])["boulangerie"]["account_number"] == "7654321"

    # A city administrator may confirm too; the proposer may withdraw their own proposal.
    other = world.bearer("finance-brossard", "PUT", "/v1/finance/brossard/merchants/librairie/payout-account", ACCOUNT,
                         key="p2").json()  # fmt: skip
    assert (
        world.bearer(
            "admin-brossard", "POST", f"/v1/finance/brossard/payout-account-changes/{other['id']}/confirm"
        ).status_code
        == 200
    )
    third = world.bearer("finance-brossard", "PUT", "/v1/finance/brossard/merchants/librairie/payout-account",
                         ACCOUNT | {"account_number": "1111111"}, key="p3").json()  # fmt: skip
    rejected = world.bearer(
        "finance-brossard", "POST", f"/v1/finance/brossard/payout-account-changes/{third['id']}/reject"
    )
    assert rejected.json()["status"] == "rejected"
    with world.ctx.engine.connect() as conn:
        assert store.payout_accounts(conn, ["librairie"])["librairie"]["account_number"] == "7654321"
    actions = [
        e["action"] for e in audit_of(world, "payouts.propose_account") + audit_of(world, "payouts.confirm_account")
    ]
    assert actions.count("payouts.propose_account") == 3 and actions.count("payouts.confirm_account") == 2
    assert all(
        "7654321" not in json.dumps(e)
        for e in msgspec.to_builtins(audit_trail.page(world.ctx.engine, "brossard", 0, 1_000).entries)
    )


def test_cli_grants_lists_and_revokes(db_url, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=db_url, keys_dir=tmp_path / "keys")
    ctx = open_context(settings, create=True)  # the real clock, as the command line uses
    ctx.programs.configure(Program(city="brossard"), "cli:test")
    db = ["--db", db_url, "--data-dir", str(tmp_path)]
    token = run("admin", "grant", "--city", "brossard", "--role", "auditor", "--subject", "cour@quebec.ca", *db).strip()
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(ctx)) as client:
        assert client.get("/v1/admin/audit/brossard", headers=headers).status_code == 200
        listed = json.loads(run("admin", "tokens", "--city", "brossard", "--role", "auditor", *db))
        (mine,) = [c for c in listed if c["subject"] == "cour@quebec.ca"]
        assert mine["issued_by"] == f"cli:{getpass.getuser()}" and "token" not in mine
        run("admin", "revoke", "--city", "brossard", "--jti", mine["jti"], *db)
        assert_problem(client.get("/v1/admin/audit/brossard", headers=headers), 401, "token_revoked")
    assert "may not grant or revoke the role resident" in run(
        "admin", "grant", "--city", "brossard", "--role", "resident", "--subject", "x", *db, code=2
    )
    assert "No rewards program is set up for atlantis" in run(
        "admin", "grant", "--city", "atlantis", "--role", "staff", "--subject", "x", *db, code=2
    )
    records = [
        e
        for e in msgspec.to_builtins(audit_trail.page(ctx.engine, "brossard", 0, 100).entries)
        if e["action"].startswith("credential.")
    ]
    assert [(e["action"], e["actor"]) for e in records] == [("credential.grant", f"cli:{getpass.getuser()}"),
                                                           ("credential.revoke", f"cli:{getpass.getuser()}")]  # fmt: skip
    ctx.engine.dispose()
