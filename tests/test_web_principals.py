"""Merchant owners and program officers sign in on the web: an activation code (issued by whoever may
grant the role), a passkey (Chromium's virtual authenticator), sign out, sign in with the passkey,
the portal's and the office's homes; a session of one area never opens another; the office shows a
role only what it may use, and refuses the rest anyway."""

from __future__ import annotations

import json
import secrets

import pytest
from litestar.testing import TestClient

from api.bootstrap import Settings, open_context
from api.http.app import create_app
from community.domain.access import Grantor, operator
from community.domain.program import Program
from ledger.domain.errors import LedgerError
from tests.browser import browser, needs_chromium, site, visitor
from tests.test_cli import run
from tests.test_web_signin import HTTPS, authenticator
from tests.world import World
from web.auth import OFFICE, PORTAL, WALLET, open_session
from web.pages import SESSION_COOKIE

__all__ = ["browser"]  # the fixture, imported for its module
SAM = Grantor("staff", "sam", "brossard", "staff:sam")  # a staff member, as their token names them


@pytest.fixture
def brossard(ctx) -> World:
    world = World(ctx, client=None)  # type: ignore[arg-type]
    world.city("brossard", name="Brossard")
    world.merchant("boulangerie", "brossard")
    world.resident("alice", "brossard")
    return world


def code_for(ctx, role: str, subject: str, merchant_id: str | None = None) -> str:
    return ctx.activation.issue_principal(operator("test"), "brossard", role, subject, key=secrets.token_hex(8),
                                          merchant_id=merchant_id).code  # fmt: skip


@needs_chromium
def test_an_owner_and_a_finance_officer_activate_register_a_passkey_and_sign_in_with_it(browser, ctx, brossard) -> None:
    checked = ctx.engine.dialect.name == "sqlite"  # axe and screenshots once: the pages are the same HTML

    def check(seen, name: str) -> None:
        seen.check(name) if checked else seen.assert_clean()

    owner_code, finance_code = code_for(ctx, "merchant", "marie", "boulangerie"), code_for(ctx, "finance", "fanny")
    with site(ctx) as served:
        base = served.replace("127.0.0.1", "localhost")  # a passkey's relying party is a host name
        with visitor(browser, base, locale="fr-CA") as french:
            page, _keep = french.page, authenticator(french.page)
            french.open("/portal")
            page.wait_for_url(f"{base}/portal/sign-in?next=/portal")
            assert page.get_by_role("heading", level=1).inner_text() == "Me connecter au portail de mon commerce"
            check(french, "portal-signin-fr")
            page.get_by_role("textbox", name="Code d’activation").fill(owner_code)
            page.get_by_role("button", name="Me connecter avec ce code").click()
            page.wait_for_url(f"{base}/portal/sign-in/passkey?next=/portal")
            check(french, "portal-passkey-fr")
            page.get_by_role("button", name="Créer ma clé d’accès").click()
            page.wait_for_url(f"{base}/portal")
            assert page.get_by_role("heading", level=1).inner_text() == "Commerce boulangerie"
            assert page.get_by_text("Brossard").is_visible()
            check(french, "portal-fr")
            french.open("/office")  # an owner's session never opens the office, nor the wallet
            page.wait_for_url(f"{base}/office/sign-in?next=/office")
            french.open("/wallet")
            page.wait_for_url(f"{base}/wallet/sign-in?next=/wallet")
            french.open("/portal")
            page.get_by_role("button", name="Me déconnecter", exact=True).click()
            page.wait_for_url(f"{base}/portal/sign-in?signed_out=1")
            french.open("/portal")  # the session ended: its token was revoked
            page.wait_for_url(f"{base}/portal/sign-in?next=/portal")
            page.get_by_role("button", name="Me connecter avec ma clé d’accès").click()
            page.wait_for_url(f"{base}/portal")
            french.assert_clean()

        with visitor(browser, base, locale="en-CA") as english:
            page, _keep = english.page, authenticator(english.page)
            english.open("/office/sign-in")
            assert page.get_by_role("heading", level=1).inner_text() == "Sign in to the city's back office"
            check(english, "office-signin-en")
            page.get_by_role("textbox", name="Activation code").focus()  # the keyboard alone
            page.keyboard.type(finance_code)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/office/sign-in/passkey?next=/office")
            create = page.get_by_role("button", name="Create my passkey")
            create.focus()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/office")
            nav = page.get_by_role("navigation", name="Back office")
            links = nav.get_by_role("link").all_inner_texts()  # each part adds its pages: what finance may use
            assert links[:2] == ["Home", "Audit trail"] and {"Budget", "Periods", "Bank reconciliation"} <= set(links)
            assert page.get_by_text("Finance officer").is_visible()
            check(english, "office-en")
            page.get_by_role("button", name="Sign out", exact=True).click()
            page.wait_for_url(f"{base}/office/sign-in?signed_out=1")
            english.open("/office/sign-in?next=/office/periods")
            page.get_by_role("button", name="Sign in with my passkey").click()
            page.wait_for_url(f"{base}/office/periods")
            english.open("/office/audit")
            assert page.get_by_role("cell", name="activation.use").count() == 2  # the owner's and Fanny's codes
            check(english, "office-audit-en")
    assert len(ctx.passkeys.list(ctx.access.principal_id("brossard", "finance", "fanny"), "principal")) == 1


def test_each_area_opens_only_to_its_own_sessions_and_the_office_refuses_what_a_role_may_not(ctx, brossard) -> None:
    staff_id = ctx.activation.issue_principal(operator("test"), "brossard", "staff", "sam", key="k").principal_id
    owner_id = ctx.activation.issue_principal(operator("test"), "brossard", "merchant", "marie", key="k2",
                                              merchant_id="boulangerie").principal_id  # fmt: skip
    staff = open_session(ctx, staff_id, "brossard", "test:web", OFFICE).value
    owner = open_session(ctx, owner_id, "brossard", "test:web", PORTAL).value
    resident = open_session(ctx, brossard.residents["alice"].id, "brossard", "test:web", WALLET).value
    with TestClient(create_app(ctx), base_url=HTTPS) as client:
        for session, path, where in ((staff, "/office", 200), (staff, "/office/audit", 200), (staff, "/portal", "/portal"),
                                     (staff, "/wallet", "/wallet"), (owner, "/portal", 200), (owner, "/office", "/office"),
                                     (resident, "/office", "/office"), (resident, "/portal", "/portal")):  # fmt: skip
            client.cookies.set(SESSION_COOKIE, session)
            seen = client.get(path, follow_redirects=False)
            if where == 200:
                assert seen.status_code == 200, (path, seen.text)
            else:
                assert (seen.status_code, seen.headers["location"]) == (303, f"{where}/sign-in?next={where}"), path
        client.cookies.set(SESSION_COOKIE, staff)
        home = client.get("/office", headers={"Accept-Language": "en"})
        assert "/office/audit" in home.text and "/office/periods" not in home.text  # not shown to staff,
        refused = client.get("/office/periods", headers={"Accept-Language": "en"})  # and refused anyway
        assert refused.status_code == 403
    # Staff issue an owner's code, never a finance officer's; a resident's code never opens the office.
    ctx.activation.issue_principal(SAM, "brossard", "merchant",
                                   "paul", key="k3", merchant_id="boulangerie")  # fmt: skip
    with pytest.raises(LedgerError) as refused_grant:
        ctx.activation.issue_principal(SAM, "brossard", "finance",
                                       "eve", key="k4")  # fmt: skip
    assert refused_grant.value.code == "grant_not_allowed"
    code = ctx.activation.issue(brossard.residents["alice"].id, "brossard", "staff:test", key="k5").code
    with pytest.raises(LedgerError) as refused_code:
        ctx.activation.redeem(code, "principal")
    assert refused_code.value.code == "activation_code_invalid"


def test_the_cli_and_the_api_issue_codes_that_open_the_office_and_the_portal(db_url, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=db_url, keys_dir=tmp_path / "keys")
    ctx = open_context(settings, create=True)
    ctx.programs.configure(Program(city="brossard"), "cli:test")
    ctx.merchants.add("brossard", "boulangerie", "Boulangerie", "cli:test", key="m", category="food")
    db = ["--db", db_url, "--data-dir", str(tmp_path)]
    printed = json.loads(
        run("admin", "principal-activation", "--city", "brossard", "--role", "staff", "--subject", "sam", *db)
    )
    staff_id, city = ctx.activation.redeem(printed["code"], "principal")
    assert (printed["role"], city, staff_id) == ("staff", "brossard", printed["principal_id"])
    token = ctx.access.grant(operator("test"), "brossard", "staff", "sam", key="t").token
    with TestClient(create_app(ctx)) as client:  # staff issue an owner's code through the API
        issued = client.post("/v1/admin/principals/brossard/activation", json={"role": "merchant", "subject": "marie",
                             "merchant_id": "boulangerie"}, headers={"Authorization": f"Bearer {token}",
                             "Idempotency-Key": "k"})  # fmt: skip
        assert issued.status_code == 201, issued.text
    owner_id, _ = ctx.activation.redeem(issued.json()["code"], "principal")
    session = ctx.access.issue_principal(owner_id, PORTAL.session_seconds, "test")
    assert ctx.tokens.verify(session, ctx.clock() // 1_000_000)["merchant"] == "boulangerie"
